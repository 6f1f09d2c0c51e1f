//! `polaris.v1.PolicyService` over `polaris_app::policies`.

use polaris_app::AppError;
use polaris_app::clusters::{ScaleCluster, UpgradeCluster};
use polaris_app::policies::{self, EvaluateQuery, EvaluateRequest, PolicyBundleView, UpdateTopicInput};
use tonic::{Request, Response, Status};

use crate::convert::{self, filter_id, text, timestamp};
use crate::door::{Door, Rest};
use crate::pb::{self, policy_service_server::PolicyService};

fn bundle(v: PolicyBundleView) -> pb::PolicyBundle {
    pb::PolicyBundle {
        version: v.version,
        rules_json: v.rules.to_string(),
        created_by: v.created_by,
        created_at: v.created_at.map(timestamp),
    }
}

fn evaluate_input(command: Option<pb::evaluate_policies_request::Command>) -> Result<EvaluateRequest, AppError> {
    use pb::evaluate_policies_request::Command as C;
    Ok(match command {
        None => return Err(AppError::validation("name the command to judge", Some("command"))),
        Some(C::CreateCluster(c)) => EvaluateRequest::CreateCluster(crate::clusters::create_input(c)?),
        Some(C::ScaleCluster(c)) => {
            EvaluateRequest::ScaleCluster(ScaleCluster { brokers: c.brokers, expected_version: c.expected_version })
        }
        Some(C::UpgradeCluster(c)) => EvaluateRequest::UpgradeCluster(UpgradeCluster {
            kafka_version: text(c.kafka_version, "kafka_version")?,
            expected_version: c.expected_version,
        }),
        Some(C::CreateTopic(t)) => EvaluateRequest::CreateTopic(crate::topics::create_input(t)?),
        Some(C::UpdateTopic(t)) => {
            let name = text(t.name.clone(), "name")?;
            let patch = crate::topics::patch_input(t)?;
            EvaluateRequest::UpdateTopic(UpdateTopicInput {
                name,
                partitions: patch.partitions,
                config: patch.config,
                deletion_protection: patch.deletion_protection,
                expected_version: patch.expected_version,
            })
        }
    })
}

#[tonic::async_trait]
impl PolicyService for Door {
    async fn get_policies(&self, req: Request<pb::GetPoliciesRequest>) -> Result<Response<pb::PolicyBundle>, Status> {
        self.read(req, async |app, caller, _| Ok(bundle(policies::get(app, caller).await?))).await
    }

    async fn publish_policies(
        &self,
        req: Request<pb::PublishPoliciesRequest>,
    ) -> Result<Response<pb::PolicyBundle>, Status> {
        let rest = Rest { command: "policies_update", method: "PUT", path: "/v1/policies".into() };
        self.write("/polaris.v1.PolicyService/PublishPolicies", req, rest, false, async |app, caller, r| {
            let value: serde_json::Value = serde_json::from_str(&r.rules_json)
                .map_err(|e| AppError::validation(format!("the rules are not valid JSON: {e}"), Some("rules_json")))?;
            let if_match = r.expected_version.map(|v| v.to_string());
            Ok((200, bundle(policies::publish_document(app, caller, value, if_match.as_deref()).await?)))
        })
        .await
    }

    async fn evaluate_policies(
        &self,
        req: Request<pb::EvaluatePoliciesRequest>,
    ) -> Result<Response<pb::Evaluation>, Status> {
        let rest = Rest { command: "policies_evaluate", method: "POST", path: "/v1/policies/evaluate".into() };
        self.write("/polaris.v1.PolicyService/EvaluatePolicies", req, rest, true, async |app, caller, r| {
            let q =
                EvaluateQuery { cluster_id: filter_id(r.cluster_id, "cluster_id")?, policy_version: r.policy_version };
            let e = policies::evaluate(app, caller, q, evaluate_input(r.command)?).await?;
            let violations = e.violations.into_iter().map(convert::violation).collect();
            Ok((200, pb::Evaluation { policy_version: e.policy_version, allowed: e.allowed, violations }))
        })
        .await
    }
}
