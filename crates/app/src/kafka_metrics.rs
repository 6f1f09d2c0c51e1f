//! The charts on a cluster's page: the panels of the Grafana dashboard for managed clusters
//! (deploy/grafana/managed-kafka.json), queried for one cluster over a window from the Prometheus that scrapes
//! its brokers. The dashboard is the one definition, so the page and Grafana cannot show different things.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{App, AppError, Caller};

const DASHBOARD: &str = include_str!("../../../deploy/grafana/managed-kafka.json");
/// The rate window the page uses where Grafana picks `$__rate_interval`: four scrapes at the local stack's 5 s
/// and the chart's step are both well inside it.
const RATE_WINDOW: &str = "1m";

/// One panel of the dashboard.
#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub unit: String,
    /// PromQL with Grafana's `$cluster_id` and `$__rate_interval`.
    pub expr: String,
}

/// The dashboard's panels, in order.
pub static PANELS: LazyLock<Vec<Panel>> = LazyLock::new(|| {
    let d: serde_json::Value = serde_json::from_str(DASHBOARD).expect("deploy/grafana/managed-kafka.json is JSON");
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| Panel {
            title: p["title"].as_str().expect("title").to_owned(),
            unit: p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("short").to_owned(),
            expr: p["targets"][0]["expr"].as_str().expect("expr").to_owned(),
        })
        .collect()
});

impl Panel {
    /// The panel's query for one cluster.
    pub fn query(&self, cluster_id: Uuid) -> String {
        self.expr.replace("$cluster_id", &cluster_id.to_string()).replace("$__rate_interval", RATE_WINDOW)
    }
}

/// One series of a range query: its labels and `[unix seconds, value]` points, values as Prometheus writes them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct RangeSeries {
    pub metric: std::collections::BTreeMap<String, String>,
    pub values: Vec<(f64, String)>,
}

/// Where the charts' data comes from: a Prometheus HTTP API's `query_range` (the server wires an HTTP client to
/// it; the application layer knows no HTTP). An error is the reason, for a 503.
pub trait MetricsSource: Send + Sync + std::fmt::Debug {
    fn range<'a>(
        &'a self,
        query: &'a str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<RangeSeries>, String>> + Send + 'a>>;
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// How far back, in minutes (1 to 1440; default 30).
    #[param(minimum = 1, maximum = 1440)]
    pub minutes: Option<u32>,
}

/// One line of a chart: a broker's series (or the cluster's, for a sum).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChartSeries {
    /// `broker <node id>`, or `cluster` for a series summed over the cluster.
    pub label: String,
    /// `[unix seconds, value]`, oldest first.
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Chart {
    pub title: String,
    /// Grafana's unit: `short`, `Bps` (bytes per second) or `ms`.
    pub unit: String,
    pub series: Vec<ChartSeries>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClusterMetrics {
    pub start: chrono::DateTime<Utc>,
    pub end: chrono::DateTime<Utc>,
    pub step_seconds: i64,
    /// The panels of the managed-cluster Grafana dashboard, in its order. Empty series: nothing scraped yet.
    pub charts: Vec<Chart>,
}

/// A cluster's charts over the last `minutes`, from the configured Prometheus.
pub async fn cluster_metrics(
    app: &App,
    caller: &Caller,
    id: Uuid,
    q: MetricsQuery,
) -> Result<ClusterMetrics, AppError> {
    let minutes = q.minutes.unwrap_or(30);
    if !(1..=1440).contains(&minutes) {
        return Err(AppError::validation("minutes must be between 1 and 1440", Some("minutes")));
    }
    // Another org's cluster, or none: 404 before anything is asked of Prometheus.
    crate::clusters::current(app, caller, id).await?;
    let Some(prometheus) = &app.prometheus else {
        return Err(AppError::Unavailable(
            "prometheus: none is configured for the charts (POLARIS_PROMETHEUS_URL)".into(),
        ));
    };
    let end = Utc::now();
    let start = end - chrono::Duration::minutes(i64::from(minutes));
    // About 120 points a chart, never finer than the scrape interval.
    let step = (i64::from(minutes) * 60 / 120).max(5);
    let mut charts = Vec::with_capacity(PANELS.len());
    for panel in PANELS.iter() {
        let result = prometheus
            .range(&panel.query(id), start.timestamp(), end.timestamp(), step)
            .await
            .map_err(AppError::Unavailable)?;
        let mut series: Vec<ChartSeries> = result
            .into_iter()
            .map(|s| ChartSeries {
                label: s.metric.get("node_id").map_or_else(|| "cluster".to_owned(), |id| format!("broker {id}")),
                points: s
                    .values
                    .into_iter()
                    .filter_map(|(t, v)| v.parse::<f64>().ok().filter(|v| v.is_finite()).map(|v| (t as i64, v)))
                    .collect(),
            })
            .collect();
        series.sort_by_key(|s| s.label.split(' ').nth(1).and_then(|n| n.parse::<i64>().ok()).unwrap_or(-1));
        charts.push(Chart { title: panel.title.clone(), unit: panel.unit.clone(), series });
    }
    Ok(ClusterMetrics { start, end, step_seconds: step, charts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboards_panels_are_the_charts_queried_for_one_cluster() {
        assert_eq!(PANELS.len(), 5);
        let id = Uuid::nil();
        for panel in PANELS.iter() {
            let q = panel.query(id);
            assert!(q.contains(&format!("polaris_cluster_id=\"{id}\"")), "{q}");
            assert!(!q.contains('$'), "every Grafana variable is replaced: {q}");
        }
    }
}
