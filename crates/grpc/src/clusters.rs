//! `polaris.v1.ClusterService` over `polaris_app::clusters`.

use polaris_app::AppError;
use polaris_app::clusters::{
    self, Changed, CreateCluster, ListClustersQuery, PatchCluster, Requested, ScaleCluster, UpgradeCluster,
};
use tonic::{Request, Response, Status};

use crate::convert::{self, config, instant, opt_text, resource_id, text};
use crate::door::{Door, Rest};
use crate::pb::{self, cluster_service_server::ClusterService};

/// A `CreateClusterRequest` as the application layer's input.
pub fn create_input(r: pb::CreateClusterRequest) -> Result<CreateCluster, AppError> {
    Ok(CreateCluster {
        name: text(r.name, "name")?,
        provider: text(r.provider, "provider")?,
        region: text(r.region, "region")?,
        kafka_version: opt_text(r.kafka_version, "kafka_version")?,
        brokers: r.brokers,
        controllers: r.controllers,
        storage_gib: r.storage_gib,
        config: Some(config(r.config, "config")?),
        deletion_protection: r.deletion_protection,
    })
}

/// A change's answer: `202` with the operation, or `200` with a dry run's plan.
pub fn change(answer: Changed) -> (u16, pb::ChangeResponse) {
    use pb::change_response::Result as R;
    match answer {
        Changed::Accepted(a) => {
            (202, pb::ChangeResponse { result: Some(R::Operation(convert::operation(a.operation))) })
        }
        Changed::Planned(p) => (200, pb::ChangeResponse { result: Some(R::Plan(convert::plan(p))) }),
    }
}

fn path(id: &str, suffix: &str) -> String {
    format!("/v1/clusters/{id}{suffix}")
}

#[tonic::async_trait]
impl ClusterService for Door {
    async fn create_cluster(
        &self,
        req: Request<pb::CreateClusterRequest>,
    ) -> Result<Response<pb::CreateClusterResponse>, Status> {
        let dry_run = req.get_ref().dry_run;
        let rest = Rest { command: "clusters_create", method: "POST", path: "/v1/clusters".into() };
        self.write("/polaris.v1.ClusterService/CreateCluster", req, rest, dry_run, async |app, caller, r| {
            use pb::create_cluster_response::Result as R;
            match clusters::request(app, caller, create_input(r)?, dry_run).await? {
                Requested::Accepted(a) => {
                    let accepted = pb::ClusterAccepted {
                        cluster: Some(convert::cluster(a.cluster)),
                        operation: Some(convert::operation(a.operation)),
                    };
                    Ok((202, pb::CreateClusterResponse { result: Some(R::Accepted(accepted)) }))
                }
                Requested::Planned(p) => {
                    Ok((200, pb::CreateClusterResponse { result: Some(R::Plan(convert::plan(p))) }))
                }
            }
        })
        .await
    }

    async fn get_cluster(&self, req: Request<pb::GetClusterRequest>) -> Result<Response<pb::Cluster>, Status> {
        self.read(req, async |app, caller, r| {
            let as_of = r.as_of.as_ref().map(|t| instant(t, "as_of")).transpose()?;
            let view = clusters::get(app, caller, resource_id(&r.id, "cluster")?, as_of).await?;
            Ok(convert::cluster(view))
        })
        .await
    }

    async fn list_clusters(
        &self,
        req: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ListClustersResponse>, Status> {
        self.read(req, async |app, caller, r| {
            let q = ListClustersQuery {
                status: opt_text(r.status, "status")?,
                provider: opt_text(r.provider, "provider")?,
                region: opt_text(r.region, "region")?,
                page_size: r.page_size,
                page_token: opt_text(r.page_token, "page_token")?,
            };
            let page = clusters::list(app, caller, q).await?;
            Ok(pb::ListClustersResponse {
                items: page.items.into_iter().map(convert::cluster).collect(),
                next_page_token: page.next_page_token,
            })
        })
        .await
    }

    async fn scale_cluster(
        &self,
        req: Request<pb::ScaleClusterRequest>,
    ) -> Result<Response<pb::ChangeResponse>, Status> {
        let dry_run = req.get_ref().dry_run;
        let rest = Rest { command: "clusters_scale", method: "POST", path: path(&req.get_ref().id, "/scale") };
        self.write("/polaris.v1.ClusterService/ScaleCluster", req, rest, dry_run, async |app, caller, r| {
            let body = ScaleCluster { brokers: r.brokers, expected_version: r.expected_version };
            Ok(change(clusters::scale(app, caller, resource_id(&r.id, "cluster")?, body, None, dry_run).await?))
        })
        .await
    }

    async fn upgrade_cluster(
        &self,
        req: Request<pb::UpgradeClusterRequest>,
    ) -> Result<Response<pb::ChangeResponse>, Status> {
        let dry_run = req.get_ref().dry_run;
        let rest = Rest { command: "clusters_upgrade", method: "POST", path: path(&req.get_ref().id, "/upgrade") };
        self.write("/polaris.v1.ClusterService/UpgradeCluster", req, rest, dry_run, async |app, caller, r| {
            let id = resource_id(&r.id, "cluster")?;
            let body = UpgradeCluster {
                kafka_version: text(r.kafka_version, "kafka_version")?,
                expected_version: r.expected_version,
            };
            Ok(change(clusters::upgrade(app, caller, id, body, None, dry_run).await?))
        })
        .await
    }

    async fn delete_cluster(
        &self,
        req: Request<pb::DeleteClusterRequest>,
    ) -> Result<Response<pb::ChangeResponse>, Status> {
        let dry_run = req.get_ref().dry_run;
        let rest = Rest { command: "clusters_delete", method: "DELETE", path: path(&req.get_ref().id, "") };
        self.write("/polaris.v1.ClusterService/DeleteCluster", req, rest, dry_run, async |app, caller, r| {
            let id = resource_id(&r.id, "cluster")?;
            Ok(change(clusters::delete(app, caller, id, r.expected_version, None, dry_run).await?))
        })
        .await
    }

    async fn update_cluster(&self, req: Request<pb::UpdateClusterRequest>) -> Result<Response<pb::Cluster>, Status> {
        let rest = Rest { command: "clusters_update", method: "PATCH", path: path(&req.get_ref().id, "") };
        self.write("/polaris.v1.ClusterService/UpdateCluster", req, rest, false, async |app, caller, r| {
            let id = resource_id(&r.id, "cluster")?;
            let body = PatchCluster {
                deletion_protection: r.deletion_protection,
                config: None,
                expected_version: r.expected_version,
            };
            Ok((200, convert::cluster(clusters::patch(app, caller, id, body, None).await?)))
        })
        .await
    }

    async fn get_cluster_history(
        &self,
        req: Request<pb::GetClusterHistoryRequest>,
    ) -> Result<Response<pb::ClusterHistory>, Status> {
        self.read(req, async |app, caller, r| {
            let history = clusters::history(app, caller, resource_id(&r.id, "cluster")?).await?;
            Ok(pb::ClusterHistory { items: history.items.into_iter().map(convert::event).collect() })
        })
        .await
    }

    async fn list_brokers(
        &self,
        req: Request<pb::ListBrokersRequest>,
    ) -> Result<Response<pb::ListBrokersResponse>, Status> {
        self.read(req, async |app, caller, r| {
            let brokers = clusters::brokers(app, caller, resource_id(&r.id, "cluster")?).await?;
            let items =
                brokers.items.into_iter().map(|b| pb::Broker { id: b.id, role: b.role, status: b.status }).collect();
            Ok(pb::ListBrokersResponse { items })
        })
        .await
    }
}
