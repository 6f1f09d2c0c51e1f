//! Who may depend on what (ARCHITECTURE.md, HOUSE-RULES 4 and 14), checked with `cargo tree` so the build fails
//! when a layer reaches past the one below it:
//! - the domain is pure: it depends, directly or through anything, on no infrastructure crate;
//! - the REST adapter holds no SQL: `polaris-api` reaches PostgreSQL only through `polaris-store`, never by
//!   depending on a database crate itself.

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

const DATABASE: [&str; 4] = ["sqlx", "postgres-es", "rdkafka", "tokio-postgres"];

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
fn the_api_depends_on_no_database_crate_directly() {
    let names = dependencies("polaris-api", Some(1));
    assert!(names.iter().any(|n| n == "polaris-store"), "the tree was read: {names:?}");
    let found = found(&names, &DATABASE);
    assert!(found.is_empty(), "polaris-api must reach the database through polaris-store only, not {found:?}");
}
