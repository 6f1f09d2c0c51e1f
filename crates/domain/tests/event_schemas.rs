//! The event stream is a public interface: `schemas/events/` and `schemas/asyncapi.json` are generated from the
//! Rust types and must match them, every event type has a schema, and an old stored version is still read.
//!
//! Regenerate after changing an event: `POLARIS_WRITE_SCHEMAS=1 cargo test -p polaris-domain --test event_schemas`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use polaris_domain::events::{self, CURRENT, EventSchema};
use polaris_domain::{ClusterEvent, EventEnvelope, TargetId};
use serde_json::Value;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("serializes") + "\n"
}

fn expected_files() -> Vec<(PathBuf, String)> {
    let dir = schemas_dir();
    let mut files: Vec<(PathBuf, String)> =
        events::catalog().iter().map(|e| (dir.join("events").join(e.file_name()), pretty(&e.schema))).collect();
    files.push((dir.join("asyncapi.json"), pretty(&events::asyncapi("polaris.events"))));
    files
}

#[test]
fn checked_in_schemas_match_the_rust_types() {
    let files = expected_files();
    if std::env::var_os("POLARIS_WRITE_SCHEMAS").is_some() {
        let events_dir = schemas_dir().join("events");
        let _ = std::fs::remove_dir_all(&events_dir);
        std::fs::create_dir_all(&events_dir).expect("create schemas/events");
        for (path, text) in &files {
            std::fs::write(path, text).expect("write schema");
        }
    }
    let mut stale = Vec::new();
    for (path, text) in &files {
        match std::fs::read_to_string(path) {
            Ok(found) if &found == text => {}
            _ => stale.push(path.display().to_string()),
        }
    }
    assert!(stale.is_empty(), "out of date (regenerate with POLARIS_WRITE_SCHEMAS=1): {stale:?}");
    let on_disk: BTreeSet<String> = std::fs::read_dir(schemas_dir().join("events"))
        .expect("schemas/events exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let generated: BTreeSet<String> = events::catalog().iter().map(EventSchema::file_name).collect();
    assert_eq!(on_disk, generated, "schemas/events holds exactly one file per event type and version");
}

#[test]
fn every_event_type_has_a_schema_for_its_current_version() {
    let catalog = events::catalog();
    let variants = events::enum_variants();
    assert_eq!(variants.len(), CURRENT.len(), "every enum variant is listed in CURRENT: {variants:?}");
    for (aggregate, name) in &variants {
        let current = CURRENT
            .iter()
            .find(|(a, n, _)| a == aggregate && n == name)
            .unwrap_or_else(|| panic!("{aggregate}/{name} is missing from events::CURRENT"));
        assert!(
            catalog.iter().any(|e| e.event_type == name && e.version == current.2 && e.aggregate_type == *aggregate),
            "{name} v{} has no schema",
            current.2
        );
        for v in 1..=current.2 {
            assert!(catalog.iter().any(|e| e.event_type == name && e.version == v), "{name} v{v} has no schema");
        }
    }
}

fn object_keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

fn schema_of(event_type: &str, version: u32) -> Value {
    events::catalog()
        .into_iter()
        .find(|e| e.event_type == event_type && e.version == version)
        .expect("in the catalog")
        .schema
}

/// The payload has exactly the schema's properties, all required ones present.
fn assert_fits(payload: &Value, schema: &Value) {
    let keys = object_keys(payload);
    let properties = object_keys(&schema["properties"]);
    let required: BTreeSet<String> =
        schema["required"].as_array().expect("required").iter().map(|v| v.as_str().expect("name").to_owned()).collect();
    assert!(keys.is_subset(&properties), "{keys:?} has fields outside {properties:?}");
    assert!(required.is_subset(&keys), "{keys:?} lacks some of {required:?}");
    assert_eq!(schema["additionalProperties"], Value::Bool(false), "events refuse unknown fields");
}

#[test]
fn a_stored_version_1_event_is_read_by_current_code_without_rewriting_it() {
    // A real row from a development database, written before clusters had a target (event_version "1").
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ClusterRequested.v1.stored.json");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let stored: Value = serde_json::from_str(&text).expect("fixture is JSON");
    assert_eq!(stored["event_version"], "1");
    let inner = stored["payload"]["ClusterRequested"].clone();
    assert_fits(&inner, &schema_of("ClusterRequested", 1));

    // Current code cannot read it as is: target_id is missing...
    assert!(serde_json::from_value::<ClusterEvent>(stored["payload"].clone()).is_err());

    // ...but through the upcaster (the form the event store keeps, externally tagged) it can.
    let (version, tagged) =
        events::upcast_tagged("ClusterRequested", 1, stored["payload"].clone()).expect("version 1 upcasts");
    assert_eq!(version, 4);
    let event: ClusterEvent = serde_json::from_value(tagged.clone()).expect("current code reads the upcast event");
    let ClusterEvent::ClusterRequested(requested) = event else { panic!("not a ClusterRequested") };
    assert_eq!(requested.target_id, TargetId::UNPLACED);
    assert_eq!(requested.name.as_str(), inner["name"]);
    assert_eq!(requested.brokers, 3);
    // Clusters from before namespaces carried the id keep the old rule's namespace for life.
    assert_eq!(requested.namespace, format!("polaris-{}", requested.name.as_str()));
    // ...and outside any mesh: meshes came with version 4.
    assert_eq!(requested.mesh, None);
    assert_fits(&tagged["ClusterRequested"], &schema_of("ClusterRequested", 4));

    // The envelope path (relay, projector, subscribers) does the same.
    let envelope = EventEnvelope {
        event_id: uuid::Uuid::nil(),
        aggregate_type: "cluster".into(),
        aggregate_id: stored["aggregate_id"].as_str().expect("id").parse().expect("uuid"),
        sequence: 1,
        event_type: "ClusterRequested".into(),
        event_version: 1,
        occurred_at: chrono::Utc::now(),
        org_id: uuid::Uuid::nil(),
        actor: "a".into(),
        correlation_id: uuid::Uuid::nil(),
        causation_id: uuid::Uuid::nil(),
        operation_id: None,
        policy_version: None,
        payload: inner.clone(),
    };
    let decoded: ClusterEvent = envelope.decode().expect("decodes");
    assert!(matches!(decoded, ClusterEvent::ClusterRequested(_)));
    let current = envelope.clone().into_current().expect("upcasts");
    assert_eq!(current.event_version, 4);
    assert_eq!(current.payload["target_id"], "00000000-0000-0000-0000-000000000000");

    // The fixture (the stored row) is untouched: upcasting works on copies.
    assert_eq!(std::fs::read_to_string(&path).expect("fixture"), text);
}

#[test]
fn unknown_and_malformed_versions_are_refused_by_name() {
    let e = events::upcast("ClusterRequested", 5, serde_json::json!({})).expect_err("v5 does not exist");
    assert!(e.to_string().contains("version 5"), "{e}");
    let e = events::upcast("ClusterRequested", 1, serde_json::json!({"name": "x"})).expect_err("malformed v1");
    assert!(e.to_string().contains("version 1"), "{e}");
    // An unknown type passes through unchanged (the relay forwards it); decoding it fails by name.
    let (v, p) = events::upcast("NoSuchEvent", 7, serde_json::json!({"x": 1})).expect("passes through");
    assert_eq!((v, p), (7, serde_json::json!({"x": 1})));
    let (v, p) =
        events::upcast("TopicReady", 1, serde_json::json!({"operation_id": uuid::Uuid::nil()})).expect("current");
    assert_eq!((v, p["operation_id"].as_str()), (1, Some("00000000-0000-0000-0000-000000000000")));
}

#[test]
fn the_asyncapi_document_describes_every_current_message() {
    let doc = events::asyncapi("polaris.events");
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["channels"]["events"]["address"], "polaris.events");
    let messages = doc["components"]["messages"].as_object().expect("messages");
    assert_eq!(messages.len(), CURRENT.len());
    for (_, name, version) in CURRENT {
        let m = &messages[*name];
        assert_eq!(m["payload"]["allOf"][1]["properties"]["event_version"]["const"], *version);
        let file = m["payload"]["allOf"][1]["properties"]["payload"]["$ref"].as_str().expect("ref");
        assert!(schemas_dir().join(file).exists(), "{file} is checked in");
    }
    let envelope = &doc["components"]["schemas"]["EventEnvelope"]["properties"];
    for field in [
        "event_id",
        "aggregate_type",
        "aggregate_id",
        "sequence",
        "event_type",
        "event_version",
        "occurred_at",
        "org_id",
        "actor",
        "correlation_id",
        "causation_id",
        "operation_id",
        "payload",
    ] {
        assert!(envelope.get(field).is_some(), "envelope documents {field}");
    }
    let headers = &doc["components"]["schemas"]["EventHeaders"]["required"];
    assert_eq!(headers, &serde_json::json!(["event_type", "event_version", "content-type"]));
}
