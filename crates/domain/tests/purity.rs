//! The domain must stay pure (HOUSE-RULES 4): this test fails the build if `polaris-domain` depends, directly
//! or through anything, on an infrastructure crate.

use std::process::Command;

const FORBIDDEN: [&str; 12] = [
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

#[test]
fn domain_depends_on_no_infrastructure_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "polaris-domain", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).expect("utf8");
    let names: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"cqrs-es"), "the tree was read: {names:?}");
    let found: Vec<&&str> = FORBIDDEN.iter().filter(|f| names.contains(f)).collect();
    assert!(found.is_empty(), "polaris-domain must not depend on {found:?}");
}
