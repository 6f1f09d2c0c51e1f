//! `polaris.v1.DriftService` over `polaris_app::drift`.

use polaris_app::AppError;
use polaris_app::drift::{self, DriftAction, DriftFilter, DriftView, ListDriftQuery, ResolveDrift, Resolved};
use tonic::{Request, Response, Status};

use crate::convert::{self, opt_text, resource_id, text, timestamp};
use crate::door::{Door, Rest};
use crate::pb::{self, drift_service_server::DriftService};

fn drift(v: DriftView) -> pb::Drift {
    pb::Drift {
        id: v.id.to_string(),
        cluster_id: v.cluster_id.to_string(),
        resource: v.resource,
        field: v.field,
        expected_json: v.expected.map(|e| e.to_string()),
        actual_json: v.actual.map(|a| a.to_string()),
        changed_by: v.changed_by,
        status: v.status,
        unexplained: v.unexplained,
        reverting: v.reverting,
        detected_at: Some(timestamp(v.detected_at)),
        observed_at: Some(timestamp(v.observed_at)),
        resolved_at: v.resolved_at.map(timestamp),
        resolved_by: v.resolved_by,
        reason: v.reason,
        operation_id: v.operation_id.map(|o| o.to_string()),
    }
}

/// The request's action as the REST API spells it: anything else is a 400 naming the field.
pub fn action(raw: &str) -> Result<DriftAction, AppError> {
    serde_json::from_value(serde_json::json!(raw))
        .map_err(|_| AppError::validation("action is revert, adopt or ignore", Some("action")))
}

#[tonic::async_trait]
impl DriftService for Door {
    async fn list_drift(&self, req: Request<pb::ListDriftRequest>) -> Result<Response<pb::ListDriftResponse>, Status> {
        self.read(req, async |app, caller, r| {
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            let status = match r.status.as_str() {
                "" | "all" => None,
                "open" => Some(DriftFilter::Open),
                _ => return Err(AppError::validation("status is open or all", Some("status"))),
            };
            let q = ListDriftQuery { status };
            let list = drift::list(app, caller, cluster, q).await?;
            Ok(pb::ListDriftResponse { items: list.items.into_iter().map(drift).collect(), open: list.open })
        })
        .await
    }

    async fn resolve_drift(
        &self,
        req: Request<pb::ResolveDriftRequest>,
    ) -> Result<Response<pb::ResolveDriftResponse>, Status> {
        let rest = Rest {
            command: "drift_resolve",
            method: "POST",
            path: format!("/v1/clusters/{}/drift/{}/resolve", req.get_ref().cluster_id, req.get_ref().drift_id),
        };
        self.write("/polaris.v1.DriftService/ResolveDrift", req, rest, false, async |app, caller, r| {
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            let drift_id = resource_id(&r.drift_id, "drift")?;
            let body =
                ResolveDrift { action: action(&text(r.action, "action")?)?, reason: opt_text(r.reason, "reason")? };
            let (code, answer) = match drift::resolve(app, caller, cluster, drift_id, body).await? {
                Resolved::Done(a) => (200, a),
                Resolved::Accepted(a) => (202, a),
            };
            Ok((
                code,
                pb::ResolveDriftResponse {
                    drift: Some(drift(answer.drift)),
                    operation: answer.operation.map(convert::operation),
                },
            ))
        })
        .await
    }
}
