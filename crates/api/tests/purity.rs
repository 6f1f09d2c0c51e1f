//! The REST adapter holds no SQL (HOUSE-RULES 14): every statement lives in the store's datastore. This test
//! fails the build if `polaris-api` depends directly on a database or messaging crate, so a query cannot be
//! written here again; it reaches PostgreSQL only through `polaris-store`.

use std::process::Command;

const FORBIDDEN: [&str; 4] = ["sqlx", "postgres-es", "rdkafka", "tokio-postgres"];

#[test]
fn the_api_depends_on_no_database_crate_directly() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "polaris-api", "-e", "normal", "--depth", "1", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).expect("utf8");
    let names: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"polaris-store"), "the tree was read: {names:?}");
    let found: Vec<&&str> = FORBIDDEN.iter().filter(|f| names.contains(f)).collect();
    assert!(found.is_empty(), "polaris-api must reach the database through polaris-store only, not {found:?}");
}
