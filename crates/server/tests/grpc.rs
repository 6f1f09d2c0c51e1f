//! The gRPC door against a whole Polaris: every method answers random bytes with a status (never a panic or a
//! dropped connection), oversized metadata and an expired deadline get clear statuses, `OperationService.Watch`
//! follows a scale to its end, and `EventService.Stream` resumed from a position misses nothing while clusters
//! are being created.

use std::time::Duration;

use polaris_grpc::pb;
use polaris_grpc::pb::cluster_service_client::ClusterServiceClient;
use polaris_grpc::pb::event_service_client::EventServiceClient;
use polaris_grpc::pb::operation_service_client::OperationServiceClient;
use polaris_server::Role;
use polaris_test_support::harness::{ALL, Harness, create, unique_name, wait_for_status};
use prost::Message;
use rand::RngCore;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// A codec that sends bytes as they are and reads answers as bytes: to send what no generated client would.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Every method of Polaris' services, from the descriptor set reflection serves: `(path, server streaming)`.
fn methods() -> Vec<(String, bool)> {
    let fds = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let mut methods = Vec::new();
    for file in fds.file.iter().filter(|f| f.package() == "polaris.v1") {
        for service in &file.service {
            for m in &service.method {
                methods.push((format!("/polaris.v1.{}/{}", service.name(), m.name()), m.server_streaming()));
            }
        }
    }
    methods
}

async fn channel(h: &Harness) -> Channel {
    tonic::transport::Endpoint::from_shared(h.base.clone()).expect("endpoint").connect().await.expect("gRPC connects")
}

fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
    req
}

/// Sends `bytes` to `path`; answers the status (Ok for an answer, or a stream's first item).
async fn raw_call(channel: &Channel, path: &str, streaming: bool, bytes: Vec<u8>, token: &str) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("the connection stays usable");
    let path: tonic::codegen::http::uri::PathAndQuery = path.parse().expect("path");
    let mut req = authorized(bytes, token);
    req.set_timeout(Duration::from_secs(10));
    let result = if streaming {
        match grpc.server_streaming(req, path, RawCodec).await {
            Ok(resp) => {
                let mut stream = resp.into_inner();
                match tokio::time::timeout(Duration::from_secs(2), stream.message()).await {
                    Ok(Err(status)) => Err(status),
                    // A message, the end, or nothing yet on a live stream: the server answered.
                    _ => Ok(()),
                }
            }
            Err(status) => Err(status),
        }
    } else {
        grpc.unary(req, path, RawCodec).await.map(|_| ())
    };
    result.err().unwrap_or_else(|| Status::ok(""))
}

#[tokio::test]
async fn every_method_answers_random_bytes_with_a_status() {
    let h = Harness::start(&[Role::Api]).await;
    let channel = channel(&h).await;
    let methods = methods();
    for service in polaris_grpc::SERVICES {
        assert!(methods.iter().any(|(m, _)| m.starts_with(&format!("/{service}/"))), "{service}: {methods:?}");
    }
    let mut rng = rand::rng();
    let mut answered = std::collections::BTreeMap::<String, usize>::new();
    for (path, streaming) in &methods {
        for round in 0..20 {
            let len = [0, 1, 7, 64, 1024][round % 5];
            let mut bytes = vec![0u8; len];
            rng.fill_bytes(&mut bytes);
            let status = raw_call(&channel, path, *streaming, bytes.clone(), &h.admin_token).await;
            assert!(
                !matches!(status.code(), Code::Internal | Code::Unknown | Code::Unavailable),
                "{path} answered {status:?} to {bytes:?}"
            );
            *answered.entry(format!("{:?}", status.code())).or_default() += 1;
        }
    }
    // The server is still there, and undecodable bytes were the client's mistake.
    let health = raw_call(&channel, "/polaris.v1.PolicyService/GetPolicies", false, vec![], &h.admin_token).await;
    assert_eq!(health.code(), Code::Ok, "{health:?}");
    assert!(answered.contains_key("InvalidArgument"), "{answered:?}");
    println!("random-bytes answers by code: {answered:?}");
    h.stop().await;
}

#[tokio::test]
async fn oversized_metadata_and_an_expired_deadline_get_clear_statuses() {
    let h = Harness::start(&[Role::Api]).await;
    let mut clusters = ClusterServiceClient::new(channel(&h).await);
    let list = || pb::ListClustersRequest::default();

    // 64 KiB of metadata: refused by the HTTP/2 layer, not by a crash; the connection serves the next call.
    let mut big = authorized(list(), &h.admin_token);
    big.metadata_mut().insert("x-padding", "a".repeat(64 * 1024).parse().expect("metadata"));
    let refused = clusters.list_clusters(big).await.expect_err("oversized metadata is refused");
    assert!(
        matches!(refused.code(), Code::Internal | Code::Unavailable | Code::ResourceExhausted | Code::Cancelled),
        "{refused:?}"
    );
    let mut clusters = ClusterServiceClient::new(channel(&h).await);
    clusters.list_clusters(authorized(list(), &h.admin_token)).await.expect("the server still answers");

    // A deadline already past when the request arrives. Sent over plain HTTP/2 (h2c), because tonic's own client
    // would give up first, without asking the server.
    let h2c = reqwest::Client::builder().http2_prior_knowledge().build().expect("h2c client");
    let mut frame = vec![0u8; 5];
    frame.extend(pb::ListClustersRequest::default().encode_to_vec());
    let length = (frame.len() - 5) as u32;
    frame[1..5].copy_from_slice(&length.to_be_bytes());
    let resp = h2c
        .post(h.url("/polaris.v1.ClusterService/ListClusters"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "1n")
        .bearer_auth(&h.admin_token)
        .body(frame)
        .send()
        .await
        .expect("the server answers");
    let status = resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(status.as_deref(), Some("4"), "DEADLINE_EXCEEDED: {:?}", resp.headers());

    // No token at all.
    let anonymous = clusters.list_clusters(tonic::Request::new(list())).await.expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_follows_a_scale_to_its_end() {
    let h = Harness::start(&ALL).await;
    let (id, _) = create(&h, &unique_name(), ("aws", "eu-west-1")).await;
    wait_for_status(&h, &id, "READY", Duration::from_secs(90)).await;
    let channel = channel(&h).await;
    let mut clusters = ClusterServiceClient::new(channel.clone());
    let scale = pb::ScaleClusterRequest { id: id.clone(), brokers: 4, expected_version: None, dry_run: false };
    let accepted = clusters.scale_cluster(authorized(scale, &h.admin_token)).await.expect("scale accepted");
    let operation = match accepted.into_inner().result {
        Some(pb::change_response::Result::Operation(op)) => op,
        other => panic!("expected an operation: {other:?}"),
    };
    let mut operations = OperationServiceClient::new(channel);
    let watch = pb::WatchOperationRequest { id: operation.id.clone() };
    let mut stream = operations.watch(authorized(watch, &h.admin_token)).await.expect("watch opens").into_inner();
    let mut seen = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(update) = stream.message().await.expect("the stream carries no error") {
            seen.push((update.state.clone(), update.steps.iter().filter(|s| s.state == "succeeded").count()));
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch ended with the operation; saw {seen:?}");
    let (last_state, steps_done) = seen.last().cloned().expect("at least the operation as it was");
    assert_eq!(last_state, "succeeded", "{seen:?}");
    assert!(steps_done >= 2, "the watch saw the steps done: {seen:?}");
    assert!(seen.len() >= 2, "the watch reported progress, not only the end: {seen:?}");
    let mut progress: Vec<usize> = seen.iter().map(|s| s.1).collect();
    progress.dedup();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "steps only ever finish: {seen:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_stream_resumed_from_a_position_misses_nothing() {
    let h = Harness::start(&[Role::Api]).await;
    let channel = channel(&h).await;
    let mut events = EventServiceClient::new(channel.clone());

    // Clusters are created throughout, concurrently with the stream.
    let writer = {
        let (base, token) = (h.base.clone(), h.admin_token.clone());
        tokio::spawn(async move {
            let mut clusters = ClusterServiceClient::new(
                tonic::transport::Endpoint::from_shared(base).expect("endpoint").connect().await.expect("connects"),
            );
            for i in 0..30 {
                let req = pb::CreateClusterRequest {
                    name: format!("s{i}-{}", &unique_name()[1..6]),
                    provider: if i % 2 == 0 { "aws" } else { "gcp" }.into(),
                    region: if i % 2 == 0 { "eu-west-1" } else { "europe-west1" }.into(),
                    brokers: 3,
                    ..Default::default()
                };
                clusters.create_cluster(authorized(req, &token)).await.expect("create");
            }
        })
    };

    // First stream: read 10 events, keep the position of the last, drop the stream.
    let open = pb::StreamEventsRequest { cluster_id: None, start: None, position: None };
    let mut first = events.stream(authorized(open, &h.admin_token)).await.expect("stream").into_inner();
    let mut seen = Vec::new();
    let mut position = String::new();
    while seen.len() < 10 {
        let e = tokio::time::timeout(Duration::from_secs(30), first.message())
            .await
            .expect("events arrive")
            .expect("ok")
            .expect("open");
        seen.push(e.event.expect("event").event_id);
        position = e.position;
    }
    drop(first);

    // Resumed: everything after that position, until the writer's 30 are all there.
    let resume = pb::StreamEventsRequest { cluster_id: None, start: None, position: Some(position) };
    let mut second = events.stream(authorized(resume, &h.admin_token)).await.expect("stream").into_inner();
    while seen.len() < 30 {
        let e = tokio::time::timeout(Duration::from_secs(30), second.message())
            .await
            .expect("events arrive")
            .expect("ok")
            .expect("open");
        seen.push(e.event.expect("event").event_id);
    }
    writer.await.expect("writer");

    // The whole feed, read page by page once everything has committed, is exactly what the two streams saw.
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page =
            pb::ListEventsRequest { cluster_id: None, start: None, page_size: Some(100), page_token: token.clone() };
        let page = events.list_events(authorized(page, &h.admin_token)).await.expect("list").into_inner();
        if page.items.is_empty() {
            break;
        }
        all.extend(page.items.into_iter().map(|e| e.event.expect("event").event_id));
        token = Some(page.next_page_token);
    }
    assert_eq!(all.len(), 30, "30 clusters requested, 30 events");
    assert_eq!(seen, all, "no event missed, none repeated, in commit order");
    h.stop().await;
}

/// A Kafka user made over gRPC: the password comes back once (a repeat with the same idempotency-key answers
/// without it and says so), the worker writes that very password into the user's Secret, a rotation writes the
/// next one, and a delete removes the KafkaUser and the Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_made_over_grpc_shows_its_password_once_and_the_worker_writes_it() {
    use k8s_openapi::api::core::v1::Secret;
    use polaris_grpc::pb::user_service_client::UserServiceClient;
    use polaris_test_support::harness::kube_client;
    let h = Harness::start(&ALL).await;
    let (id, _) = create(&h, &unique_name(), ("aws", "eu-west-1")).await;
    let ready = wait_for_status(&h, &id, "READY", Duration::from_secs(90)).await;
    let secrets: kube::Api<Secret> =
        kube::Api::namespaced(kube_client("aws-eu-west-1").await, ready["namespace"].as_str().expect("namespace"));
    let channel = channel(&h).await;
    let mut users = UserServiceClient::new(channel.clone());
    let operations = OperationServiceClient::new(channel);
    let keyed = |message: pb::CreateUserRequest| {
        let mut req = authorized(message, &h.admin_token);
        req.metadata_mut().insert("idempotency-key", "grpc-user-1".parse().expect("metadata"));
        req
    };
    let acl = pb::AclRule {
        resource: Some(pb::AclResource {
            r#type: "topic".into(),
            name: Some("orders.".into()),
            pattern: "prefix".into(),
        }),
        operations: vec!["Write".into(), "Describe".into()],
        ..Default::default()
    };
    let request = pb::CreateUserRequest {
        cluster_id: id.clone(),
        name: "orders-app".into(),
        acls: vec![acl],
        quotas: Some(pb::UserQuotas { producer_byte_rate: Some(1 << 20), ..Default::default() }),
        ..Default::default()
    };
    let accepted =
        |r: Result<tonic::Response<pb::CreateUserResponse>, Status>| match r.expect("CreateUser").into_inner().result {
            Some(pb::create_user_response::Result::Accepted(a)) => a,
            other => panic!("expected an accepted user: {other:?}"),
        };
    let first = accepted(users.create_user(keyed(request.clone())).await);
    let credentials = first.credentials.clone().expect("the password, once");
    assert!(first.credentials_shown && credentials.password.len() >= 32, "{first:?}");
    let again = accepted(users.create_user(keyed(request)).await);
    assert_eq!((again.credentials.is_none(), again.credentials_shown), (true, false), "{again:?}");
    assert_eq!(again.operation, first.operation, "the repeat answers the first answer");

    let succeeded = |operation: pb::Operation| {
        let mut operations = operations.clone();
        let token = h.admin_token.clone();
        async move {
            let watch = pb::WatchOperationRequest { id: operation.id.clone() };
            let mut stream = operations.watch(authorized(watch, &token)).await.expect("watch").into_inner();
            let mut last = None;
            let ended = tokio::time::timeout(Duration::from_secs(90), async {
                while let Some(update) = stream.message().await.expect("the stream carries no error") {
                    last = Some(update);
                }
            })
            .await;
            assert!(ended.is_ok(), "the operation ended: {last:?}");
            assert_eq!(last.as_ref().map(|o| o.state.as_str()), Some("succeeded"), "{last:?}");
        }
    };
    succeeded(first.operation.clone().expect("operation")).await;
    let password_in_secret =
        |secret: Secret| String::from_utf8(secret.data.expect("data")["password"].0.clone()).expect("utf-8");
    let secret = secrets.get("polaris-user-orders-app").await.expect("the user's password Secret");
    assert_eq!(password_in_secret(secret), credentials.password, "the worker wrote the password the API answered");

    let rotate =
        pb::RotateCredentialsRequest { cluster_id: id.clone(), name: "orders-app".into(), ..Default::default() };
    let rotated =
        match users.rotate_credentials(authorized(rotate, &h.admin_token)).await.expect("rotate").into_inner().result {
            Some(pb::rotate_credentials_response::Result::Rotated(r)) => r,
            other => panic!("expected a rotation: {other:?}"),
        };
    let next = rotated.credentials.expect("the new password, once");
    assert_eq!(next.generation, 2);
    assert_ne!(next.password, credentials.password);
    succeeded(rotated.operation.expect("operation")).await;
    let secret = secrets.get("polaris-user-orders-app").await.expect("the user's password Secret");
    assert_eq!(password_in_secret(secret), next.password, "the rotation wrote the new password");
    let user = users
        .get_user(authorized(
            pb::GetUserRequest { cluster_id: id.clone(), name: "orders-app".into(), as_of: None },
            &h.admin_token,
        ))
        .await
        .expect("GetUser")
        .into_inner();
    assert_eq!((user.status.as_str(), user.credentials_generation), ("READY", 2), "{user:?}");

    let delete = pb::DeleteUserRequest { cluster_id: id.clone(), name: "orders-app".into(), ..Default::default() };
    let deleted = match users.delete_user(authorized(delete, &h.admin_token)).await.expect("delete").into_inner().result
    {
        Some(pb::change_response::Result::Operation(op)) => op,
        other => panic!("expected an operation: {other:?}"),
    };
    succeeded(deleted).await;
    assert!(secrets.get_opt("polaris-user-orders-app").await.expect("secrets").is_none(), "the Secret is gone");
    h.stop().await;
}

/// Drift over gRPC: the same list as REST, the same refusals (ignore without a reason, another org's cluster), and
/// a resolution recorded as over REST.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drift_is_listed_and_resolved_over_grpc_as_over_rest() {
    use polaris_grpc::pb::drift_service_client::DriftServiceClient;
    use polaris_test_support::harness::{get, kubectl, new_org, new_token};
    let h = Harness::start_configured(&ALL, |s| s.drift_interval_secs = 1).await;
    let (id, _) = create(&h, &unique_name(), ("aws", "eu-west-1")).await;
    let ready = wait_for_status(&h, &id, "READY", Duration::from_secs(90)).await;
    let ns = ready["namespace"].as_str().expect("namespace");
    let name = ready["name"].as_str().expect("name");
    let patch =
        r#"{"metadata":{"annotations":{"polaris.dev/note":"x"},"labels":{"app.kubernetes.io/managed-by":"someone"}}}"#;
    let (ok, out) = kubectl("aws-eu-west-1", &["patch", "kafka", name, "-n", ns, "--type", "merge", "-p", patch], "");
    assert!(ok, "{out}");
    let mut drift = DriftServiceClient::new(channel(&h).await);
    let list = |token: &str| authorized(pb::ListDriftRequest { cluster_id: id.clone(), status: "open".into() }, token);
    let listed = polaris_test_support::eventually("the drift over gRPC", Duration::from_secs(30), || {
        let (mut drift, request) = (drift.clone(), list(&h.admin_token));
        async move {
            let items = drift.list_drift(request).await.ok()?.into_inner().items;
            items.into_iter().find(|d| d.field == "metadata.labels.app.kubernetes.io/managed-by")
        }
    })
    .await;
    assert_eq!(listed.expected_json.as_deref(), Some("\"polaris\""), "{listed:?}");
    assert_eq!(listed.actual_json.as_deref(), Some("\"someone\""), "{listed:?}");
    assert_eq!(listed.changed_by.as_deref(), Some("kubectl-patch"));
    let rest = get(&h, &format!("/v1/clusters/{id}/drift?status=open")).await;
    let rest_ids: Vec<&str> =
        rest["items"].as_array().expect("items").iter().filter_map(|d| d["id"].as_str()).collect();
    assert!(rest_ids.contains(&listed.id.as_str()), "REST lists the same drift: {rest}");
    assert!(!rest.to_string().contains("polaris.dev/note"), "an annotation Polaris does not set is no drift: {rest}");

    let other = new_org(&h.db, &format!("grpc-drift-{}", unique_name())).await;
    let foreign = new_token(&h.db, other, polaris_app::caller::Role::Admin).await;
    let status = drift.list_drift(list(&foreign)).await.expect_err("another org's cluster");
    assert_eq!(status.code(), Code::NotFound);
    let resolve = |action: &str, reason: Option<&str>| {
        let message = pb::ResolveDriftRequest {
            cluster_id: id.clone(),
            drift_id: listed.id.clone(),
            action: action.into(),
            reason: reason.map(str::to_owned),
        };
        authorized(message, &h.admin_token)
    };
    let status = drift.resolve_drift(resolve("ignore", None)).await.expect_err("ignore without a reason");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = drift.resolve_drift(resolve("heal", None)).await.expect_err("an unknown action");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let answer = drift.resolve_drift(resolve("ignore", Some("a note for the auditors"))).await.expect("ignore");
    let answer = answer.into_inner().drift.expect("drift");
    assert_eq!((answer.status.as_str(), answer.reason.as_deref()), ("ignored", Some("a note for the auditors")));
    polaris_test_support::eventually("the ignore in the read model", Duration::from_secs(30), || async {
        let rest = get(&h, &format!("/v1/clusters/{id}/drift")).await;
        let row = rest["items"].as_array()?.iter().find(|d| d["id"] == listed.id.as_str())?.clone();
        (row["status"] == "ignored").then_some(())
    })
    .await;
    h.stop().await;
}
