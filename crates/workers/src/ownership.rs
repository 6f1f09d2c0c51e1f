//! The ownership guard: Polaris never changes or deletes a Kubernetes object that belongs to another cluster.
//!
//! Every object Polaris writes carries `polaris.dev/cluster-id`. Before an activity writes one, it reads it: an
//! existing object labelled with another cluster's id, or one without the label (created outside Polaris), is
//! left exactly as it is and the operation fails with `OWNERSHIP_CONFLICT`, naming the object. The write itself
//! carries the `resourceVersion` that was checked, so an object changed between the check and the write is a
//! conflict the activity retries (and checks again), never a silent overwrite. Deletes select by the cluster's
//! own id.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use temporalio_sdk::activities::ActivityError;

use crate::provision::{FIELD_MANAGER, classify_kube};
use crate::resources::CLUSTER_ID_LABEL;

/// The stable code an operation's failure reason starts with.
pub const OWNERSHIP_CONFLICT: &str = "OWNERSHIP_CONFLICT";

/// An object in the way of a cluster's write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The cluster id the object is labelled with; `None` when it carries no Polaris label.
    pub owner: Option<String>,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let object = match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        };
        match &self.owner {
            Some(owner) => {
                write!(f, "{OWNERSHIP_CONFLICT}: {object} belongs to cluster {owner}; it was left unchanged")
            }
            None => write!(
                f,
                "{OWNERSHIP_CONFLICT}: {object} exists without the {CLUSTER_ID_LABEL} label (not created by Polaris); \
                 it was left unchanged"
            ),
        }
    }
}

/// Whether an existing object belongs to `cluster_id`.
pub fn check<K: Resource<DynamicType = ()>>(existing: &K, cluster_id: uuid::Uuid) -> Result<(), Conflict> {
    let owner = existing.labels().get(CLUSTER_ID_LABEL).cloned();
    if owner.as_deref() == Some(cluster_id.to_string().as_str()) {
        return Ok(());
    }
    Err(Conflict { kind: K::kind(&()).into_owned(), namespace: existing.namespace(), name: existing.name_any(), owner })
}

/// Whether the object `name` may be written for `cluster_id`: absent, or labelled with its id. `Ok(Err(conflict))`:
/// it belongs to someone else.
pub async fn check_existing<K>(
    api: &Api<K>,
    name: &str,
    cluster_id: uuid::Uuid,
) -> Result<Result<(), Conflict>, ActivityError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    Ok(match api.get_opt(name).await.map_err(classify_kube)? {
        Some(existing) => check(&existing, cluster_id),
        None => Ok(()),
    })
}

/// Server-side applies `obj` (named `name`) for `cluster_id`, unless an object of another owner is in the way.
/// `Ok(Err(conflict))`: nothing was written.
pub async fn apply<K>(
    api: &Api<K>,
    name: &str,
    obj: &K,
    cluster_id: uuid::Uuid,
) -> Result<Result<(), Conflict>, ActivityError>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let mut obj = obj.clone();
    if let Some(existing) = api.get_opt(name).await.map_err(classify_kube)? {
        if let Err(conflict) = check(&existing, cluster_id) {
            return Ok(Err(conflict));
        }
        // Only the object just checked may be written: a change in between fails with 409 and is retried.
        obj.meta_mut().resource_version = existing.resource_version();
    }
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj)).await.map_err(classify_kube)?;
    Ok(Ok(()))
}

/// Creates `name` from `make()` unless it exists; an existing object of `cluster_id` is left exactly as it is (a
/// Secret's generated value is never replaced). `Ok(Err(conflict))`: it belongs to someone else.
pub async fn create_once<K>(
    api: &Api<K>,
    name: &str,
    cluster_id: uuid::Uuid,
    make: impl FnOnce() -> K,
) -> Result<Result<(), Conflict>, ActivityError>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    if let Some(existing) = api.get_opt(name).await.map_err(classify_kube)? {
        return Ok(check(&existing, cluster_id));
    }
    match api
        .create(&kube::api::PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &make())
        .await
    {
        Ok(_) => Ok(Ok(())),
        // Created by a concurrent attempt in between: check whose it is.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = api.get(name).await.map_err(classify_kube)?;
            Ok(check(&existing, cluster_id))
        }
        Err(e) => Err(classify_kube(e)),
    }
}

/// Deletes `name` if it belongs to `cluster_id`; an absent object is fine. `Ok(Err(conflict))`: not deleted.
pub async fn delete<K>(api: &Api<K>, name: &str, cluster_id: uuid::Uuid) -> Result<Result<(), Conflict>, ActivityError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(existing) = api.get_opt(name).await.map_err(classify_kube)? else { return Ok(Ok(())) };
    if let Err(conflict) = check(&existing, cluster_id) {
        return Ok(Err(conflict));
    }
    if existing.meta().deletion_timestamp.is_some() {
        return Ok(Ok(()));
    }
    let precondition = kube::api::Preconditions { uid: existing.uid(), resource_version: None };
    let dp = kube::api::DeleteParams { preconditions: Some(precondition), ..kube::api::DeleteParams::background() };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(Ok(())),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Ok(())),
        Err(e) => Err(classify_kube(e)),
    }
}

/// The label selector of every object of one cluster.
pub fn selector(cluster_id: uuid::Uuid) -> String {
    format!("{CLUSTER_ID_LABEL}={cluster_id}")
}
