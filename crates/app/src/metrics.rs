//! Command metrics: how long judging and recording a command takes, by command and outcome, whichever door it
//! came through.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: &'static str,
    outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

#[derive(Clone)]
pub struct CommandMetrics {
    commands: Family<CommandLabels, Histogram, fn() -> Histogram>,
}

impl Default for CommandMetrics {
    fn default() -> Self {
        Self { commands: Family::new_with_constructor(latency_histogram) }
    }
}

impl CommandMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "polaris_command_duration_seconds",
            "Time to judge and record a command, by command and outcome",
            self.commands.clone(),
        );
    }

    pub fn observe(&self, command: &'static str, outcome: &'static str, took: Duration) {
        self.commands.get_or_create(&CommandLabels { command, outcome }).observe(took.as_secs_f64());
    }
}
