//! Policy bundles (SPEC.md §3): publish a new version (admin), read the current one, and evaluate a command
//! against the current or a given version without executing it. Every command the API accepts or rejects is
//! judged here first, and its events and audit entry record the bundle version.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use chrono::{DateTime, Utc};
use polaris_domain::OrgId;
use polaris_domain::policy::{PolicyBundle, PolicyRules, Subject};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::clusters::CreateCluster;
use crate::error::{ApiError, Problem, ViolationView};
use crate::extract::ApiJson;
use crate::topics::CreateTopicRequest;

/// The bundle in force for an org: its newest version, or the empty bundle (version 0).
pub async fn current_bundle(pool: &sqlx::PgPool, org: OrgId) -> Result<(PolicyBundle, Option<Published>), ApiError> {
    bundle_at(pool, org, None).await
}

/// Who published a bundle version, and when.
#[derive(Clone, Debug)]
pub struct Published {
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

async fn bundle_at(
    pool: &sqlx::PgPool,
    org: OrgId,
    version: Option<i64>,
) -> Result<(PolicyBundle, Option<Published>), ApiError> {
    if version == Some(0) {
        return Ok((PolicyBundle::empty(), None));
    }
    let row: Option<(i64, serde_json::Value, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT version, rules, created_by, created_at FROM policy_bundles WHERE org_id = $1 \
         AND ($2::bigint IS NULL OR version = $2) ORDER BY version DESC LIMIT 1",
    )
    .bind(org.as_uuid())
    .bind(version)
    .fetch_optional(pool)
    .await?;
    match row {
        None if version.is_some() => Err(ApiError::NotFound("policy bundle version")),
        None => Ok((PolicyBundle::empty(), None)),
        Some((version, rules, created_by, created_at)) => {
            let rules: PolicyRules = serde_json::from_value(rules)
                .map_err(|e| ApiError::Internal(format!("stored policy bundle {version} unreadable: {e}")))?;
            Ok((PolicyBundle { version, rules }, Some(Published { created_by, created_at })))
        }
    }
}

/// Judges a command by the org's current bundle. Allowed: the bundle version, for the command's metadata.
/// Refused: `422 POLICY_VIOLATION` with every violated rule. Either way the audit entry records the verdict.
pub async fn judge(state: &AppState, caller: &Caller, subject: &Subject<'_>) -> Result<i64, ApiError> {
    let (bundle, _) = current_bundle(&state.pool, caller.org_id).await?;
    let violations: Vec<ViolationView> = bundle.evaluate(subject).into_iter().map(Into::into).collect();
    let version = bundle.version;
    caller.note(|d| {
        d.policy_version = Some(version);
        d.violations = violations.clone();
    });
    if violations.is_empty() { Ok(version) } else { Err(ApiError::PolicyViolation(violations)) }
}

/// A policy bundle version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyBundleView {
    /// 0 is the empty bundle every org starts with (everything allowed).
    pub version: i64,
    /// The rules: `allowed_locations` [{provider, region}], `allowed_kafka_versions` [..], `brokers` {min, max},
    /// `storage_gib` {min, max}, `topic_name_pattern` (regex), `min_replication_factor`,
    /// `max_partitions_per_topic`, `retention_ms` {finite, min, max}, `replication_factor_at_most_brokers`,
    /// `deletion_protection_required_for` (regex over cluster names).
    #[schema(value_type = Object)]
    pub rules: serde_json::Value,
    pub created_by: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

fn view(bundle: PolicyBundle, published: Option<Published>) -> Result<PolicyBundleView, ApiError> {
    Ok(PolicyBundleView {
        version: bundle.version,
        rules: serde_json::to_value(&bundle.rules).map_err(|e| ApiError::Internal(e.to_string()))?,
        created_by: published.as_ref().map(|p| p.created_by.clone()),
        created_at: published.map(|p| p.created_at),
    })
}

fn etag(version: i64) -> Result<HeaderMap, ApiError> {
    let mut headers = HeaderMap::new();
    let v = HeaderValue::from_str(&format!("\"{version}\"")).map_err(|e| ApiError::Internal(e.to_string()))?;
    headers.insert(header::ETAG, v);
    Ok(headers)
}

/// The org's current policy bundle.
#[utoipa::path(
    get, path = "/v1/policies", operation_id = "policies_get", tag = "policies",
    responses(
        (status = 200, description = "The bundle in force", body = PolicyBundleView),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_policies(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(HeaderMap, Json<PolicyBundleView>), ApiError> {
    caller.require(Role::Viewer)?;
    let (bundle, published) = current_bundle(&state.pool, caller.org_id).await?;
    Ok((etag(bundle.version)?, Json(view(bundle, published)?)))
}

/// Publish a new bundle version (admin). The body is the rules document, as JSON (`application/json`) or YAML
/// (`application/yaml`). `If-Match: "<version>"` makes the publication conditional on the current version.
#[utoipa::path(
    put, path = "/v1/policies", operation_id = "policies_update", tag = "policies",
    params(("If-Match" = Option<String>, Header, description = "The version this one replaces, quoted")),
    request_body(content = Object, description = "The rules", content_type = "application/json"),
    responses(
        (status = 200, description = "The new version, now in force", body = PolicyBundleView),
        (status = 400, description = "Unreadable or unusable rules", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only admins publish policies", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`VERSION_CONFLICT`: another version was published first", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor YAML", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`IDEMPOTENCY_KEY_REUSED`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn put_policies(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(HeaderMap, Json<PolicyBundleView>), ApiError> {
    caller.require(Role::Admin)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let rules: PolicyRules = match mime.as_str() {
        "application/json" => serde_json::from_slice(&body)
            .map_err(|e| ApiError::validation(format!("the rules are not valid: {e}"), None))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(&body)
            .map_err(|e| ApiError::validation(format!("the rules are not valid: {e}"), None))?,
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send the rules as application/json or application/yaml".to_owned(),
            ));
        }
    };
    rules.validate().map_err(|e| ApiError::validation(e.to_string(), Some(e.field)))?;
    let expected = crate::clusters::expected_version(&headers, None)?;
    let (current, _) = current_bundle(&state.pool, caller.org_id).await?;
    if let Some(expected) = expected
        && expected != current.version as u64
    {
        return Err(ApiError::VersionConflict { expected, current: current.version as u64 });
    }
    let version = current.version + 1;
    let json = serde_json::to_value(&rules).map_err(|e| ApiError::Internal(e.to_string()))?;
    let inserted = sqlx::query(
        "INSERT INTO policy_bundles (org_id, version, rules, created_by) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (org_id, version) DO NOTHING",
    )
    .bind(caller.org_id.as_uuid())
    .bind(version)
    .bind(&json)
    .bind(caller.actor())
    .execute(&state.pool)
    .await?;
    if inserted.rows_affected() == 0 {
        let (now, _) = current_bundle(&state.pool, caller.org_id).await?;
        return Err(ApiError::VersionConflict { expected: current.version as u64, current: now.version as u64 });
    }
    caller.note(|d| d.policy_version = Some(version));
    let (bundle, published) = bundle_at(&state.pool, caller.org_id, Some(version)).await?;
    Ok((etag(version)?, Json(view(bundle, published)?)))
}

/// A command to judge, as its endpoint would receive it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// `create_cluster`, `scale_cluster`, `upgrade_cluster`, `create_topic` or `update_topic`.
    #[schema(example = "create_topic")]
    pub command: String,
    /// The body the command's endpoint takes (for `update_topic`, with the topic's `name`).
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// The cluster a scale, upgrade or topic command addresses (its broker count feeds the rules that need it).
    pub cluster_id: Option<Uuid>,
    /// Judge by this bundle version instead of the current one.
    pub policy_version: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleInput {
    brokers: u32,
    #[allow(dead_code)]
    expected_version: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpgradeInput {
    kafka_version: String,
    #[allow(dead_code)]
    expected_version: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateTopicInput {
    name: String,
    partitions: Option<u32>,
    config: Option<BTreeMap<String, String>>,
    #[allow(dead_code)]
    deletion_protection: Option<bool>,
    #[allow(dead_code)]
    expected_version: Option<u64>,
}

fn input<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value.clone()).map_err(|e| ApiError::validation(format!("input: {e}"), Some("input")))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Evaluation {
    pub policy_version: i64,
    /// True when no rule is violated.
    pub allowed: bool,
    pub violations: Vec<ViolationView>,
}

/// Judge a command without executing it: every violated rule, or none.
#[utoipa::path(
    post, path = "/v1/policies/evaluate", operation_id = "policies_evaluate", tag = "policies",
    request_body = EvaluateRequest,
    responses(
        (status = 200, description = "The verdict", body = Evaluation),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such bundle version", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`IDEMPOTENCY_KEY_REUSED`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn evaluate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<EvaluateRequest>,
) -> Result<(StatusCode, Json<Evaluation>), ApiError> {
    caller.require(Role::Viewer)?;
    if body.policy_version.is_some_and(|v| v < 0) {
        return Err(ApiError::validation("policy_version must be 0 or more", Some("policy_version")));
    }
    let (bundle, _) = bundle_at(&state.pool, caller.org_id, body.policy_version).await?;
    let cluster_brokers = match body.cluster_id {
        None => None,
        Some(id) => {
            let row: Option<(i32,)> = sqlx::query_as("SELECT brokers FROM clusters WHERE id = $1 AND org_id = $2")
                .bind(id)
                .bind(caller.org_id.as_uuid())
                .fetch_optional(&state.pool)
                .await?;
            Some(row.ok_or(ApiError::NotFound("cluster"))?.0.max(0) as u32)
        }
    };
    let violations = match body.command.as_str() {
        "create_cluster" => {
            let c: CreateCluster = input(&body.input)?;
            bundle.evaluate(&Subject::Cluster {
                name: &c.name,
                provider: &c.provider,
                region: &c.region,
                kafka_version: c.kafka_version.as_deref(),
                brokers: c.brokers,
                storage_gib: c.storage_gib,
                deletion_protection: c.deletion_protection.unwrap_or(false),
            })
        }
        "scale_cluster" => {
            let c: ScaleInput = input(&body.input)?;
            bundle.evaluate(&Subject::Scale { brokers: c.brokers })
        }
        "upgrade_cluster" => {
            let c: UpgradeInput = input(&body.input)?;
            bundle.evaluate(&Subject::Upgrade { kafka_version: &c.kafka_version })
        }
        "create_topic" => {
            let t: CreateTopicRequest = input(&body.input)?;
            bundle.evaluate(&Subject::Topic {
                name: &t.name,
                partitions: Some(t.partitions),
                replication_factor: Some(t.replication_factor),
                config: t.config.as_ref(),
                cluster_brokers,
            })
        }
        "update_topic" => {
            let t: UpdateTopicInput = input(&body.input)?;
            bundle.evaluate(&Subject::Topic {
                name: &t.name,
                partitions: t.partitions,
                replication_factor: None,
                config: t.config.as_ref(),
                cluster_brokers,
            })
        }
        other => {
            return Err(ApiError::validation(
                format!(
                    "command {other:?} is not one of create_cluster, scale_cluster, upgrade_cluster, create_topic, \
                     update_topic"
                ),
                Some("command"),
            ));
        }
    };
    let violations: Vec<ViolationView> = violations.into_iter().map(Into::into).collect();
    caller.note(|d| {
        d.policy_version = Some(bundle.version);
        d.dry_run = true;
    });
    Ok((
        StatusCode::OK,
        Json(Evaluation { policy_version: bundle.version, allowed: violations.is_empty(), violations }),
    ))
}

/// Publishes a bundle for an org directly (development bootstrap and tests).
pub async fn publish(pool: &sqlx::PgPool, org: OrgId, rules: &PolicyRules, by: &str) -> Result<i64, ApiError> {
    rules.validate().map_err(|e| ApiError::validation(e.to_string(), Some(e.field)))?;
    let json = serde_json::to_value(rules).map_err(|e| ApiError::Internal(e.to_string()))?;
    let (version,): (i64,) = sqlx::query_as(
        "INSERT INTO policy_bundles (org_id, version, rules, created_by) \
         SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3 FROM policy_bundles WHERE org_id = $1 RETURNING version",
    )
    .bind(org.as_uuid())
    .bind(&json)
    .bind(by)
    .fetch_one(pool)
    .await?;
    Ok(version)
}
