//! The hub's families for checks with `spec.locations`: each location's verdict and
//! staleness per check (at most 16 locations a check; series removed with the check or the
//! location), and reports left out, by reason. The location is the `report_location` label.

use prometheus::{IntCounterVec, IntGaugeVec};

use super::{Families, MetricsError};

/// `canary_check_location_*`, `canary_location_reports_ignored_total`.
#[derive(Clone)]
pub struct LocationMetrics {
    /// 1 when the location's report passes, 0 when it fails or is stale or missing.
    pub ready: IntGaugeVec,
    /// 1 when the hub saw no change of the location's report within the bound.
    pub stale: IntGaugeVec,
    /// Reports left out of every aggregate, by reason.
    pub ignored: IntCounterVec,
}

impl LocationMetrics {
    pub(super) fn new(f: &mut Families) -> Result<Self, MetricsError> {
        // Not `location`: that is the constant label of `--location` (a hub can be a spoke too).
        let labels = &["namespace", "name", "report_location"];
        Ok(Self {
            ready: f.int_gauges(
                "canary_check_location_ready",
                "1 when the location's CheckReport passes (fresh, Ready True), else 0; for checks with spec.locations, on the hub replica that owns the check.",
                labels,
            )?,
            stale: f.int_gauges(
                "canary_check_location_stale",
                "1 when the hub saw no change of the location's CheckReport for max(3 intervals, 2 heartbeats) (or no report since it began aggregating), else 0.",
                labels,
            )?,
            ignored: f.counters(
                "canary_location_reports_ignored_total",
                "CheckReports the hub left out, by reason: name (not <check>.<location>), unlisted (a location the check does not list), unknown_check (no HealthCheck with spec.locations of that name in the report's namespace).",
                &["reason"],
            )?,
        })
    }

    /// Sets one location's series.
    pub fn record(&self, namespace: &str, name: &str, location: &str, ready: bool, stale: bool) {
        let labels = [namespace, name, location];
        self.ready.with_label_values(&labels).set(i64::from(ready));
        self.stale.with_label_values(&labels).set(i64::from(stale));
    }

    /// Removes one location's series (the check or the location went, or moved away).
    pub fn forget(&self, namespace: &str, name: &str, location: &str) {
        let labels = [namespace, name, location];
        let _ = self.ready.remove_label_values(&labels);
        let _ = self.stale.remove_label_values(&labels);
    }

    /// Counts one ignored report.
    pub fn ignored(&self, reason: &str) {
        self.ignored.with_label_values(&[reason]).inc();
    }
}
