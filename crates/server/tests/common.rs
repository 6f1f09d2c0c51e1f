//! A whole Polaris (chosen roles) on the real local services, with its own database and topic.

#![allow(dead_code)]

use std::time::Duration;

use polaris_api::auth::{self, Role as TokenRole};
use polaris_domain::OrgId;
use polaris_server::{Role, Server, Settings};
use polaris_test_support::{TestDb, kafka_bootstrap, unique_topic};
use tokio::sync::watch;
use uuid::Uuid;

pub struct Harness {
    pub db: TestDb,
    pub topic: String,
    pub base: String,
    pub http: reqwest::Client,
    pub org: OrgId,
    pub admin_token: String,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn start(roles: &[Role]) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,rdkafka=error".into()),
            )
            .with_test_writer()
            .try_init();
        let db = TestDb::new().await;
        let topic = unique_topic(3).await;
        let settings = Settings {
            database_url: db.url.clone(),
            kafka_bootstrap: kafka_bootstrap(),
            events_topic: topic.clone(),
            listen: "127.0.0.1:0".into(),
            projector_group: format!("projector-{}", Uuid::new_v4().simple()),
            relay_name: "default".into(),
        };
        let server = Server::connect(settings).await.expect("server connects");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stop_rx) = watch::channel(false);
        let tasks = server.spawn_roles(roles, Some(listener), stop_rx).await.expect("roles start");
        let org = new_org(&db, "acme").await;
        let admin_token = new_token(&db, org, TokenRole::Admin).await;
        Self { db, topic, base, http: reqwest::Client::new(), org, admin_token, stop, tasks }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

pub async fn new_org(db: &TestDb, name: &str) -> OrgId {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO orgs (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(format!("{name}-{id}"))
        .execute(&db.pool)
        .await
        .expect("insert org");
    OrgId::from_uuid(id)
}

pub async fn new_token(db: &TestDb, org: OrgId, role: TokenRole) -> String {
    let secret = auth::new_token_secret();
    auth::store_token(&db.pool, org, &format!("{}-token", role.as_str()), role, false, &secret).await.expect("token");
    secret
}

pub fn cluster_body(name: &str) -> serde_json::Value {
    serde_json::json!({"name": name, "provider": "aws", "region": "eu-west-1", "brokers": 3})
}
