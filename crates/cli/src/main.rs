//! `polaris`: the command-line client. Every command is one or more REST calls; the API does all checking.
//! Exit codes: 0 ok, 1 failed, 2 usage, 3 policy violation, 4 conflict.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "polaris", version, about = "Polaris: Kafka clusters on Kubernetes, from the command line")]
struct Cli {
    /// The Polaris API.
    #[arg(long, env = "POLARIS_API_URL", default_value = "http://127.0.0.1:8080", global = true)]
    api_url: String,
    /// An API token.
    #[arg(long, env = "POLARIS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    #[arg(long, short, value_enum, default_value = "table", global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Store a token for later commands (in the user's config directory, readable only by the user).
    ///
    /// Example: polaris login --token "$(cat .polaris/dev-admin-token)"
    Login,
    /// Kafka clusters.
    #[command(subcommand)]
    Clusters(Clusters),
    /// Long-running operations.
    #[command(subcommand)]
    Operations(Operations),
}

#[derive(Subcommand)]
enum Operations {
    /// Show one operation.
    ///
    /// Example: polaris operations get 5e4c...
    Get { id: String },
    /// Follow an operation to its end; exit non-zero if it fails or stalls.
    ///
    /// Example: polaris operations watch 5e4c...
    Watch { id: String },
}

#[derive(Subcommand)]
enum Clusters {
    /// List clusters.
    ///
    /// Example: polaris clusters list --output json
    List,
    /// Show one cluster.
    ///
    /// Example: polaris clusters get 0b6f...
    Get { id: String },
    /// Request a cluster.
    ///
    /// Example: polaris clusters create orders --provider aws --region eu-west-1 --brokers 3 --wait
    Create {
        name: String,
        #[arg(long)]
        provider: String,
        #[arg(long)]
        region: String,
        #[arg(long, default_value_t = 3)]
        brokers: u32,
        #[arg(long)]
        kafka_version: Option<String>,
        /// Follow the operation to its end; exit non-zero if it fails or stalls.
        #[arg(long)]
        wait: bool,
    },
    /// Change the broker count.
    ///
    /// Example: polaris clusters scale 0b6f... --brokers 5 --wait
    Scale {
        id: String,
        #[arg(long)]
        brokers: u32,
        #[arg(long)]
        wait: bool,
    },
    /// Upgrade Kafka (the brokers roll, then the metadata version).
    ///
    /// Example: polaris clusters upgrade 0b6f... --kafka-version 4.3.1 --wait
    Upgrade {
        id: String,
        #[arg(long)]
        kafka_version: String,
        #[arg(long)]
        wait: bool,
    },
    /// Delete a cluster (its history stays).
    ///
    /// Example: polaris clusters delete 0b6f... --wait
    Delete {
        id: String,
        #[arg(long)]
        wait: bool,
    },
    /// The cluster's events, oldest first.
    ///
    /// Example: polaris clusters history 0b6f...
    History { id: String },
}

/// Where `polaris login` keeps the token.
fn token_file() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config")))?;
    Some(dir.join("polaris").join("token"))
}

fn save_token(token: &str) -> Result<std::path::PathBuf, Failure> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let path = token_file().ok_or_else(|| failure(1, "no config directory (set HOME or XDG_CONFIG_HOME)"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| failure(1, format!("{}: {e}", dir.display())))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(&path).map_err(|e| failure(1, format!("{}: {e}", path.display())))?;
    writeln!(f, "{token}").map_err(|e| failure(1, format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// A failed call, with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

fn failure(code: u8, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base.trim_end_matches('/'), path))
            .header("x-polaris-channel", "cli");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| failure(1, format!("cannot reach {}: {e}", self.base)))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        // problem+json: the stable code, the detail, and each violation on its own line.
        let code = body["code"].as_str().unwrap_or("ERROR");
        let mut message = format!("{code}: {}", body["detail"].as_str().unwrap_or(status.as_str()));
        for v in body["violations"].as_array().into_iter().flatten() {
            message.push_str(&format!(
                "\n  {} ({}): {}",
                v["field"].as_str().unwrap_or("?"),
                v["policy"].as_str().unwrap_or("?"),
                v["message"].as_str().unwrap_or("")
            ));
        }
        let exit = match (status.as_u16(), code) {
            (_, "POLICY_VIOLATION") => 3,
            (409, _) => 4,
            _ => 1,
        };
        Err(failure(exit, message))
    }
}

fn print_clusters(output: Output, items: &[Value]) {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&items).unwrap_or_default());
        return;
    }
    println!("{:<36}  {:<20}  {:<20}  {:<12}  {:>7}  {:<7}", "ID", "NAME", "PLACE", "STATUS", "BROKERS", "KAFKA");
    for c in items {
        let place = format!("{}/{}", c["provider"].as_str().unwrap_or(""), c["region"].as_str().unwrap_or(""));
        println!(
            "{:<36}  {:<20}  {:<20}  {:<12}  {:>7}  {:<7}",
            c["id"].as_str().unwrap_or(""),
            c["name"].as_str().unwrap_or(""),
            place,
            c["status"].as_str().unwrap_or(""),
            c["brokers"],
            c["kafka_version"].as_str().unwrap_or("")
        );
    }
}

/// Follows an operation until it ends, printing each step as it changes.
async fn wait(client: &Client, operation_id: &str) -> Result<Value, Failure> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let op = client.call(reqwest::Method::GET, &format!("/v1/operations/{operation_id}"), None).await;
        if let Ok(op) = op {
            let steps = op["steps"].as_array().cloned().unwrap_or_default();
            let done = steps.iter().filter(|s| s["state"] == "succeeded").count();
            let current =
                steps.iter().find(|s| s["state"] == "running").and_then(|s| s["name"].as_str()).unwrap_or("-");
            let line = format!(
                "{} {}/{} steps done, current: {current}",
                op["state"].as_str().unwrap_or("?"),
                done,
                steps.len()
            );
            if line != last {
                eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
                last = line;
            }
            match op["state"].as_str() {
                Some("succeeded") => return Ok(op),
                Some(state @ ("failed" | "stalled" | "cancelled")) => {
                    return Err(failure(1, format!("operation {state}: {}", op["error"].as_str().unwrap_or(""))));
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Login = cli.command {
        let token = cli.token.ok_or_else(|| failure(2, "polaris login needs --token or POLARIS_TOKEN"))?;
        let client = Client { http: reqwest::Client::new(), base: cli.api_url, token: Some(token.clone()) };
        client.call(reqwest::Method::GET, "/v1/clusters?page_size=1", None).await?;
        let path = save_token(&token)?;
        println!("logged in; token stored in {}", path.display());
        return Ok(());
    }
    let token =
        cli.token.or_else(|| token_file().and_then(|p| std::fs::read_to_string(p).ok()).map(|t| t.trim().to_owned()));
    let client = Client { http: reqwest::Client::new(), base: cli.api_url, token };
    let disruptive = |method: reqwest::Method, path: String, body: Option<Value>, follow: bool| {
        let client = &client;
        async move {
            let accepted = client.call(method, &path, body).await?;
            let op = accepted["operation"]["id"].as_str().unwrap_or_default().to_owned();
            let result = if follow { wait(client, &op).await? } else { accepted["operation"].clone() };
            Ok::<Value, Failure>(result)
        }
    };
    match cli.command {
        Command::Login => {}
        Command::Clusters(Clusters::List) => {
            let page = client.call(reqwest::Method::GET, "/v1/clusters?page_size=100", None).await?;
            print_clusters(cli.output, page["items"].as_array().map(Vec::as_slice).unwrap_or_default());
        }
        Command::Clusters(Clusters::Get { id }) => {
            let c = client.call(reqwest::Method::GET, &format!("/v1/clusters/{id}"), None).await?;
            print_clusters(cli.output, std::slice::from_ref(&c));
        }
        Command::Clusters(Clusters::Create { name, provider, region, brokers, kafka_version, wait: follow }) => {
            let mut body = json!({"name": name, "provider": provider, "region": region, "brokers": brokers});
            if let Some(v) = kafka_version {
                body["kafka_version"] = v.into();
            }
            let accepted = client.call(reqwest::Method::POST, "/v1/clusters", Some(body)).await?;
            let id = accepted["cluster"]["id"].as_str().unwrap_or_default().to_owned();
            if follow {
                wait(&client, accepted["operation"]["id"].as_str().unwrap_or_default()).await?;
                let c = client.call(reqwest::Method::GET, &format!("/v1/clusters/{id}"), None).await?;
                print_clusters(cli.output, std::slice::from_ref(&c));
            } else if cli.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&accepted).unwrap_or_default());
            } else {
                println!("requested cluster {id}; operation {}", accepted["operation"]["id"].as_str().unwrap_or(""));
            }
        }
        Command::Clusters(Clusters::Scale { id, brokers, wait }) => {
            let op = disruptive(
                reqwest::Method::POST,
                format!("/v1/clusters/{id}/scale"),
                Some(json!({"brokers": brokers})),
                wait,
            )
            .await?;
            print_operation(cli.output, &op);
        }
        Command::Clusters(Clusters::Upgrade { id, kafka_version, wait }) => {
            let body = json!({"kafka_version": kafka_version});
            let op = disruptive(reqwest::Method::POST, format!("/v1/clusters/{id}/upgrade"), Some(body), wait).await?;
            print_operation(cli.output, &op);
        }
        Command::Clusters(Clusters::Delete { id, wait }) => {
            let op = disruptive(reqwest::Method::DELETE, format!("/v1/clusters/{id}"), None, wait).await?;
            print_operation(cli.output, &op);
        }
        Command::Clusters(Clusters::History { id }) => {
            let history = client.call(reqwest::Method::GET, &format!("/v1/clusters/{id}/history"), None).await?;
            let items = history["items"].as_array().cloned().unwrap_or_default();
            if cli.output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&items).unwrap_or_default());
            } else {
                println!("{:>4}  {:<32}  {:<30}  {:<36}", "SEQ", "OCCURRED", "EVENT", "ACTOR");
                for e in items {
                    println!(
                        "{:>4}  {:<32}  {:<30}  {:<36}",
                        e["sequence"],
                        e["occurred_at"].as_str().unwrap_or(""),
                        e["event_type"].as_str().unwrap_or(""),
                        e["actor"].as_str().unwrap_or("")
                    );
                }
            }
        }
        Command::Operations(Operations::Get { id }) => {
            let op = client.call(reqwest::Method::GET, &format!("/v1/operations/{id}"), None).await?;
            print_operation(cli.output, &op);
        }
        Command::Operations(Operations::Watch { id }) => {
            let op = wait(&client, &id).await?;
            print_operation(cli.output, &op);
        }
    }
    Ok(())
}

fn print_operation(output: Output, op: &Value) {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(op).unwrap_or_default());
        return;
    }
    println!(
        "operation {} ({}) {}",
        op["id"].as_str().unwrap_or(""),
        op["kind"].as_str().unwrap_or(""),
        op["state"].as_str().unwrap_or("")
    );
    for s in op["steps"].as_array().into_iter().flatten() {
        println!(
            "  {:<28} {:<10} {}",
            s["name"].as_str().unwrap_or(""),
            s["state"].as_str().unwrap_or(""),
            s["detail"].as_str().unwrap_or("")
        );
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
