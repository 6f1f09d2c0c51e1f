//! Policy bundles (SPEC.md §3): publish a new version (admin), read the current one, and evaluate a command
//! against the current or a given version without executing it. Every command the API accepts or rejects is
//! judged here first, and its events and audit entry record the bundle version.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use polaris_domain::OrgId;
use polaris_domain::policy::{PolicyBundle, PolicyRules, Subject};
use polaris_store::db;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::App;
use crate::caller::{Caller, Role};
use crate::clusters::CreateCluster;
use crate::error::{AppError, ViolationView};
use crate::topics::CreateTopicRequest;

/// The bundle in force for an org: its newest version, or the empty bundle (version 0).
pub async fn current_bundle(
    pool: &polaris_store::Pool,
    org: OrgId,
) -> Result<(PolicyBundle, Option<Published>), AppError> {
    bundle_at(pool, org, None).await
}

/// Who published a bundle version, and when.
#[derive(Clone, Debug)]
pub struct Published {
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Published bundles by (org, version). A version never changes once published, so an entry is never stale; the
/// current version comes with the caller's token ([`Caller::policy_version`]).
#[derive(Default)]
pub struct BundleCache(crate::cache::VersionedCache<(OrgId, i64), PolicyBundle>);

impl BundleCache {
    /// The org's bundle `version` (0: the empty bundle), from the cache or read once.
    pub async fn get(&self, pool: &polaris_store::Pool, org: OrgId, version: i64) -> Result<PolicyBundle, AppError> {
        if version == 0 {
            return Ok(PolicyBundle::empty());
        }
        self.0.get_or_read((org, version), async { Ok(bundle_at(pool, org, Some(version)).await?.0) }).await
    }
}

async fn bundle_at(
    pool: &polaris_store::Pool,
    org: OrgId,
    version: Option<i64>,
) -> Result<(PolicyBundle, Option<Published>), AppError> {
    if version == Some(0) {
        return Ok((PolicyBundle::empty(), None));
    }
    match db::policies::bundle(pool, org.as_uuid(), version).await? {
        None if version.is_some() => Err(AppError::NotFound("policy bundle version")),
        None => Ok((PolicyBundle::empty(), None)),
        Some(db::policies::BundleRow { version, rules, created_by, created_at }) => {
            let rules: PolicyRules = serde_json::from_value(rules)
                .map_err(|e| AppError::Internal(format!("stored policy bundle {version} unreadable: {e}")))?;
            Ok((PolicyBundle { version, rules }, Some(Published { created_by, created_at })))
        }
    }
}

/// Judges a command by the org's current bundle. Allowed: the bundle version, for the command's metadata.
/// Refused: `422 POLICY_VIOLATION` with every violated rule. Either way the audit entry records the verdict.
pub async fn judge(app: &App, caller: &Caller, subject: &Subject<'_>) -> Result<i64, AppError> {
    Ok(judge_by_bundle(app, caller, subject).await?.version)
}

/// Like [`judge`], answering the bundle that judged the command (its settings, such as `mesh`, shape what the
/// command records).
pub async fn judge_by_bundle(app: &App, caller: &Caller, subject: &Subject<'_>) -> Result<PolicyBundle, AppError> {
    let bundle = app.policy_bundles.get(&app.pool, caller.org_id, caller.policy_version).await?;
    let violations: Vec<ViolationView> = bundle.evaluate(subject).into_iter().map(Into::into).collect();
    let version = bundle.version;
    caller.note(|d| {
        d.policy_version = Some(version);
        d.violations = violations.clone();
    });
    if violations.is_empty() { Ok(bundle) } else { Err(AppError::PolicyViolation(violations)) }
}

/// The rules of a bundle, as the OpenAPI document describes them (the domain's `PolicyRules`; a test keeps the
/// two in step). Every rule is optional; an absent rule allows everything.
#[derive(Deserialize, ToSchema)]
#[schema(as = PolicyRules)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PolicyRulesDoc {
    /// Allowed `(provider, region)` pairs for clusters.
    allowed_locations: Option<Vec<LocationDoc>>,
    #[schema(schema_with = crate::schema::text_list)]
    allowed_kafka_versions: Option<Vec<String>>,
    brokers: Option<BoundsDoc>,
    storage_gib: Option<BoundsDoc>,
    /// A regular expression every topic name must match.
    #[schema(schema_with = crate::schema::text)]
    topic_name_pattern: Option<String>,
    min_replication_factor: Option<u32>,
    max_partitions_per_topic: Option<u32>,
    retention_ms: Option<RetentionDoc>,
    /// Topics may not ask for more replicas than the cluster has brokers.
    replication_factor_at_most_brokers: Option<bool>,
    /// Clusters whose name matches this regular expression must keep deletion protection on.
    #[schema(schema_with = crate::schema::text)]
    deletion_protection_required_for: Option<String>,
    /// Whether clusters requested under this bundle join an Istio mesh (absent: `off`). Recorded on each cluster
    /// when it is requested.
    mesh: Option<MeshDoc>,
    users: Option<UserRulesDoc>,
    drift: Option<DriftDoc>,
}

/// What happens when a managed object drifts from its recorded state: `report` (the default) records it;
/// `revert` re-applies the recorded state. `adopt` lists the field paths whose live value may be recorded instead.
#[derive(Deserialize, ToSchema)]
#[schema(as = PolicyDrift)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DriftDoc {
    mode: Option<DriftModeDoc>,
    #[schema(schema_with = crate::schema::text_list)]
    adopt: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = DriftMode)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum DriftModeDoc {
    Report,
    Revert,
}

/// What Kafka users may be given.
#[derive(Deserialize, ToSchema)]
#[schema(as = PolicyUsers)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UserRulesDoc {
    /// No topic ACL on every topic (the literal `*`, or an empty or `*` prefix).
    no_wildcard_topic_acls: Option<bool>,
    /// Every topic ACL's name (literal or prefix) must start with one of these.
    #[schema(schema_with = crate::schema::text_list)]
    allowed_topic_prefixes: Option<Vec<String>>,
    /// Producer and consumer byte rates must be set, and at most this (bytes per second, per broker).
    max_byte_rate: Option<u64>,
    /// An ACL that grants `All` may only be given by an admin.
    all_operations_need_admin: Option<bool>,
}

/// How an org's clusters join the Istio mesh: `strict` (mutual TLS required) or `permissive` (mutual TLS
/// accepted beside plain text) label the namespace for sidecar injection and create a `PeerAuthentication` and an
/// `AuthorizationPolicy` admitting the cluster's own namespace and `client_namespaces`; `off` creates nothing.
#[derive(Deserialize, ToSchema)]
#[schema(as = PolicyMesh)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MeshDoc {
    mode: MeshModeDoc,
    /// Namespaces (DNS-1123 labels, at most 64) whose workloads may call the cluster through the mesh.
    #[schema(schema_with = crate::schema::namespaces_or_none)]
    client_namespaces: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = MeshMode)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum MeshModeDoc {
    Strict,
    Permissive,
    Off,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = PolicyLocation)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct LocationDoc {
    #[schema(schema_with = crate::schema::text)]
    provider: String,
    #[schema(schema_with = crate::schema::text)]
    region: String,
}

/// An inclusive range; either end may be absent.
#[derive(Deserialize, ToSchema)]
#[schema(as = PolicyBounds)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BoundsDoc {
    min: Option<u64>,
    max: Option<u64>,
}

/// `finite` refuses `-1` (infinite retention); `min`/`max` bound finite values.
#[derive(Deserialize, ToSchema)]
#[schema(as = PolicyRetention)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RetentionDoc {
    finite: Option<bool>,
    min: Option<u64>,
    max: Option<u64>,
}

/// The version of the bundle in force, for commands no rule judges (a deletion): recorded all the same.
pub async fn version_in_force(app: &App, caller: &Caller) -> Result<i64, AppError> {
    let (bundle, _) = current_bundle(&app.pool, caller.org_id).await?;
    let version = bundle.version;
    caller.note(|d| d.policy_version = Some(version));
    Ok(version)
}

/// A policy bundle version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyBundleView {
    /// 0 is the empty bundle every org starts with (everything allowed).
    pub version: i64,
    /// The rules: `allowed_locations` [{provider, region}], `allowed_kafka_versions` [..], `brokers` {min, max},
    /// `storage_gib` {min, max}, `topic_name_pattern` (regex), `min_replication_factor`,
    /// `max_partitions_per_topic`, `retention_ms` {finite, min, max}, `replication_factor_at_most_brokers`,
    /// `deletion_protection_required_for` (regex over cluster names), `mesh` {mode, client_namespaces},
    /// `users` {no_wildcard_topic_acls, allowed_topic_prefixes, max_byte_rate, all_operations_need_admin},
    /// `drift` {mode: report|revert, adopt: [field paths]}.
    #[schema(value_type = Object)]
    pub rules: serde_json::Value,
    pub created_by: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

fn view(bundle: PolicyBundle, published: Option<Published>) -> Result<PolicyBundleView, AppError> {
    Ok(PolicyBundleView {
        version: bundle.version,
        rules: serde_json::to_value(&bundle.rules).map_err(|e| AppError::Internal(e.to_string()))?,
        created_by: published.as_ref().map(|p| p.created_by.clone()),
        created_at: published.map(|p| p.created_at),
    })
}

/// A command to judge, as its endpoint would receive it: `{"command": "...", "input": {...}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "command", content = "input", rename_all = "snake_case", deny_unknown_fields)]
pub enum EvaluateRequest {
    /// The body of `POST /v1/clusters`.
    CreateCluster(CreateCluster),
    /// The body of `POST /v1/clusters/{id}/scale`.
    ScaleCluster(crate::clusters::ScaleCluster),
    /// The body of `POST /v1/clusters/{id}/upgrade`.
    UpgradeCluster(crate::clusters::UpgradeCluster),
    /// The body of `POST /v1/clusters/{id}/topics`.
    CreateTopic(CreateTopicRequest),
    /// The body of `PATCH /v1/clusters/{id}/topics/{name}`, with the topic's `name`.
    UpdateTopic(UpdateTopicInput),
    /// The body of `POST /v1/clusters/{id}/users`.
    CreateUser(crate::users::CreateUserRequest),
    /// The body of `PATCH /v1/clusters/{id}/users/{name}`.
    UpdateUser(crate::users::PatchUser),
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EvaluateQuery {
    /// The cluster a scale, upgrade or topic command addresses (its broker count feeds the rules that need it).
    pub cluster_id: Option<Uuid>,
    /// Judge by this bundle version instead of the current one.
    #[param(minimum = 0)]
    pub policy_version: Option<i64>,
}

/// A topic change to judge.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTopicInput {
    #[schema(
        pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"
    )]
    pub name: String,
    #[schema(minimum = 1, maximum = 10000)]
    pub partitions: Option<u32>,
    #[schema(schema_with = crate::schema::config)]
    pub config: Option<BTreeMap<String, String>>,
    pub deletion_protection: Option<bool>,
    pub expected_version: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Evaluation {
    pub policy_version: i64,
    /// True when no rule is violated.
    pub allowed: bool,
    pub violations: Vec<ViolationView>,
}

/// serde reads a struct from an array of its fields too; the rules' nested parts must be objects.
fn nested_objects(rules: &serde_json::Value) -> Result<(), AppError> {
    let object_or_null = |v: &serde_json::Value| v.is_object() || v.is_null();
    for field in ["brokers", "storage_gib", "retention_ms"] {
        if let Some(v) = rules.get(field)
            && !object_or_null(v)
        {
            return Err(AppError::validation(format!("{field} must be an object or null"), Some(field)));
        }
    }
    if let Some(mesh) = rules.get("mesh").filter(|m| !m.is_null()) {
        let Some(mesh) = mesh.as_object() else {
            return Err(AppError::validation("mesh must be an object or null", Some("mesh")));
        };
        let modes = ["strict", "permissive", "off"];
        if !mesh.get("mode").and_then(|m| m.as_str()).is_some_and(|m| modes.contains(&m)) {
            let detail = format!("mesh.mode must be one of {}", modes.join(", "));
            return Err(AppError::validation(detail, Some("mesh.mode")));
        }
        if let Some(list) = mesh.get("client_namespaces").filter(|l| !l.is_null())
            && !list.as_array().is_some_and(|items| items.iter().all(serde_json::Value::is_string))
        {
            let detail = "mesh.client_namespaces is a list of namespace names";
            return Err(AppError::validation(detail, Some("mesh.client_namespaces")));
        }
    }
    if let Some(serde_json::Value::Array(items)) = rules.get("allowed_locations")
        && !items.iter().all(serde_json::Value::is_object)
    {
        return Err(AppError::validation("allowed_locations holds objects", Some("allowed_locations")));
    }
    Ok(())
}

/// Well-formed rules that cannot work (a pattern that does not compile, bounds upside down): `422`.
fn unusable(e: polaris_domain::policy::InvalidPolicy) -> AppError {
    AppError::Unprocessable { code: "INVALID_POLICY", detail: e.to_string(), field: Some(e.field.to_owned()) }
}

/// The org's bundle in force (viewer).
pub async fn get(app: &App, caller: &Caller) -> Result<PolicyBundleView, AppError> {
    caller.require(Role::Viewer)?;
    let (bundle, published) = current_bundle(&app.pool, caller.org_id).await?;
    view(bundle, published)
}

/// Publishes a new bundle version (admin) from its rules document (already read from JSON or YAML), on condition
/// that the current version is `if_match`'s, when given.
pub async fn publish_document(
    app: &App,
    caller: &Caller,
    mut value: serde_json::Value,
    if_match: Option<&str>,
) -> Result<PolicyBundleView, AppError> {
    caller.require(Role::Admin)?;
    crate::input::object_body(&value)?;
    nested_objects(&value)?;
    crate::input::normalize(&mut value)?;
    let rules: PolicyRules = serde_json::from_value(value)
        .map_err(|e| AppError::validation(format!("the rules are not valid: {e}"), None))?;
    rules.validate().map_err(unusable)?;
    let expected = crate::preconditions::expected_version(if_match, None)?;
    let (current, _) = current_bundle(&app.pool, caller.org_id).await?;
    if let Some(expected) = expected
        && expected != current.version as u64
    {
        return Err(AppError::VersionConflict { expected, current: current.version as u64 });
    }
    let version = current.version + 1;
    let json = serde_json::to_value(&rules).map_err(|e| AppError::Internal(e.to_string()))?;
    let mut tx = app.pool.begin().await?;
    crate::audit::claim_key(&mut tx, caller).await?;
    if !db::policies::insert(&mut tx, caller.org_id.as_uuid(), version, &json, &caller.actor()).await? {
        drop(tx);
        let (now, _) = current_bundle(&app.pool, caller.org_id).await?;
        return Err(AppError::VersionConflict { expected: current.version as u64, current: now.version as u64 });
    }
    tx.commit().await?;
    crate::caller::bearers_changed();
    caller.note(|d| d.policy_version = Some(version));
    let (bundle, published) = bundle_at(&app.pool, caller.org_id, Some(version)).await?;
    view(bundle, published)
}

/// Judges a command without executing it (viewer): every violated rule of the current or a given bundle version.
pub async fn evaluate(
    app: &App,
    caller: &Caller,
    q: EvaluateQuery,
    body: EvaluateRequest,
) -> Result<Evaluation, AppError> {
    caller.require(Role::Viewer)?;
    if q.policy_version.is_some_and(|v| v < 0) {
        return Err(AppError::validation("policy_version must be 0 or more", Some("policy_version")));
    }
    let (bundle, _) = bundle_at(&app.pool, caller.org_id, q.policy_version).await?;
    let cluster_brokers = match q.cluster_id {
        None => None,
        Some(id) => Some(crate::clusters::current(app, caller, id).await?.brokers),
    };
    let violations = match &body {
        EvaluateRequest::CreateCluster(c) => bundle.evaluate(&Subject::cluster_request(
            &c.name,
            &c.provider,
            &c.region,
            c.kafka_version.as_deref(),
            c.brokers,
            c.storage_gib,
            c.deletion_protection,
        )),
        EvaluateRequest::ScaleCluster(c) => bundle.evaluate(&Subject::Scale { brokers: c.brokers }),
        EvaluateRequest::UpgradeCluster(c) => bundle.evaluate(&Subject::Upgrade { kafka_version: &c.kafka_version }),
        EvaluateRequest::CreateTopic(t) => bundle.evaluate(&Subject::Topic {
            name: &t.name,
            partitions: Some(t.partitions),
            replication_factor: Some(t.replication_factor),
            config: t.config.as_ref(),
            cluster_brokers,
        }),
        EvaluateRequest::UpdateTopic(t) => bundle.evaluate(&Subject::Topic {
            name: &t.name,
            partitions: t.partitions,
            replication_factor: None,
            config: t.config.as_ref(),
            cluster_brokers,
        }),
        EvaluateRequest::CreateUser(u) => bundle.evaluate(&Subject::User {
            acls: Some(u.acls.as_deref().unwrap_or_default()),
            quotas: Some(&u.quotas.clone().unwrap_or_default()),
            by_admin: caller.require(Role::Admin).is_ok(),
        }),
        EvaluateRequest::UpdateUser(u) => bundle.evaluate(&Subject::User {
            acls: u.acls.as_deref(),
            quotas: u.quotas.as_ref(),
            by_admin: caller.require(Role::Admin).is_ok(),
        }),
    };
    let violations: Vec<ViolationView> = violations.into_iter().map(Into::into).collect();
    caller.note(|d| {
        d.policy_version = Some(bundle.version);
        d.dry_run = true;
    });
    Ok(Evaluation { policy_version: bundle.version, allowed: violations.is_empty(), violations })
}

/// Publishes a bundle for an org directly (development bootstrap and tests).
pub async fn publish(pool: &polaris_store::Pool, org: OrgId, rules: &PolicyRules, by: &str) -> Result<i64, AppError> {
    rules.validate().map_err(unusable)?;
    let json = serde_json::to_value(rules).map_err(|e| AppError::Internal(e.to_string()))?;
    let version = db::policies::append(pool, org.as_uuid(), &json, by).await?;
    crate::caller::bearers_changed();
    Ok(version)
}

#[cfg(test)]
mod tests {
    use polaris_domain::policy::{Bounds, Location, RetentionRule};
    use utoipa::PartialSchema;

    use super::*;

    fn properties(schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) -> Vec<String> {
        let json = serde_json::to_value(schema).expect("schema json");
        let mut keys: Vec<String> = json["properties"].as_object().expect("properties").keys().cloned().collect();
        keys.sort();
        keys
    }

    #[test]
    fn the_documented_rules_are_the_domains_rules() {
        let full = PolicyRules {
            allowed_locations: Some(vec![Location { provider: "aws".into(), region: "r".into() }]),
            allowed_kafka_versions: Some(vec![]),
            brokers: Some(Bounds::default()),
            storage_gib: Some(Bounds::default()),
            topic_name_pattern: Some(String::new()),
            min_replication_factor: Some(1),
            max_partitions_per_topic: Some(1),
            retention_ms: Some(RetentionRule { finite: true, min: Some(1), max: Some(2) }),
            replication_factor_at_most_brokers: true,
            deletion_protection_required_for: Some(String::new()),
            mesh: Some(polaris_domain::policy::MeshPolicy::default()),
            users: Some(polaris_domain::policy::UserRules {
                no_wildcard_topic_acls: true,
                allowed_topic_prefixes: Some(vec![]),
                max_byte_rate: Some(1),
                all_operations_need_admin: true,
            }),
            drift: Some(polaris_domain::policy::DriftPolicy {
                mode: polaris_domain::policy::DriftMode::Revert,
                adopt: vec!["spec.replicas".into()],
            }),
        };
        let json = serde_json::to_value(&full).expect("json");
        let mut keys: Vec<String> = json.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(properties(PolicyRulesDoc::schema()), keys);
        assert_eq!(properties(BoundsDoc::schema()), ["max", "min"]);
        assert_eq!(properties(RetentionDoc::schema()), ["finite", "max", "min"]);
        assert_eq!(properties(LocationDoc::schema()), ["provider", "region"]);
        assert_eq!(properties(MeshDoc::schema()), ["client_namespaces", "mode"]);
        let users = serde_json::to_value(&full.users).expect("json");
        let mut keys: Vec<String> = users.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(properties(UserRulesDoc::schema()), keys);
        assert_eq!(properties(DriftDoc::schema()), ["adopt", "mode"]);
        let mesh = serde_json::to_value(polaris_domain::policy::MeshPolicy::default()).expect("json");
        let mut keys: Vec<&String> = mesh.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["client_namespaces", "mode"]);
    }
}
