//! `polaris admin verify` and `polaris admin replay` on the real services: the hash chain reports a changed,
//! deleted or truncated row; the read models are rebuilt from the event store identical to the live ones, while
//! commands keep arriving, and a killed replay resumes.

use std::time::Duration;

use polaris_domain::TargetId;
use polaris_projector::replay::{ReplayOptions, replay};
use polaris_server::Role;
use polaris_store::chain::{ChainProblem, ChainReport, seal, verify};
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

/// Both chains' reports once everything committed is sealed. Sealing follows commit order below the server-wide
/// xmin horizon, so a transaction open anywhere (another test) can hold it back for a moment: it seals until
/// nothing is pending, within a deadline.
async fn sealed_and_verified(pool: &PgPool) -> Vec<ChainReport> {
    eventually("everything committed is sealed", Duration::from_secs(30), || async {
        seal(pool).await.ok()?;
        let reports = verify(pool).await.ok()?;
        reports.iter().all(|r| r.pending == 0).then_some(reports)
    })
    .await
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
    let reports = sealed_and_verified(&pool).await;
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

/// Each seal is checked with the text it was made with (migration `..._chain_text.sql`): the seals made before
/// the change with the row's jsonb text, later ones with the row's json as stored. Rows whose json is not jsonb's
/// text (as a client other than Polaris may write them) give different texts, so this fails if the seal or the
/// check took the wrong one on either side; a change on either side is found, on the new side even one of spacing.
#[tokio::test]
async fn verify_checks_each_seal_with_the_text_it_was_made_with() {
    let h = Harness::start(&[Role::Api]).await;
    let pool = h.db.pool.clone();
    let (status, _) = send(&h, h.http.post(h.url("/v1/clusters")).json(&cluster_body("chain-text"))).await;
    assert_eq!(status, 202);
    eventually("the request's audit entry", Duration::from_secs(10), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_entries").fetch_one(&pool).await.ok()?;
        (n >= 1).then_some(())
    })
    .await;
    let insert = |sequence: i64| {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ('chain-test', 'a', $1, 'Noted', '1', '{\"b\":1,  \"a\":2}', '{}')",
        )
        .bind(sequence)
    };
    insert(1).execute(&pool).await.expect("first event");

    // The seals as the hash-chain migration's polaris_seal made them, over every event so far.
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL timezone TO 'UTC'").execute(&mut *tx).await.expect("utc");
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT xid::text, position, polaris_chain_input(to_jsonb(t)) FROM events t ORDER BY xid, position",
    )
    .fetch_all(&mut *tx)
    .await
    .expect("events");
    let mut head = vec![0u8; 32];
    for (seq, (_, position, text)) in (1i64..).zip(&rows) {
        head = sqlx::query_scalar("SELECT sha256($1 || convert_to($2, 'UTF8'))")
            .bind(&head)
            .bind(text)
            .fetch_one(&mut *tx)
            .await
            .expect("sha256");
        sqlx::query("INSERT INTO event_seals (chain_seq, position, hash) VALUES ($1, $2, $3)")
            .bind(seq)
            .bind(position)
            .bind(&head)
            .execute(&mut *tx)
            .await
            .expect("old seal");
    }
    let (last_xid, last_position, _) = rows.last().expect("the events so far");
    sqlx::query(
        "UPDATE chain_heads SET length = $1, head = $2, last_xid = $3::xid8, last_position = $4, \
         verbatim_from = $1 + 1 WHERE chain = 'events'",
    )
    .bind(rows.len() as i64)
    .bind(&head)
    .bind(last_xid)
    .bind(last_position)
    .execute(&mut *tx)
    .await
    .expect("chain head");
    tx.commit().await.expect("commit");

    insert(2).execute(&pool).await.expect("second event");
    let reports = sealed_and_verified(&pool).await;
    assert!(reports.iter().all(|r| r.intact()), "{reports:?}");
    let events = reports.iter().find(|r| r.chain == "events").expect("events chain");
    assert_eq!(events.rows, rows.len() as i64 + 1);

    // The two texts differ for these rows; they are the same for Polaris' own, and for every audit entry; and the
    // new texts name every column.
    let (differ, polaris_same, audit_same, event_columns, audit_columns): (bool, bool, bool, bool, bool) =
        sqlx::query_as(
            "SELECT (SELECT bool_and(polaris_events_chain_text(t) <> polaris_chain_input(to_jsonb(t))) FROM events t \
                     WHERE aggregate_type = 'chain-test'), \
                    (SELECT bool_and(polaris_events_chain_text(t) = polaris_chain_input(to_jsonb(t))) FROM events t \
                     WHERE aggregate_type <> 'chain-test'), \
                    (SELECT bool_and(polaris_audit_chain_text(t) = polaris_chain_input(to_jsonb(t))) \
                     FROM audit_entries t), \
                    (SELECT bool_and(polaris_events_chain_text(t)::jsonb ?& \
                     ARRAY(SELECT jsonb_object_keys(to_jsonb(t)))) FROM events t), \
                    (SELECT bool_and(polaris_audit_chain_text(t)::jsonb ?& \
                     ARRAY(SELECT jsonb_object_keys(to_jsonb(t)))) FROM audit_entries t)",
        )
        .fetch_one(&pool)
        .await
        .expect("texts");
    assert!(differ && polaris_same && audit_same && event_columns && audit_columns);

    // A changed value before the change, and changed spacing after it, are both found.
    let seq_of = |sequence: i64| {
        sqlx::query_scalar::<_, i64>(
            "SELECT s.chain_seq FROM event_seals s JOIN events e ON e.position = s.position \
             WHERE e.aggregate_type = 'chain-test' AND e.sequence = $1",
        )
        .bind(sequence)
        .fetch_one(&pool)
    };
    let (old, new) = (seq_of(1).await.expect("old seal"), seq_of(2).await.expect("new seal"));
    assert_eq!((old, new), (rows.len() as i64, rows.len() as i64 + 1));
    for (sequence, payload) in [(1i64, r#"{"b":1,  "a":3}"#), (2, r#"{"b":1, "a":2}"#)] {
        sqlx::query("UPDATE events SET payload = $2::json WHERE aggregate_type = 'chain-test' AND sequence = $1")
            .bind(sequence)
            .bind(payload)
            .execute(&pool)
            .await
            .expect("tamper");
    }
    let reports = verify(&pool).await.expect("verify runs");
    let events = reports.iter().find(|r| r.chain == "events").expect("events chain");
    let altered: Vec<i64> = events
        .problems
        .iter()
        .map(|p| match p {
            ChainProblem::Altered { chain_seq, .. } => *chain_seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(altered, [old, new], "{events:?}");
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
