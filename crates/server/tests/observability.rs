//! The dashboards and alert rules under deploy/ only name metrics Polaris really exports: read from /metrics of
//! a Polaris running every role on the real services.

use std::collections::BTreeSet;

use std::time::Duration;

use polaris_test_support::harness::{ALL, Harness, create, unique_name, wait_for_status};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Every series name /metrics can carry: counters as `_total`, histograms as `_bucket`, `_sum`, `_count`.
async fn exported(h: &Harness) -> BTreeSet<String> {
    let text = h.http.get(h.url("/metrics")).send().await.expect("GET /metrics").text().await.expect("text");
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            match kind {
                "counter" => {
                    names.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboards_and_alert_rules_use_only_exported_metrics() {
    let h = Harness::start(&ALL).await;
    // Some traffic through every role, so each metric family has a sample.
    let (id, _) = create(&h, &unique_name(), ("aws", "eu-west-1")).await;
    wait_for_status(&h, &id, "READY", Duration::from_secs(60)).await;
    // The provisioning that just finished is one observed workflow (the projector records it right after
    // applying ClusterReady; a cluster read answers from its events when the read model lags, so READY may be
    // seen before that).
    let text =
        polaris_test_support::eventually("the provision workflow is observed", Duration::from_secs(10), || async {
            let text = h.http.get(h.url("/metrics")).send().await.ok()?.text().await.ok()?;
            text.lines()
                .any(|l| {
                    l.starts_with("polaris_workflow_duration_seconds_count{")
                        && l.contains("kind=\"provision\"")
                        && l.contains("outcome=\"succeeded\"")
                        && l.ends_with(" 1")
                })
                .then_some(text)
        })
        .await;
    // An open drift, so the drift gauge has a sample for the org.
    let org = h.org;
    polaris_test_support::harness::record_drift(&h, org, &id, &h.admin_token).await;
    let exported = exported(&h).await;
    assert!(text.lines().any(|l| l.starts_with("polaris_events_appended_total{") && l.contains("ClusterRequested")));
    for expected in [
        "polaris_api_requests_total",
        "polaris_command_duration_seconds_bucket",
        "polaris_outbox_lag_events",
        "polaris_outbox_lag_seconds",
        "polaris_relay_publish_latency_seconds_bucket",
        "polaris_projector_lag_seconds",
        "polaris_workflow_starts_total",
        "polaris_operations_stalled_total",
        "polaris_events_appended_total",
        "polaris_workflow_duration_seconds_bucket",
        "polaris_drift_open",
    ] {
        assert!(exported.contains(expected), "/metrics lacks {expected}: {exported:?}");
    }

    // Grafana dashboards: JSON with a uid, a title, and panels whose queries name exported metrics.
    let mut dashboards = 0;
    for entry in std::fs::read_dir(format!("{ROOT}/deploy/grafana")).expect("deploy/grafana") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        dashboards += 1;
        let text = std::fs::read_to_string(&path).expect("read dashboard");
        let d: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(d["uid"].is_string() && d["title"].is_string(), "{}: uid and title", path.display());
        let panels = d["panels"].as_array().unwrap_or_else(|| panic!("{}: panels", path.display()));
        assert!(!panels.is_empty());
        for p in panels {
            let targets =
                p["targets"].as_array().unwrap_or_else(|| panic!("{}: panel {} targets", path.display(), p["title"]));
            assert!(!targets.is_empty(), "{}: panel {} has no query", path.display(), p["title"]);
            for t in targets {
                let expr = t["expr"].as_str().expect("expr");
                for m in polaris_test_support::metrics_in(expr, "polaris_") {
                    assert!(
                        exported.contains(&m),
                        "{}: panel {} uses {m}, which Polaris does not export",
                        path.display(),
                        p["title"]
                    );
                }
            }
        }
    }
    assert!(dashboards >= 2, "the control-plane and operations dashboards");

    // Alert rules: every expression names exported metrics.
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(format!("{ROOT}/deploy/prometheus/rules.yml")).expect("rules"))
            .expect("rules yaml");
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            alerts += 1;
            let expr = rule["expr"].as_str().expect("expr");
            for m in polaris_test_support::metrics_in(expr, "polaris_") {
                assert!(exported.contains(&m), "alert {:?} uses {m}, which Polaris does not export", rule["alert"]);
            }
        }
    }
    assert!(alerts >= 5);
    h.stop().await;
}
