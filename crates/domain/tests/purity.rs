//! Who may depend on what (ARCHITECTURE.md, HOUSE-RULES 4 and 14), checked with `cargo tree` so the build fails
//! when a layer reaches past the one below it:
//! - the domain is pure: it depends, directly or through anything, on no infrastructure crate;
//! - nothing above the store holds SQL: the application layer (`polaris-app`), the front doors (`polaris-api`,
//!   `polaris-grpc`), the projector, the workers and the server reach PostgreSQL only through `polaris-store`'s
//!   datastore, never by depending on a SQL crate;
//! - the application layer knows no front door: `polaris-app` depends on neither axum nor tonic, and the doors
//!   reach the store's use cases through it.

use std::process::Command;

const INFRASTRUCTURE: [&str; 12] = [
    "sqlx",
    "postgres-es",
    "rdkafka",
    "kube",
    "kube-client",
    "k8s-openapi",
    "axum",
    "utoipa",
    "temporalio-sdk",
    "temporalio-client",
    "hyper",
    "reqwest",
];

/// The crates that speak SQL: only `polaris-store` may depend on them.
const SQL: [&str; 3] = ["sqlx", "postgres-es", "tokio-postgres"];

/// The names of `package`'s normal dependencies, down to `depth` (all of them when `None`).
fn dependencies(package: &str, depth: Option<u32>) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["tree".to_owned(), "-p".into(), package.into(), "-e".into(), "normal".into()];
    if let Some(depth) = depth {
        args.extend(["--depth".into(), depth.to_string()]);
    }
    args.extend(["--prefix".into(), "none".into(), "--format".into(), "{p}".into()]);
    let out =
        Command::new(cargo).args(&args).current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).expect("utf8");
    tree.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect()
}

fn found<'a>(names: &[String], forbidden: &'a [&'a str]) -> Vec<&'a str> {
    forbidden.iter().copied().filter(|f| names.iter().any(|n| n == f)).collect()
}

#[test]
fn domain_depends_on_no_infrastructure_crate() {
    let names = dependencies("polaris-domain", None);
    assert!(names.iter().any(|n| n == "cqrs-es"), "the tree was read: {names:?}");
    let found = found(&names, &INFRASTRUCTURE);
    assert!(found.is_empty(), "polaris-domain must not depend on {found:?}");
}

#[test]
fn nothing_above_the_store_speaks_sql() {
    for package in
        ["polaris-app", "polaris-api", "polaris-grpc", "polaris-projector", "polaris-workers", "polaris-server"]
    {
        let names = dependencies(package, Some(1));
        assert!(names.iter().skip(1).any(|n| n.starts_with("polaris-")), "the tree of {package} was read: {names:?}");
        let found = found(&names, &SQL);
        assert!(found.is_empty(), "{package} must reach PostgreSQL through polaris-store's datastore, not {found:?}");
    }
    // The front doors and the application layer reach Kafka through nothing either: they record intent only.
    for package in ["polaris-app", "polaris-api", "polaris-grpc"] {
        let found = found(&dependencies(package, Some(1)), &["rdkafka"]);
        assert!(found.is_empty(), "{package} must not depend on {found:?}");
    }
    // The front doors reach the datastore only through the application layer.
    for package in ["polaris-api", "polaris-grpc"] {
        let names = dependencies(package, Some(1));
        assert!(names.iter().any(|n| n == "polaris-app"), "the tree of {package} was read: {names:?}");
        assert!(!names.iter().any(|n| n == "polaris-store"), "{package} must call polaris-app, not polaris-store");
    }
}

#[test]
fn the_application_layer_knows_no_front_door() {
    let names = dependencies("polaris-app", None);
    assert!(names.iter().any(|n| n == "polaris-domain"), "the tree was read: {names:?}");
    let found = found(&names, &["axum", "tonic", "hyper", "tower-http", "polaris-api", "polaris-grpc"]);
    assert!(found.is_empty(), "polaris-app must not depend on {found:?}");
}
