//! Reaching a target's Kubernetes API with the credentials the platform installed for it: a kubeconfig file
//! under the server's targets directory, or (in production) a kubeconfig held in a Kubernetes Secret that the
//! workers' own service account may read. Never a path a tenant chose: a registered path is resolved inside the
//! targets directory and refused if it leaves it. A kubeconfig that skips TLS verification is refused unless the
//! server runs in development mode.

use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::{Deserialize, Serialize};

/// Where the platform keeps targets' credentials, and how strict to be about them.
#[derive(Clone, Debug, Default)]
pub struct TargetsConfig {
    /// The directory registered kubeconfig paths are relative to.
    pub dir: PathBuf,
    /// Accept kubeconfigs with `insecure-skip-tls-verify: true` (development only).
    pub allow_insecure: bool,
}

/// How to reach a target, carried in workflow inputs so a retried activity reaches the same cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRef {
    pub target_id: uuid::Uuid,
    /// The kubeconfig file, resolved inside the targets directory.
    pub kubeconfig: Option<String>,
    pub kube_context: Option<String>,
    /// `namespace/name` of a Secret whose `kubeconfig` key holds the kubeconfig (read with the workers' own
    /// in-cluster credentials).
    #[serde(default)]
    pub kubeconfig_secret: Option<String>,
    #[serde(default)]
    pub allow_insecure: bool,
}

/// Why a target's credentials cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {0}: the kubeconfig path {1:?} is not inside the targets directory {2}")]
    OutsideTargetsDir(uuid::Uuid, String, String),
    #[error(
        "target {0}: the kubeconfig skips TLS verification (insecure-skip-tls-verify); refused outside development mode"
    )]
    Insecure(uuid::Uuid),
}

/// A registered kubeconfig path, as a path inside `dir`: relative paths are joined to it; `..` and absolute
/// paths elsewhere are refused. (Absolute paths inside `dir` are accepted: earlier builds registered those.)
pub fn resolve_in(dir: &Path, registered: &str) -> Option<PathBuf> {
    let path = Path::new(registered);
    let relative = if path.is_absolute() { path.strip_prefix(dir).ok()? } else { path };
    if relative.as_os_str().is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(dir.join(relative))
}

impl TargetRef {
    pub async fn client(&self) -> anyhow::Result<Client> {
        let kubeconfig = match (&self.kubeconfig, &self.kubeconfig_secret) {
            (Some(path), _) => Some(Kubeconfig::read_from(path)?),
            (None, Some(secret)) => Some(read_secret(secret).await?),
            (None, None) => None,
        };
        let config = match kubeconfig {
            Some(kc) => {
                if !self.allow_insecure
                    && kc
                        .clusters
                        .iter()
                        .any(|c| c.cluster.as_ref().and_then(|c| c.insecure_skip_tls_verify) == Some(true))
                {
                    return Err(TargetError::Insecure(self.target_id).into());
                }
                let opts = KubeConfigOptions { context: self.kube_context.clone(), ..Default::default() };
                kube::Config::from_custom_kubeconfig(kc, &opts).await?
            }
            None => kube::Config::infer().await?,
        };
        Ok(Client::try_from(config)?)
    }
}

/// The kubeconfig in the Secret `namespace/name` (key `kubeconfig`), read with the workers' own credentials.
async fn read_secret(reference: &str) -> anyhow::Result<Kubeconfig> {
    let (ns, name) = reference.split_once('/').ok_or_else(|| anyhow::anyhow!("secret reference {reference:?}"))?;
    let own = Client::try_default().await?;
    let secret = kube::Api::<Secret>::namespaced(own, ns).get(name).await?;
    let data = secret
        .data
        .and_then(|d| d.get("kubeconfig").cloned())
        .ok_or_else(|| anyhow::anyhow!("secret {reference} has no key `kubeconfig`"))?;
    Ok(Kubeconfig::from_yaml(std::str::from_utf8(&data.0)?)?)
}

/// Looks up a target's connection details; a kubeconfig path that leaves the targets directory is an error.
pub async fn load(
    pool: &polaris_store::Pool,
    target_id: uuid::Uuid,
    config: &TargetsConfig,
) -> anyhow::Result<Option<TargetRef>> {
    let Some(credentials) = polaris_store::db::targets::credentials(pool, target_id).await? else { return Ok(None) };
    let polaris_store::db::targets::Credentials { kubeconfig, kube_context, secret: kubeconfig_secret } = credentials;
    let kubeconfig = match kubeconfig {
        Some(p) => Some(
            resolve_in(&config.dir, &p)
                .ok_or_else(|| TargetError::OutsideTargetsDir(target_id, p.clone(), config.dir.display().to_string()))?
                .display()
                .to_string(),
        ),
        None => None,
    };
    Ok(Some(TargetRef {
        target_id,
        kubeconfig,
        kube_context,
        kubeconfig_secret,
        allow_insecure: config.allow_insecure,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_paths_stay_inside_the_targets_directory() {
        let dir = Path::new("/srv/polaris/targets");
        assert_eq!(resolve_in(dir, "aws.kubeconfig"), Some(dir.join("aws.kubeconfig")));
        assert_eq!(resolve_in(dir, "eu/aws.kubeconfig"), Some(dir.join("eu/aws.kubeconfig")));
        assert_eq!(resolve_in(dir, "/srv/polaris/targets/aws.kubeconfig"), Some(dir.join("aws.kubeconfig")));
        for bad in ["../../etc/passwd", "/etc/kubernetes/admin.conf", "a/../../b", "", ".", "./x/.."] {
            assert_eq!(resolve_in(dir, bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn a_kubeconfig_that_skips_tls_verification_is_refused_outside_development_mode() {
        let path = std::env::temp_dir().join(format!("insecure-{}.kubeconfig", uuid::Uuid::new_v4().simple()));
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    \
             insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  \
             context: {cluster: c, user: u}\ncurrent-context: c\n",
        )
        .expect("write kubeconfig");
        let target = |allow_insecure| TargetRef {
            target_id: uuid::Uuid::nil(),
            kubeconfig: Some(path.display().to_string()),
            kube_context: None,
            kubeconfig_secret: None,
            allow_insecure,
        };
        let Err(refused) = target(false).client().await else { panic!("an insecure kubeconfig was accepted") };
        assert!(matches!(refused.downcast_ref::<TargetError>(), Some(TargetError::Insecure(_))), "{refused}");
        // Development mode accepts it (building a client does not connect).
        target(true).client().await.expect("accepted in development mode");
        let _ = std::fs::remove_file(&path);
    }
}
