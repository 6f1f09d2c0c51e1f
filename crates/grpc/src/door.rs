//! What every RPC goes through, once: the caller (authentication and the rate limit, by the application
//! layer), the deadline, and for writes the audit entry (channel `grpc`) and the `idempotency-key`.
//!
//! A write's audit entry names its REST twin (the operation id as command, the REST method and path), so it
//! differs from the same REST request's entry only by channel and request id. A repeated key with the same
//! request answers the first answer again; with another request, `IDEMPOTENCY_KEY_REUSED`.

use std::net::SocketAddr;
use std::time::Duration;

use polaris_app::audit::{self, AuditSlot, IdempotencyClaim, RequestFacts, StoredAnswer};
use polaris_app::{App, AppError, Caller};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::status::status;

/// The REST twin of a write: what its audit entry records.
pub struct Rest {
    /// The REST operation id, for example `clusters_scale`.
    pub command: &'static str,
    pub method: &'static str,
    pub path: String,
}

/// The front door's state: the application layer.
#[derive(Clone)]
pub struct Door {
    pub app: App,
}

fn authorization(metadata: &MetadataMap) -> Option<&str> {
    metadata.get("authorization").and_then(|v| v.to_str().ok())
}

fn address<T>(req: &Request<T>) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or(req.remote_addr().map(|a| a.ip()))
}

/// The client's deadline (`grpc-timeout`: digits and a unit, H M S m u n), if it sent one.
pub fn deadline(metadata: &MetadataMap) -> Option<Duration> {
    let raw = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Runs `work` within the client's deadline: past it, `DEADLINE_EXCEEDED` (a write cut short commits all or
/// nothing: its events and audit entry share one transaction). Work that finishes after the deadline answers
/// `DEADLINE_EXCEEDED` too: a timer only fires once the work yields, so without this check work that never waits
/// long enough would answer a client that has stopped listening (a write may then have committed, as with any
/// gRPC deadline; an Idempotency-Key makes the retry safe).
async fn within<T>(limit: Option<Duration>, work: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    let exceeded = || Status::deadline_exceeded("the client's deadline passed before Polaris answered");
    match limit {
        None => work.await,
        Some(limit) => {
            let started = std::time::Instant::now();
            match tokio::time::timeout(limit, work).await {
                Ok(answer) if started.elapsed() < limit => answer,
                _ => Err(exceeded()),
            }
        }
    }
}

impl Door {
    /// The admitted caller of a request without an audit entry (reads, streams).
    pub async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        self.app.caller(authorization(req.metadata()), address(req), None, None).await.map_err(|e| status(&e))
    }

    /// A read: the caller, then `f`, within the deadline.
    pub async fn read<Req, Out>(
        &self,
        req: Request<Req>,
        f: impl AsyncFnOnce(&App, &Caller, Req) -> Result<Out, AppError>,
    ) -> Result<Response<Out>, Status> {
        let limit = deadline(req.metadata());
        within(limit, async {
            let caller = self.caller(&req).await?;
            f(&self.app, &caller, req.into_inner()).await.map(Response::new).map_err(|e| status(&e))
        })
        .await
    }

    /// A write: audited as its REST twin `rest`, idempotent under `idempotency-key` (unless a dry run), within
    /// the deadline. `f` answers the REST-equivalent status (what the audit entry records) and the response.
    pub async fn write<Req, Out>(
        &self,
        rpc: &'static str,
        req: Request<Req>,
        rest: Rest,
        dry_run: bool,
        f: impl AsyncFnOnce(&App, &Caller, Req) -> Result<(u16, Out), AppError>,
    ) -> Result<Response<Out>, Status>
    where
        Req: Message,
        Out: Message + Default + Clone,
    {
        self.write_shown_once(rpc, req, rest, dry_run, |_| {}, f).await
    }

    /// Like [`Door::write`], for an answer that shows a secret once: the answer kept for a repeat of the
    /// request is the first one after `forget` took the secret out of it.
    pub async fn write_shown_once<Req, Out>(
        &self,
        rpc: &'static str,
        req: Request<Req>,
        rest: Rest,
        dry_run: bool,
        forget: fn(&mut Out),
        f: impl AsyncFnOnce(&App, &Caller, Req) -> Result<(u16, Out), AppError>,
    ) -> Result<Response<Out>, Status>
    where
        Req: Message,
        Out: Message + Default + Clone,
    {
        let limit = deadline(req.metadata());
        within(limit, async move {
            let raw_key = req.metadata().get("idempotency-key").map(|v| v.as_bytes().to_vec());
            let slot = AuditSlot::default();
            slot.update(|d| {
                d.request = Some(RequestFacts {
                    channel: "grpc".to_owned(),
                    request_id: Uuid::new_v4().to_string(),
                    method: rest.method.to_owned(),
                    path: rest.path.clone(),
                    command: rest.command,
                    idempotency_key: raw_key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()),
                })
            });
            // A request without a valid token is not audited (no org), as over REST.
            let caller = self.app.caller(authorization(req.metadata()), address(&req), Some(slot.clone()), None).await;
            let mut caller = match caller {
                Ok(caller) => caller,
                // Admitted, then refused (rate limited): the entry says so, as for any refusal.
                Err(e) if slot.get().caller.is_some() => return Err(self.refused(&slot, e, None).await),
                Err(e) => return Err(status(&e)),
            };
            let org = caller.org_id.as_uuid();
            let key = match audit::idempotency_key(raw_key.as_deref()) {
                Ok(key) => key,
                Err(e) => return Err(self.refused(&slot, e, None).await),
            };
            let claim = key.filter(|_| !dry_run).map(|key| {
                let mut h = Sha256::new();
                h.update(rpc.as_bytes());
                h.update([0]);
                h.update(req.get_ref().encode_to_vec());
                IdempotencyClaim { key, request_hash: hex::encode(h.finalize()) }
            });
            if let Some(claim) = &claim {
                match self.replay::<Out>(org, claim).await {
                    Ok(Some((code, out))) => {
                        audit::finish(&self.app.pool, &slot, code, None, true, Some(&claim.key)).await;
                        return Ok(Response::new(out));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(self.refused(&slot, e, Some(&claim.key)).await),
                }
            }
            caller.idempotency = claim.clone();
            let key_used = claim.as_ref().map(|c| c.key.as_str());
            match f(&self.app, &caller, req.into_inner()).await {
                Ok((code, out)) => {
                    if let Some(claim) = &claim {
                        let mut kept = out.clone();
                        forget(&mut kept);
                        let body = serde_json::json!({ "grpc": hex::encode(kept.encode_to_vec()) });
                        let answer = StoredAnswer { status: code, body: Some(body), location: None };
                        audit::remember_answer(&self.app.pool, org, claim, answer).await;
                    }
                    audit::finish(&self.app.pool, &slot, code, None, false, key_used).await;
                    Ok(Response::new(out))
                }
                Err(e) => {
                    // A concurrent request with the same key may have won the race: answer as it did.
                    if let Some(claim) = &claim
                        && let Ok(Some((code, out))) = self.replay::<Out>(org, claim).await
                    {
                        audit::finish(&self.app.pool, &slot, code, None, true, key_used).await;
                        return Ok(Response::new(out));
                    }
                    Err(self.refused(&slot, e, key_used).await)
                }
            }
        })
        .await
    }

    /// Writes the entry of a refused write and answers its status.
    async fn refused(&self, slot: &AuditSlot, e: AppError, key: Option<&str>) -> Status {
        audit::finish(&self.app.pool, slot, e.status(), Some(e.code()), false, key).await;
        status(&e)
    }

    /// The first answer stored for this key, decoded.
    async fn replay<Out: Message + Default>(
        &self,
        org: Uuid,
        claim: &IdempotencyClaim,
    ) -> Result<Option<(u16, Out)>, AppError> {
        let Some(answer) = audit::stored_answer(&self.app.pool, org, claim).await? else { return Ok(None) };
        let encoded = answer
            .body
            .as_ref()
            .and_then(|b| b.get("grpc"))
            .and_then(|v| v.as_str())
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| AppError::Internal("a stored gRPC answer is unreadable".to_owned()))?;
        let out = Out::decode(encoded.as_slice()).map_err(|e| AppError::Internal(format!("stored answer: {e}")))?;
        Ok(Some((answer.status, out)))
    }
}
