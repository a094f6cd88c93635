//! Per-check families, labelled by namespace and name, with every label set remembered so a
//! check's series go entirely when it does. A check that did not run (suspended, invalid, a
//! reference missing or forbidden) has no `canary_check_success` sample and no failed run, so
//! it never fires a failure alert; `canary_check_info` carries what the check is (kind, target
//! without secrets, allow-listed labels of the resource) for alerts to join on.

use std::collections::{BTreeSet, HashMap};

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec};

use super::{Families, MetricsError};
use crate::{
    api::Reason,
    lock,
    runner::{CheckKey, RunReport},
};

/// Probe latency buckets: loopback (ms) through slow WAN (tens of seconds).
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const CHECK: &[&str] = &["namespace", "name"];
/// Fixed labels of `canary_check_info` (allow-listed resource labels follow).
const INFO: &[&str] = &["namespace", "name", "kind", "target"];

/// Reasons for which no probe ran.
fn did_not_run(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Suspended
            | Reason::InvalidSpec
            | Reason::ReferenceNotFound
            | Reason::ReferenceForbidden
            | Reason::Reconciling
    )
}

/// Label values set for one check beyond namespace/name.
#[derive(Default)]
struct Series {
    runs: BTreeSet<(String, &'static str)>,
    phases: BTreeSet<&'static str>,
    tls_version: Option<String>,
    info: Option<Vec<String>>,
}

/// Every per-check family.
pub(super) struct CheckFamilies {
    success: IntGaugeVec,
    duration: HistogramVec,
    phase_duration: GaugeVec,
    runs: IntCounterVec,
    last_run: GaugeVec,
    last_success: GaugeVec,
    http_status: IntGaugeVec,
    consecutive_failures: IntGaugeVec,
    in_maintenance: IntGaugeVec,
    cert_not_after: GaugeVec,
    chain_not_after: GaugeVec,
    tls_version: IntGaugeVec,
    info: IntGaugeVec,
    /// Resource labels copied into `canary_check_info`: (resource label, metric label).
    allowlist: Vec<(String, String)>,
    series: std::sync::Mutex<HashMap<CheckKey, Series>>,
}

/// A resource label name as a Prometheus label name: invalid characters become `_`; names
/// that clash with the fixed labels get a `label_` prefix.
pub fn metric_label(resource_label: &str) -> String {
    let mut name: String = (resource_label.chars())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty()
        || name.starts_with(|c: char| c.is_ascii_digit())
        || INFO.contains(&name.as_str())
        || name.starts_with("__")
    {
        name = format!("label_{name}");
    }
    name
}

impl CheckFamilies {
    pub(super) fn new(f: &mut Families, allowlist: &[String]) -> Result<Self, MetricsError> {
        let allowlist: Vec<(String, String)> = (allowlist.iter())
            .map(|label| (label.clone(), metric_label(label)))
            .collect();
        let mut info_labels: Vec<&str> = INFO.to_vec();
        info_labels.extend(allowlist.iter().map(|(_, metric)| metric.as_str()));
        let phase = &["namespace", "name", "phase"];
        Ok(Self {
            success: f.int_gauges("canary_check_success", "1 if the last probe passed, else 0; absent while the check does not run (suspended, invalid).", CHECK)?,
            duration: f.add(HistogramVec::new(
                HistogramOpts::new("canary_check_duration_seconds", "Duration of whole probes.")
                    .buckets(DURATION_BUCKETS.to_vec()),
                CHECK,
            )?)?,
            phase_duration: f.gauges("canary_check_phase_duration_seconds", "Time spent in each phase of the last probe.", phase)?,
            runs: f.counters("canary_check_runs_total", "Probes run, by result and reason.", &["namespace", "name", "result", "reason"])?,
            last_run: f.gauges("canary_check_last_run_timestamp_seconds", "Unix time of the last probe.", CHECK)?,
            last_success: f.gauges("canary_check_last_success_timestamp_seconds", "Unix time of the last passing probe.", CHECK)?,
            http_status: f.int_gauges("canary_check_http_status_code", "HTTP status of the last response.", CHECK)?,
            consecutive_failures: f.int_gauges("canary_check_consecutive_failures", "Failed probes in a row.", CHECK)?,
            in_maintenance: f.int_gauges("canary_check_in_maintenance", "1 while the last probe fell in a maintenance window, else 0.", CHECK)?,
            cert_not_after: f.gauges("canary_tls_cert_not_after_timestamp_seconds", "Unix time the served leaf certificate expires.", CHECK)?,
            chain_not_after: f.gauges("canary_tls_chain_earliest_not_after_timestamp_seconds", "Unix time the first certificate of the served chain expires.", CHECK)?,
            tls_version: f.int_gauges("canary_tls_version_info", "Negotiated TLS version (value 1).", &["namespace", "name", "version"])?,
            info: f.int_gauges("canary_check_info", "What a check probes (value 1): kind, target without secrets, and allow-listed labels of the resource.", &info_labels)?,
            allowlist,
            series: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Records one report of one check.
    pub(super) fn record(&self, report: &RunReport<'_>) {
        let key = report.key;
        let labels = [key.namespace.as_str(), key.name.as_str()];
        let mut series = lock(&self.series);
        let series = series.entry(key.clone()).or_default();
        self.set_info(&labels, report, series);
        let outcome = report.outcome;
        self.consecutive_failures
            .with_label_values(&labels)
            .set(report.status.consecutive_failures);
        if did_not_run(outcome.reason) {
            if outcome.reason != Reason::Reconciling {
                let _ = self.success.remove_label_values(&labels);
            }
            return;
        }
        self.in_maintenance
            .with_label_values(&labels)
            .set(i64::from(report.in_maintenance));
        self.success
            .with_label_values(&labels)
            .set(i64::from(outcome.success()));
        self.duration
            .with_label_values(&labels)
            .observe(outcome.duration.as_secs_f64());
        let at = outcome.started_at.as_millisecond() as f64 / 1000.0;
        self.last_run.with_label_values(&labels).set(at);
        if outcome.success() {
            self.last_success.with_label_values(&labels).set(at);
        }
        let result = if outcome.success() {
            "success"
        } else {
            "failure"
        };
        self.runs
            .with_label_values(&[labels[0], labels[1], result, outcome.reason.as_str()])
            .inc();
        series
            .runs
            .insert((result.to_string(), outcome.reason.as_str()));
        for (phase, spent) in outcome.phases.iter() {
            self.phase_duration
                .with_label_values(&[labels[0], labels[1], phase])
                .set(spent.as_secs_f64());
            series.phases.insert(phase);
        }
        if let Some(status) = outcome.http_status {
            self.http_status
                .with_label_values(&labels)
                .set(i64::from(status));
        }
        self.record_tls(&labels, report, series);
    }

    fn record_tls(&self, labels: &[&str; 2], report: &RunReport<'_>, series: &mut Series) {
        let Some(tls) = &report.outcome.tls else {
            return;
        };
        if let Some(leaf) = tls.leaf() {
            self.cert_not_after
                .with_label_values(labels)
                .set(leaf.not_after.as_second() as f64);
        }
        if let Some(earliest) = tls.chain_earliest_not_after() {
            self.chain_not_after
                .with_label_values(labels)
                .set(earliest.as_second() as f64);
        }
        if let Some(version) = &tls.version {
            if let Some(stale) = series.tls_version.take().filter(|v| v != version) {
                let _ = self
                    .tls_version
                    .remove_label_values(&[labels[0], labels[1], &stale]);
            }
            self.tls_version
                .with_label_values(&[labels[0], labels[1], version])
                .set(1);
            series.tls_version = Some(version.clone());
        }
    }

    fn set_info(&self, labels: &[&str; 2], report: &RunReport<'_>, series: &mut Series) {
        let info = &report.spec.info;
        let mut values = vec![
            labels[0].to_string(),
            labels[1].to_string(),
            info.kind.to_string(),
            info.target.clone(),
        ];
        values.extend(
            (self.allowlist.iter())
                .map(|(label, _)| info.labels.get(label).cloned().unwrap_or_default()),
        );
        if series.info.as_ref() == Some(&values) {
            return;
        }
        if let Some(old) = series.info.take() {
            let old: Vec<&str> = old.iter().map(String::as_str).collect();
            let _ = self.info.remove_label_values(&old);
        }
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        self.info.with_label_values(&refs).set(1);
        series.info = Some(values);
    }

    /// Removes every series of a check.
    pub(super) fn forget(&self, key: &CheckKey) {
        let labels = [key.namespace.as_str(), key.name.as_str()];
        let int_gauges = [&self.success, &self.http_status, &self.consecutive_failures];
        for family in int_gauges.into_iter().chain([&self.in_maintenance]) {
            let _ = family.remove_label_values(&labels);
        }
        let gauges = [&self.last_run, &self.last_success, &self.cert_not_after];
        for family in gauges.into_iter().chain([&self.chain_not_after]) {
            let _ = family.remove_label_values(&labels);
        }
        let _ = self.duration.remove_label_values(&labels);
        let Some(series) = lock(&self.series).remove(key) else {
            return;
        };
        for (result, reason) in series.runs {
            let _ = self
                .runs
                .remove_label_values(&[labels[0], labels[1], &result, reason]);
        }
        for phase in series.phases {
            let _ = self
                .phase_duration
                .remove_label_values(&[labels[0], labels[1], phase]);
        }
        if let Some(version) = series.tls_version {
            let _ = self
                .tls_version
                .remove_label_values(&[labels[0], labels[1], &version]);
        }
        if let Some(info) = series.info {
            let info: Vec<&str> = info.iter().map(String::as_str).collect();
            let _ = self.info.remove_label_values(&info);
        }
    }
}
