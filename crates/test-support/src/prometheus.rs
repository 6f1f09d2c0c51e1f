//! A real Prometheus (Debian's `prometheus`, which ./dev/up and ./dev/test install) for one test: it discovers
//! the managed brokers through a Polaris' `http_sd` endpoint, as the local stack's Prometheus does
//! (deploy/prometheus/prometheus.yml), but scrapes every two seconds so a test waits seconds, not minutes.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct TestPrometheus {
    pub url: String,
    http: reqwest::Client,
    child: Child,
    dir: PathBuf,
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl TestPrometheus {
    /// Starts Prometheus on `port`, discovering targets from `sd_url`; waits until it is ready.
    pub async fn start(port: u16, sd_url: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("polaris-prometheus-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let config = format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:\n  - job_name: kafka\n    \
             http_sd_configs:\n      - url: {sd_url}\n        refresh_interval: 1s\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus.yml");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus (Debian's package; ./dev/test installs it) could not start: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let p = TestPrometheus { url, http: reqwest::Client::new(), child, dir };
        let ready = format!("{}/-/ready", p.url);
        crate::eventually("prometheus is ready", Duration::from_secs(30), || {
            let ready = ready.clone();
            async move { reqwest::get(&ready).await.ok()?.status().is_success().then_some(()) }
        })
        .await;
        p
    }

    /// An instant query's result vector (`data.result`), or `None` when Prometheus does not answer.
    pub async fn query(&self, promql: &str) -> Option<Vec<serde_json::Value>> {
        let r = self.http.get(format!("{}/api/v1/query", self.url)).query(&[("query", promql)]).send().await.ok()?;
        let body: serde_json::Value = r.json().await.ok()?;
        body["data"]["result"].as_array().cloned()
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
