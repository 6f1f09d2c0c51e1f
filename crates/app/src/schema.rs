//! Schema fragments for constraints the derive macros cannot say, so the OpenAPI document describes exactly
//! what the API accepts (a client that follows the document is never refused with `400`).

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};

/// A DNS-1123 label: what cluster names are.
pub const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
/// A provider region such as `eu-west-1`.
pub const REGION: &str = "^[a-z0-9-]*[a-z0-9-]$";
/// A Kafka topic name: letters, digits, `.`, `_` and `-`, 1 to 249 characters, not `.` or `..`.
pub const TOPIC_NAME: &str =
    "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$";
/// Text without NUL characters (PostgreSQL cannot store them).
pub const NO_NUL: &str = "^[^\\u0000]*$";
/// A Kafka configuration key.
pub const CONFIG_KEY: &str = "^[A-Za-z0-9._-]{1,255}$";

fn string_enum<const N: usize>(values: [&str; N]) -> Schema {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values)).build().into()
}

/// `aws`, `gcp`, `azure` or `onprem`.
pub fn provider() -> Schema {
    string_enum(["aws", "gcp", "azure", "onprem"])
}

/// The Kafka versions Polaris supports.
pub fn kafka_version() -> Schema {
    string_enum(polaris_domain::cluster::SUPPORTED_KAFKA_VERSIONS)
}

/// One of `values`, or null (an optional request field left to its default: serde reads null as absent).
fn nullable_enum(ty: Type, values: impl IntoIterator<Item = serde_json::Value>) -> Schema {
    let mut values: Vec<serde_json::Value> = values.into_iter().collect();
    values.push(serde_json::Value::Null);
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([ty, Type::Null]))
        .enum_values(Some(values))
        .build()
        .into()
}

/// A supported Kafka version, or null for the default.
pub fn kafka_version_or_default() -> Schema {
    nullable_enum(Type::String, polaris_domain::cluster::SUPPORTED_KAFKA_VERSIONS.map(serde_json::Value::from))
}

/// 1, 3 or 5 KRaft controllers, or null for the default (3).
pub fn controllers_or_default() -> Schema {
    nullable_enum(Type::Integer, [1, 3, 5].map(serde_json::Value::from))
}

/// KRaft controller counts: 1, 3 or 5.
pub fn controllers() -> Schema {
    ObjectBuilder::new().schema_type(Type::Integer).enum_values(Some([1, 3, 5])).build().into()
}

/// Cluster statuses.
pub fn cluster_status() -> Schema {
    words(crate::clusters::known_statuses())
}

fn words(values: impl Iterator<Item = &'static str>) -> Schema {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values)).build().into()
}

/// A response field of these values, described by listing them: "A, B, C.".
fn listed(values: impl Iterator<Item = &'static str>) -> Schema {
    let values: Vec<&str> = values.collect();
    let description = format!("{}.", values.join(", "));
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .build()
        .into()
}

/// A cluster's status, as a response field.
pub fn cluster_status_field() -> Schema {
    listed(crate::clusters::known_statuses())
}

/// Topic statuses.
pub fn topic_status() -> Schema {
    listed(polaris_domain::lifecycle::TopicStatus::texts())
}

/// Operation kinds.
pub fn operation_kind() -> Schema {
    listed(polaris_domain::lifecycle::OperationKind::texts())
}

/// Operation states.
pub fn operation_state() -> Schema {
    listed(polaris_domain::lifecycle::OperationState::texts())
}

/// Step states.
pub fn step_state() -> Schema {
    words(polaris_domain::lifecycle::StepState::texts())
}

/// Audit outcomes (a filter).
pub fn audit_outcome() -> Schema {
    words(crate::audit::OUTCOMES.into_iter())
}

/// An audit entry's outcome, as a response field.
pub fn audit_outcome_field() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(crate::audit::OUTCOMES))
        .description(Some("`accepted`, `rejected`, `deduplicated`, `dry_run` or `error`."))
        .build()
        .into()
}

/// A configuration map: Kafka property names to string values.
pub fn config() -> Schema {
    // Every `config` a request takes is optional: null reads as absent.
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Object, Type::Null]))
        .property_names(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(CONFIG_KEY))))
        .additional_properties(Some(AdditionalProperties::from(
            ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL)),
        )))
        .build()
        .into()
}

/// Kubernetes namespace names (DNS-1123 labels), at most 64, or null for none.
pub fn namespaces_or_none() -> Schema {
    utoipa::openapi::schema::ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Array, Type::Null]))
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(DNS_LABEL)))
        .max_items(Some(polaris_domain::policy::MESH_CLIENT_NAMESPACES_MAX))
        .build()
        .into()
}

/// Text without NUL characters.
pub fn text() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL)).build().into()
}

/// A text without NUL characters, or null (an optional request field left to its default).
pub fn text_or_null() -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(NO_NUL))
        .build()
        .into()
}

/// A list of texts without NUL characters.
pub fn text_list() -> Schema {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL)))
        .build()
        .into()
}
