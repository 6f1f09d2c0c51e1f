//! `polaris-server`: one binary, several roles. On one machine all roles share a process; in production each
//! role is its own Deployment.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use polaris_app::caller::{self, Role as TokenRole};
use polaris_domain::policy::{Location, PolicyRules};
use polaris_domain::{OrgId, Provider, Region};
use polaris_server::{Role, Server, Settings};
use tokio::sync::watch;
use uuid::Uuid;

/// mimalloc instead of glibc's malloc: a command allocates and frees many small objects (JSON values, HTTP
/// headers, futures) across two worker threads, and glibc's malloc took 18% of the process' CPU in a REST round
/// (`_int_malloc`, `_int_free`, `malloc_consolidate`, `unlink_chunk`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "polaris-server", version, about = "The Polaris control plane server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server roles.
    Serve {
        #[command(flatten)]
        settings: Box<Settings>,
        /// Roles to run in this process.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "api,relay,projector,worker")]
        roles: Vec<Role>,
    },
    /// Apply the database migrations and exit.
    Migrate {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Create the development org and an admin token (platform admin), and write the token to a file (0600).
    /// Idempotent: an existing token file is kept and its token made valid again.
    BootstrapDev {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long)]
        token_file: PathBuf,
        /// A local target, `provider/region=kubeconfig`, the kubeconfig relative to POLARIS_TARGETS_DIR; repeat for each.
        #[arg(long = "target")]
        targets: Vec<String>,
    },
    /// Print the OpenAPI document (the checked-in `schemas/openapi.json`).
    Openapi,
    /// Operator tools that work on the database directly (the same as `polaris admin` through the API).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Rebuild every read model from the event store into a fresh schema and compare checksums with the live
    /// ones. Resumes an unfinished replay. Exit 0 when identical, 1 when not.
    Replay {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Resume or create this schema (polaris_replay_...); default: resume the newest unfinished one.
        #[arg(long)]
        schema: Option<String>,
        #[arg(long, default_value_t = polaris_projector::replay::DEFAULT_BATCH)]
        batch_size: i64,
        /// Seconds to keep comparing while the live read models catch up.
        #[arg(long, default_value_t = 60)]
        settle_timeout_secs: u64,
        /// Keep the replay schema even when identical.
        #[arg(long)]
        keep: bool,
    },
    /// Recompute the hash chains over the events and the audit log. Exit 0 when intact, 1 when not.
    Verify {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn,sqlx=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve { settings, roles } => serve(*settings, roles).await,
        Command::Migrate { database_url } => {
            let pool = polaris_store::connect(&database_url, 2).await.context("connecting to PostgreSQL")?;
            polaris_store::MIGRATOR.run(&pool).await?;
            Ok(())
        }
        Command::BootstrapDev { database_url, token_file, targets } => {
            bootstrap_dev(&database_url, &token_file, &targets).await
        }
        Command::Openapi => {
            print!("{}", polaris_api::openapi::openapi_document());
            Ok(())
        }
        Command::Admin { command } => admin(command).await,
    }
}

async fn admin(command: AdminCommand) -> anyhow::Result<()> {
    let ok = match command {
        AdminCommand::Replay { database_url, schema, batch_size, settle_timeout_secs, keep } => {
            let pool = polaris_store::connect(&database_url, 4).await.context("connecting to PostgreSQL")?;
            polaris_store::MIGRATOR.run(&pool).await?;
            let options = polaris_projector::replay::ReplayOptions {
                schema,
                batch_size: batch_size.clamp(1, 100_000),
                settle_timeout: std::time::Duration::from_secs(settle_timeout_secs),
                keep,
            };
            let mut last = std::time::Instant::now();
            let report = polaris_projector::replay::replay(&pool, &options, |total, rate| {
                if last.elapsed() >= std::time::Duration::from_secs(1) {
                    eprintln!("replay: {total} events in the replay schema, {rate:.0} events/s");
                    last = std::time::Instant::now();
                }
            })
            .await?;
            eprintln!(
                "replay {}: {} events applied in {:.2} s ({:.0} events/s){}; {}",
                report.schema,
                report.events_applied,
                report.replay_seconds,
                report.events_per_second,
                if report.resumed { ", resumed" } else { "" },
                if report.identical {
                    "identical to the live read models"
                } else {
                    "DIFFERS from the live read models"
                }
            );
            println!("{}", serde_json::to_string_pretty(&report)?);
            report.identical
        }
        AdminCommand::Verify { database_url } => {
            let pool = polaris_store::connect(&database_url, 2).await.context("connecting to PostgreSQL")?;
            let reports = polaris_store::chain::verify(&pool).await?;
            for r in &reports {
                eprintln!(
                    "{}: {} rows, head {}, {}",
                    r.chain,
                    r.rows,
                    r.head,
                    if r.intact() { "intact".to_owned() } else { format!("{} problems", r.problems.len()) }
                );
            }
            println!("{}", serde_json::to_string_pretty(&reports)?);
            reports.iter().all(|r| r.intact())
        }
    };
    if ok { Ok(()) } else { std::process::exit(1) }
}

async fn serve(settings: Settings, roles: Vec<Role>) -> anyhow::Result<()> {
    let server = Server::connect(settings).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks = server.spawn_roles(&roles, None, stop_rx).await?;
    tracing::info!(?roles, "polaris-server running");
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

const DEV_ORG_ID: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_d001);

async fn bootstrap_dev(database_url: &str, token_file: &PathBuf, targets: &[String]) -> anyhow::Result<()> {
    let pool = polaris_store::connect(database_url, 2).await.context("connecting to PostgreSQL")?;
    polaris_store::MIGRATOR.run(&pool).await?;
    polaris_store::db::tenancy::ensure_org(&pool, DEV_ORG_ID, "dev").await?;
    let secret = match std::fs::read_to_string(token_file) {
        Ok(s) if s.trim().starts_with("pol_") => s.trim().to_owned(),
        _ => {
            let secret = caller::new_token_secret();
            write_secret(token_file, &secret)?;
            secret
        }
    };
    caller::store_token(&pool, OrgId::from_uuid(DEV_ORG_ID), "dev-admin", TokenRole::Admin, true, &secret).await?;
    for t in targets {
        let (place, kubeconfig) = t.split_once('=').context("--target is provider/region=kubeconfig")?;
        let (provider, region) = place.split_once('/').context("--target is provider/region=kubeconfig")?;
        let provider = Provider::parse(provider).with_context(|| format!("unknown provider {provider}"))?;
        let region = Region::parse(region).map_err(|e| anyhow::anyhow!("region {region}: {e}"))?;
        let name = format!("{provider}-{region}");
        let credentials =
            polaris_store::db::targets::Credentials { kubeconfig: Some(kubeconfig.to_owned()), ..Default::default() };
        if polaris_store::db::targets::register(&pool, &name, provider, &region, credentials).await?.is_some() {
            println!("registered platform target {name} ({kubeconfig} in the targets directory)");
        }
        let target = polaris_store::db::targets::by_name(&pool, &name)
            .await?
            .with_context(|| format!("target {name} is registered by an org, not the platform"))?;
        polaris_store::db::targets::grant(&mut *pool.acquire().await?, target.id, DEV_ORG_ID, "bootstrap-dev").await?;
    }
    // The development default bundle: clusters only where a local target serves them. Published once.
    let (current, _) = polaris_app::policies::current_bundle(&pool, OrgId::from_uuid(DEV_ORG_ID)).await?;
    if current.version == 0 {
        let mut locations = Vec::new();
        for t in targets {
            if let Some((provider, region)) = t.split_once('=').and_then(|(place, _)| place.split_once('/')) {
                locations.push(Location { provider: provider.to_owned(), region: region.to_owned() });
            }
        }
        let rules = PolicyRules {
            allowed_locations: (!locations.is_empty()).then_some(locations),
            replication_factor_at_most_brokers: true,
            ..Default::default()
        };
        let version = polaris_app::policies::publish(&pool, OrgId::from_uuid(DEV_ORG_ID), &rules, "bootstrap-dev")
            .await
            .map_err(|e| anyhow::anyhow!("publishing the development policy bundle: {e}"))?;
        println!("published the development policy bundle, version {version}");
    }
    println!("dev org {DEV_ORG_ID}; admin token in {}", token_file.display());
    Ok(())
}

fn write_secret(path: &PathBuf, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{secret}")?;
    Ok(())
}
