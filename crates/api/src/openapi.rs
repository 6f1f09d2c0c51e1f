//! The OpenAPI 3.1 document, generated from the handlers' annotations. It is checked in at
//! `schemas/openapi.json`; a test fails when the two differ.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::{
    admin, audit, clusters, drift, error, events, health, operations, policies, targets, tenancy, topics, users,
};

/// Every route of the REST API, registered once: the router, the OpenAPI document and the audit entries'
/// command names (each route's operation id) are all read from this, so they cannot drift apart.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(clusters::create_cluster, clusters::list_clusters))
        .routes(routes!(clusters::get_cluster, clusters::delete_cluster, clusters::patch_cluster))
        .routes(routes!(clusters::scale_cluster))
        .routes(routes!(clusters::upgrade_cluster))
        .routes(routes!(clusters::cluster_history))
        .routes(routes!(clusters::cluster_brokers))
        .routes(routes!(clusters::cluster_metrics))
        .routes(routes!(topics::create_topic, topics::list_topics))
        .routes(routes!(topics::get_topic, topics::update_topic, topics::delete_topic))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::get_user, users::update_user, users::delete_user))
        .routes(routes!(users::rotate_user))
        .routes(routes!(drift::list_drift))
        .routes(routes!(drift::resolve_drift))
        .routes(routes!(operations::list_operations))
        .routes(routes!(operations::get_operation))
        .routes(routes!(targets::create_target, targets::list_targets))
        .routes(routes!(targets::grant_target))
        .routes(routes!(policies::get_policies, policies::put_policies))
        .routes(routes!(policies::evaluate))
        .routes(routes!(audit::list_audit))
        .routes(routes!(tenancy::create_org, tenancy::list_orgs))
        .routes(routes!(tenancy::create_token, tenancy::list_tokens))
        .routes(routes!(tenancy::revoke_token))
        .routes(routes!(events::list_events))
        .routes(routes!(admin::verify))
        .routes(routes!(admin::replay))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
}

/// The OpenAPI document of [`routes`], with what every operation shares (bearer auth, common responses).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = routes().split_for_parts();
    BearerAuth.modify(&mut doc);
    CommonResponses.modify(&mut doc);
    doc
}

/// The operation id of each mutating route, `(method, route)` to id: the `command` of its audit entries.
pub fn commands() -> &'static std::collections::HashMap<(String, String), &'static str> {
    static COMMANDS: std::sync::OnceLock<std::collections::HashMap<(String, String), &'static str>> =
        std::sync::OnceLock::new();
    COMMANDS.get_or_init(|| {
        let mut commands = std::collections::HashMap::new();
        for (path, item) in openapi().paths.paths {
            for (method, op) in
                [("POST", &item.post), ("PUT", &item.put), ("PATCH", &item.patch), ("DELETE", &item.delete)]
            {
                if let Some(id) = op.as_ref().and_then(|op| op.operation_id.clone()) {
                    // Built once per process, for a fixed set of routes.
                    commands.insert((method.to_owned(), path.clone()), &*Box::leak(id.into_boxed_str()));
                }
            }
        }
        commands
    })
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Polaris API",
        version = "0.1.0",
        description = "Control plane for self-hosted Apache Kafka on Kubernetes. Errors are RFC 9457 \
            problem+json documents with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(error::Problem)),
    tags(
        (name = "clusters", description = "Kafka clusters"),
        (name = "operations", description = "Long-running changes"),
        (name = "topics", description = "Kafka topics"),
        (name = "users", description = "Kafka users: credentials, ACLs and quotas"),
        (name = "drift", description = "Where a cluster's objects on its target differ from its event history"),
        (name = "targets", description = "Kubernetes clusters Polaris deploys into"),
        (name = "policies", description = "Policy bundles and evaluation"),
        (name = "audit", description = "Who did what, when, and the verdict"),
        (name = "tenancy", description = "Organizations and API tokens"),
        (name = "events", description = "The org's events in commit order"),
        (name = "admin", description = "Platform checks: hash-chain verification and read-model replay"),
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

/// Responses every authenticated operation can give, and the `Idempotency-Key` header of every mutating one,
/// added in one place rather than repeated on each handler.
struct CommonResponses;

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            )
            .build(),
    )
}

fn string_matching(pattern: &str, max_length: usize) -> RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(pattern))
        .max_length(Some(max_length))
        .into()
}

fn add_common(op: &mut Operation, mutating: bool) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |code: &str, description: &str| {
        op.responses.responses.entry(code.to_owned()).or_insert_with(|| problem(description));
    };
    add("503", "`DEPENDENCY_UNAVAILABLE`: retry after `Retry-After`");
    add("500", "`INTERNAL`: a bug, with a `correlation_id` to report; retrying will not help");
    if secured {
        add("401", "`UNAUTHENTICATED`: missing or bad token");
        add("403", "`FORBIDDEN`: role too low");
        add("429", "`RATE_LIMITED`, with `Retry-After`");
        add("400", "`VALIDATION_FAILED`");
    }
    if mutating {
        add("409", "`IDEMPOTENCY_KEY_IN_PROGRESS` or a conflict");
        add("413", "`PAYLOAD_TOO_LARGE`: body over 1 MiB");
        add("415", "Not JSON");
        add("422", "`IDEMPOTENCY_KEY_REUSED`");
        let params = op.parameters.get_or_insert_with(Vec::new);
        if !params.iter().any(|p| matches!(p, RefOr::T(p) if p.name == "Idempotency-Key")) {
            params.push(RefOr::T(
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .description(Some(
                        "Repeating a request with the same key and body answers the first response again",
                    ))
                    .schema(Some(string_matching(crate::audit::IDEMPOTENCY_KEY_PATTERN, 255)))
                    .build(),
            ));
        }
    }
    // Conditional writes: `"<version>"`, optionally weak.
    for p in op.parameters.iter_mut().flatten() {
        if let RefOr::T(p) = p
            && p.name == "If-Match"
        {
            p.schema = Some(string_matching("^(W/)?\"[0-9]{1,19}\"$", 24));
        }
    }
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // `{"command", "input"}` and nothing else, like every other body.
        if let Some(RefOr::T(utoipa::openapi::schema::Schema::OneOf(one_of))) =
            openapi.components.as_mut().and_then(|c| c.schemas.get_mut("EvaluateRequest"))
        {
            for item in one_of.items.iter_mut() {
                if let RefOr::T(utoipa::openapi::schema::Schema::Object(o)) = item {
                    o.additional_properties =
                        Some(Box::new(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)));
                }
            }
        }
        // A target's credentials: exactly one of `kubeconfig` and `kubeconfig_secret`.
        if let Some(schemas) = openapi.components.as_mut().map(|c| &mut c.schemas)
            && let Some(RefOr::T(target)) = schemas.remove("CreateTarget")
        {
            let requiring = |field: &str| -> RefOr<utoipa::openapi::schema::Schema> {
                let string = utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .build();
                utoipa::openapi::schema::ObjectBuilder::new().required(field).property(field, string).into()
            };
            let one_of = utoipa::openapi::schema::OneOfBuilder::new()
                .item(requiring("kubeconfig"))
                .item(requiring("kubeconfig_secret"))
                .build();
            let one_of = utoipa::openapi::schema::Schema::OneOf(one_of);
            let all_of = utoipa::openapi::schema::AllOfBuilder::new().item(target).item(one_of).build();
            schemas.insert("CreateTarget".to_owned(), RefOr::T(utoipa::openapi::schema::Schema::AllOf(all_of)));
        }
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get].into_iter().flatten() {
                add_common(op, false);
            }
            for op in [&mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten() {
                add_common(op, true);
            }
        }
    }
}

/// The document as checked in: pretty JSON with a trailing newline.
pub fn openapi_document() -> String {
    let mut doc = openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    doc.push('\n');
    doc
}
