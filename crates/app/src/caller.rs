//! Bearer-token authentication. Tokens are random secrets shown once; only their SHA-256 hash is stored, so a
//! database leak reveals no usable token. A missing, unknown or revoked token is `401`; a role too low is `403`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use polaris_domain::{CommandMetadata, OperationId, OrgId};
use polaris_store::DirectPool;
use polaris_store::db::tenancy::{Bearer, NewToken};
use polaris_store::repository::{AUDIT_ENTRY, IDEMPOTENCY_KEY, REQUEST_HASH};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{AuditDraft, AuditSlot, IdempotencyClaim};
use crate::error::AppError;
use crate::ratelimit::{RateKey, RateLimiter};

/// Roles in increasing power: viewer reads; operator changes clusters and topics; admin manages policies,
/// targets and tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub const fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub token_id: Uuid,
    pub token_name: String,
    pub org_id: OrgId,
    pub role: Role,
    pub platform_admin: bool,
    /// The audit entry this request will write (mutating requests only).
    pub audit: Option<AuditSlot>,
    /// The request's `Idempotency-Key`, recorded with the command's events in their transaction.
    pub idempotency: Option<IdempotencyClaim>,
    /// What the caller acts through, prefixed to its actor (`drift-adopt` when a drift is adopted).
    pub acting_through: Option<&'static str>,
    /// The org's current policy bundle version when the request was authenticated (0: none), read with the token
    /// (no round trip of its own); the bundle itself comes from the cache by this version.
    pub policy_version: i64,
    /// The placement epoch when the request was authenticated, read with the token: placements are cached by it.
    pub placement_epoch: i64,
}

impl Caller {
    /// The actor recorded in events and audit entries: the token, never its secret.
    pub fn actor(&self) -> String {
        match self.acting_through {
            Some(through) => format!("{through}:token:{}:{}", self.token_name, self.token_id),
            None => format!("token:{}:{}", self.token_name, self.token_id),
        }
    }

    /// Metadata for a command this caller starts: a new correlation, and the time now to the microsecond (what
    /// PostgreSQL keeps, so a `202` body and later reads agree to the digit).
    pub fn command_metadata(&self, operation_id: Option<OperationId>, policy_version: Option<i64>) -> CommandMetadata {
        let correlation_id = Uuid::new_v4();
        CommandMetadata {
            org_id: self.org_id,
            actor: self.actor(),
            correlation_id,
            causation_id: correlation_id,
            operation_id,
            occurred_at: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6),
            policy_version,
        }
    }

    /// The metadata map a command is executed with: the metadata, plus what the event repository takes out and
    /// writes in the events' transaction: the idempotency claim and the request's `accepted` audit entry.
    pub fn metadata_map(&self, md: &CommandMetadata) -> HashMap<String, String> {
        let mut map = md.to_map();
        if let Some(claim) = &self.idempotency {
            map.insert(IDEMPOTENCY_KEY.to_owned(), claim.key.clone());
            map.insert(REQUEST_HASH.to_owned(), claim.request_hash.clone());
        }
        if let Some(slot) = &self.audit
            && let Some(record) = slot.get().accepted_record(md.policy_version)
            && let Ok(json) = serde_json::to_string(&record)
        {
            map.insert(AUDIT_ENTRY.to_owned(), json);
            slot.update(|d| d.written_in_transaction = Some(record.id));
        }
        map
    }

    /// Notes something about this request for its audit entry.
    pub fn note(&self, f: impl FnOnce(&mut AuditDraft)) {
        if let Some(slot) = &self.audit {
            slot.update(f);
        }
    }

    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.role >= role { Ok(()) } else { Err(AppError::Forbidden) }
    }
}

pub fn hash_token(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A fresh token secret: `pol_` and 32 random bytes in hex.
pub fn new_token_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("pol_{}", hex::encode(bytes))
}

/// Stores a token (hashed) for an org and returns its id.
pub async fn store_token(
    conn: impl polaris_store::Executor<'_>,
    org_id: OrgId,
    name: &str,
    role: Role,
    platform_admin: bool,
    secret: &str,
) -> Result<Uuid, polaris_store::DbError> {
    let id = Uuid::new_v4();
    let token_hash = hash_token(secret);
    let token =
        NewToken { id, org_id: org_id.as_uuid(), name, role: role.as_str(), platform_admin, token_hash: &token_hash };
    polaris_store::db::tenancy::insert_token(conn, token).await?;
    Ok(id)
}

/// Who bearer tokens belong to, by token hash, as read recently: a command's token lookup was a round trip to
/// PostgreSQL of its own (about a sixth of a command's cost in `polaris-bench limit`). An entry answers for
/// [`BearerCache::TTL`] at most, and only while this process has changed no token, policy bundle, target or
/// grant since it was read ([`bearers_changed`], called after each such commit): here a revocation, a new
/// bundle or a new placement applies to the next request; in another process (another API replica) within the
/// TTL. Unknown and revoked tokens are never kept.
#[derive(Default)]
pub struct BearerCache {
    entries: Mutex<HashMap<Vec<u8>, CachedBearer>>,
}

struct CachedBearer {
    bearer: Bearer,
    read_at: Instant,
    generation: u64,
}

/// How many times this process changed what a token lookup answers (see [`BearerCache`]).
static BEARERS_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Forgets every cached bearer of this process: call after committing a change to a token, a policy bundle, a
/// target or a grant.
pub fn bearers_changed() {
    BEARERS_GENERATION.fetch_add(1, Ordering::SeqCst);
}

impl BearerCache {
    /// How long another process' change may go unseen here.
    pub const TTL: Duration = Duration::from_secs(1);
    /// Entries kept before the cache starts again (a bound, not a working-set estimate).
    const MAX: usize = 4096;

    /// The bearer of `hash`: cached, or read through `direct` (a read that overlapped a change is not kept).
    async fn bearer(&self, direct: &DirectPool, hash: &[u8]) -> Result<Option<Bearer>, AppError> {
        let generation = BEARERS_GENERATION.load(Ordering::SeqCst);
        {
            let entries = self.entries.lock().expect("bearer cache");
            if let Some(cached) = entries.get(hash)
                && cached.generation == generation
                && cached.read_at.elapsed() < Self::TTL
            {
                return Ok(Some(cached.bearer.clone()));
            }
        }
        let read_at = Instant::now();
        let bearer = direct.run(async |conn| polaris_store::db::tenancy::bearer(conn, hash).await).await?;
        if let Some(bearer) = &bearer
            && BEARERS_GENERATION.load(Ordering::SeqCst) == generation
        {
            let mut entries = self.entries.lock().expect("bearer cache");
            if entries.len() >= Self::MAX {
                entries.clear();
            }
            entries.insert(hash.to_vec(), CachedBearer { bearer: bearer.clone(), read_at, generation });
        }
        Ok(bearer)
    }
}

/// Finds the caller a bearer token belongs to; `authorization` is the whole header (or gRPC metadata) value,
/// `Bearer <secret>`.
pub async fn authenticate(
    direct: &DirectPool,
    bearers: &BearerCache,
    authorization: Option<&str>,
) -> Result<Caller, AppError> {
    let value = authorization.ok_or(AppError::Unauthenticated)?;
    let secret = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(AppError::Unauthenticated)?;
    let hash = hash_token(secret);
    let bearer = bearers.bearer(direct, &hash).await?;
    let Bearer { id: token_id, name: token_name, org_id, role, platform_admin, policy_version, placement_epoch } =
        bearer.ok_or(AppError::Unauthenticated)?;
    let role = Role::parse(&role).ok_or_else(|| AppError::Internal(format!("token {token_id} has role {role}")))?;
    Ok(Caller {
        token_id,
        token_name,
        org_id: OrgId::from_uuid(org_id),
        role,
        platform_admin,
        audit: None,
        idempotency: None,
        acting_through: None,
        policy_version,
        placement_epoch,
    })
}

impl Caller {
    /// Binds the caller to its request's audit entry and idempotency claim, and counts the request against the
    /// token's rate limit (`429 RATE_LIMITED` past it). Every front door calls this once per request.
    pub fn admit(
        mut self,
        audit: Option<AuditSlot>,
        idempotency: Option<IdempotencyClaim>,
        limiter: &RateLimiter,
    ) -> Result<Caller, AppError> {
        self.audit = audit;
        self.idempotency = idempotency;
        let (id, actor, org) = (self.token_id, self.actor(), self.org_id);
        self.note(|d| d.caller = Some((org.as_uuid(), actor, id)));
        crate::ratelimit::check(limiter, RateKey::Token(self.token_id))?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_secrets_are_random_and_only_hashes_are_compared() {
        let a = new_token_secret();
        let b = new_token_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("pol_") && a.len() == 68);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(hash_token(&a).len(), 32);
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        assert_eq!(Role::parse("operator"), Some(Role::Operator));
        assert_eq!(Role::parse("root"), None);
    }
}
