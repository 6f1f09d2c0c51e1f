//! `polaris.v1.OperationService` over `polaris_app::operations`, and `Watch`: the operation now, then every
//! change to it, until it has ended.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use polaris_app::operations::{self, ListOperationsQuery};
use tonic::{Request, Response, Status};

use crate::convert::{self, filter_id, opt_text, resource_id};
use crate::door::Door;
use crate::pb::{self, operation_service_server::OperationService};
use crate::status::status;

/// How often a watch looks at its operation again.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

type OperationStream = Pin<Box<dyn Stream<Item = Result<pb::Operation, Status>> + Send>>;

#[tonic::async_trait]
impl OperationService for Door {
    async fn get_operation(&self, req: Request<pb::GetOperationRequest>) -> Result<Response<pb::Operation>, Status> {
        self.read(req, async |app, caller, r| {
            Ok(convert::operation(operations::get(app, caller, resource_id(&r.id, "operation")?).await?))
        })
        .await
    }

    async fn list_operations(
        &self,
        req: Request<pb::ListOperationsRequest>,
    ) -> Result<Response<pb::ListOperationsResponse>, Status> {
        self.read(req, async |app, caller, r| {
            let q = ListOperationsQuery {
                cluster_id: filter_id(r.cluster_id, "cluster_id")?,
                page_size: r.page_size,
                page_token: opt_text(r.page_token, "page_token")?,
            };
            let page = operations::list(app, caller, q).await?;
            Ok(pb::ListOperationsResponse {
                items: page.items.into_iter().map(convert::operation).collect(),
                next_page_token: page.next_page_token,
            })
        })
        .await
    }

    type WatchStream = OperationStream;

    async fn watch(&self, req: Request<pb::WatchOperationRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let caller = self.caller(&req).await?;
        let id = resource_id(&req.get_ref().id, "operation").map_err(|e| status(&e))?;
        // The first answer is the operation now: an unknown or another org's id is NOT_FOUND before any stream.
        let first = operations::get(&self.app, &caller, id).await.map_err(|e| status(&e))?;
        let app = self.app.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut last = first;
            if tx.send(Ok(convert::operation(last.clone()))).await.is_err() {
                return;
            }
            while !operations::finished(&last.state) {
                tokio::select! {
                    () = tx.closed() => return,
                    () = tokio::time::sleep(WATCH_INTERVAL) => {}
                }
                let now = match operations::get(&app, &caller, id).await {
                    Ok(now) => now,
                    Err(e) => {
                        let _ = tx.send(Err(status(&e))).await;
                        return;
                    }
                };
                let changed = now.state != last.state
                    || now.steps.len() != last.steps.len()
                    || now.steps.iter().zip(&last.steps).any(|(a, b)| a.state != b.state || a.detail != b.detail)
                    || now.error != last.error;
                if changed && tx.send(Ok(convert::operation(now.clone()))).await.is_err() {
                    return;
                }
                last = now;
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}
