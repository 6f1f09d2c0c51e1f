//! `polaris.v1.AuditService` over `polaris_app::audit`.

use polaris_app::audit::{self, AuditQuery};
use tonic::{Request, Response, Status};

use crate::convert::{self, instant, opt_text, timestamp};
use crate::door::Door;
use crate::pb::{self, audit_service_server::AuditService};

#[tonic::async_trait]
impl AuditService for Door {
    async fn list_audit(&self, req: Request<pb::ListAuditRequest>) -> Result<Response<pb::ListAuditResponse>, Status> {
        self.read(req, async |app, caller, r| {
            let q = AuditQuery {
                actor: opt_text(r.actor, "actor")?,
                resource: opt_text(r.resource, "resource")?,
                from: r.from.as_ref().map(|t| instant(t, "from")).transpose()?,
                to: r.to.as_ref().map(|t| instant(t, "to")).transpose()?,
                outcome: opt_text(r.outcome, "outcome")?,
                page_size: r.page_size,
                page_token: opt_text(r.page_token, "page_token")?,
            };
            let page = audit::list(app, caller, q).await?;
            let items = page
                .items
                .into_iter()
                .map(|e| pb::AuditEntry {
                    id: e.id.to_string(),
                    org_id: e.org_id.to_string(),
                    actor: e.actor,
                    channel: e.channel,
                    at: Some(timestamp(e.at)),
                    request_id: e.request_id,
                    method: e.method,
                    resource: e.resource,
                    command: e.command,
                    outcome: e.outcome,
                    status: e.status,
                    code: e.code,
                    policy_version: e.policy_version,
                    violations: e.violations.into_iter().map(convert::violation).collect(),
                    idempotency_key: e.idempotency_key,
                })
                .collect();
            Ok(pb::ListAuditResponse { items, next_page_token: page.next_page_token })
        })
        .await
    }
}
