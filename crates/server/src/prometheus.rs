//! The charts' data source: Prometheus' HTTP API (`query_range`), for the application layer's
//! [`MetricsSource`](polaris_app::kafka_metrics::MetricsSource).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use polaris_app::kafka_metrics::{MetricsSource, RangeSeries};
use serde::Deserialize;

#[derive(Clone, Debug)]
pub struct PrometheusHttp {
    url: String,
    http: reqwest::Client,
}

impl PrometheusHttp {
    pub fn new(url: &str) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
        PrometheusHttp { url: url.trim_end_matches('/').to_owned(), http }
    }

    async fn query_range(&self, query: &str, start: i64, end: i64, step: i64) -> Result<Vec<RangeSeries>, String> {
        let params = [
            ("query", query.to_owned()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step.to_string()),
        ];
        let response = self
            .http
            .get(format!("{}/api/v1/query_range", self.url))
            .query(&params)
            .send()
            .await
            .map_err(|e| format!("prometheus at {}: {e}", self.url))?;
        let status = response.status();
        let body: RangeResponse =
            response.json().await.map_err(|e| format!("prometheus at {} answered {status}: {e}", self.url))?;
        match body.data {
            Some(data) if body.status == "success" => Ok(data.result),
            _ => Err(format!("prometheus at {}: {}", self.url, body.error.unwrap_or_else(|| status.to_string()))),
        }
    }
}

#[derive(Deserialize)]
struct RangeResponse {
    status: String,
    data: Option<RangeData>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct RangeData {
    result: Vec<RangeSeries>,
}

impl MetricsSource for PrometheusHttp {
    fn range<'a>(
        &'a self,
        query: &'a str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<RangeSeries>, String>> + Send + 'a>> {
        Box::pin(self.query_range(query, start, end, step))
    }
}
