//! The discovery controller's families: checks generated and skips by reason per
//! CheckDiscovery (series removed with it), and its writes by operation and result.

use prometheus::{IntCounterVec, IntGaugeVec};

use super::{Families, MetricsError};
use crate::api::{DiscoverySkip, SkipReason};

/// `canary_discovery_*`.
#[derive(Clone)]
pub struct DiscoveryMetrics {
    /// HealthChecks a CheckDiscovery generates (`status.generated`).
    pub generated: IntGaugeVec,
    /// Hosts and paths skipped, by reason.
    pub skipped: IntGaugeVec,
    /// Writes by operation (create, update, delete, detach, status) and result.
    pub writes: IntCounterVec,
}

impl DiscoveryMetrics {
    pub(super) fn new(f: &mut Families) -> Result<Self, MetricsError> {
        Ok(Self {
            generated: f.int_gauges(
                "canary_discovery_checks_generated",
                "HealthChecks a CheckDiscovery generates, at its last pass.",
                &["namespace", "name"],
            )?,
            skipped: f.int_gauges(
                "canary_discovery_skipped",
                "Hosts and paths a CheckDiscovery skipped at its last pass, by reason (NoHost, WildcardHost, RegexPath, ...).",
                &["namespace", "name", "reason"],
            )?,
            writes: f.counters(
                "canary_discovery_writes_total",
                "Writes of the discovery controller by operation (create, update, delete, detach, status) and result (success, error).",
                &["operation", "result"],
            )?,
        })
    }

    /// Sets a discovery's series: its generated checks, and its skips for every reason.
    pub fn record(&self, namespace: &str, name: &str, generated: usize, skips: &[DiscoverySkip]) {
        self.generated
            .with_label_values(&[namespace, name])
            .set(i64::try_from(generated).unwrap_or(i64::MAX));
        for reason in SkipReason::ALL {
            let count = skips.iter().filter(|s| s.reason == reason).count();
            self.skipped
                .with_label_values(&[namespace, name, reason.as_str()])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Removes a deleted discovery's series.
    pub fn forget(&self, namespace: &str, name: &str) {
        let _ = self.generated.remove_label_values(&[namespace, name]);
        for reason in SkipReason::ALL {
            let _ = (self.skipped).remove_label_values(&[namespace, name, reason.as_str()]);
        }
    }

    /// Counts one write.
    pub fn wrote(&self, operation: &str, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.writes.with_label_values(&[operation, result]).inc();
    }
}
