//! The example subscriber against the real stack: it builds its inventory from polaris.events in its own
//! consumer group, and reading the whole topic again (a new group, the same state) changes nothing.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use polaris_server::Role;
use polaris_test_support::eventually;
use polaris_test_support::harness::{Harness, send};
use serde_json::{Value, json};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn subscriber(h: &Harness, group: &str, state: &std::path::Path) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_polaris-subscriber"))
            .args(["--bootstrap", &h.settings.kafka_bootstrap, "--topic", &h.topic, "--group", group])
            .arg("--state")
            .arg(state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the subscriber starts"),
    )
}

fn read_state(path: &std::path::Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[tokio::test]
async fn the_inventory_follows_the_stream_and_ignores_redelivery() {
    let h = Harness::start(&[Role::Api, Role::Relay]).await;
    for (name, provider, region) in
        [("inv-a", "aws", "eu-west-1"), ("inv-b", "aws", "eu-west-1"), ("inv-c", "gcp", "europe-west1")]
    {
        let body = json!({"name": name, "provider": provider, "region": region, "brokers": 3});
        let (status, problem) = send(&h, h.http.post(h.url("/v1/clusters")).json(&body)).await;
        assert_eq!(status, 202, "{problem}");
    }
    let dir = std::env::temp_dir().join(format!("polaris-subscriber-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let state = dir.join("inventory.json");

    let first = subscriber(&h, &format!("inventory-{}", uuid::Uuid::new_v4().simple()), &state);
    let view = eventually("the subscriber counts three clusters in two regions", Duration::from_secs(60), || async {
        let s = read_state(&state)?;
        let inv = &s["inventory"];
        (inv["aws/eu-west-1"]["clusters"] == 2 && inv["gcp/europe-west1"]["clusters"] == 1).then_some(s)
    })
    .await;
    assert_eq!(view["inventory"]["aws/eu-west-1"]["by_status"]["REQUESTED"], 2);
    assert_eq!(view["events_applied"], 3);
    drop(first);

    // A new group reads everything again from the start; the state's sequences turn each into a no-op.
    let _second = subscriber(&h, &format!("inventory-{}", uuid::Uuid::new_v4().simple()), &state);
    let again = eventually("the redelivered events are ignored", Duration::from_secs(60), || async {
        let s = read_state(&state)?;
        (s["duplicates_ignored"].as_u64()? >= 3).then_some(s)
    })
    .await;
    assert_eq!(again["inventory"], view["inventory"]);
    assert_eq!(again["events_applied"], 3);
    h.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
