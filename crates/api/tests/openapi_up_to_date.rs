//! The checked-in OpenAPI document must equal the one the code generates (HOUSE-RULES 6).

#[test]
fn checked_in_openapi_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/openapi.json");
    let generated = polaris_api::openapi::openapi_document();
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "schemas/openapi.json is out of date; regenerate it with:\n    cargo run -q -p polaris-server -- openapi > schemas/openapi.json"
    );
}

#[test]
fn every_operation_id_is_resource_underscore_verb() {
    let doc: serde_json::Value = serde_json::from_str(&polaris_api::openapi::openapi_document()).expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    for (path, ops) in paths {
        for (method, op) in ops.as_object().expect("ops") {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has an operationId"));
            let parts: Vec<&str> = id.split('_').collect();
            assert!(parts.len() == 2 && parts.iter().all(|p| !p.is_empty()), "{method} {path}: {id}");
        }
    }
}
