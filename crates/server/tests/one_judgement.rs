//! One judgement: creating a cluster, dry-running the create and evaluating it judge the same subject with the
//! same defaults, so over generated bundles and requests the three give the same verdict and the same violated
//! rules and fields (proptest, against the real API and PostgreSQL).

use std::collections::BTreeSet;

use polaris_server::Role;
use polaris_test_support::harness::{Harness, send, unique_name};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

const VERSIONS: [&str; 4] = ["4.2.0", "4.2.1", "4.3.0", "4.3.1"];
const LOCATIONS: [(&str, &str); 3] = [("aws", "eu-west-1"), ("gcp", "europe-west1"), ("azure", "westeurope")];

fn bounds(lo: u64, hi: u64) -> impl Strategy<Value = Option<Value>> {
    proptest::option::of((proptest::option::of(lo..=hi), proptest::option::of(lo..=hi))).prop_map(|b| {
        b.map(|(min, max)| {
            let (min, max) = match (min, max) {
                (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
                other => other,
            };
            let mut o = Map::new();
            if let Some(min) = min {
                o.insert("min".into(), min.into());
            }
            if let Some(max) = max {
                o.insert("max".into(), max.into());
            }
            Value::Object(o)
        })
    })
}

fn bundle() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(proptest::sample::subsequence(VERSIONS.to_vec(), 1..=4)),
        proptest::option::of(proptest::sample::subsequence(LOCATIONS.to_vec(), 1..=3)),
        bounds(1, 9),
        bounds(50, 1000),
        proptest::option::of(proptest::sample::select(vec!["^prod-", "^t", "^zzz"])),
    )
        .prop_map(|(versions, locations, brokers, storage, protected)| {
            let mut rules = Map::new();
            if let Some(v) = versions {
                rules.insert("allowed_kafka_versions".into(), json!(v));
            }
            if let Some(l) = locations {
                let l: Vec<Value> = l.iter().map(|(p, r)| json!({"provider": p, "region": r})).collect();
                rules.insert("allowed_locations".into(), Value::Array(l));
            }
            if let Some(b) = brokers {
                rules.insert("brokers".into(), b);
            }
            if let Some(s) = storage {
                rules.insert("storage_gib".into(), s);
            }
            if let Some(p) = protected {
                rules.insert("deletion_protection_required_for".into(), json!(p));
            }
            Value::Object(rules)
        })
}

/// A create request, its optional fields present or left to the defaults.
fn request() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::sample::select(LOCATIONS.to_vec()),
        proptest::option::of(proptest::sample::select(VERSIONS.to_vec())),
        1u32..=9,
        proptest::option::of(50u32..=1000),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|((provider, region), version, brokers, storage, protection)| {
            let mut body = Map::new();
            body.insert("provider".into(), provider.into());
            body.insert("region".into(), region.into());
            body.insert("brokers".into(), brokers.into());
            if let Some(v) = version {
                body.insert("kafka_version".into(), v.into());
            }
            if let Some(s) = storage {
                body.insert("storage_gib".into(), s.into());
            }
            if let Some(p) = protection {
                body.insert("deletion_protection".into(), p.into());
            }
            body
        })
}

/// Allowed, and the violated `(policy, field)` pairs.
type Verdict = (bool, BTreeSet<(String, String)>);

fn violations(v: &Value) -> BTreeSet<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|v| (v["policy"].as_str().unwrap_or("").to_owned(), v["field"].as_str().unwrap_or("").to_owned()))
        .collect()
}

/// What a create (or its dry run) said about policy: refused with POLICY_VIOLATION, or not refused by policy
/// (accepted, planned, or refused for something else, such as no target serving the location).
fn create_verdict(status: StatusCode, body: &Value) -> Verdict {
    let refused = status == StatusCode::UNPROCESSABLE_ENTITY && body["code"] == "POLICY_VIOLATION";
    (!refused, violations(&body["violations"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn evaluate_dry_run_and_create_give_one_verdict_over_generated_bundles_and_requests() {
    let h = Harness::start(&[Role::Api]).await;
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
    let (allowed, refused) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    runner
        .run(&(bundle(), request()), |(rules, mut body)| {
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    let (s, published) = send(&h, h.http.put(h.url("/v1/policies")).json(&rules)).await;
                    prop_assert_eq!(s, StatusCode::OK, "{}", published);
                    body.insert("name".into(), unique_name().into());
                    let input = Value::Object(body.clone());
                    let (s, evaluation) = send(
                        &h,
                        h.http
                            .post(h.url("/v1/policies/evaluate"))
                            .json(&json!({"command": "create_cluster", "input": input})),
                    )
                    .await;
                    prop_assert_eq!(s, StatusCode::OK, "{}", evaluation);
                    let evaluated: Verdict =
                        (evaluation["allowed"].as_bool().unwrap_or(false), violations(&evaluation["violations"]));
                    let (s, plan) = send(&h, h.http.post(h.url("/v1/clusters?dry_run=true")).json(&input)).await;
                    let planned = create_verdict(s, &plan);
                    let (s, created) = send(&h, h.http.post(h.url("/v1/clusters")).json(&input)).await;
                    let recorded = create_verdict(s, &created);
                    prop_assert_eq!(
                        &evaluated,
                        &planned,
                        "evaluate vs dry run for {} under {}: {}",
                        input,
                        rules,
                        plan
                    );
                    prop_assert_eq!(
                        &evaluated,
                        &recorded,
                        "evaluate vs create for {} under {}: {}",
                        input,
                        rules,
                        created
                    );
                    let tally = if evaluated.0 { &allowed } else { &refused };
                    tally.set(tally.get() + 1);
                    Ok::<(), TestCaseError>(())
                })
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (allowed, refused) = (allowed.get(), refused.get());
    assert!(allowed > 0 && refused > 0, "the generator covers both verdicts ({allowed} allowed, {refused} refused)");
    h.stop().await;
}
