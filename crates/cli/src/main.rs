//! `polaris`: the command-line client. Every command is one or more REST calls; the API does all checking.
//! Exit codes: 0 ok, 1 failed, 2 usage, 3 policy violation, 4 conflict.

mod client;
mod print;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use client::{Client, Failure, failure};
use print::{Output, print_json};

const AFTER_HELP: &str = "\
Configuration: --api-url or POLARIS_API_URL; a token from `polaris login` (kept in the user's config directory,
mode 0600) or POLARIS_TOKEN.
Exit codes: 0 ok, 1 failed, 2 usage, 3 policy violation, 4 conflict.";

#[derive(Parser)]
#[command(
    name = "polaris",
    version,
    about = "Polaris: Kafka clusters on Kubernetes, from the command line",
    after_help = AFTER_HELP
)]
struct Cli {
    /// The Polaris API.
    #[arg(long, env = "POLARIS_API_URL", default_value = "http://127.0.0.1:8080", global = true)]
    api_url: String,
    /// An API token (default: the one `polaris login` stored).
    #[arg(long, env = "POLARIS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// `table` for people, `json` for scripts (the API's own JSON).
    #[arg(long, short, value_enum, default_value = "table", global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store a token for later commands (in the user's config directory, readable only by the user).
    #[command(after_help = "Example:\n  polaris login --token \"$(cat .polaris/dev-admin-token)\"")]
    Login,
    /// Kafka clusters.
    #[command(subcommand)]
    Clusters(Clusters),
    /// Kafka topics of a cluster.
    #[command(subcommand)]
    Topics(Topics),
    /// Kafka users of a cluster: SCRAM credentials (shown once), ACL rules and quotas.
    #[command(subcommand)]
    Users(Users),
    /// Drift: where a cluster's objects on its target differ from its history, and their resolution.
    #[command(subcommand)]
    Drift(DriftCmd),
    /// Long-running operations.
    #[command(subcommand)]
    Operations(Operations),
    /// The audit log: every mutating request, accepted or not.
    #[command(after_help = "Examples:\n  polaris audit --outcome rejected\n  polaris audit --resource /v1/clusters \
                            --from 2026-11-26T00:00:00Z --output json")]
    Audit(AuditArgs),
    /// The org's policy bundle.
    #[command(subcommand)]
    Policies(Policies),
    /// The event stream.
    #[command(subcommand)]
    Events(Events),
    /// Platform checks (platform admins).
    #[command(subcommand)]
    Admin(Admin),
    /// Print a shell completion script.
    #[command(after_help = "Examples:\n  polaris completions bash > /etc/bash_completion.d/polaris\n  polaris \
                            completions zsh > \"${fpath[1]}/_polaris\"")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum Clusters {
    /// List clusters (every page).
    #[command(after_help = "Examples:\n  polaris clusters list\n  polaris clusters list --status READY --provider \
                            aws --output json")]
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        region: Option<String>,
    },
    /// Show one cluster, now or as it was at an instant.
    #[command(after_help = "Examples:\n  polaris clusters get 0b6f...\n  polaris clusters get 0b6f... --as-of \
                            2026-11-26T10:00:00Z")]
    Get {
        id: String,
        /// An RFC 3339 instant: the cluster's state then.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Request a cluster.
    #[command(
        after_help = "Examples:\n  polaris clusters create orders --provider aws --region eu-west-1 --brokers 3 \
                            --wait\n  polaris clusters create orders --provider aws --region eu-west-1 --dry-run"
    )]
    Create {
        name: String,
        #[arg(long)]
        provider: String,
        #[arg(long)]
        region: String,
        #[arg(long, default_value_t = 3)]
        brokers: u32,
        #[arg(long)]
        controllers: Option<u32>,
        #[arg(long)]
        storage_gib: Option<u32>,
        #[arg(long)]
        kafka_version: Option<String>,
        /// Kafka config, repeatable: --config min.insync.replicas=2
        #[arg(long, value_name = "KEY=VALUE")]
        config: Vec<String>,
        #[arg(long)]
        deletion_protection: bool,
        #[command(flatten)]
        mode: Mode,
    },
    /// Change the broker count.
    #[command(after_help = "Example:\n  polaris clusters scale 0b6f... --brokers 5 --wait")]
    Scale {
        id: String,
        #[arg(long)]
        brokers: u32,
        #[command(flatten)]
        mode: Mode,
    },
    /// Upgrade Kafka (the brokers roll, then the metadata version).
    #[command(after_help = "Example:\n  polaris clusters upgrade 0b6f... --kafka-version 4.3.1 --wait")]
    Upgrade {
        id: String,
        #[arg(long)]
        kafka_version: String,
        #[command(flatten)]
        mode: Mode,
    },
    /// Delete a cluster (its history stays).
    #[command(after_help = "Example:\n  polaris clusters delete 0b6f... --wait")]
    Delete {
        id: String,
        #[command(flatten)]
        mode: Mode,
    },
    /// The cluster's events, oldest first.
    #[command(after_help = "Example:\n  polaris clusters history 0b6f... --output json")]
    History { id: String },
}

#[derive(Subcommand)]
enum Topics {
    /// Create a topic.
    #[command(after_help = "Example:\n  polaris topics create 0b6f... orders.events --partitions 6 \
                            --replication-factor 3 --config retention.ms=604800000 --wait")]
    Create {
        cluster: String,
        name: String,
        #[arg(long)]
        partitions: u32,
        #[arg(long)]
        replication_factor: u32,
        /// Topic config, repeatable: --config retention.ms=604800000
        #[arg(long, value_name = "KEY=VALUE")]
        config: Vec<String>,
        #[arg(long)]
        deletion_protection: bool,
        #[command(flatten)]
        mode: Mode,
    },
    /// List a cluster's topics.
    #[command(after_help = "Example:\n  polaris topics list 0b6f...")]
    List { cluster: String },
    /// Show one topic, now or as it was at an instant.
    #[command(after_help = "Example:\n  polaris topics get 0b6f... orders.events --as-of 2026-11-26T10:00:00Z")]
    Get {
        cluster: String,
        name: String,
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Change a topic: more partitions, a new config (replaces the whole config), deletion protection.
    #[command(after_help = "Example:\n  polaris topics update 0b6f... orders.events --partitions 12 --wait")]
    Update {
        cluster: String,
        name: String,
        #[arg(long)]
        partitions: Option<u32>,
        /// The topic's whole new config, repeatable: --config retention.ms=86400000
        #[arg(long, value_name = "KEY=VALUE")]
        config: Vec<String>,
        #[arg(long)]
        deletion_protection: Option<bool>,
        #[command(flatten)]
        mode: Mode,
    },
    /// Delete a topic.
    #[command(after_help = "Example:\n  polaris topics delete 0b6f... orders.events --wait")]
    Delete {
        cluster: String,
        name: String,
        #[command(flatten)]
        mode: Mode,
    },
}

#[derive(Subcommand)]
enum DriftCmd {
    /// A cluster's drift: open ones first (what differs, expected and actual, since when, changed by whom).
    #[command(
        after_help = "Examples:\n  polaris drift list 0b6f...\n  polaris drift list 0b6f... --open --output json"
    )]
    List {
        cluster: String,
        /// Only the open ones.
        #[arg(long)]
        open: bool,
    },
    /// Resolve an open drift: revert it (re-apply the recorded state), adopt the live value (judged by the org's
    /// policy; exit 3 when it breaks it), or ignore it with a reason.
    #[command(
        after_help = "Examples:\n  polaris drift resolve 0b6f... 7c1d... --action revert --wait\n  polaris drift resolve \
                      0b6f... 7c1d... --action adopt\n  polaris drift resolve 0b6f... 7c1d... --action ignore --reason \
                      'load test until Friday'"
    )]
    Resolve {
        cluster: String,
        drift: String,
        #[arg(long, value_parser = ["revert", "adopt", "ignore"])]
        action: String,
        /// Why (required to ignore).
        #[arg(long)]
        reason: Option<String>,
        /// Follow the revert or adoption to its end; exit 1 if it fails or stalls.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up following after this many seconds.
        #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
        wait_timeout: u64,
    },
}

#[derive(Subcommand)]
enum Users {
    /// Create a user; its password is printed once (keep it: Polaris cannot show it again).
    #[command(
        after_help = "Examples:\n  polaris users create 0b6f... orders-app --acl 'topic:orders.*:Write,Read,Describe' \
                            --acl group:orders-app:Read --producer-byte-rate 1048576 --wait\n  polaris users create \
                            0b6f... audit-reader --acls-file acls.json --output json\n\nACL syntax: \
                            TYPE:NAME:OPERATIONS[:deny], TYPE one of topic, group, cluster, transactional_id; a NAME \
                            ending in * is a prefix; OPERATIONS as Kafka spells them (Read, Write, Describe, All, ...)."
    )]
    Create {
        cluster: String,
        name: String,
        #[command(flatten)]
        rules: UserRules,
        #[command(flatten)]
        mode: Mode,
    },
    /// List a cluster's users.
    #[command(after_help = "Example:\n  polaris users list 0b6f...")]
    List { cluster: String },
    /// Show one user (never its password), now or as it was at an instant.
    #[command(after_help = "Example:\n  polaris users get 0b6f... orders-app")]
    Get {
        cluster: String,
        name: String,
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Replace a user's ACL rules (given with --acl or --acls-file, or --clear-acls) and/or its quotas.
    #[command(after_help = "Example:\n  polaris users update 0b6f... orders-app --acl 'topic:orders.*:Write' --wait")]
    Update {
        cluster: String,
        name: String,
        #[command(flatten)]
        rules: UserRules,
        /// Remove every ACL rule.
        #[arg(long, conflicts_with_all = ["acl", "acls_file"])]
        clear_acls: bool,
        #[command(flatten)]
        mode: Mode,
    },
    /// New credentials, printed once; the old password stops working when the operation succeeds.
    #[command(after_help = "Example:\n  polaris users rotate 0b6f... orders-app --wait")]
    Rotate {
        cluster: String,
        name: String,
        #[command(flatten)]
        mode: Mode,
    },
    /// Delete a user: its credentials stop working.
    #[command(after_help = "Example:\n  polaris users delete 0b6f... orders-app --wait")]
    Delete {
        cluster: String,
        name: String,
        #[command(flatten)]
        mode: Mode,
    },
}

/// A user's ACL rules and quotas.
#[derive(clap::Args)]
struct UserRules {
    /// An ACL rule, repeatable: TYPE:NAME:OPERATIONS[:deny] (a NAME ending in * is a prefix).
    #[arg(long, value_name = "RULE")]
    acl: Vec<String>,
    /// ACL rules as the API takes them (a JSON array), from a file or - for standard input.
    #[arg(long, value_name = "FILE", conflicts_with = "acl")]
    acls_file: Option<String>,
    /// Bytes per second the user's producers may send to each broker.
    #[arg(long)]
    producer_byte_rate: Option<u64>,
    /// Bytes per second the user's consumers may fetch from each broker.
    #[arg(long)]
    consumer_byte_rate: Option<u64>,
    /// Percent of each broker's request threads' time.
    #[arg(long)]
    request_percentage: Option<u32>,
}

impl UserRules {
    /// The ACL rules given, if any were.
    fn acls(&self) -> Result<Option<Value>, Failure> {
        if let Some(file) = &self.acls_file {
            let rules: Value =
                serde_json::from_str(&read_input(file)?).map_err(|e| failure(2, format!("{file}: not JSON ({e})")))?;
            return Ok(Some(rules));
        }
        if self.acl.is_empty() {
            return Ok(None);
        }
        self.acl.iter().map(|rule| acl_rule(rule)).collect::<Result<Vec<_>, _>>().map(|r| Some(Value::Array(r)))
    }

    /// The quotas given, if any were (together they replace the user's quotas).
    fn quotas(&self) -> Option<Value> {
        let mut q = serde_json::Map::new();
        if let Some(v) = self.producer_byte_rate {
            q.insert("producer_byte_rate".into(), v.into());
        }
        if let Some(v) = self.consumer_byte_rate {
            q.insert("consumer_byte_rate".into(), v.into());
        }
        if let Some(v) = self.request_percentage {
            q.insert("request_percentage".into(), v.into());
        }
        (!q.is_empty()).then_some(Value::Object(q))
    }
}

/// `TYPE:NAME:OPERATIONS[:deny]` as the API's ACL rule.
fn acl_rule(rule: &str) -> Result<Value, Failure> {
    let parts: Vec<&str> = rule.split(':').collect();
    let usage =
        || failure(2, format!("--acl {rule:?}: expected TYPE:NAME:OPERATIONS[:deny], e.g. topic:orders.*:Write"));
    let (type_, name, operations, effect) = match parts.as_slice() {
        [t, n, o] => (*t, *n, *o, "allow"),
        [t, n, o, e @ ("allow" | "deny")] => (*t, *n, *o, *e),
        _ => return Err(usage()),
    };
    let (name, pattern) = match name.strip_suffix('*') {
        Some(prefix) => (prefix, "prefix"),
        None => (name, "literal"),
    };
    let mut resource = json!({"type": type_, "pattern": pattern});
    if !name.is_empty() {
        resource["name"] = name.into();
    }
    let operations: Vec<&str> = operations.split(',').filter(|o| !o.is_empty()).collect();
    if operations.is_empty() {
        return Err(usage());
    }
    Ok(json!({"resource": resource, "operations": operations, "effect": effect}))
}

/// How a mutating command runs.
#[derive(clap::Args)]
struct Mode {
    /// Follow the operation to its end with a progress display; exit 1 if it fails or stalls.
    #[arg(long, conflicts_with = "dry_run")]
    wait: bool,
    /// With --wait: give up following after this many seconds (exit 1; the operation itself goes on).
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    wait_timeout: u64,
    /// Show what would happen (events, Kubernetes changes) and change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand)]
enum Operations {
    /// Show one operation.
    #[command(after_help = "Example:\n  polaris operations get 5e4c...")]
    Get { id: String },
    /// Follow an operation to its end; exit non-zero if it fails or stalls.
    #[command(after_help = "Example:\n  polaris operations watch 5e4c...")]
    Watch {
        id: String,
        /// Give up following after this many seconds (exit 1; the operation itself goes on).
        #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
        timeout: u64,
    },
    /// List operations, newest first.
    #[command(after_help = "Example:\n  polaris operations list --cluster 0b6f...")]
    List {
        #[arg(long)]
        cluster: Option<String>,
    },
}

#[derive(clap::Args)]
struct AuditArgs {
    /// Only this actor (`token:<name>:<id>`).
    #[arg(long)]
    actor: Option<String>,
    /// Only paths containing this (for example a cluster id).
    #[arg(long)]
    resource: Option<String>,
    /// From this instant (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Before this instant (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// accepted, rejected, deduplicated, dry_run or error.
    #[arg(long)]
    outcome: Option<String>,
}

#[derive(Subcommand)]
enum Policies {
    /// Show the current bundle.
    #[command(after_help = "Example:\n  polaris policies get --output json")]
    Get,
    /// Publish a new bundle version from a JSON or YAML file (`-` reads standard input).
    #[command(after_help = "Example:\n  polaris policies set --file policies.yaml")]
    Set {
        #[arg(long)]
        file: String,
    },
    /// Judge a command without running it: exit 0 when allowed, 3 with each violation when not.
    #[command(
        after_help = "Example:\n  echo '{\"command\":\"create_cluster\",\"input\":{\"name\":\"x\",\"provider\":\"aws\",\
                            \"region\":\"eu-west-1\",\"brokers\":9}}' | polaris policies evaluate --file -"
    )]
    Evaluate {
        /// `{command, input}`; command is create_cluster, scale_cluster, upgrade_cluster, create_topic or
        /// update_topic.
        #[arg(long)]
        file: String,
    },
}

#[derive(Subcommand)]
enum Events {
    /// Print events as they are committed (from the API's event feed), until interrupted.
    #[command(after_help = "Examples:\n  polaris events tail\n  polaris events tail --cluster 0b6f... --from-start \
                            --output json")]
    Tail {
        /// Only this cluster's events and its topics' events.
        #[arg(long)]
        cluster: Option<String>,
        /// Start with the oldest event instead of the next one.
        #[arg(long)]
        from_start: bool,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
}

#[derive(Subcommand)]
enum Admin {
    /// Rebuild every read model from the events and compare with the live ones; exit 1 when they differ.
    #[command(after_help = "Example:\n  polaris admin replay")]
    Replay,
    /// Check the hash chains of events and audit entries; exit 1 when anything was altered or removed.
    #[command(after_help = "Example:\n  polaris admin verify --output json")]
    Verify,
}

fn key_values(pairs: &[String]) -> Result<serde_json::Map<String, Value>, Failure> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), Value::String(v.to_owned()))),
            _ => Err(failure(2, format!("--config takes KEY=VALUE, got {p:?}"))),
        })
        .collect()
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut url = reqwest::Url::parse("http://q/").expect("static url");
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    url.query().map(|q| format!("?{q}")).unwrap_or_default()
}

fn path_segment(s: &str) -> String {
    let mut url = reqwest::Url::parse("http://p/").expect("static url");
    url.path_segments_mut().expect("base url").push(s);
    url.path().trim_start_matches('/').to_owned()
}

/// Follows an operation until it ends, printing progress (steps done, current step, elapsed) when it changes.
async fn wait(client: &Client, operation_id: &str, timeout: Duration) -> Result<Value, Failure> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let op = match client.call(Method::GET, &format!("/v1/operations/{operation_id}"), None).await {
            Ok(op) => op,
            // The read model shows a just-accepted operation a moment after the 202.
            Err(f) if f.message.starts_with("NOT_FOUND") && started.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(f) => return Err(f),
        };
        let steps = op["steps"].as_array().cloned().unwrap_or_default();
        let done = steps.iter().filter(|s| s["state"] == "succeeded").count();
        let current = steps.iter().find(|s| s["state"] == "running").and_then(|s| s["name"].as_str()).unwrap_or("-");
        let line =
            format!("{} {}/{} steps done, current: {current}", op["state"].as_str().unwrap_or("?"), done, steps.len());
        if line != last {
            eprintln!("[{:>6.1}s] {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        match op["state"].as_str() {
            Some("succeeded") => return Ok(op),
            Some(state @ ("failed" | "stalled" | "cancelled")) => {
                return Err(failure(1, format!("operation {state}: {}", op["error"].as_str().unwrap_or(""))));
            }
            _ => {}
        }
        if started.elapsed() >= timeout {
            return Err(failure(
                1,
                format!(
                    "gave up after {} s with the operation {}; it goes on: polaris operations watch {operation_id}",
                    timeout.as_secs(),
                    op["state"].as_str().unwrap_or("?")
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs a mutating call: prints the plan of a dry run, follows the operation with `--wait`, or prints what
/// was accepted. Returns the final answer.
async fn mutate(
    client: &Client,
    output: Output,
    method: Method,
    path: &str,
    body: Option<Value>,
    mode: &Mode,
) -> Result<Value, Failure> {
    let path = if mode.dry_run { format!("{path}?dry_run=true") } else { path.to_owned() };
    let answer = client.call(method, &path, body).await?;
    if mode.dry_run {
        print::plan(output, &answer);
        return Ok(answer);
    }
    match answer["operation"]["id"].as_str() {
        Some(op) if mode.wait => {
            let done = wait(client, op, Duration::from_secs(mode.wait_timeout)).await?;
            print::operation(output, &done);
            Ok(done)
        }
        Some(_) => {
            print::accepted(output, &answer);
            Ok(answer)
        }
        None => {
            print_json(&answer);
            Ok(answer)
        }
    }
}

/// Every page of a list endpoint.
async fn all_pages(client: &Client, path: &str) -> Result<Vec<Value>, Failure> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = query(&[("page_size", Some("100")), ("page_token", token.as_deref())]);
        let page_path = format!("{path}{sep}{}", page.trim_start_matches('?'));
        let page = client.call(Method::GET, &page_path, None).await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return Ok(items),
        }
    }
}

fn read_input(file: &str) -> Result<String, Failure> {
    if file == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| failure(1, format!("standard input: {e}")))
    } else {
        std::fs::read_to_string(file).map_err(|e| failure(1, format!("{file}: {e}")))
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let output = cli.output;
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "polaris", &mut std::io::stdout());
        return Ok(());
    }
    if let Command::Login = cli.command {
        let token = cli.token.ok_or_else(|| failure(2, "polaris login needs --token or POLARIS_TOKEN"))?;
        let client = Client::new(cli.api_url, Some(token.clone()));
        client.call(Method::GET, "/v1/clusters?page_size=1", None).await?;
        let path = client::save_token(&token)?;
        println!("logged in; token stored in {}", path.display());
        return Ok(());
    }
    let token = cli.token.or_else(client::stored_token);
    let client = Client::new(cli.api_url, token);
    match cli.command {
        Command::Login | Command::Completions { .. } => {}
        Command::Clusters(c) => clusters(&client, output, c).await?,
        Command::Topics(t) => topics(&client, output, t).await?,
        Command::Users(u) => users(&client, output, u).await?,
        Command::Drift(DriftCmd::List { cluster, open }) => {
            let status = if open { "?status=open" } else { "" };
            let list = client
                .call(Method::GET, &format!("/v1/clusters/{}/drift{status}", path_segment(&cluster)), None)
                .await?;
            print::drift(output, list["items"].as_array().map(Vec::as_slice).unwrap_or_default());
        }
        Command::Drift(DriftCmd::Resolve { cluster, drift, action, reason, wait, wait_timeout }) => {
            let path = format!("/v1/clusters/{}/drift/{}/resolve", path_segment(&cluster), path_segment(&drift));
            let mode = Mode { wait, wait_timeout, dry_run: false };
            mutate(&client, output, Method::POST, &path, Some(json!({"action": action, "reason": reason})), &mode)
                .await?;
        }
        Command::Operations(Operations::Get { id }) => {
            let op = client.call(Method::GET, &format!("/v1/operations/{}", path_segment(&id)), None).await?;
            print::operation(output, &op);
        }
        Command::Operations(Operations::Watch { id, timeout }) => {
            let op = wait(&client, &path_segment(&id), Duration::from_secs(timeout)).await?;
            print::operation(output, &op);
        }
        Command::Operations(Operations::List { cluster }) => {
            let path = format!("/v1/operations{}", query(&[("cluster_id", cluster.as_deref())]));
            print::operations(output, &all_pages(&client, &path).await?);
        }
        Command::Audit(a) => {
            let path = format!(
                "/v1/audit{}",
                query(&[
                    ("actor", a.actor.as_deref()),
                    ("resource", a.resource.as_deref()),
                    ("from", a.from.as_deref()),
                    ("to", a.to.as_deref()),
                    ("outcome", a.outcome.as_deref()),
                ])
            );
            print::audit(output, &all_pages(&client, &path).await?);
        }
        Command::Policies(Policies::Get) => {
            let bundle = client.call(Method::GET, "/v1/policies", None).await?;
            print::policies(output, &bundle);
        }
        Command::Policies(Policies::Set { file }) => {
            let text = read_input(&file)?;
            let yaml =
                file.ends_with(".yaml") || file.ends_with(".yml") || serde_json::from_str::<Value>(&text).is_err();
            let content_type = if yaml { "application/yaml" } else { "application/json" };
            let bundle = client.call_raw(Method::PUT, "/v1/policies", content_type, text).await?;
            print::policies(output, &bundle);
        }
        Command::Policies(Policies::Evaluate { file }) => {
            let body: Value =
                serde_json::from_str(&read_input(&file)?).map_err(|e| failure(2, format!("{file}: not JSON ({e})")))?;
            let verdict = client.call(Method::POST, "/v1/policies/evaluate", Some(body)).await?;
            print::evaluation(output, &verdict);
            if verdict["allowed"] == false {
                return Err(failure(3, "POLICY_VIOLATION: the command would be refused"));
            }
        }
        Command::Events(Events::Tail { cluster, from_start, count }) => {
            tail(&client, output, cluster.as_deref(), from_start, count).await?;
        }
        Command::Admin(Admin::Verify) => {
            let result = client.call(Method::POST, "/v1/admin/verify", None).await?;
            print::verify(output, &result);
            if result["intact"] != true {
                return Err(failure(1, "the hash chains are not intact (see above)"));
            }
        }
        Command::Admin(Admin::Replay) => {
            let result = client.call(Method::POST, "/v1/admin/replay", None).await?;
            print::replay(output, &result);
            if result["identical"] != true {
                return Err(failure(1, "the rebuilt read models differ from the live ones (see above)"));
            }
        }
    }
    Ok(())
}

async fn clusters(client: &Client, output: Output, command: Clusters) -> Result<(), Failure> {
    match command {
        Clusters::List { status, provider, region } => {
            let path = format!(
                "/v1/clusters{}",
                query(&[
                    ("status", status.as_deref()),
                    ("provider", provider.as_deref()),
                    ("region", region.as_deref())
                ])
            );
            print::clusters(output, &all_pages(client, &path).await?);
        }
        Clusters::Get { id, as_of } => {
            let path = format!("/v1/clusters/{}{}", path_segment(&id), query(&[("as_of", as_of.as_deref())]));
            let c = client.call(Method::GET, &path, None).await?;
            print::clusters(output, std::slice::from_ref(&c));
        }
        Clusters::Create {
            name,
            provider,
            region,
            brokers,
            controllers,
            storage_gib,
            kafka_version,
            config,
            deletion_protection,
            mode,
        } => {
            let mut body = json!({"name": name, "provider": provider, "region": region, "brokers": brokers});
            if let Some(v) = kafka_version {
                body["kafka_version"] = v.into();
            }
            if let Some(v) = controllers {
                body["controllers"] = v.into();
            }
            if let Some(v) = storage_gib {
                body["storage_gib"] = v.into();
            }
            if !config.is_empty() {
                body["config"] = Value::Object(key_values(&config)?);
            }
            if deletion_protection {
                body["deletion_protection"] = true.into();
            }
            let done = mutate(client, output, Method::POST, "/v1/clusters", Some(body), &mode).await;
            // After --wait, show people the cluster as it now is (scripts get the operation's JSON alone).
            if mode.wait
                && output == Output::Table
                && let Ok(op) = &done
                && let Some(id) = op["cluster_id"].as_str()
            {
                let c = client.call(Method::GET, &format!("/v1/clusters/{id}"), None).await?;
                print::clusters(output, std::slice::from_ref(&c));
            }
            done?;
        }
        Clusters::Scale { id, brokers, mode } => {
            let path = format!("/v1/clusters/{}/scale", path_segment(&id));
            mutate(client, output, Method::POST, &path, Some(json!({"brokers": brokers})), &mode).await?;
        }
        Clusters::Upgrade { id, kafka_version, mode } => {
            let path = format!("/v1/clusters/{}/upgrade", path_segment(&id));
            mutate(client, output, Method::POST, &path, Some(json!({"kafka_version": kafka_version})), &mode).await?;
        }
        Clusters::Delete { id, mode } => {
            let path = format!("/v1/clusters/{}", path_segment(&id));
            mutate(client, output, Method::DELETE, &path, None, &mode).await?;
        }
        Clusters::History { id } => {
            let history =
                client.call(Method::GET, &format!("/v1/clusters/{}/history", path_segment(&id)), None).await?;
            print::events(output, history["items"].as_array().map(Vec::as_slice).unwrap_or_default());
        }
    }
    Ok(())
}

async fn topics(client: &Client, output: Output, command: Topics) -> Result<(), Failure> {
    match command {
        Topics::Create { cluster, name, partitions, replication_factor, config, deletion_protection, mode } => {
            let mut body = json!({"name": name, "partitions": partitions, "replication_factor": replication_factor});
            if !config.is_empty() {
                body["config"] = Value::Object(key_values(&config)?);
            }
            if deletion_protection {
                body["deletion_protection"] = true.into();
            }
            let path = format!("/v1/clusters/{}/topics", path_segment(&cluster));
            mutate(client, output, Method::POST, &path, Some(body), &mode).await?;
        }
        Topics::List { cluster } => {
            let path = format!("/v1/clusters/{}/topics", path_segment(&cluster));
            print::topics(output, &all_pages(client, &path).await?);
        }
        Topics::Get { cluster, name, as_of } => {
            let path = format!(
                "/v1/clusters/{}/topics/{}{}",
                path_segment(&cluster),
                path_segment(&name),
                query(&[("as_of", as_of.as_deref())])
            );
            let t = client.call(Method::GET, &path, None).await?;
            print::topics(output, std::slice::from_ref(&t));
        }
        Topics::Update { cluster, name, partitions, config, deletion_protection, mode } => {
            let mut body = json!({});
            if let Some(p) = partitions {
                body["partitions"] = p.into();
            }
            if !config.is_empty() {
                body["config"] = Value::Object(key_values(&config)?);
            }
            if let Some(d) = deletion_protection {
                body["deletion_protection"] = d.into();
            }
            if body.as_object().is_some_and(serde_json::Map::is_empty) {
                return Err(failure(2, "nothing to change: give --partitions, --config or --deletion-protection"));
            }
            let path = format!("/v1/clusters/{}/topics/{}", path_segment(&cluster), path_segment(&name));
            mutate(client, output, Method::PATCH, &path, Some(body), &mode).await?;
        }
        Topics::Delete { cluster, name, mode } => {
            let path = format!("/v1/clusters/{}/topics/{}", path_segment(&cluster), path_segment(&name));
            mutate(client, output, Method::DELETE, &path, None, &mode).await?;
        }
    }
    Ok(())
}

async fn users(client: &Client, output: Output, command: Users) -> Result<(), Failure> {
    let user_path =
        |cluster: &str, name: &str| format!("/v1/clusters/{}/users/{}", path_segment(cluster), path_segment(name));
    match command {
        Users::Create { cluster, name, rules, mode } => {
            let mut body = json!({"name": name});
            if let Some(acls) = rules.acls()? {
                body["acls"] = acls;
            }
            if let Some(quotas) = rules.quotas() {
                body["quotas"] = quotas;
            }
            let path = format!("/v1/clusters/{}/users", path_segment(&cluster));
            shown_once(client, output, &path, Some(body), &mode).await?;
        }
        Users::List { cluster } => {
            let path = format!("/v1/clusters/{}/users", path_segment(&cluster));
            print::users(output, &all_pages(client, &path).await?);
        }
        Users::Get { cluster, name, as_of } => {
            let path = format!("{}{}", user_path(&cluster, &name), query(&[("as_of", as_of.as_deref())]));
            let user = client.call(Method::GET, &path, None).await?;
            print::users(output, std::slice::from_ref(&user));
        }
        Users::Update { cluster, name, rules, clear_acls, mode } => {
            let mut body = json!({});
            if clear_acls {
                body["acls"] = json!([]);
            } else if let Some(acls) = rules.acls()? {
                body["acls"] = acls;
            }
            if let Some(quotas) = rules.quotas() {
                body["quotas"] = quotas;
            }
            if body.as_object().is_some_and(serde_json::Map::is_empty) {
                return Err(failure(2, "nothing to change: give --acl, --acls-file, --clear-acls or a quota"));
            }
            mutate(client, output, Method::PATCH, &user_path(&cluster, &name), Some(body), &mode).await?;
        }
        Users::Rotate { cluster, name, mode } => {
            let path = format!("{}/rotate", user_path(&cluster, &name));
            shown_once(client, output, &path, None, &mode).await?;
        }
        Users::Delete { cluster, name, mode } => {
            mutate(client, output, Method::DELETE, &user_path(&cluster, &name), None, &mode).await?;
        }
    }
    Ok(())
}

/// A create or rotate, whose answer holds a password this once: it is printed before anything else (with
/// `--output json`, in the one JSON document printed, with the finished operation when following it).
async fn shown_once(
    client: &Client,
    output: Output,
    path: &str,
    body: Option<Value>,
    mode: &Mode,
) -> Result<(), Failure> {
    if mode.dry_run {
        mutate(client, output, Method::POST, path, body, mode).await?;
        return Ok(());
    }
    let mut answer = client.call(Method::POST, path, body).await?;
    if output == Output::Table {
        print::credentials(&answer);
    }
    let operation = answer["operation"]["id"].as_str().map(str::to_owned);
    match (operation, mode.wait) {
        (Some(op), true) => {
            let done = wait(client, &op, Duration::from_secs(mode.wait_timeout)).await;
            match (output, done) {
                (Output::Json, Ok(done)) => {
                    answer["operation"] = done;
                    print_json(&answer);
                }
                (Output::Json, Err(f)) => {
                    // The password must not be lost with the failure: the answer is printed all the same.
                    print_json(&answer);
                    return Err(f);
                }
                (Output::Table, done) => print::operation(output, &done?),
            }
        }
        _ if output == Output::Json => print_json(&answer),
        _ => print::accepted(output, &answer),
    }
    Ok(())
}

/// Polls the API's event feed in commit order and prints each event once.
async fn tail(
    client: &Client,
    output: Output,
    cluster: Option<&str>,
    from_start: bool,
    count: Option<u64>,
) -> Result<(), Failure> {
    let filter = query(&[("cluster_id", cluster)]);
    let base = if filter.is_empty() { "/v1/events?".to_owned() } else { format!("/v1/events{filter}&") };
    let first = if from_start { "start=beginning" } else { "start=end" };
    let mut page = client.call(Method::GET, &format!("{base}{first}&page_size=100"), None).await?;
    let mut printed = 0u64;
    if output == Output::Table {
        print::event_header();
    }
    loop {
        for e in page["items"].as_array().into_iter().flatten() {
            print::event_line(output, e);
            printed += 1;
            if count.is_some_and(|c| printed >= c) {
                return Ok(());
            }
        }
        let token = page["next_page_token"].as_str().unwrap_or("0:0").to_owned();
        if page["items"].as_array().is_none_or(Vec::is_empty) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        page = client.call(Method::GET, &format!("{base}page_size=100&page_token={token}"), None).await?;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
