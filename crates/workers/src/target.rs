//! Reaching a target's Kubernetes API: a kubeconfig file and context, as registered for the target.

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::{Deserialize, Serialize};

/// How to reach a target, carried in workflow inputs so a retried activity reaches the same cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRef {
    pub target_id: uuid::Uuid,
    pub kubeconfig: Option<String>,
    pub kube_context: Option<String>,
}

impl TargetRef {
    pub async fn client(&self) -> anyhow::Result<Client> {
        let config = match &self.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path)?;
                let opts = KubeConfigOptions { context: self.kube_context.clone(), ..Default::default() };
                kube::Config::from_custom_kubeconfig(kc, &opts).await?
            }
            None => kube::Config::infer().await?,
        };
        Ok(Client::try_from(config)?)
    }
}

/// Looks up a target's connection details.
pub async fn load(pool: &sqlx::PgPool, target_id: uuid::Uuid) -> Result<Option<TargetRef>, sqlx::Error> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT kubeconfig, kube_context FROM targets WHERE id = $1")
            .bind(target_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(kubeconfig, kube_context)| TargetRef { target_id, kubeconfig, kube_context }))
}
