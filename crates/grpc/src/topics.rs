//! `polaris.v1.TopicService` over `polaris_app::topics`.

use polaris_app::AppError;
use polaris_app::topics::{self, CreateTopicRequest, ListTopicsQuery, PatchTopic, TopicRequested, TopicUpdated};
use tonic::{Request, Response, Status};

use crate::clusters::change;
use crate::convert::{self, config, instant, opt_text, resource_id, text};
use crate::door::{Door, Rest};
use crate::pb::{self, topic_service_server::TopicService};

pub fn create_input(r: pb::CreateTopicRequest) -> Result<CreateTopicRequest, AppError> {
    Ok(CreateTopicRequest {
        name: text(r.name, "name")?,
        partitions: r.partitions,
        replication_factor: r.replication_factor,
        config: Some(config(r.config, "config")?),
        deletion_protection: r.deletion_protection,
    })
}

pub fn patch_input(r: pb::UpdateTopicRequest) -> Result<PatchTopic, AppError> {
    if !r.replace_config && !r.config.is_empty() {
        return Err(AppError::validation("set replace_config to replace the topic's config", Some("replace_config")));
    }
    let config = if r.replace_config { Some(config(r.config, "config")?) } else { None };
    Ok(PatchTopic {
        partitions: r.partitions,
        config,
        deletion_protection: r.deletion_protection,
        expected_version: r.expected_version,
    })
}

fn path(cluster: &str, name: &str) -> String {
    format!("/v1/clusters/{cluster}/topics/{name}")
}

#[tonic::async_trait]
impl TopicService for Door {
    async fn create_topic(
        &self,
        req: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let dry_run = req.get_ref().dry_run;
        let path = format!("/v1/clusters/{}/topics", req.get_ref().cluster_id);
        let rest = Rest { command: "topics_create", method: "POST", path };
        self.write("/polaris.v1.TopicService/CreateTopic", req, rest, dry_run, async |app, caller, r| {
            use pb::create_topic_response::Result as R;
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            match topics::create(app, caller, cluster, create_input(r)?, dry_run).await? {
                TopicRequested::Accepted(a) => {
                    let accepted = pb::TopicAccepted {
                        topic: Some(convert::topic(a.topic)),
                        operation: Some(convert::operation(a.operation)),
                    };
                    Ok((202, pb::CreateTopicResponse { result: Some(R::Accepted(accepted)) }))
                }
                TopicRequested::Planned(p) => {
                    Ok((200, pb::CreateTopicResponse { result: Some(R::Plan(convert::plan(p))) }))
                }
            }
        })
        .await
    }

    async fn get_topic(&self, req: Request<pb::GetTopicRequest>) -> Result<Response<pb::Topic>, Status> {
        self.read(req, async |app, caller, r| {
            let as_of = r.as_of.as_ref().map(|t| instant(t, "as_of")).transpose()?;
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            Ok(convert::topic(topics::get(app, caller, cluster, &r.name, as_of).await?))
        })
        .await
    }

    async fn list_topics(
        &self,
        req: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        self.read(req, async |app, caller, r| {
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            let q = ListTopicsQuery { page_size: r.page_size, page_token: opt_text(r.page_token, "page_token")? };
            let page = topics::list(app, caller, cluster, q).await?;
            Ok(pb::ListTopicsResponse {
                items: page.items.into_iter().map(convert::topic).collect(),
                next_page_token: page.next_page_token,
            })
        })
        .await
    }

    async fn update_topic(
        &self,
        req: Request<pb::UpdateTopicRequest>,
    ) -> Result<Response<pb::UpdateTopicResponse>, Status> {
        let dry_run = req.get_ref().dry_run;
        let rest = Rest {
            command: "topics_update",
            method: "PATCH",
            path: path(&req.get_ref().cluster_id, &req.get_ref().name),
        };
        self.write("/polaris.v1.TopicService/UpdateTopic", req, rest, dry_run, async |app, caller, r| {
            use pb::update_topic_response::Result as R;
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            let name = text(r.name.clone(), "name")?;
            match topics::update(app, caller, cluster, &name, patch_input(r)?, None, dry_run).await? {
                TopicUpdated::Planned(p) => {
                    Ok((200, pb::UpdateTopicResponse { result: Some(R::Plan(convert::plan(p))) }))
                }
                TopicUpdated::Changed(c) => {
                    let code = if c.operation.is_some() { 202 } else { 200 };
                    let changed = pb::TopicChanged {
                        topic: Some(convert::topic(c.topic)),
                        operation: c.operation.map(convert::operation),
                    };
                    Ok((code, pb::UpdateTopicResponse { result: Some(R::Changed(changed)) }))
                }
            }
        })
        .await
    }

    async fn delete_topic(&self, req: Request<pb::DeleteTopicRequest>) -> Result<Response<pb::ChangeResponse>, Status> {
        let dry_run = req.get_ref().dry_run;
        let rest = Rest {
            command: "topics_delete",
            method: "DELETE",
            path: path(&req.get_ref().cluster_id, &req.get_ref().name),
        };
        self.write("/polaris.v1.TopicService/DeleteTopic", req, rest, dry_run, async |app, caller, r| {
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            let name = text(r.name, "name")?;
            Ok(change(topics::delete(app, caller, cluster, &name, r.expected_version, None, dry_run).await?))
        })
        .await
    }
}
