//! # An example subscriber of `polaris.events`
//!
//! Keeps its own view of Polaris, an inventory of Kafka clusters per provider/region (how many clusters, in
//! which status, with how many brokers), built only from the public event stream:
//!
//! ```text
//! cargo run -p polaris-subscriber-example -- \
//!     --bootstrap 127.0.0.1:59092 --topic polaris.events --group inventory --state inventory.json
//! ```
//!
//! What it shows:
//! - **Its own consumer group** (`--group`): it reads the whole history from the beginning the first time, and
//!   continues where it stopped afterwards, without affecting Polaris' own consumers.
//! - **Idempotence on `(aggregate_id, sequence)`**: delivery is at-least-once, so the view remembers the last
//!   sequence it applied per aggregate and ignores anything at or below it. The view and those sequences are
//!   saved together (one file, written atomically) *before* the Kafka offsets are committed: a crash in between
//!   replays a few events, which the sequences then ignore.
//! - **Versions**: each message names its `event_type` and `event_version` (also as Kafka headers); the payloads
//!   are described by `schemas/events/<event_type>.v<version>.json`. This view reads fields that every
//!   known version has, and refuses a version newer than it was written for rather than guessing.
//!
//! The view is printed as JSON whenever it changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Parser)]
#[command(name = "polaris-subscriber", about = "Inventory of Polaris clusters per region, from polaris.events")]
struct Args {
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:59092")]
    bootstrap: String,
    #[arg(long, env = "POLARIS_EVENTS_TOPIC", default_value = "polaris.events")]
    topic: String,
    /// The consumer group: this subscriber's own.
    #[arg(long, default_value = "polaris-inventory-example")]
    group: String,
    /// Where the view is kept between runs.
    #[arg(long, default_value = "inventory.json")]
    state: PathBuf,
}

/// The fields of the envelope this subscriber needs (the full envelope is in schemas/asyncapi.json).
#[derive(Debug, Deserialize)]
struct Envelope {
    aggregate_type: String,
    aggregate_id: String,
    sequence: u64,
    event_type: String,
    event_version: u32,
    payload: Value,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Cluster {
    name: String,
    location: String,
    status: String,
    brokers: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Location {
    clusters: usize,
    brokers: usize,
    by_status: BTreeMap<String, usize>,
}

/// The subscriber's whole state: its view, and the last sequence applied per aggregate.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    applied: BTreeMap<String, u64>,
    clusters: BTreeMap<String, Cluster>,
    inventory: BTreeMap<String, Location>,
    events_applied: u64,
    duplicates_ignored: u64,
}

/// The newest version of each event this view was written against.
const KNOWN_VERSIONS: &[(&str, u32)] = &[
    ("ClusterRequested", 4),
    ("ClusterReady", 1),
    ("BrokersAdded", 1),
    ("BrokersRemoved", 1),
    ("ClusterStalled", 1),
    ("OperationFailed", 1),
    ("ClusterDeletionRequested", 1),
    ("ClusterDeleted", 1),
];

impl State {
    fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Written to a temporary file and renamed, so a crash leaves the old state or the new one, never half.
    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Applies one event. Returns whether the view changed.
    fn apply(&mut self, env: &Envelope) -> anyhow::Result<bool> {
        let last = self.applied.get(&env.aggregate_id).copied().unwrap_or(0);
        if env.sequence <= last {
            self.duplicates_ignored += 1;
            return Ok(false);
        }
        let known = KNOWN_VERSIONS.iter().find(|(t, _)| *t == env.event_type).map(|(_, v)| *v);
        if let Some(known) = known {
            anyhow::ensure!(
                env.event_version <= known,
                "{} version {} is newer than this subscriber knows ({known}); upgrade it",
                env.event_type,
                env.event_version
            );
        }
        self.applied.insert(env.aggregate_id.clone(), env.sequence);
        self.events_applied += 1;
        if env.aggregate_type != "cluster" || known.is_none() {
            return Ok(false);
        }
        let p = &env.payload;
        let brokers = |p: &Value| p["broker_ids"].as_array().map(Vec::len).unwrap_or(0);
        let id = env.aggregate_id.clone();
        match env.event_type.as_str() {
            // Versions 1 and 2 both carry name, provider, region and brokers.
            "ClusterRequested" => {
                let cluster = Cluster {
                    name: p["name"].as_str().unwrap_or_default().to_owned(),
                    location: format!(
                        "{}/{}",
                        p["provider"].as_str().unwrap_or("?"),
                        p["region"].as_str().unwrap_or("?")
                    ),
                    status: "REQUESTED".into(),
                    brokers: 0,
                };
                self.clusters.insert(id, cluster);
            }
            "ClusterReady" | "BrokersAdded" | "BrokersRemoved" => self.update(&id, "READY", Some(brokers(p))),
            "ClusterStalled" => self.update(&id, "STALLED", None),
            "OperationFailed" => self.update(&id, "FAILED", None),
            "ClusterDeletionRequested" => self.update(&id, "DELETING", None),
            "ClusterDeleted" => {
                self.clusters.remove(&id);
            }
            _ => return Ok(false),
        }
        self.rebuild_inventory();
        Ok(true)
    }

    fn update(&mut self, id: &str, status: &str, brokers: Option<usize>) {
        if let Some(c) = self.clusters.get_mut(id) {
            c.status = status.into();
            if let Some(b) = brokers {
                c.brokers = b;
            }
        }
    }

    fn rebuild_inventory(&mut self) {
        self.inventory.clear();
        for c in self.clusters.values() {
            let loc = self.inventory.entry(c.location.clone()).or_default();
            loc.clusters += 1;
            loc.brokers += c.brokers;
            *loc.by_status.entry(c.status.clone()).or_default() += 1;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut state = State::load(&args.state)?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the Kafka consumer")?;
    consumer.subscribe(&[&args.topic])?;
    eprintln!("following {} as group {} (state in {})", args.topic, args.group, args.state.display());
    loop {
        let msg = match tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
            Err(_) => continue,
            Ok(Err(e)) => {
                eprintln!("receive failed: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Ok(Ok(msg)) => msg,
        };
        let Some(body) = msg.payload() else { continue };
        let env: Envelope = match serde_json::from_slice(body) {
            Ok(env) => env,
            Err(e) => {
                eprintln!("skipping a message that is not an envelope (offset {}): {e}", msg.offset());
                continue;
            }
        };
        let changed = state.apply(&env)?;
        // State first, offsets second: a crash between them re-reads events the sequences then ignore.
        state.save(&args.state)?;
        consumer.commit_message(&msg, CommitMode::Async)?;
        if changed {
            println!("{}", serde_json::to_string(&state.inventory)?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(id: &str, sequence: u64, event_type: &str, version: u32, payload: Value) -> Envelope {
        Envelope {
            aggregate_type: "cluster".into(),
            aggregate_id: id.into(),
            sequence,
            event_type: event_type.into(),
            event_version: version,
            payload,
        }
    }

    #[test]
    fn a_redelivered_event_changes_nothing_and_every_known_version_counts() {
        let mut s = State::default();
        let v1 = serde_json::json!({"name": "a", "provider": "aws", "region": "eu-west-1"});
        let v2 = serde_json::json!({"name": "b", "provider": "aws", "region": "eu-west-1", "target_id": "t"});
        let v3 = serde_json::json!({"name": "c", "provider": "aws", "region": "eu-west-1", "namespace": "polaris-c-1"});
        assert!(s.apply(&env("a", 1, "ClusterRequested", 1, v1.clone())).expect("v1"));
        assert!(s.apply(&env("b", 1, "ClusterRequested", 2, v2)).expect("v2"));
        assert!(s.apply(&env("c", 1, "ClusterRequested", 3, v3)).expect("v3"));
        let v4 = serde_json::json!({"name": "d", "provider": "aws", "region": "eu-west-1", "namespace": "polaris-d-1",
            "mesh": {"mode": "strict", "client_namespaces": []}});
        assert!(s.apply(&env("d", 1, "ClusterRequested", 4, v4)).expect("v4"));
        let ready = serde_json::json!({"broker_ids": [0, 1, 2]});
        assert!(s.apply(&env("a", 2, "ClusterReady", 1, ready.clone())).expect("ready"));
        let before = s.inventory.clone();
        assert!(!s.apply(&env("a", 2, "ClusterReady", 1, ready)).expect("duplicate"));
        assert!(!s.apply(&env("a", 1, "ClusterRequested", 1, v1)).expect("duplicate"));
        assert_eq!(s.inventory, before);
        assert_eq!(s.duplicates_ignored, 2);
        let loc = &s.inventory["aws/eu-west-1"];
        assert_eq!((loc.clusters, loc.brokers, loc.by_status["READY"]), (4, 3, 1));
    }

    #[test]
    fn a_version_from_the_future_is_refused() {
        let mut s = State::default();
        let e = s.apply(&env("a", 1, "ClusterRequested", 5, serde_json::json!({}))).expect_err("v5");
        assert!(e.to_string().contains("version 5"));
    }
}
