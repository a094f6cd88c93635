//! Per-check families, labelled by namespace and name. Each check's values are kept compactly
//! (a few hundred bytes) and turned into samples only when `/metrics` is rendered: a check's
//! series go entirely when it does, and 10,000 checks do not hold 150,000 metric objects with
//! their label strings. A check that did not run (suspended, invalid, a reference missing or
//! forbidden) has no `canary_check_success` sample and no failed run, so it never fires a
//! failure alert; `canary_check_info` carries what the check is (kind, target without secrets,
//! allow-listed labels of the resource) for alerts to join on.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use prometheus::{
    core::{Collector, Desc},
    proto::{self, LabelPair, MetricFamily},
};

use super::{Families, MetricsError, family::Family, kinds::KindSeries};
use crate::{
    api::{HealthCheckStatus, Reason},
    lock,
    runner::{CheckKey, Registration, RunReport, RunnerSpec},
};

/// Probe latency buckets: loopback (ms) through slow WAN (tens of seconds).
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Fixed labels of `canary_check_info` (allow-listed resource labels follow).
const INFO: &[&str] = &["namespace", "name", "kind", "target"];

/// Reasons for which no probe ran (as [`crate::probe::Outcome::ran`] says: a heartbeat check
/// waiting for its first deadline is Pending).
fn did_not_run(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Suspended
            | Reason::Pending
            | Reason::InvalidSpec
            | Reason::ReferenceNotFound
            | Reason::ReferenceForbidden
            | Reason::Reconciling
    )
}

/// Whole-probe durations of one check, as a histogram.
#[derive(Debug, Default)]
struct Durations {
    /// Observations at or below each bound (not cumulative).
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Durations {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = DURATION_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// What one check's series say.
#[derive(Debug, Default)]
struct CheckSeries {
    success: Option<bool>,
    duration: Option<Box<Durations>>,
    phases: Vec<(&'static str, f64)>,
    runs: Vec<(bool, Reason, u64)>,
    last_run: Option<f64>,
    last_success: Option<f64>,
    consecutive_failures: i64,
    in_maintenance: Option<bool>,
    /// What the probe's kind learned.
    kinds: KindSeries,
    /// `canary_check_info` label values after namespace and name.
    info: Box<[String]>,
}

/// Every per-check family, rendered from [`CheckSeries`] at scrape time.
#[derive(Clone)]
pub(super) struct CheckFamilies(Arc<Inner>);

struct Inner {
    /// Each family with its descriptor, in [`Family::all`] order.
    descs: Vec<(Family, Desc)>,
    /// Resource labels copied into `canary_check_info`: (resource label, metric label).
    allowlist: Vec<(String, String)>,
    info_labels: Vec<String>,
    checks: Mutex<HashMap<CheckKey, CheckSeries>>,
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
        let mut info_labels: Vec<String> = INFO.iter().map(|l| l.to_string()).collect();
        info_labels.extend(allowlist.iter().map(|(_, metric)| metric.clone()));
        let mut descs = Vec::new();
        for family in Family::all() {
            let labels = match family {
                Family::Info => info_labels.clone(),
                _ => (["namespace", "name"].iter())
                    .chain(family.labels())
                    .map(|l| l.to_string())
                    .collect(),
            };
            let desc = Desc::new(
                family.name().into(),
                family.help().into(),
                labels,
                HashMap::new(),
            )?;
            descs.push((family, desc));
        }
        let inner = Inner {
            descs,
            allowlist,
            info_labels,
            checks: Mutex::new(HashMap::new()),
        };
        f.add(Self(Arc::new(inner)))
    }

    /// Records one report of one check, unless the check was removed: checked under the lock
    /// [`CheckFamilies::forget`] takes, so a late run cannot bring back the series of a check
    /// removed or moved away (see [`crate::runner::Registration`]).
    pub(super) fn record(&self, report: &RunReport<'_>) {
        let info = self.info_values(report.spec);
        let mut checks = lock(&self.0.checks);
        if !report.registration.live() {
            return;
        }
        let series = checks.entry(report.key.clone()).or_default();
        if series.info != info {
            series.info = info;
        }
        series.consecutive_failures = report.status.consecutive_failures;
        let outcome = report.outcome;
        if did_not_run(outcome.reason) {
            if outcome.reason != Reason::Reconciling {
                series.success = None;
            }
            return;
        }
        let success = outcome.success();
        series.in_maintenance = Some(report.in_maintenance);
        series.success = Some(success);
        if outcome.facts.kind.timed() {
            let seconds = outcome.duration.as_secs_f64();
            series.duration.get_or_insert_default().observe(seconds);
        }
        let at = outcome.started_at.as_millisecond() as f64 / 1000.0;
        series.last_run = Some(at);
        if success {
            series.last_success = Some(at);
        }
        match series
            .runs
            .iter_mut()
            .find(|(s, r, _)| *s == success && *r == outcome.reason)
        {
            Some((_, _, count)) => *count += 1,
            None => series.runs.push((success, outcome.reason, 1)),
        }
        for (phase, spent) in outcome.phases.iter() {
            match series.phases.iter_mut().find(|(p, _)| *p == phase) {
                Some((_, value)) => *value = spent.as_secs_f64(),
                None => series.phases.push((phase, spent.as_secs_f64())),
            }
        }
        series.kinds.record(&outcome.facts, report.spec.info.kind);
    }

    /// The last state `spec`'s status records (verdict, failures in a row, last run and
    /// success), shown until its first run here reports: a check that moves between replicas
    /// or outlives a restart keeps its `canary_check_success` sample, and its alert its `for`.
    pub(super) fn seed(
        &self,
        spec: &RunnerSpec,
        status: &HealthCheckStatus,
        registration: &Registration,
    ) {
        let Some(last) = (status.last_result.as_ref()).filter(|last| !did_not_run(last.reason))
        else {
            return;
        };
        let info = self.info_values(spec);
        let mut checks = lock(&self.0.checks);
        if registration.removed() {
            return;
        }
        let series = checks.entry(spec.key.clone()).or_default();
        if series.success.is_some() {
            // A run reported first.
            return;
        }
        let seconds = |time: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            time.as_ref().map(|t| t.0.as_millisecond() as f64 / 1000.0)
        };
        series.info = info;
        // The alerts leave out checks in maintenance; a seeded verdict must not escape that.
        let now = jiff::Timestamp::now();
        series.in_maintenance = Some(spec.schedule.maintenance.contains(now));
        series.success = Some(last.success);
        series.consecutive_failures = status.consecutive_failures;
        series.last_run = seconds(&status.last_run_time);
        series.last_success = seconds(&status.last_success_time);
    }

    fn info_values(&self, spec: &RunnerSpec) -> Box<[String]> {
        let info = &spec.info;
        let mut values = vec![info.kind.to_string(), info.target.clone()];
        values.extend(
            (self.0.allowlist.iter())
                .map(|(label, _)| info.labels.get(label).cloned().unwrap_or_default()),
        );
        values.into_boxed_slice()
    }

    /// Removes every series of a check.
    pub(super) fn forget(&self, key: &CheckKey) {
        lock(&self.0.checks).remove(key);
    }
}

/// Label pairs sorted by name, as the registry's own families write them.
fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    let mut labels: Vec<LabelPair> = (pairs.iter())
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_string());
            pair.set_value(value.to_string());
            pair
        })
        .collect();
    labels.sort_by(|a, b| a.name().cmp(b.name()));
    labels
}

fn gauge(pairs: &[(&str, &str)], value: f64) -> proto::Metric {
    let mut gauge = proto::Gauge::default();
    gauge.set_value(value);
    let mut metric = proto::Metric::from_label(labels(pairs));
    metric.set_gauge(gauge);
    metric
}

fn counter(pairs: &[(&str, &str)], value: f64) -> proto::Metric {
    let mut counter = proto::Counter::default();
    counter.set_value(value);
    let mut metric = proto::Metric::from_label(labels(pairs));
    metric.set_counter(counter);
    metric
}

fn histogram(pairs: &[(&str, &str)], durations: &Durations) -> proto::Metric {
    let mut cumulative = 0;
    let buckets = (DURATION_BUCKETS.iter().zip(durations.buckets))
        .map(|(bound, count)| {
            cumulative += count;
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(*bound);
            bucket.set_cumulative_count(cumulative);
            bucket
        })
        .collect();
    let mut histogram = proto::Histogram::default();
    histogram.set_sample_count(durations.count);
    histogram.set_sample_sum(durations.sum);
    histogram.set_bucket(buckets);
    let mut metric = proto::Metric::from_label(labels(pairs));
    metric.set_histogram(histogram);
    metric
}

/// The check's labels and one more.
fn with<'a>(
    check: &[(&'a str, &'a str); 2],
    name: &'a str,
    value: &'a str,
) -> [(&'a str, &'a str); 3] {
    [check[0], check[1], (name, value)]
}

impl CheckSeries {
    /// Samples of `family` for the check `key`.
    fn samples(
        &self,
        family: Family,
        key: &CheckKey,
        info_labels: &[String],
    ) -> Vec<proto::Metric> {
        let check = [
            ("namespace", key.namespace.as_str()),
            ("name", key.name.as_str()),
        ];
        let one = |value: Option<f64>| value.map(|v| gauge(&check, v)).into_iter().collect();
        let flag = |value: Option<bool>| one(value.map(|v| f64::from(u8::from(v))));
        match family {
            Family::Success => flag(self.success),
            Family::Duration => (self.duration.iter())
                .map(|d| histogram(&check, d))
                .collect(),
            Family::PhaseDuration => (self.phases.iter())
                .map(|(p, v)| gauge(&with(&check, "phase", p), *v))
                .collect(),
            Family::Runs => (self.runs.iter())
                .map(|(success, reason, count)| {
                    let result = if *success { "success" } else { "failure" };
                    let pairs = [
                        check[0],
                        check[1],
                        ("result", result),
                        ("reason", reason.as_str()),
                    ];
                    counter(&pairs, *count as f64)
                })
                .collect(),
            Family::LastRun => one(self.last_run),
            Family::LastSuccess => one(self.last_success),
            Family::ConsecutiveFailures => one(Some(self.consecutive_failures as f64)),
            Family::InMaintenance => flag(self.in_maintenance),
            Family::Kind(kind) => (self.kinds.sample(kind).into_iter())
                .map(|(label, value)| match label {
                    Some((name, label)) => gauge(&with(&check, name, label), value),
                    None => gauge(&check, value),
                })
                .collect(),
            Family::Info => {
                let values = [key.namespace.as_str(), key.name.as_str()]
                    .into_iter()
                    .chain(self.info.iter().map(String::as_str));
                let pairs: Vec<(&str, &str)> =
                    info_labels.iter().map(String::as_str).zip(values).collect();
                vec![gauge(&pairs, 1.0)]
            }
        }
    }
}

impl Collector for CheckFamilies {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().map(|(_, desc)| desc).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let checks = lock(&self.0.checks);
        (self.0.descs.iter())
            .map(|(which, desc)| {
                let mut family = MetricFamily::default();
                family.set_name(desc.fq_name.clone());
                family.set_help(desc.help.clone());
                family.set_field_type(which.kind());
                let metrics = (checks.iter())
                    .flat_map(|(key, series)| series.samples(*which, key, &self.0.info_labels))
                    .collect();
                family.set_metric(metrics);
                family
            })
            .collect()
    }
}
