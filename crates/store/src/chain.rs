//! The hash chains over the event store and the audit log (migration `..._hash_chain.sql`): `seal` extends
//! them in commit order (the relay role calls it as it goes), and `verify` (`polaris admin verify`) recomputes
//! every link in Rust (sha256 over the previous stored hash and the row's text, the one its seal was made with:
//! see `Chain::text`) and reports every row changed, deleted or slipped in after the fact. One altered row is
//! reported once and does not hide the rows after it.

use futures::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// One finding of a chain check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainProblem {
    /// The row's content no longer matches the hash it was sealed with.
    Altered { chain_seq: i64, row: String },
    /// The sealed row is gone.
    Deleted { chain_seq: i64, position: i64 },
    /// Seals with these chain numbers are gone.
    Missing { from_seq: i64, to_seq: i64 },
    /// A row older than the sealed head that was never sealed (written with a back-dated transaction id).
    Unsealed { row: String },
    /// The chain head records more seals than exist: the newest seals were deleted.
    Truncated { head_length: i64, last_seq: i64 },
    /// The chain head's hash is not the last seal's hash.
    HeadMismatch { head_length: i64 },
}

#[derive(Clone, Debug, Serialize)]
pub struct ChainReport {
    pub chain: &'static str,
    /// Sealed rows checked.
    pub rows: i64,
    /// Committed rows not sealed yet (the relay role seals as it goes).
    pub pending: i64,
    /// The head to anchor elsewhere: `<length>:<sha256 hex>`.
    pub head: String,
    pub problems: Vec<ChainProblem>,
}

impl ChainReport {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Chain {
    name: &'static str,
    table: &'static str,
    seals: &'static str,
    /// The function that gives a row's text for the seals from `chain_heads.verbatim_from` on (migration
    /// `..._chain_text.sql`); the seals before it hold the hash-chain migration's text,
    /// `polaris_chain_input(to_jsonb(t))`.
    text: &'static str,
    /// How a row is named in a report.
    label: &'static str,
}

const CHAINS: [Chain; 2] = [
    Chain {
        name: "events",
        table: "events",
        seals: "event_seals",
        text: "polaris_events_chain_text",
        label: "t.aggregate_type || '/' || t.aggregate_id || '#' || t.sequence || ' ' || t.event_type",
    },
    Chain {
        name: "audit",
        table: "audit_entries",
        seals: "audit_seals",
        text: "polaris_audit_chain_text",
        label: "'audit ' || t.position || ' ' || t.id",
    },
];

/// Seals every committed row not sealed yet, in commit order (`polaris_seal`: the hash-chain migration, and since
/// `..._seal_in_one_insert.sql` with each call's seals in one insert).
/// Returns how many events and audit entries it sealed.
pub async fn seal(pool: &PgPool) -> Result<(u64, u64), sqlx::Error> {
    const BATCH: i32 = 5000;
    let mut total = (0u64, 0u64);
    loop {
        let (events, audit): (i32, i32) =
            sqlx::query_as("SELECT polaris_seal('events', $1), polaris_seal('audit', $1)")
                .bind(BATCH)
                .fetch_one(pool)
                .await?;
        total.0 += events.max(0) as u64;
        total.1 += audit.max(0) as u64;
        if events < BATCH && audit < BATCH {
            return Ok(total);
        }
    }
}

/// Verifies both chains. Read-only: it seals nothing.
pub async fn verify(pool: &PgPool) -> Result<Vec<ChainReport>, sqlx::Error> {
    let mut reports = Vec::with_capacity(CHAINS.len());
    for chain in &CHAINS {
        reports.push(verify_chain(pool, chain).await?);
    }
    Ok(reports)
}

async fn verify_chain(pool: &PgPool, chain: &Chain) -> Result<ChainReport, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    // One snapshot for the rows, the seals and the head, in UTC (the canonical text's time zone).
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL timezone TO 'UTC'").execute(&mut *tx).await?;
    let (head_length, head_hash, last_xid, last_position, verbatim_from): (i64, Vec<u8>, String, i64, i64) =
        sqlx::query_as(
            "SELECT length, head, last_xid::text, last_position, verbatim_from FROM chain_heads WHERE chain = $1",
        )
        .bind(chain.name)
        .fetch_one(&mut *tx)
        .await?;
    let (table, seals, label, text) = (chain.table, chain.seals, chain.label, chain.text);

    let mut problems = Vec::new();
    let unsealed: Vec<(String,)> = sqlx::query_as(&format!(
        "SELECT {label} FROM {table} t WHERE (t.xid, t.position) <= ($1::xid8, $2) \
         AND NOT EXISTS (SELECT 1 FROM {seals} s WHERE s.position = t.position)"
    ))
    .bind(&last_xid)
    .bind(last_position)
    .fetch_all(&mut *tx)
    .await?;
    problems.extend(unsealed.into_iter().map(|(row,)| ChainProblem::Unsealed { row }));
    let pending: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table} t WHERE (t.xid, t.position) > ($1::xid8, $2)"))
            .bind(&last_xid)
            .bind(last_position)
            .fetch_one(&mut *tx)
            .await?;

    let sql = format!(
        "SELECT s.chain_seq, s.position, s.hash, \
         CASE WHEN s.chain_seq >= $1 THEN {text}(t) ELSE polaris_chain_input(to_jsonb(t)) END, {label} \
         FROM {seals} s LEFT JOIN {table} t ON t.position = s.position ORDER BY s.chain_seq"
    );
    let mut rows = sqlx::query_as::<_, (i64, i64, Vec<u8>, Option<String>, Option<String>)>(&sql)
        .bind(verbatim_from)
        .fetch(&mut *tx);
    let (mut prev, mut expected_seq, mut count) = (vec![0u8; 32], 1i64, 0i64);
    while let Some((seq, position, stored, input, row)) = rows.try_next().await? {
        count += 1;
        if seq > expected_seq {
            // The first seal after a gap was chained to a seal that is gone, so its own link cannot be checked.
            problems.push(ChainProblem::Missing { from_seq: expected_seq, to_seq: seq - 1 });
        }
        match (input, row) {
            (Some(input), Some(row)) if seq == expected_seq => {
                let mut hasher = Sha256::new();
                hasher.update(&prev);
                hasher.update(input.as_bytes());
                if hasher.finalize().as_slice() != stored.as_slice() {
                    problems.push(ChainProblem::Altered { chain_seq: seq, row });
                }
            }
            (Some(_), _) => {}
            (None, _) => problems.push(ChainProblem::Deleted { chain_seq: seq, position }),
        }
        prev = stored;
        expected_seq = seq + 1;
    }
    drop(rows);
    let last_seq = expected_seq - 1;
    if head_length > last_seq {
        problems.push(ChainProblem::Truncated { head_length, last_seq });
    } else if head_length == last_seq && head_length > 0 && head_hash != prev {
        problems.push(ChainProblem::HeadMismatch { head_length });
    }
    tx.commit().await?;
    Ok(ChainReport {
        chain: chain.name,
        rows: count,
        pending,
        head: format!("{head_length}:{}", hex::encode(&head_hash)),
        problems,
    })
}
