//! The OpenAPI 3.1 document, generated from the handlers' annotations. It is checked in at
//! `schemas/openapi.json`; a test fails when the two differ.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{clusters, error, health, operations, targets, topics};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Polaris API",
        version = "0.1.0",
        description = "Control plane for self-hosted Apache Kafka on Kubernetes. Errors are RFC 9457 \
            problem+json documents with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    paths(
        clusters::create_cluster,
        clusters::list_clusters,
        clusters::get_cluster,
        clusters::scale_cluster,
        clusters::upgrade_cluster,
        clusters::delete_cluster,
        clusters::patch_cluster,
        clusters::cluster_history,
        clusters::cluster_brokers,
        topics::create_topic,
        topics::list_topics,
        topics::get_topic,
        operations::list_operations,
        operations::get_operation,
        targets::create_target,
        targets::list_targets,
        health::healthz,
        health::readyz,
        health::metrics,
    ),
    components(schemas(error::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "clusters", description = "Kafka clusters"),
        (name = "operations", description = "Long-running changes"),
        (name = "topics", description = "Kafka topics"),
        (name = "targets", description = "Kubernetes clusters Polaris deploys into"),
        (name = "health", description = "Liveness, readiness and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        }
    }
}

/// The document as checked in: pretty JSON with a trailing newline.
pub fn openapi_document() -> String {
    let mut doc = ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    doc.push('\n');
    doc
}
