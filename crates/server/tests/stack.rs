//! The local Kubernetes targets are real API servers with the Strimzi CRDs installed and enforcing their
//! schemas. `./dev/test` exports POLARIS_KUBE_TARGETS (`provider/region=url,...`) and POLARIS_KUBE_TOKEN.

use reqwest::StatusCode;
use serde_json::{Value, json};

fn targets() -> Vec<(String, String)> {
    let raw = std::env::var("POLARIS_KUBE_TARGETS")
        .unwrap_or_else(|_| "aws/eu-west-1=https://127.0.0.1:56443,gcp/europe-west1=https://127.0.0.1:56444".into());
    raw.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (name, url) = s.split_once('=').expect("name=url");
            (name.to_owned(), url.to_owned())
        })
        .collect()
}

fn client() -> reqwest::Client {
    // The local API servers use self-signed serving certificates.
    reqwest::Client::builder().danger_accept_invalid_certs(true).build().expect("client")
}

fn token() -> String {
    std::env::var("POLARIS_KUBE_TOKEN").unwrap_or_else(|_| "polaris-dev-kube-admin".into())
}

#[tokio::test]
async fn both_targets_serve_the_strimzi_v1_kinds() {
    let targets = targets();
    assert_eq!(targets.len(), 2, "two targets: {targets:?}");
    for (name, url) in targets {
        for kind in ["kafkas", "kafkanodepools", "kafkatopics", "kafkarebalances"] {
            let path = format!("{url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{kind}.kafka.strimzi.io");
            let resp = client().get(&path).bearer_auth(token()).send().await.unwrap_or_else(|e| {
                panic!("kube-apiserver for {name} is not reachable at {url}: {e}; start it with ./dev/up")
            });
            assert_eq!(resp.status(), StatusCode::OK, "{name}: {kind}");
            let crd: Value = resp.json().await.expect("crd json");
            let served: Vec<&str> = crd["spec"]["versions"]
                .as_array()
                .expect("versions")
                .iter()
                .filter(|v| v["served"] == true)
                .filter_map(|v| v["name"].as_str())
                .collect();
            assert!(served.contains(&"v1"), "{name}: {kind} serves v1, got {served:?}");
        }
    }
}

#[tokio::test]
async fn the_api_server_rejects_a_node_pool_that_breaks_the_strimzi_schema() {
    let (name, url) = targets().into_iter().next().expect("a target");
    let pool = |roles: Value| {
        json!({
            "apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaNodePool",
            "metadata": {"name": "schema-check", "labels": {"strimzi.io/cluster": "x"}},
            "spec": {"replicas": 1, "roles": roles, "storage": {"type": "ephemeral"}}
        })
    };
    // dryRun=All: the server validates fully and persists nothing.
    let post = |body: Value| {
        client()
            .post(format!("{url}/apis/kafka.strimzi.io/v1/namespaces/default/kafkanodepools?dryRun=All"))
            .bearer_auth(token())
            .json(&body)
            .send()
    };
    let ok = post(pool(json!(["broker"]))).await.expect("request");
    assert_eq!(ok.status(), StatusCode::CREATED, "{name}: {}", ok.text().await.unwrap_or_default());
    let bad = post(pool(json!(["janitor"]))).await.expect("request");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}: an unknown role is refused");
}

#[tokio::test]
async fn the_crds_polaris_generates_are_accepted_by_a_real_api_server() {
    // The fallback for machines without ../shared/strimzi-crds. The real CRDs hold the names, so each generated
    // CRD is moved to a scratch group and created with dryRun=All: full validation, nothing persisted.
    let (name, url) = targets().into_iter().next().expect("a target");
    let list = polaris_workers::strimzi::generated_crds();
    for mut crd in list["items"].as_array().expect("items").iter().cloned() {
        let plural = crd["spec"]["names"]["plural"].as_str().expect("plural").to_owned();
        crd["spec"]["group"] = json!("check.polaris.dev");
        crd["metadata"]["name"] = json!(format!("{plural}.check.polaris.dev"));
        let resp = client()
            .post(format!("{url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions?dryRun=All"))
            .bearer_auth(token())
            .json(&crd)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        assert_eq!(status, StatusCode::CREATED, "{name}: {plural}: {}", resp.text().await.unwrap_or_default());
    }
}
