//! Drift detection and revert (issue #15): the event history is the desired state.
//!
//! A pass over one cluster folds its events (the cluster's, each topic's and each user's: the same folds the
//! workflows read) into the objects Polaris applies to its target ([`ClusterSpec`] builds them), reads the live
//! objects, and compares exactly the fields Polaris applies: every leaf of `spec`, the Secret's `data` (as hashes
//! only) and the labels and annotations it sets. Those are the fields its field manager (`polaris`) owns by
//! server-side apply; status, and anything other managers add, is never compared. Whoever wrote a differing
//! field last is read from the object's `managedFields`.
//!
//! - A cluster, topic or user with an operation running is not compared: its intermediate states are the
//!   operation's, not drift. Nor is a cluster with a revert running.
//! - A missing object is drift (`actual: null`). A Strimzi resource labelled for the cluster that no event
//!   explains is reported (`expected: null`) and never deleted.
//! - An open drift whose live value is back at the recorded one is resolved `reverted` by `observed`.
//! - Under an org policy with `drift.mode: revert`, the detector asks for the revert itself.
//!
//! The schedule is a durable Temporal workflow per target ([`DriftDetector`], one pass per interval,
//! continue-as-new every [`PASSES_PER_RUN`] passes). Kubernetes watches on Polaris-labelled Strimzi resources
//! run the same pass for the cluster an object belongs to at once ([`watch_target`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::watcher;
use polaris_domain::cluster::{Cluster, ClusterStatus};
use polaris_domain::credentials::CredentialsKey;
use polaris_domain::drift::{DetectDrift, DriftCommand, DriftError, DriftResolution};
use polaris_domain::ids::{ClusterId, OperationId, OrgId};
use polaris_domain::topic::{Topic, topic_id};
use polaris_domain::user::{KafkaUser as UserAggregate, user_id};
use polaris_domain::{CommandMetadata, policy::DriftMode};
use polaris_store::Pool as PgPool;
use polaris_store::cqrs_es::AggregateError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use temporalio_common::RetryPolicy;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};
use uuid::Uuid;

use crate::facts::{self, ClusterFacts};
use crate::operations::{OperationActivities, StepOutcome};
use crate::provision::{Cause, classify_kube, non_retryable, retryable, target_error};
use crate::resources::{ADMIN_PASSWORD_SECRET, CLUSTER_ID_LABEL, ClusterSpec, USER_PASSWORD_KEY};
use crate::strimzi::{Kafka, KafkaNodePool, KafkaTopic, KafkaUser};
use crate::target::{TargetRef, TargetsConfig};

/// The actor of what the detector records.
pub const DETECTOR_ACTOR: &str = "worker:drift-detector";
/// Who resolves a drift found back at its recorded value.
pub const OBSERVED: &str = "observed";
/// Who asks for a revert under an org's `drift.mode: revert`.
pub const POLICY_REVERT: &str = "policy:drift-revert";
/// Passes per run of the detector workflow before it continues as new (keeps its history short).
pub const PASSES_PER_RUN: u32 = 100;

/// The Strimzi kinds the detector compares and reports as unexplained.
const STRIMZI_KINDS: [&str; 4] = ["Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"];

/// `Kind/namespace/name` (`Namespace/name` for the namespace itself).
pub fn object_id(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

fn resource(kind: &str) -> ApiResource {
    match kind {
        "Namespace" => ApiResource::erase::<Namespace>(&()),
        "Secret" => ApiResource::erase::<Secret>(&()),
        "Kafka" => ApiResource::erase::<Kafka>(&()),
        "KafkaNodePool" => ApiResource::erase::<KafkaNodePool>(&()),
        "KafkaTopic" => ApiResource::erase::<KafkaTopic>(&()),
        _ => ApiResource::erase::<KafkaUser>(&()),
    }
}

/// One object as the cluster's events say it must be.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: String,
    /// The object as Polaris applies it (a Secret's values as hashes, see [`hashed_secret`]).
    pub object: Value,
}

impl Expected {
    fn new<K: Serialize>(kind: &'static str, namespace: Option<String>, name: &str, object: &K) -> Self {
        Expected { kind, namespace, name: name.to_owned(), object: serde_json::to_value(object).unwrap_or(Value::Null) }
    }

    pub fn id(&self) -> String {
        object_id(self.kind, self.namespace.as_deref(), &self.name)
    }
}

/// `sha256:<hex>` of a value: how a Secret's value is compared and recorded.
pub fn value_hash(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A live Secret with each value of `data` replaced by its hash (the API serves them base64-encoded; the
/// Secret's own type decodes them). Nothing else of a Secret's values is ever compared or recorded.
pub fn hashed_secret(secret: &Value) -> Value {
    let mut out = secret.clone();
    let decoded: Option<Secret> = serde_json::from_value(secret.clone()).ok();
    let hashes: serde_json::Map<String, Value> = decoded
        .and_then(|s| s.data)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, Value::String(value_hash(&v.0))))
        .collect();
    if out.get("data").is_some_and(|d| !d.is_null()) {
        out["data"] = Value::Object(hashes);
    }
    out
}

/// One field that differs.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldDrift {
    /// The path's segments (`["spec", "config", "retention.ms"]`).
    pub path: Vec<String>,
    pub expected: Value,
    pub actual: Option<Value>,
    pub changed_by: Option<String>,
}

impl FieldDrift {
    pub fn field(&self) -> String {
        self.path.join(".")
    }
}

/// The leaves Polaris sets: every leaf of `spec` and `data` (objects recurse; arrays and scalars are leaves), and
/// each label and annotation. A `null` is a field Polaris leaves out.
pub fn leaves(object: &Value) -> Vec<(Vec<String>, Value)> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
        match v {
            Value::Null => {}
            Value::Object(m) if !m.is_empty() => {
                for (k, c) in m {
                    path.push(k.clone());
                    walk(c, path, out);
                    path.pop();
                }
            }
            _ => out.push((path.clone(), v.clone())),
        }
    }
    let mut out = Vec::new();
    for top in ["spec", "data"] {
        if let Some(v) = object.get(top) {
            walk(v, &mut vec![top.to_owned()], &mut out);
        }
    }
    for meta in ["labels", "annotations"] {
        if let Some(Value::Object(m)) = object.get("metadata").and_then(|m| m.get(meta)) {
            for (k, v) in m {
                if !v.is_null() {
                    out.push((vec!["metadata".into(), meta.into(), k.clone()], v.clone()));
                }
            }
        }
    }
    out
}

fn at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |node, seg| node.get(seg)).filter(|v| !v.is_null())
}

/// Whether the live value holds what Polaris set: every field of an expected object (recursively; a field the
/// API server added is not Polaris'), arrays element by element, numbers by value.
pub fn covers(expected: &Value, live: Option<&Value>) -> bool {
    match (expected, live) {
        (Value::Null, _) => true,
        (Value::Object(e), None) | (Value::Object(e), Some(Value::Null)) => e.is_empty(),
        (Value::Array(e), None) | (Value::Array(e), Some(Value::Null)) => e.is_empty(),
        (_, None) => false,
        (Value::Object(e), Some(Value::Object(l))) => e.iter().all(|(k, v)| covers(v, l.get(k))),
        (Value::Array(e), Some(Value::Array(l))) => {
            e.len() == l.len() && e.iter().zip(l).all(|(e, l)| covers(e, Some(l)))
        }
        (Value::Number(e), Some(Value::Number(l))) => e == l || e.as_f64() == l.as_f64(),
        (e, Some(l)) => e == l,
    }
}

/// The manager that last wrote `path`, from the object's `managedFields` (the newest entry that owns it; another
/// manager than Polaris' own before it).
pub fn manager_of(live: &Value, path: &[String]) -> Option<String> {
    let entries = live.get("metadata")?.get("managedFields")?.as_array()?;
    let mut owners: Vec<(&str, &str)> = entries
        .iter()
        .filter_map(|e| {
            let mut node = e.get("fieldsV1")?;
            for seg in path {
                node = node.get(format!("f:{seg}"))?;
            }
            Some((e.get("time").and_then(Value::as_str).unwrap_or(""), e.get("manager")?.as_str()?))
        })
        .collect();
    owners.sort_by(|a, b| {
        (b.1 != crate::provision::FIELD_MANAGER, b.0).cmp(&(a.1 != crate::provision::FIELD_MANAGER, a.0))
    });
    owners.first().map(|(_, m)| (*m).to_owned())
}

/// The fields of `expected` that `live` does not hold as Polaris set them.
pub fn compare(expected: &Value, live: &Value) -> Vec<FieldDrift> {
    leaves(expected)
        .into_iter()
        .filter(|(path, value)| !covers(value, at(live, path)))
        .map(|(path, value)| FieldDrift {
            actual: at(live, &path).cloned(),
            changed_by: manager_of(live, &path),
            expected: value,
            path,
        })
        .collect()
}

/// What a pass compares for one cluster.
#[derive(Clone, Debug)]
pub struct Desired {
    pub cluster_id: Uuid,
    pub org_id: Uuid,
    pub spec: ClusterSpec,
    pub objects: Vec<Expected>,
    /// `Kind/namespace/name` of objects whose resource has an operation running: neither compared nor
    /// unexplained.
    pub in_flight: BTreeSet<String>,
}

/// The cluster's objects as its events say, or `None` when the cluster is not steady (not READY, or an operation
/// is running) and must not be compared.
pub async fn desired(pool: &PgPool, cluster_id: Uuid, key: Option<&CredentialsKey>) -> anyhow::Result<Option<Desired>> {
    let cluster: Cluster = facts::current(pool, cluster_id).await?;
    if cluster.status != ClusterStatus::Ready || cluster.current_operation.is_some() {
        return Ok(None);
    }
    let (Some(spec), Some(org)) = (ClusterFacts::of(&cluster).spec, cluster.org_id) else { return Ok(None) };
    let ns = spec.namespace();
    let namespaced = Some(ns.clone());
    let mut objects = vec![Expected::new("Namespace", None, &ns, &spec.namespace_object())];
    for pool in spec.node_pools() {
        let name = pool.metadata.name.clone().unwrap_or_default();
        objects.push(Expected::new("KafkaNodePool", namespaced.clone(), &name, &pool));
    }
    objects.push(Expected::new("Kafka", namespaced.clone(), &spec.name, &spec.kafka()));
    objects.push(Expected::new("KafkaUser", namespaced.clone(), crate::resources::ADMIN_USER, &spec.admin_user()));
    // The admin password is Polaris' own secret, generated once: its presence and labels are compared, never a
    // value.
    let mut admin_secret = serde_json::to_value(spec.admin_password_secret(""))?;
    admin_secret["data"] = Value::Null;
    objects.push(Expected {
        kind: "Secret",
        namespace: namespaced.clone(),
        name: ADMIN_PASSWORD_SECRET.into(),
        object: admin_secret,
    });
    let mut in_flight = BTreeSet::new();
    let (topics, users) = polaris_store::db::drifts::members(pool, cluster_id).await?;
    for id in topics {
        let topic: Topic = facts::current(pool, id).await?;
        let Some(name) = topic.name.as_ref().map(|n| n.as_str().to_owned()) else { continue };
        let resource = crate::resources::kafka_topic_resource_name(&name, id);
        match topic.status() {
            "READY" => {
                let t = spec.kafka_topic(id, &name, topic.partitions, topic.replication_factor, &topic.config);
                objects.push(Expected::new("KafkaTopic", namespaced.clone(), &resource, &t));
            }
            "DELETED" => {}
            _ => {
                in_flight.insert(object_id("KafkaTopic", Some(&ns), &resource));
            }
        }
    }
    for id in users {
        let user: UserAggregate = facts::current(pool, id).await?;
        let Some(name) = user.name.clone() else { continue };
        let secret = polaris_domain::acl::password_secret_name(&name);
        match user.status() {
            "READY" => {
                let u = spec.kafka_user(&name, &user.acls, &user.quotas, user.generation);
                objects.push(Expected::new("KafkaUser", namespaced.clone(), &name, &u));
                if let Some(key) = key {
                    let password = key.password(id, user.generation, &user.salt);
                    let mut s = serde_json::to_value(spec.user_password_secret(&name, &password, user.generation))?;
                    s["data"] = json!({ USER_PASSWORD_KEY: value_hash(password.as_bytes()) });
                    objects.push(Expected { kind: "Secret", namespace: namespaced.clone(), name: secret, object: s });
                }
            }
            "DELETED" => {}
            _ => {
                in_flight.insert(object_id("KafkaUser", Some(&ns), &name));
                in_flight.insert(object_id("Secret", Some(&ns), &secret));
            }
        }
    }
    Ok(Some(Desired { cluster_id, org_id: org.as_uuid(), spec, objects, in_flight }))
}

/// What one pass over one cluster found.
#[derive(Clone, Debug, Default)]
pub struct ClusterPass {
    /// Every difference: `(object, field)` with the values.
    pub drifts: Vec<DetectDrift>,
    /// The objects compared (an open drift of any other object is left as it is).
    pub compared: BTreeSet<String>,
}

/// The live objects of a cluster: every Polaris-labelled Strimzi resource and Secret in its namespace, and each
/// expected object found by name (an object whose label was taken off is still the cluster's).
async fn live_objects(client: &kube::Client, d: &Desired) -> anyhow::Result<BTreeMap<String, Value>> {
    let ns = d.spec.namespace();
    let selector = ListParams::default().labels(&format!("{CLUSTER_ID_LABEL}={}", d.cluster_id));
    let mut live = BTreeMap::new();
    for kind in STRIMZI_KINDS.iter().chain(["Secret"].iter()) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource(kind));
        for obj in crate::kinds::list_if_served(&api, &selector).await.map_err(|e| anyhow::anyhow!("{e:?}"))? {
            let name = obj.metadata.name.clone().unwrap_or_default();
            live.insert(object_id(kind, Some(&ns), &name), serde_json::to_value(&obj)?);
        }
    }
    for e in &d.objects {
        if live.contains_key(&e.id()) {
            continue;
        }
        let api: Api<DynamicObject> = match &e.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource(e.kind)),
            None => Api::all_with(client.clone(), &resource(e.kind)),
        };
        if let Some(obj) = api.get_opt(&e.name).await? {
            live.insert(e.id(), serde_json::to_value(&obj)?);
        }
    }
    Ok(live)
}

/// Compares one steady cluster with its target.
pub async fn compare_cluster(pool: &PgPool, client: &kube::Client, d: &Desired) -> anyhow::Result<ClusterPass> {
    let live = live_objects(client, d).await?;
    let observed_at = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
    let cluster = ClusterId::from_uuid(d.cluster_id);
    let drift = |object: String, field: String, expected: Option<Value>, actual: Option<Value>, by: Option<String>| {
        DetectDrift {
            cluster_id: cluster,
            org_id: OrgId::from_uuid(d.org_id),
            object,
            field,
            expected,
            actual,
            changed_by: by,
            observed_at,
        }
    };
    let mut pass = ClusterPass::default();
    let spec_of =
        |v: &Value| v.get("spec").cloned().or_else(|| v.get("metadata").and_then(|m| m.get("labels")).cloned());
    for e in &d.objects {
        let id = e.id();
        pass.compared.insert(id.clone());
        let Some(obj) = live.get(&id) else {
            pass.drifts.push(drift(id, String::new(), spec_of(&e.object).or(Some(json!({}))), None, None));
            continue;
        };
        let obj = if e.kind == "Secret" { hashed_secret(obj) } else { obj.clone() };
        for f in compare(&e.object, &obj) {
            pass.drifts.push(drift(id.clone(), f.field(), Some(f.expected), f.actual, f.changed_by));
        }
    }
    // Polaris-labelled Strimzi resources no event explains.
    let explained: BTreeSet<String> = d.objects.iter().map(Expected::id).chain(d.in_flight.iter().cloned()).collect();
    for (id, obj) in &live {
        let kind = id.split('/').next().unwrap_or_default();
        if explained.contains(id) || !STRIMZI_KINDS.contains(&kind) {
            continue;
        }
        if explained_late(pool, cluster, kind, obj).await? {
            continue;
        }
        pass.compared.insert(id.clone());
        let by = obj
            .get("metadata")
            .and_then(|m| m.get("managedFields"))
            .and_then(Value::as_array)
            .and_then(|m| m.first())
            .and_then(|e| e.get("manager"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        pass.drifts.push(drift(
            id.clone(),
            String::new(),
            None,
            Some(obj.get("spec").cloned().unwrap_or(json!({}))),
            by,
        ));
    }
    Ok(pass)
}

/// Whether a labelled object the pass did not expect belongs to a topic or user whose events the read model has
/// not shown yet (created a moment ago): its events say so, by the id derived from its name.
async fn explained_late(pool: &PgPool, cluster: ClusterId, kind: &str, obj: &Value) -> anyhow::Result<bool> {
    let name = obj.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default();
    Ok(match kind {
        "KafkaTopic" => {
            let topic_name = obj.get("spec").and_then(|s| s.get("topicName")).and_then(Value::as_str).unwrap_or(name);
            let id = topic_id(cluster, topic_name);
            let topic: Topic = facts::current(pool, id).await?;
            topic.name.is_some()
                && !topic.deleted
                && crate::resources::kafka_topic_resource_name(topic_name, id) == name
        }
        "KafkaUser" => {
            let user: UserAggregate = facts::current(pool, user_id(cluster, name)).await?;
            user.name.is_some() && !user.deleted
        }
        _ => false,
    })
}

/// The detector: passes over a target's clusters, and what they record.
pub struct Detector {
    pub pool: PgPool,
    pub drifts: Arc<polaris_store::DriftCqrs>,
    pub key: Option<Arc<CredentialsKey>>,
    pub targets: TargetsConfig,
    pub metrics: crate::WorkerMetrics,
}

/// What one pass over a target did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PassSummary {
    pub clusters: u32,
    /// Clusters not compared: not steady, or a revert running.
    pub skipped: u32,
    pub objects: u32,
    pub detected: u32,
    pub resolved: u32,
    pub reverts: u32,
    pub millis: u64,
}

impl Detector {
    fn metadata(&self, org: Uuid, correlation: Uuid, operation: Option<OperationId>) -> CommandMetadata {
        CommandMetadata {
            org_id: OrgId::from_uuid(org),
            actor: DETECTOR_ACTOR.into(),
            correlation_id: correlation,
            causation_id: correlation,
            operation_id: operation,
            occurred_at: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6),
            policy_version: None,
        }
    }

    /// One pass over every cluster on `target`.
    pub async fn pass_target(&self, target: Uuid) -> anyhow::Result<PassSummary> {
        let started = Instant::now();
        let Some(target_ref) = crate::target::load(&self.pool, target, &self.targets).await? else {
            return Ok(PassSummary::default());
        };
        let client = target_ref.client().await?;
        let mut summary = PassSummary::default();
        for (cluster, _org) in polaris_store::db::drifts::detector_clusters(&self.pool, target).await? {
            summary.clusters += 1;
            // One cluster that cannot be compared now (its namespace being deleted, a transient API error) is
            // the next pass' to try again; the others are compared all the same.
            match self.pass_cluster(&client, cluster).await {
                Ok(Some(s)) => {
                    summary.objects += s.objects;
                    summary.detected += s.detected;
                    summary.resolved += s.resolved;
                    summary.reverts += s.reverts;
                }
                Ok(None) => summary.skipped += 1,
                Err(e) => {
                    tracing::warn!(%cluster, error = %e, "drift pass over a cluster failed");
                    summary.skipped += 1;
                }
            }
        }
        summary.millis = started.elapsed().as_millis() as u64;
        Ok(summary)
    }

    /// One pass over one cluster, recorded; `None` when it was not compared.
    pub async fn pass_cluster(&self, client: &kube::Client, cluster: Uuid) -> anyhow::Result<Option<PassSummary>> {
        let skipped = || {
            self.metrics.drift_passes.get_or_create(&crate::DriftPassLabels { outcome: "skipped" }).inc();
            Ok(None)
        };
        let open = polaris_store::db::drifts::open_of_cluster(&self.pool, cluster).await?;
        if open.iter().any(|d| d.operation_id.is_some()) {
            return skipped();
        }
        let Some(d) = desired(&self.pool, cluster, self.key.as_deref()).await? else { return skipped() };
        let pass = compare_cluster(&self.pool, client, &d).await?;
        self.metrics.drift_passes.get_or_create(&crate::DriftPassLabels { outcome: "compared" }).inc();
        let correlation = Uuid::new_v4();
        let mut summary = PassSummary { clusters: 1, objects: pass.compared.len() as u32, ..Default::default() };
        let found: BTreeSet<(String, String)> =
            pass.drifts.iter().map(|d| (d.object.clone(), d.field.clone())).collect();
        // The org's policy is read only when there is something it could revert: a pass over steady clusters makes
        // no query for it.
        let mode = if pass.drifts.iter().any(|d| d.expected.is_some()) {
            org_drift_mode(&self.pool, d.org_id).await?
        } else {
            DriftMode::Report
        };
        for drift in pass.drifts {
            let id = polaris_domain::drift::drift_id(drift.cluster_id, &drift.object, &drift.field);
            let revertable = drift.expected.is_some();
            tracing::debug!(cluster = %cluster, object = %drift.object, field = %drift.field, "drift observed");
            self.execute(id, DriftCommand::Detect(drift), self.metadata(d.org_id, correlation, None)).await?;
            summary.detected += 1;
            if mode == DriftMode::Revert && revertable {
                let operation_id = OperationId::from_uuid(Uuid::new_v4());
                let command = DriftCommand::Revert { operation_id, by: POLICY_REVERT.into() };
                if self.execute(id, command, self.metadata(d.org_id, correlation, Some(operation_id))).await? {
                    summary.reverts += 1;
                }
            }
        }
        for gone in open.iter().filter(|o| pass.compared.contains(&o.object)) {
            if found.contains(&(gone.object.clone(), gone.field.clone())) {
                continue;
            }
            let command = DriftCommand::Resolve {
                how: DriftResolution::Reverted,
                by: OBSERVED.into(),
                reason: None,
                operation_id: None,
            };
            if self.execute(gone.id, command, self.metadata(d.org_id, correlation, None)).await? {
                summary.resolved += 1;
            }
        }
        Ok(Some(summary))
    }

    /// Runs a drift command; `false` when the drift's state made it moot (already resolved, already reverting).
    async fn execute(&self, id: Uuid, command: DriftCommand, md: CommandMetadata) -> anyhow::Result<bool> {
        match self.drifts.execute_with_metadata(&id.to_string(), command, md.to_map()).await {
            Ok(()) => Ok(true),
            Err(AggregateError::UserError(DriftError::NotOpen | DriftError::Reverting | DriftError::Unexplained)) => {
                Ok(false)
            }
            Err(e) => Err(anyhow::anyhow!("recording drift {id}: {e}")),
        }
    }
}

/// The org's drift mode, from its newest policy bundle (`report` without one).
async fn org_drift_mode(pool: &PgPool, org: Uuid) -> anyhow::Result<DriftMode> {
    let Some(bundle) = polaris_store::db::policies::bundle(pool, org, None).await? else {
        return Ok(DriftMode::Report);
    };
    let rules: polaris_domain::policy::PolicyRules = serde_json::from_value(bundle.rules).unwrap_or_default();
    Ok(rules.drift.map(|d| d.mode).unwrap_or(DriftMode::Report))
}

pub struct DriftActivities {
    pub detector: Arc<Detector>,
}

/// Input of the detector workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorInput {
    pub target_id: Uuid,
    pub interval_secs: u64,
}

/// Input of a revert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevertInput {
    pub drift_id: Uuid,
    pub cluster_id: Uuid,
    pub object: String,
    pub target: TargetRef,
    pub cause: Cause,
    pub by: String,
    pub timeout_secs: u64,
    pub deadline_unix_ms: u64,
}

/// What a revert must do before it applies: the brokers someone added behind Polaris' back, to be emptied (a
/// `remove-brokers` rebalance, as a scale-down does) before the broker pool is lowered again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevertPlan {
    pub spec: ClusterSpec,
    pub remove: Vec<i32>,
}

/// How a revert ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RevertOutcome {
    Done,
    Stalled(String),
}

#[activities]
impl DriftActivities {
    /// One pass over a target's clusters.
    #[activity]
    pub async fn detect_target(
        self: Arc<Self>,
        _ctx: ActivityContext,
        target: Uuid,
    ) -> Result<PassSummary, ActivityError> {
        match self.detector.pass_target(target).await {
            Ok(s) => {
                tracing::debug!(%target, ?s, "drift pass");
                Ok(s)
            }
            Err(e) => Err(retryable(e)),
        }
    }

    /// The brokers to empty first: for the broker pool, the node ids its status has that the events do not.
    #[activity]
    pub async fn plan_revert(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: RevertInput,
    ) -> Result<RevertPlan, ActivityError> {
        let cluster: Cluster = facts::current(&self.detector.pool, input.cluster_id).await.map_err(retryable)?;
        let facts = ClusterFacts::of(&cluster);
        let spec = facts.spec.ok_or_else(|| non_retryable("the cluster was never requested"))?;
        let pool_object = object_id("KafkaNodePool", Some(&spec.namespace()), crate::resources::BROKER_POOL);
        if input.object != pool_object {
            tracing::debug!(object = %input.object, %pool_object, "revert plan: not the broker pool");
            return Ok(RevertPlan { spec, remove: vec![] });
        }
        let client = input.target.client().await.map_err(target_error)?;
        let pools = Api::<KafkaNodePool>::namespaced(client, &spec.namespace());
        // The operator first catches up with the drifted pool (it may be adding the brokers right now): the node
        // ids it reports for that generation are the ones to empty.
        loop {
            let pool = pools.get_opt(crate::resources::BROKER_POOL).await.map_err(classify_kube)?;
            let settled = pool
                .as_ref()
                .is_none_or(|p| p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation);
            if settled || crate::operations::now_ms() >= input.deadline_unix_ms {
                let live: Vec<i32> = pool.and_then(|p| p.status).map(|s| s.node_ids).unwrap_or_default();
                let remove: Vec<i32> = live.iter().copied().filter(|id| !facts.broker_ids.contains(id)).collect();
                tracing::info!(object = %input.object, ?live, recorded = ?facts.broker_ids, ?remove, "revert plan");
                return Ok(RevertPlan { spec, remove });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Applies the recorded state of the drifted object again, then waits until nothing of it differs (and, for
    /// the cluster's own objects, until Kafka has converged on it: the brokers follow).
    #[activity]
    pub async fn revert(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RevertInput,
    ) -> Result<RevertOutcome, ActivityError> {
        let detector = &self.detector;
        let client = input.target.client().await.map_err(target_error)?;
        let d =
            desired(&detector.pool, input.cluster_id, detector.key.as_deref()).await.map_err(retryable)?.ok_or_else(
                || non_retryable("the cluster is not steady (an operation is running): nothing was re-applied"),
            )?;
        let Some(expected) = d.objects.iter().find(|e| e.id() == input.object) else {
            return Err(non_retryable(format!(
                "{} is not among the objects the cluster's events explain",
                input.object
            )));
        };
        reapply(&client, detector, &d, expected).await?;
        loop {
            let pass = compare_cluster(&detector.pool, &client, &d).await.map_err(retryable)?;
            let left: Vec<String> =
                pass.drifts.iter().filter(|p| p.object == input.object).map(|p| p.field.clone()).collect();
            let converged = if left.is_empty() && matches!(expected.kind, "Kafka" | "KafkaNodePool" | "Namespace") {
                crate::operations::converged(&client, &d.spec).await?.0.is_some()
            } else {
                left.is_empty()
            };
            if converged {
                return Ok(RevertOutcome::Done);
            }
            let _ = ctx.record_heartbeat(format!("{} still differs: {left:?}", input.object)).await;
            if crate::operations::now_ms() >= input.deadline_unix_ms {
                return Ok(RevertOutcome::Stalled(format!(
                    "{} did not hold its recorded state before the deadline (differing: {left:?})",
                    input.object
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Records how the revert ended.
    #[activity]
    pub async fn report_revert(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: (RevertInput, RevertOutcome),
    ) -> Result<(), ActivityError> {
        let (input, outcome) = input;
        let operation_id = input.cause.operation();
        let command = match outcome {
            RevertOutcome::Done => DriftCommand::Resolve {
                how: DriftResolution::Reverted,
                by: input.by.clone(),
                reason: None,
                operation_id: Some(operation_id),
            },
            RevertOutcome::Stalled(reason) => DriftCommand::RevertStalled { operation_id, reason },
        };
        match self
            .detector
            .drifts
            .execute_with_metadata(&input.drift_id.to_string(), command, input.cause.metadata().to_map())
            .await
        {
            Ok(()) => Ok(()),
            Err(AggregateError::UserError(e)) => Err(non_retryable(e)),
            Err(e) => Err(retryable(e)),
        }
    }
}

/// Applies one object's recorded state: the cluster's own objects through provisioning's apply (all of them,
/// as one; a missing admin Secret is made anew), a topic or a user as its workflow applies it.
async fn reapply(client: &kube::Client, detector: &Detector, d: &Desired, e: &Expected) -> Result<(), ActivityError> {
    let conflict = |reason: String| non_retryable(format!("OWNERSHIP_CONFLICT: {reason}"));
    let ns = d.spec.namespace();
    match e.kind {
        "KafkaTopic" => {
            let topic: KafkaTopic = serde_json::from_value(e.object.clone()).map_err(non_retryable)?;
            let api: Api<KafkaTopic> = Api::namespaced(client.clone(), &ns);
            crate::ownership::apply(&api, &e.name, &topic, d.cluster_id).await?.map_err(|c| conflict(c.to_string()))
        }
        "KafkaUser" | "Secret" if e.name != crate::resources::ADMIN_USER && e.name != ADMIN_PASSWORD_SECRET => {
            // A user's KafkaUser or password Secret: both, as ApplyUser writes them.
            let name = e.name.strip_prefix("polaris-user-").unwrap_or(&e.name);
            let user: UserAggregate = facts::current(&detector.pool, user_id(ClusterId::from_uuid(d.cluster_id), name))
                .await
                .map_err(retryable)?;
            let key = detector
                .key
                .as_deref()
                .ok_or_else(|| non_retryable("no credentials key is configured for the worker role"))?;
            let uid = user_id(ClusterId::from_uuid(d.cluster_id), name);
            let password = key.password(uid, user.generation, &user.salt);
            let secret = d.spec.user_password_secret(name, &password, user.generation);
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
            let secret_name = polaris_domain::acl::password_secret_name(name);
            crate::ownership::apply(&secrets, &secret_name, &secret, d.cluster_id)
                .await?
                .map_err(|c| conflict(c.to_string()))?;
            let users: Api<KafkaUser> = Api::namespaced(client.clone(), &ns);
            let u = d.spec.kafka_user(name, &user.acls, &user.quotas, user.generation);
            crate::ownership::apply(&users, name, &u, d.cluster_id).await?.map_err(|c| conflict(c.to_string()))
        }
        _ => match crate::provision::apply_cluster_resources(client.clone(), &d.spec).await? {
            crate::provision::Applied::Resources(_) => Ok(()),
            crate::provision::Applied::Conflict { reason } => Err(conflict(reason)),
        },
    }
}

fn detect_options(interval: Duration) -> ActivityOptions {
    let mut o = ActivityOptions::start_to_close_timeout(interval.max(Duration::from_secs(60)) * 5);
    o.retry_policy = Some(RetryPolicy::builder().maximum_interval(Duration::from_secs(10)).maximum_attempts(3).build());
    o
}

fn revert_options(timeout_secs: u64) -> ActivityOptions {
    let mut o = ActivityOptions::start_to_close_timeout(Duration::from_secs(timeout_secs + 60));
    o.heartbeat_timeout = Some(Duration::from_secs(10));
    o.retry_policy = Some(RetryPolicy::builder().maximum_interval(Duration::from_secs(5)).maximum_attempts(20).build());
    o
}

/// The schedule: a pass over the target's clusters every interval, forever (continuing as new).
#[workflow]
#[derive(Default)]
pub struct DriftDetector;

#[workflow_methods]
impl DriftDetector {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: DetectorInput) -> WorkflowResult<()> {
        let interval = Duration::from_secs(input.interval_secs.max(1));
        for _ in 0..PASSES_PER_RUN {
            // A failed pass (the target unreachable) is the next pass' to try again; the schedule goes on.
            if let Err(e) =
                ctx.execute_activity(DriftActivities::detect_target, input.target_id, detect_options(interval)).await
            {
                tracing::warn!(target = %input.target_id, error = ?e, "drift pass failed");
            }
            ctx.timer(interval).await;
        }
        ctx.continue_as_new(input, Default::default())?;
        Ok(())
    }
}

/// Re-applies a drifted object's recorded state and records how that ended (`DriftResolved` reverted, or
/// `DriftRevertStalled` at the deadline).
#[workflow]
#[derive(Default)]
pub struct RevertDrift;

#[workflow_methods]
impl RevertDrift {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, mut input: RevertInput) -> WorkflowResult<String> {
        let now = ctx.workflow_time().unwrap_or(std::time::UNIX_EPOCH);
        let deadline = now + Duration::from_secs(input.timeout_secs);
        input.deadline_unix_ms =
            deadline.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let opts = revert_options(input.timeout_secs);
        let plan = ctx.execute_activity(DriftActivities::plan_revert, input.clone(), opts.clone()).await?;
        let mut outcome = None;
        if !plan.remove.is_empty() {
            // Brokers added behind Polaris' back may hold replicas by now: emptied first, as a scale-down does.
            let step = crate::operations::KubeStep {
                spec: plan.spec,
                target: input.target.clone(),
                deadline_unix_ms: input.deadline_unix_ms,
                mode: "remove-brokers".into(),
                node_ids: plan.remove,
                name: format!("revert-{}", &input.cause.operation_id.simple().to_string()[..8]),
            };
            outcome = match ctx.execute_activity(OperationActivities::rebalance, step, opts.clone()).await {
                Ok(StepOutcome::Done { .. }) => None,
                Ok(StepOutcome::Stalled { reason } | StepOutcome::Conflict { reason }) => {
                    Some(RevertOutcome::Stalled(reason))
                }
                Err(e) => Some(RevertOutcome::Stalled(format!("emptying the added brokers failed: {e:?}"))),
            };
        }
        let outcome = match outcome {
            Some(stalled) => stalled,
            None => match ctx.execute_activity(DriftActivities::revert, input.clone(), opts).await {
                Ok(outcome) => outcome,
                Err(e) => RevertOutcome::Stalled(format!("the revert could not be applied: {e:?}")),
            },
        };
        let done = outcome == RevertOutcome::Done;
        ctx.execute_activity(DriftActivities::report_revert, (input, outcome), crate::provision::report_options())
            .await?;
        Ok(if done { "reverted".into() } else { "stalled".into() })
    }
}

/// Watches the target's Polaris-labelled Strimzi resources and runs a pass over the cluster of each object that
/// changes (at most one per cluster per second). Ends when `shutdown` turns true.
pub async fn watch_target(
    detector: Arc<Detector>,
    target: TargetRef,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = target.client().await?;
    let config = watcher::Config::default().labels(CLUSTER_ID_LABEL);
    let mut streams = Vec::new();
    for kind in STRIMZI_KINDS {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(kind));
        streams.push(watcher::watcher(api, config.clone()).boxed());
    }
    let mut events = futures::stream::select_all(streams);
    let mut last: BTreeMap<Uuid, Instant> = BTreeMap::new();
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        };
        let Some(event) = event else { return Ok(()) };
        let objects = match event {
            Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::Delete(o)) => vec![o],
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "drift watch");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for obj in objects {
            let Some(cluster) =
                obj.metadata.labels.as_ref().and_then(|l| l.get(CLUSTER_ID_LABEL)).and_then(|c| c.parse().ok())
            else {
                continue;
            };
            if last.get(&cluster).is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                continue;
            }
            last.insert(cluster, Instant::now());
            // A cluster this deployment does not record (another one's, on a shared target) folds to nothing and
            // is not compared.
            if let Err(e) = detector.pass_cluster(&client, cluster).await {
                tracing::warn!(%cluster, error = %e, "drift pass on a watch event");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Value {
        json!({
            "metadata": {
                "name": "brokers",
                "labels": {"polaris.dev/cluster-id": "c", "app.kubernetes.io/managed-by": "polaris", "team": "x"},
                "annotations": {"other-controller/seen": "1"},
                "managedFields": [
                    {"manager": "polaris", "operation": "Apply", "time": "2026-11-30T10:00:00Z",
                     "fieldsV1": {"f:spec": {"f:replicas": {}, "f:roles": {}, "f:storage": {"f:size": {}}}}},
                    {"manager": "kubectl-edit", "operation": "Update", "time": "2026-11-30T10:05:00Z",
                     "fieldsV1": {"f:spec": {"f:replicas": {}}}}
                ]
            },
            "spec": {"replicas": 5, "roles": ["broker"], "storage": {"size": "100Gi", "type": "persistent-claim", "deleteClaim": true}},
            "status": {"replicas": 5, "nodeIds": [3, 4, 5, 6, 7]}
        })
    }

    fn expected() -> Value {
        json!({
            "metadata": {"name": "brokers", "labels": {"polaris.dev/cluster-id": "c", "app.kubernetes.io/managed-by": "polaris"}},
            "spec": {"replicas": 3, "roles": ["broker"], "storage": {"size": "100Gi"}, "template": null},
            "status": null
        })
    }

    #[test]
    fn only_the_fields_polaris_sets_are_compared_and_the_writer_is_named() {
        let drifts = compare(&expected(), &live());
        assert_eq!(drifts.len(), 1, "{drifts:?}");
        let d = &drifts[0];
        assert_eq!(
            (d.field(), d.expected.clone(), d.actual.clone()),
            ("spec.replicas".into(), json!(3), Some(json!(5)))
        );
        assert_eq!(d.changed_by.as_deref(), Some("kubectl-edit"));
        // Status, another label, another controller's annotation and a field the API server added are not Polaris'.
        assert!(
            compare(&expected(), &json!({"metadata": expected()["metadata"], "spec": live()["spec"]}))
                .iter()
                .all(|d| d.field() == "spec.replicas")
        );
    }

    #[test]
    fn a_removed_field_is_drift_with_no_actual_value_and_an_empty_expected_object_is_covered_by_absence() {
        let mut l = live();
        l["spec"].as_object_mut().expect("spec").remove("roles");
        let drifts = compare(&expected(), &l);
        let roles = drifts.iter().find(|d| d.field() == "spec.roles").expect("roles drift");
        assert_eq!(roles.actual, None);
        assert!(covers(&json!({}), None));
        assert!(covers(&json!([]), None));
        assert!(!covers(&json!({"a": 1}), None));
        assert!(covers(&json!([{"name": "plain"}]), Some(&json!([{"name": "plain", "port": 9092}]))));
        assert!(!covers(&json!([{"name": "plain"}]), Some(&json!([{"name": "plain"}, {"name": "tls"}]))));
        assert!(covers(&json!(86400000), Some(&json!(86400000.0))));
    }

    #[test]
    fn keys_with_dots_stay_one_segment() {
        let e = json!({"spec": {"config": {"retention.ms": 86400000}}});
        let l = json!({"spec": {"config": {"retention.ms": 172800000}}});
        let drifts = compare(&e, &l);
        assert_eq!(drifts[0].path, ["spec", "config", "retention.ms"]);
        assert_eq!(drifts[0].field(), "spec.config.retention.ms");
    }

    #[test]
    fn secrets_are_compared_and_recorded_by_hash_only() {
        let live = json!({"metadata": {"name": "polaris-user-a"}, "data": {"password": "c2VjcmV0"}});
        let hashed = hashed_secret(&live);
        assert_eq!(hashed["data"]["password"], value_hash(b"secret"));
        assert!(!hashed.to_string().contains("c2VjcmV0"));
        let expected = json!({"data": {"password": value_hash(b"other")}});
        let drifts = compare(&expected, &hashed);
        assert_eq!(drifts.len(), 1);
        assert!(drifts[0].actual.as_ref().and_then(Value::as_str).is_some_and(|a| a.starts_with("sha256:")));
    }

    #[test]
    fn object_ids_name_kind_namespace_and_name() {
        assert_eq!(object_id("KafkaTopic", Some("ns"), "t"), "KafkaTopic/ns/t");
        assert_eq!(object_id("Namespace", None, "ns"), "Namespace/ns");
    }
}
