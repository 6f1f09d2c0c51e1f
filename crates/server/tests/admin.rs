//! `polaris admin verify` and `polaris admin replay` on the real services: the hash chain reports a changed,
//! deleted or truncated row; the read models are rebuilt from the event store identical to the live ones, while
//! commands keep arriving, and a killed replay resumes.

use std::time::Duration;

use polaris_domain::TargetId;
use polaris_projector::replay::{ReplayOptions, replay};
use polaris_server::Role;
use polaris_store::chain::{ChainProblem, seal, verify};
use polaris_test_support::eventually;
use polaris_test_support::harness::{Harness, cluster_body, send};
use polaris_test_support::history::{EVENTS_PER_CLUSTER, seed_history};
use sqlx::PgPool;

async fn a_target(pool: &PgPool, h: &Harness) -> TargetId {
    let id: uuid::Uuid = sqlx::query_scalar(
        "SELECT t.id FROM targets t JOIN target_grants g ON g.target_id = t.id WHERE g.org_id = $1 \
         ORDER BY t.name LIMIT 1",
    )
    .bind(h.org.as_uuid())
    .fetch_one(pool)
    .await
    .expect("a registered target");
    TargetId::from_uuid(id)
}

/// Waits until the live projector has applied every seeded cluster (7 events each) and topic.
async fn live_caught_up(pool: &PgPool, clusters: i64) {
    eventually("the live projector applies the seeded history", Duration::from_secs(120), || async {
        let (c, t): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM clusters WHERE version = 7), (SELECT count(*) FROM topics WHERE status = 'READY')",
        )
        .fetch_one(pool)
        .await
        .ok()?;
        (c >= clusters && t >= clusters).then_some(())
    })
    .await;
}

#[tokio::test]
async fn verify_reports_a_changed_a_deleted_and_a_truncated_row() {
    let h = Harness::start(&[Role::Api]).await;
    let pool = h.db.pool.clone();
    for i in 0..3 {
        let (status, _) = send(&h, h.http.post(h.url("/v1/clusters")).json(&cluster_body(&format!("chain-{i}")))).await;
        assert_eq!(status, 202);
    }
    // The audit entry of an accepted request is written as its response goes out: wait for all three.
    eventually("three audit entries", Duration::from_secs(10), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_entries").fetch_one(&pool).await.ok()?;
        (n >= 3).then_some(())
    })
    .await;
    // Nothing is sealed until a sealer runs (the relay role does); then everything committed is.
    let reports = verify(&pool).await.expect("verify runs");
    assert!(reports.iter().all(|r| r.intact() && r.rows == 0 && r.pending > 0), "{reports:?}");
    // Sealing follows commit order below the server-wide xmin horizon, so a transaction open anywhere (another
    // test) can hold it back for a moment: seal until everything is sealed, within a deadline.
    let reports = eventually("everything committed is sealed", Duration::from_secs(30), || async {
        seal(&pool).await.ok()?;
        let reports = verify(&pool).await.ok()?;
        reports.iter().all(|r| r.pending == 0).then_some(reports)
    })
    .await;
    assert!(reports.iter().all(|r| r.intact()), "{reports:?}");
    let events = reports.iter().find(|r| r.chain == "events").expect("events chain");
    assert_eq!(events.rows, 3);
    let audit = reports.iter().find(|r| r.chain == "audit").expect("audit chain");
    assert!(audit.rows >= 3, "{audit:?}");

    // Someone edits an accepted event: more brokers than were ever asked for.
    sqlx::query(
        "UPDATE events SET payload = jsonb_set(payload::jsonb, '{ClusterRequested,brokers}', '9')::json \
         WHERE position = (SELECT position FROM event_seals WHERE chain_seq = 2)",
    )
    .execute(&pool)
    .await
    .expect("tamper");
    // ...and deletes an audit entry.
    sqlx::query("DELETE FROM audit_entries WHERE position = (SELECT position FROM audit_seals WHERE chain_seq = 2)")
        .execute(&pool)
        .await
        .expect("delete audit");
    let reports = verify(&pool).await.expect("verify runs");
    let events = reports.iter().find(|r| r.chain == "events").expect("events chain");
    assert!(
        matches!(events.problems.as_slice(), [ChainProblem::Altered { chain_seq: 2, row }] if row.contains("ClusterRequested")),
        "{events:?}"
    );
    let audit = reports.iter().find(|r| r.chain == "audit").expect("audit chain");
    assert!(matches!(audit.problems.as_slice(), [ChainProblem::Deleted { chain_seq: 2, .. }]), "{audit:?}");

    // Deleting the newest seal too (to hide a deleted event) leaves the chain head longer than the chain; an
    // event slipped in with a back-dated transaction id is older than the head yet never sealed.
    sqlx::query("DELETE FROM event_seals WHERE chain_seq = 3").execute(&pool).await.expect("delete newest seal");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, xid) \
         SELECT aggregate_type, aggregate_id, 99, event_type, event_version, payload, metadata, '1'::xid8 \
         FROM events LIMIT 1",
    )
    .execute(&pool)
    .await
    .expect("back-dated insert");
    let reports = verify(&pool).await.expect("verify runs");
    let events = reports.iter().find(|r| r.chain == "events").expect("events chain");
    assert!(events.problems.contains(&ChainProblem::Truncated { head_length: 3, last_seq: 2 }), "{events:?}");
    assert!(
        events.problems.iter().any(|p| matches!(p, ChainProblem::Unsealed { row } if row.contains("#99"))),
        "{events:?}"
    );

    // The binary says the same and exits 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_polaris-server"))
        .args(["admin", "verify", "--database-url", &h.db.url])
        .output()
        .expect("polaris-server runs");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("altered"));
    h.stop().await;
}

#[tokio::test]
async fn replay_rebuilds_identical_read_models_while_commands_arrive() {
    let h = Harness::start(&[Role::Api, Role::Relay, Role::Projector]).await;
    let pool = h.db.pool.clone();
    let seeded = seed_history(&pool, h.org, a_target(&pool, &h).await, 200).await;
    assert_eq!(seeded, 200 * EVENTS_PER_CLUSTER);
    live_caught_up(&pool, 200).await;

    // Commands keep arriving during the replay.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let load = {
        let (http, url, token) = (h.http.clone(), h.url("/v1/clusters"), h.admin_token.clone());
        tokio::spawn(async move {
            let mut accepted = 0;
            for i in 0.. {
                if *stopped.borrow_and_update() {
                    break;
                }
                let resp = http.post(&url).bearer_auth(&token).json(&cluster_body(&format!("during-{i}"))).send().await;
                if resp.map(|r| r.status() == 202).unwrap_or(false) {
                    accepted += 1;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    _ = stopped.changed() => {}
                }
            }
            accepted
        })
    };
    let options = ReplayOptions { batch_size: 100, settle_timeout: Duration::from_secs(90), ..Default::default() };
    let report = replay(&pool, &options, |_, _| {}).await.expect("replay runs");
    let _ = stop.send(true);
    let accepted = load.await.expect("load task");
    assert!(accepted > 0, "commands arrived during the replay");
    assert!(report.identical, "{report:#?}");
    assert!(!report.resumed);
    assert!(report.events_total >= seeded, "{report:?}");
    assert!(report.schema_dropped);
    let clusters = report.tables.iter().find(|t| t.table == "clusters").expect("clusters checksum");
    assert!(clusters.replayed_rows >= 200, "{clusters:?}");
    h.stop().await;
}

#[tokio::test]
async fn a_killed_replay_resumes_where_it_stopped() {
    let h = Harness::start(&[Role::Relay, Role::Projector]).await;
    let pool = h.db.pool.clone();
    let clusters = 1500;
    let seeded = seed_history(&pool, h.org, a_target(&pool, &h).await, clusters).await;
    live_caught_up(&pool, clusters as i64).await;

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_polaris-server"))
        .args(["admin", "replay", "--batch-size", "20", "--database-url", &h.db.url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("polaris-server admin replay starts");
    let schema: String = eventually("the first replay makes progress", Duration::from_secs(60), || async {
        sqlx::query_scalar("SELECT schema_name FROM replays WHERE events_applied >= 500")
            .fetch_optional(&pool)
            .await
            .ok()?
    })
    .await;
    child.kill().expect("kill the replay");
    let _ = child.wait();
    let (applied, finished): (i64, bool) =
        sqlx::query_as("SELECT events_applied, finished_at IS NOT NULL FROM replays WHERE schema_name = $1")
            .bind(&schema)
            .fetch_one(&pool)
            .await
            .expect("replay row");
    assert!(!finished && (applied as u64) < seeded, "killed part-way: {applied} of {seeded}");

    let report = replay(&pool, &ReplayOptions::default(), |_, _| {}).await.expect("replay resumes");
    assert!(report.resumed, "{report:?}");
    assert_eq!(report.schema, schema);
    assert_eq!(report.events_applied + applied as u64, seeded, "nothing applied twice, nothing skipped");
    assert_eq!(report.events_total, seeded);
    assert!(report.identical, "{report:#?}");
    h.stop().await;
}

#[tokio::test]
async fn replay_reports_a_read_model_that_differs() {
    let h = Harness::start(&[Role::Relay, Role::Projector]).await;
    let pool = h.db.pool.clone();
    seed_history(&pool, h.org, a_target(&pool, &h).await, 5).await;
    live_caught_up(&pool, 5).await;
    // A read model row changed outside the projector.
    sqlx::query("UPDATE clusters SET brokers = 99 WHERE id = (SELECT id FROM clusters ORDER BY id LIMIT 1)")
        .execute(&pool)
        .await
        .expect("corrupt the read model");
    let options = ReplayOptions { settle_timeout: Duration::from_secs(1), ..Default::default() };
    let report = replay(&pool, &options, |_, _| {}).await.expect("replay runs");
    assert!(!report.identical);
    assert_eq!(report.differing_clusters.len(), 1, "{report:?}");
    assert!(!report.schema_dropped, "a differing replay is kept for inspection");
    let clusters = report.tables.iter().find(|t| t.table == "clusters").expect("clusters checksum");
    assert_ne!(clusters.live_md5, clusters.replayed_md5);
    h.stop().await;
}
