//! Temporal workers. The walking skeleton has no workflows yet (provisioning arrives with issue #3); the
//! role exists so deployments and scripts already run it, and it says plainly that it does nothing.

pub mod strimzi;

use tokio::sync::watch;

pub async fn run(mut shutdown: watch::Receiver<bool>) {
    tracing::warn!("worker role: no workflows are registered in this build; requested clusters stay REQUESTED");
    let _ = shutdown.wait_for(|s| *s).await;
}
