//! The built `polaris` binary against a whole Polaris on the real local services.

use std::process::{Command, Output};

use polaris_test_support::harness::{ALL, Harness, unique_name};

async fn polaris(h: &Harness, token: &str, args: &[&str]) -> Output {
    polaris_in(h, Some(token), std::env::temp_dir().join("polaris-cli-test-nohome"), args).await
}

/// Runs the binary with `HOME` (where `polaris login` keeps its token) set to `home`.
async fn polaris_in(h: &Harness, token: Option<&str>, home: std::path::PathBuf, args: &[&str]) -> Output {
    let (base, token) = (h.base.clone(), token.map(str::to_owned));
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_polaris"));
        cmd.args(&args).env("POLARIS_API_URL", base).env("HOME", home).env_remove("XDG_CONFIG_HOME");
        match token {
            Some(t) => cmd.env("POLARIS_TOKEN", t),
            None => cmd.env_remove("POLARIS_TOKEN"),
        };
        cmd.output().expect("run polaris")
    })
    .await
    .expect("join")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_with_wait_list_and_the_exit_codes() {
    let h = Harness::start(&ALL).await;
    let name = unique_name();
    let token = h.admin_token.clone();

    let out =
        polaris(&h, &token, &["clusters", "create", &name, "--provider", "aws", "--region", "eu-west-1", "--wait"])
            .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains(&name) && table.contains("READY"), "{table}");
    assert!(text(&out.stderr).contains("succeeded"), "progress was shown: {}", text(&out.stderr));

    let out = polaris(&h, &token, &["clusters", "list", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert!(items.as_array().expect("array").iter().any(|c| c["name"] == name.as_str()));

    // The same name again: a conflict, exit 4, with the problem's code.
    let out = polaris(&h, &token, &["clusters", "create", &name, "--provider", "aws", "--region", "eu-west-1"]).await;
    assert_eq!(out.status.code(), Some(4), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("ALREADY_EXISTS"), "{}", text(&out.stderr));

    // A bad token: exit 1 and a clear message.
    let out = polaris(&h, "pol_not-a-token", &["clusters", "list"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("UNAUTHENTICATED"), "{}", text(&out.stderr));

    // Login stores the token (0600); later commands use it; scale follows its operation to the end.
    let home = std::env::temp_dir().join(format!("polaris-cli-home-{name}"));
    let out = polaris_in(&h, Some(&token), home.clone(), &["login"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stored = home.join(".config/polaris/token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&stored).expect("token file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let id = items
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["name"] == name.as_str())
        .and_then(|c| c["id"].as_str())
        .expect("id")
        .to_owned();
    let out = polaris_in(&h, None, home.clone(), &["clusters", "scale", &id, "--brokers", "4", "--wait"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("rebalance-add-brokers"), "{}", text(&out.stdout));
    let out = polaris_in(&h, None, home, &["clusters", "history", &id]).await;
    assert!(text(&out.stdout).contains("RebalanceCompleted"), "{}", text(&out.stdout));

    // Users: the password is printed once with a warning; --output json carries it that one time.
    let acl = "topic:orders.*:Write,Describe";
    let out = polaris(
        &h,
        &token,
        &["users", "create", &id, "orders-app", "--acl", acl, "--acl", "group:orders-app:Read", "--wait"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("shown this once"), "the warning: {}", text(&out.stderr));
    let password = text(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("password").map(|p| p.trim().to_owned()))
        .expect("the password line");
    assert!(password.len() >= 32, "{}", text(&out.stdout));
    let out = polaris(&h, &token, &["users", "list", &id]).await;
    let table = text(&out.stdout);
    assert!(
        table.contains("orders-app") && table.contains("topic:orders.*:Write,Describe") && !table.contains(&password),
        "{table}"
    );
    let out = polaris(&h, &token, &["users", "rotate", &id, "orders-app", "--output", "json", "--wait"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(
        (rotated["credentials"]["generation"].as_u64(), rotated["operation"]["state"].as_str()),
        (Some(2), Some("succeeded")),
        "{rotated}"
    );
    assert_ne!(rotated["credentials"]["password"].as_str(), Some(password.as_str()));
    // A rule the resource type does not have: exit 1 and the field.
    let out = polaris(&h, &token, &["users", "create", &id, "bad", "--acl", "group:g:Write"]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("acls[0].operations[0]"), "{}", text(&out.stderr));
    let out = polaris(&h, &token, &["users", "delete", &id, "orders-app", "--wait"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));

    // Usage errors exit 2.
    let out = polaris(&h, &token, &["clusters", "create"]).await;
    assert_eq!(out.status.code(), Some(2));
    h.stop().await;
}

/// Runs `polaris` with standard input.
async fn polaris_stdin(h: &Harness, token: &str, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let (base, token, stdin) = (h.base.clone(), token.to_owned(), stdin.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_polaris"))
            .args(&args)
            .env("POLARIS_API_URL", base)
            .env("POLARIS_TOKEN", token)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run polaris");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("output")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policies_topics_audit_events_and_admin_from_the_command_line() {
    let h = Harness::start(&ALL).await;
    let token = h.admin_token.clone();

    // A bundle from YAML on standard input; the CLI prints the new version.
    let bundle = "brokers: {min: 1, max: 5}\nallowed_kafka_versions: ['4.3.1']\nmin_replication_factor: 2\n\
                  max_partitions_per_topic: 12\n";
    let out = polaris_stdin(&h, &token, &["policies", "set", "--file", "-"], bundle).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("policy bundle version 1"), "{}", text(&out.stdout));
    let out = polaris(&h, &token, &["policies", "get", "--output", "json"]).await;
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(got["rules"]["brokers"]["max"], 5);

    // A request that breaks two rules: exit 3, the code, and each violation on its own line.
    let name = unique_name();
    let out = polaris(
        &h,
        &token,
        &[
            "clusters",
            "create",
            &name,
            "--provider",
            "aws",
            "--region",
            "eu-west-1",
            "--brokers",
            "9",
            "--kafka-version",
            "4.2.0",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("POLICY_VIOLATION"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines.iter().any(|l| l.contains("brokers (brokers")), "{err}");
    assert!(lines.iter().any(|l| l.contains("kafka_version (allowed_kafka_versions")), "{err}");
    // The same verdict from evaluate, without running anything.
    let cmd = format!(
        r#"{{"command":"create_cluster","input":{{"name":"{name}","provider":"aws","region":"eu-west-1","brokers":9}}}}"#
    );
    let out = polaris_stdin(&h, &token, &["policies", "evaluate", "--file", "-"], &cmd).await;
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("brokers must be"), "{}", text(&out.stdout));

    // A dry run shows the plan and records nothing.
    let out =
        polaris(&h, &token, &["clusters", "create", &name, "--provider", "aws", "--region", "eu-west-1", "--dry-run"])
            .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("dry run") && text(&out.stdout).contains("ClusterRequested"));
    let out = polaris(&h, &token, &["clusters", "list", "--output", "json"]).await;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json"), serde_json::json!([]));

    // Follow the feed from now on, in the background, until two events arrived.
    let tail = {
        let (base, token) = (h.base.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_polaris"))
                .args(["events", "tail", "--count", "2", "--output", "json"])
                .env("POLARIS_API_URL", base)
                .env("POLARIS_TOKEN", token)
                .output()
                .expect("tail")
        })
    };
    // The tail asks for the head of the feed first; wait until the API has answered it.
    polaris_test_support::eventually(
        "events tail to have asked for its starting point",
        std::time::Duration::from_secs(30),
        || async {
            let metrics = h.http.get(h.url("/metrics")).send().await.ok()?.text().await.ok()?;
            metrics
                .lines()
                .any(|l| l.starts_with("polaris_api_requests_total{") && l.contains(r#"route="/v1/events""#))
                .then_some(())
        },
    )
    .await;

    let out = polaris(
        &h,
        &token,
        &["clusters", "create", &name, "--provider", "aws", "--region", "eu-west-1", "--output", "json"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let accepted: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = accepted["cluster"]["id"].as_str().expect("id").to_owned();
    let tailed = tokio::time::timeout(std::time::Duration::from_secs(60), tail)
        .await
        .expect("events tail printed two events within 60 s")
        .expect("join");
    assert_eq!(tailed.status.code(), Some(0), "stderr: {}", text(&tailed.stderr));
    let first: serde_json::Value =
        serde_json::from_str(text(&tailed.stdout).lines().next().expect("a line")).expect("one JSON event per line");
    assert_eq!(
        (first["event_type"].as_str(), first["aggregate_id"].as_str()),
        (Some("ClusterRequested"), Some(id.as_str()))
    );
    let out = polaris(&h, &token, &["operations", "watch", accepted["operation"]["id"].as_str().expect("op")]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));

    // Topics: a refusal, then create with --wait, list, get, update, delete.
    let out =
        polaris(&h, &token, &["topics", "create", &id, "orders", "--partitions", "50", "--replication-factor", "1"])
            .await;
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stderr).lines().filter(|l| l.starts_with("  ")).count(), 2, "{}", text(&out.stderr));
    let out = polaris(
        &h,
        &token,
        &["topics", "create", &id, "orders.events", "--partitions", "3", "--replication-factor", "2", "--wait"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("succeeded"), "{}", text(&out.stdout));
    let out = polaris(&h, &token, &["topics", "list", &id]).await;
    let table = text(&out.stdout);
    assert!(table.starts_with("NAME") && table.contains("orders.events") && table.contains("READY"), "{table}");
    let out = polaris(&h, &token, &["topics", "update", &id, "orders.events", "--partitions", "6", "--wait"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let out = polaris(&h, &token, &["topics", "get", &id, "orders.events", "--output", "json"]).await;
    let topic: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(topic[0]["partitions"], 6, "{topic}");
    let out = polaris(&h, &token, &["topics", "update", &id, "orders.events", "--partitions", "2"]).await;
    assert_eq!(out.status.code(), Some(1), "partitions never shrink");
    assert!(text(&out.stderr).contains("PARTITION_DECREASE_UNSUPPORTED"), "{}", text(&out.stderr));
    let out = polaris(&h, &token, &["topics", "delete", &id, "orders.events", "--wait"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));

    // The cluster's events, from the start, filtered to it.
    let out = polaris(&h, &token, &["events", "tail", "--cluster", &id, "--from-start", "--count", "3"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ClusterRequested"), "{}", text(&out.stdout));

    // The audit log shows the refusals, made from the CLI.
    let out = polaris(&h, &token, &["audit", "--outcome", "rejected", "--output", "json"]).await;
    let rejected: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rejected = rejected.as_array().expect("array");
    let codes: Vec<&str> = rejected.iter().map(|a| a["code"].as_str().unwrap_or_default()).collect();
    assert_eq!(codes, ["POLICY_VIOLATION", "POLICY_VIOLATION", "PARTITION_DECREASE_UNSUPPORTED"], "{rejected:?}");
    assert!(rejected.iter().all(|a| a["channel"] == "cli"), "{rejected:?}");

    // --wait gives up at its timeout (exit 1) when the operation takes longer; the operation goes on.
    let slow = unique_name();
    polaris_test_support::harness::prepare_faults(
        "aws-eu-west-1",
        &slow,
        &[("strimzi-sim.polaris.dev/delay-seconds", "30")],
    )
    .await;
    let out = polaris(
        &h,
        &token,
        &["clusters", "create", &slow, "--provider", "aws", "--region", "eu-west-1", "--wait", "--wait-timeout", "2"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("gave up after 2 s"), "{}", text(&out.stderr));

    // Platform checks: refused to an org admin (exit 1, FORBIDDEN), run for a platform admin.
    let out = polaris(&h, &token, &["admin", "verify"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("FORBIDDEN"), "{}", text(&out.stderr));
    let platform = polaris_app::caller::new_token_secret();
    polaris_app::caller::store_token(&h.db.pool, h.org, "platform", polaris_app::caller::Role::Admin, true, &platform)
        .await
        .expect("platform token");
    let out = polaris(&h, &platform, &["admin", "replay"]).await;
    assert_eq!(out.status.code(), Some(0), "stdout: {} stderr: {}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("identical"), "{}", text(&out.stdout));
    let out = polaris(&h, &platform, &["admin", "verify"]).await;
    assert_eq!(out.status.code(), Some(0), "stdout: {} stderr: {}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("events:") && text(&out.stdout).contains("intact"), "{}", text(&out.stdout));
    h.stop().await;
}

#[test]
fn every_command_has_help_with_an_example_and_completions_are_generated() {
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_polaris")).args(args).output().expect("run polaris");
    let commands: &[&[&str]] = &[
        &["login"],
        &["clusters", "list"],
        &["clusters", "get"],
        &["clusters", "create"],
        &["clusters", "scale"],
        &["clusters", "upgrade"],
        &["clusters", "delete"],
        &["clusters", "history"],
        &["topics", "create"],
        &["topics", "list"],
        &["topics", "get"],
        &["topics", "update"],
        &["topics", "delete"],
        &["users", "create"],
        &["users", "list"],
        &["users", "get"],
        &["users", "update"],
        &["users", "rotate"],
        &["users", "delete"],
        &["operations", "get"],
        &["operations", "watch"],
        &["operations", "list"],
        &["audit"],
        &["policies", "get"],
        &["policies", "set"],
        &["policies", "evaluate"],
        &["events", "tail"],
        &["admin", "replay"],
        &["admin", "verify"],
        &["completions"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{c:?}");
        let help = text(&out.stdout);
        assert!(help.contains("Example"), "{c:?} --help has no example:\n{help}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(text(&out.stdout).contains("polaris") && text(&out.stdout).contains("topics"), "{shell}");
    }
    let out = run(&["clusters", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drift_list_and_resolve_from_the_command_line() {
    let h = Harness::start_configured(&ALL, |s| s.drift_interval_secs = 1).await;
    let token = h.admin_token.clone();
    let (id, op) = polaris_test_support::harness::create(&h, &unique_name(), ("aws", "eu-west-1")).await;
    polaris_test_support::harness::wait_operation(&h, &op, "succeeded").await;
    let cluster = polaris_test_support::harness::get(&h, &format!("/v1/clusters/{id}")).await;
    let ns = cluster["namespace"].as_str().expect("namespace").to_owned();
    let pool = "brokers"; // polaris_domain::naming::BROKER_POOL
    let patch = r#"{"spec":{"replicas":5}}"#;
    let (ok, out) = polaris_test_support::harness::kubectl(
        "aws-eu-west-1",
        &["patch", "kafkanodepool", pool, "-n", &ns, "--type", "merge", "-p", patch],
        "",
    );
    assert!(ok, "{out}");
    let drift =
        polaris_test_support::eventually("the drift through the CLI", std::time::Duration::from_secs(30), || async {
            let out = polaris(&h, &token, &["drift", "list", &id, "--open", "--output", "json"]).await;
            let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            list.as_array()?.iter().find(|d| d["field"] == "spec.replicas").cloned()
        })
        .await;
    assert_eq!((drift["expected"].as_i64(), drift["actual"].as_i64()), (Some(3), Some(5)), "{drift}");
    let out = polaris(&h, &token, &["drift", "list", &id]).await;
    let table = text(&out.stdout);
    assert!(table.contains("spec.replicas") && table.contains("open") && table.contains("kubectl-patch"), "{table}");
    // Ignoring needs a reason: the API's 400 is exit 1 with its code.
    let drift_id = drift["id"].as_str().expect("id");
    let out = polaris(&h, &token, &["drift", "resolve", &id, drift_id, "--action", "ignore"]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("VALIDATION_FAILED"), "{}", text(&out.stderr));
    let out = polaris(&h, &token, &["drift", "resolve", &id, drift_id, "--action", "revert", "--wait"]).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("succeeded"), "{}", text(&out.stdout));
    let out = polaris(&h, &token, &["drift", "list", &id, "--output", "json"]).await;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let row = list.as_array().expect("items").iter().find(|d| d["id"] == drift["id"]).cloned().expect("the drift");
    assert_eq!(row["status"], "reverted", "{row}");
    h.stop().await;
}
