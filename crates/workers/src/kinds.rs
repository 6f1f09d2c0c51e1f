//! Kinds a target may not serve (their CRDs are optional: Istio's, the Prometheus Operator's): whether it
//! serves one, and list and delete that answer "nothing" where it does not.

use kube::Api;
use kube::api::ListParams;
use serde::de::DeserializeOwned;
use temporalio_sdk::activities::ActivityError;

use crate::provision::classify_kube;

/// Whether the target serves kind `K` (its CRD is installed): listing it answers, where an unknown kind is a 404.
pub async fn served<K>(api: &Api<K>) -> Result<bool, ActivityError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(classify_kube(e)),
    }
}

/// The objects of kind `K` in `api` that match `params`, or none when the target does not serve the kind.
pub async fn list_if_served<K>(api: &Api<K>, params: &ListParams) -> Result<Vec<K>, ActivityError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.list(params).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(vec![]),
        Err(e) => Err(classify_kube(e)),
    }
}

/// Deletes the objects of kind `K` in `api` that match `params`; nothing to do when the target does not serve it.
pub async fn delete_if_served<K>(api: &Api<K>, params: &ListParams) -> Result<(), ActivityError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete_collection(&kube::api::DeleteParams::background(), params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(classify_kube(e)),
    }
}
