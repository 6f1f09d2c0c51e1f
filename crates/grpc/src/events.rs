//! `polaris.v1.EventService` over `polaris_app::events`: a page of the org's feed, and `Stream`, the feed as it
//! grows. The stream reads the same feed as REST, whose positions never pass an event that commits late, so a
//! stream resumed from a position misses nothing.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use polaris_app::events::{self, EventQuery, FeedEvent};
use tonic::{Request, Response, Status};

use crate::convert::{self, filter_id, opt_text};
use crate::door::Door;
use crate::pb::{self, event_service_server::EventService};
use crate::status::status;

/// How long a caught-up stream waits before it reads the feed again.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
const PAGE: u32 = 100;

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::FeedEvent, Status>> + Send>>;

fn feed_event(e: FeedEvent, position: String) -> pb::FeedEvent {
    pb::FeedEvent {
        aggregate_type: e.aggregate_type,
        aggregate_id: e.aggregate_id.to_string(),
        event: Some(convert::event(e.event)),
        position,
    }
}

#[tonic::async_trait]
impl EventService for Door {
    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        self.read(req, async |app, caller, r| {
            let q = EventQuery {
                cluster_id: filter_id(r.cluster_id, "cluster_id")?,
                start: opt_text(r.start, "start")?,
                page_size: r.page_size,
                page_token: opt_text(r.page_token, "page_token")?,
            };
            let (items, next_page_token) = events::page(app, caller, q).await?;
            Ok(pb::ListEventsResponse {
                items: items.into_iter().map(|(e, at)| feed_event(e, at)).collect(),
                next_page_token,
            })
        })
        .await
    }

    type StreamStream = EventStream;

    async fn stream(&self, req: Request<pb::StreamEventsRequest>) -> Result<Response<Self::StreamStream>, Status> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let cluster_id = filter_id(r.cluster_id, "cluster_id").map_err(|e| status(&e))?;
        let start = opt_text(r.start, "start").map_err(|e| status(&e))?;
        let position = opt_text(r.position, "position").map_err(|e| status(&e))?;
        // The first page is read before the stream opens, so a bad position or filter is an error status.
        let first = EventQuery { cluster_id, start: start.clone(), page_size: Some(PAGE), page_token: position };
        let mut page = events::page(&self.app, &caller, first).await.map_err(|e| status(&e))?;
        let app = self.app.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(PAGE as usize);
        tokio::spawn(async move {
            loop {
                let (items, token) = page;
                let caught_up = items.len() < PAGE as usize;
                for (item, position) in items {
                    if tx.send(Ok(feed_event(item, position))).await.is_err() {
                        return;
                    }
                }
                if caught_up {
                    tokio::select! {
                        () = tx.closed() => return,
                        () = tokio::time::sleep(POLL_INTERVAL) => {}
                    }
                }
                let next = EventQuery { cluster_id, start: None, page_size: Some(PAGE), page_token: Some(token) };
                page = match events::page(&app, &caller, next).await {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.send(Err(status(&e))).await;
                        return;
                    }
                };
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}
