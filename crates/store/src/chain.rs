//! `polaris admin verify`: recomputes the hash chains over the event store and the audit log (migration
//! `..._hash_chain.sql`) and reports every row changed, deleted or inserted around the chain after the fact.
//!
//! The database links rows as they are inserted; this check recomputes each link independently in Rust
//! (sha256 over the previous stored hash and the row's canonical text), so one altered row is reported once and
//! does not hide the rows after it.

use futures::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// One finding of a chain check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainProblem {
    /// The row's content no longer matches the hash it was linked with.
    Altered { chain_seq: i64, row: String },
    /// Rows with these chain numbers are gone.
    Missing { from_seq: i64, to_seq: i64 },
    /// A row that was never linked (inserted with the trigger disabled, or its chain columns cleared).
    Unlinked { row: String },
    /// The chain head records more rows than exist: the newest rows were deleted.
    Truncated { head_length: i64, last_seq: i64 },
    /// The chain head's hash is not the last row's hash.
    HeadMismatch { head_length: i64 },
}

#[derive(Clone, Debug, Serialize)]
pub struct ChainReport {
    pub chain: &'static str,
    pub rows: i64,
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
    /// How a row is named in a report.
    label: &'static str,
}

const CHAINS: [Chain; 2] = [
    Chain {
        name: "events",
        table: "events",
        label: "aggregate_type || '/' || aggregate_id || '#' || sequence || ' ' || event_type",
    },
    Chain { name: "audit", table: "audit_entries", label: "'audit ' || position || ' ' || id" },
];

/// Verifies both chains.
pub async fn verify(pool: &PgPool) -> Result<Vec<ChainReport>, sqlx::Error> {
    let mut reports = Vec::with_capacity(CHAINS.len());
    for chain in &CHAINS {
        reports.push(verify_chain(pool, chain).await?);
    }
    Ok(reports)
}

async fn verify_chain(pool: &PgPool, chain: &Chain) -> Result<ChainReport, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    // One snapshot for the rows and the head, in UTC (the canonical text's time zone).
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL timezone TO 'UTC'").execute(&mut *tx).await?;
    let (head_length, head_hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT length, head FROM chain_heads WHERE chain = $1")
            .bind(chain.name)
            .fetch_one(&mut *tx)
            .await?;

    let mut problems = Vec::new();
    let unlinked: Vec<(String,)> =
        sqlx::query_as(&format!("SELECT {} FROM {} WHERE chain_seq IS NULL", chain.label, chain.table))
            .fetch_all(&mut *tx)
            .await?;
    problems.extend(unlinked.into_iter().map(|(row,)| ChainProblem::Unlinked { row }));

    let sql = format!(
        "SELECT chain_seq, chain_hash, polaris_chain_input(to_jsonb(t)), {} FROM {} t \
         WHERE chain_seq IS NOT NULL ORDER BY chain_seq",
        chain.label, chain.table
    );
    let mut rows = sqlx::query_as::<_, (i64, Option<Vec<u8>>, String, String)>(&sql).fetch(&mut *tx);
    let mut prev = vec![0u8; 32];
    let (mut expected_seq, mut count, mut last_hash) = (1i64, 0i64, vec![0u8; 32]);
    while let Some((seq, stored, input, label)) = rows.try_next().await? {
        count += 1;
        if seq > expected_seq {
            // The first row after a gap was linked to a row that is gone, so its own link cannot be checked.
            problems.push(ChainProblem::Missing { from_seq: expected_seq, to_seq: seq - 1 });
        }
        let stored = stored.unwrap_or_default();
        if seq == expected_seq {
            let mut hasher = Sha256::new();
            hasher.update(&prev);
            hasher.update(input.as_bytes());
            if hasher.finalize().as_slice() != stored.as_slice() {
                problems.push(ChainProblem::Altered { chain_seq: seq, row: label });
            }
        }
        prev = stored.clone();
        last_hash = stored;
        expected_seq = seq + 1;
    }
    drop(rows);
    let last_seq = expected_seq - 1;
    if head_length > last_seq {
        problems.push(ChainProblem::Truncated { head_length, last_seq });
    } else if head_length == last_seq && head_hash != last_hash {
        problems.push(ChainProblem::HeadMismatch { head_length });
    }
    tx.commit().await?;
    Ok(ChainReport {
        chain: chain.name,
        rows: count,
        head: format!("{head_length}:{}", hex::encode(&head_hash)),
        problems,
    })
}
