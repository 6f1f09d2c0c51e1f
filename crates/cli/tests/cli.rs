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

    // Usage errors exit 2.
    let out = polaris(&h, &token, &["clusters", "create"]).await;
    assert_eq!(out.status.code(), Some(2));
    h.stop().await;
}
