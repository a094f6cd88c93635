//! The hub's verdict on a check with `spec.locations`: pure, over an explicit monotonic clock
//! (every time is a [`Duration`] since the hub's own origin), so its tests run on a virtual
//! clock and cross-cluster clock skew cannot reach it: a report's `lastRunTime` is shown,
//! never compared.
//!
//! Each listed location is `Passing` or `Failing` by its report's Ready (the spoke already
//! applied the check's thresholds), `Pending` (no report yet, or a report saying Unknown), or
//! `Stale`: the hub has not seen its report change for max(3 intervals, 2 x the heartbeat the
//! report declares), or (no report) for 3 intervals since it began aggregating the check.
//! Then Ready is False when failing >= minFailing, True when failing + stale + pending <
//! minFailing, else Unknown (`LocationsStale`, or `Pending` when nothing is stale).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{CheckReportStatus, LocationStatus, ReadyStatus, Reason, ValidLocations};

/// Runs without a change after which a location is stale (with 2 of its heartbeats).
pub const STALE_INTERVALS: u32 = 3;

/// One location's report as the hub observed it.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub status: Option<&'a CheckReportStatus>,
    /// `spec.heartbeatSeconds` of the report.
    pub heartbeat: Duration,
    /// When the hub first saw this version (resourceVersion) of the report.
    pub seen: Duration,
}

/// What one location counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationState {
    Passing,
    Failing,
    /// No report yet (within the bound), or the report says Unknown.
    Pending,
    Stale,
}

/// The aggregate verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub ready: ReadyStatus,
    pub reason: Reason,
    /// E.g. `eu-west Timeout, us-east Timeout; ap-south ok`.
    pub message: String,
    /// Some locations fail, fewer than `minFailing`.
    pub degraded: bool,
    /// In the order `spec.locations.names` lists them.
    pub locations: Vec<LocationStatus>,
    pub states: Vec<LocationState>,
    pub passing: usize,
    pub failing: usize,
    pub stale: usize,
    /// The probe duration of the fresh report that ran last (by its own clock: display only).
    pub duration: Option<String>,
}

impl Aggregate {
    /// `status.locationsPassing`: `2/3`.
    pub fn passing_column(&self) -> String {
        format!("{}/{}", self.passing, self.locations.len())
    }
}

/// How long a report may stay unchanged: max(3 intervals, 2 x its heartbeat).
pub fn stale_after(interval: Duration, heartbeat: Option<Duration>) -> Duration {
    let runs = interval.saturating_mul(STALE_INTERVALS);
    heartbeat.map_or(runs, |h| runs.max(h.saturating_mul(2)))
}

/// The verdict at `now` for `locations`, given each location's report (`report(name)`) and
/// `since`, when the hub began aggregating the check.
pub fn aggregate<'a>(
    locations: &ValidLocations,
    interval: Duration,
    report: impl Fn(&str) -> Option<Observed<'a>>,
    since: Duration,
    now: Duration,
) -> Aggregate {
    let mut statuses = Vec::with_capacity(locations.names.len());
    let mut states = Vec::with_capacity(locations.names.len());
    let mut latest: Option<(&Time, &str)> = None;
    for name in &locations.names {
        let observed = report(name);
        let (state, status) = judge(name, observed, interval, since, now);
        let ran = observed.and_then(|o| o.status).filter(|_| !status.stale);
        if let Some((Some(at), Some(took))) = ran.map(|s| (&s.last_run_time, &s.duration))
            && latest.is_none_or(|(last, _)| at.0 > last.0)
        {
            latest = Some((at, took));
        }
        states.push(state);
        statuses.push(status);
    }
    let count = |s: LocationState| states.iter().filter(|&&x| x == s).count();
    let (passing, failing) = (count(LocationState::Passing), count(LocationState::Failing));
    let stale = count(LocationState::Stale);
    let unknown = stale + count(LocationState::Pending);
    let min = locations.min_failing.max(1);
    let (ready, reason) = if failing >= min {
        (ReadyStatus::False, most_common_failure(&statuses, &states))
    } else if failing + unknown < min {
        (ReadyStatus::True, Reason::Succeeded)
    } else if stale > 0 {
        (ReadyStatus::Unknown, Reason::LocationsStale)
    } else {
        (ReadyStatus::Unknown, Reason::Pending)
    };
    Aggregate {
        ready,
        reason,
        message: message(&statuses, &states),
        degraded: failing > 0 && failing < min,
        locations: statuses,
        states,
        passing,
        failing,
        stale,
        duration: latest.map(|(_, took)| took.to_string()),
    }
}

/// One location's state and status line.
fn judge(
    name: &str,
    report: Option<Observed<'_>>,
    interval: Duration,
    since: Duration,
    now: Duration,
) -> (LocationState, LocationStatus) {
    let Some(report) = report else {
        let stale = now.saturating_sub(since) >= stale_after(interval, None);
        let state = if stale {
            LocationState::Stale
        } else {
            LocationState::Pending
        };
        let status = LocationStatus {
            name: name.into(),
            ready: ReadyStatus::Unknown.as_str().into(),
            stale,
            ..LocationStatus::default()
        };
        return (state, status);
    };
    let stale = now.saturating_sub(report.seen) >= stale_after(interval, Some(report.heartbeat));
    let ready = (report.status)
        .and_then(|s| s.ready.as_deref())
        .map_or(ReadyStatus::Unknown, ReadyStatus::parse);
    let state = match (stale, ready) {
        (true, _) => LocationState::Stale,
        (false, ReadyStatus::True) => LocationState::Passing,
        (false, ReadyStatus::False) => LocationState::Failing,
        (false, ReadyStatus::Unknown) => LocationState::Pending,
    };
    let shown = if stale { ReadyStatus::Unknown } else { ready };
    let status = LocationStatus {
        name: name.into(),
        ready: shown.as_str().into(),
        reason: report.status.and_then(|s| s.reason.clone()),
        last_run_time: report.status.and_then(|s| s.last_run_time.clone()),
        stale,
    };
    (state, status)
}

/// A reason of the closed set, by name.
pub fn parse_reason(name: &str) -> Option<Reason> {
    Reason::ALL.iter().copied().find(|r| r.as_str() == name)
}

/// The reason most failing locations give (the first listed on a tie); one outside the
/// closed set (a newer spoke) reads as `UnexpectedStatus`.
fn most_common_failure(statuses: &[LocationStatus], states: &[LocationState]) -> Reason {
    let failing: Vec<Reason> = (statuses.iter().zip(states))
        .filter(|(_, state)| **state == LocationState::Failing)
        .map(|(s, _)| {
            (s.reason.as_deref())
                .and_then(parse_reason)
                .unwrap_or(Reason::UnexpectedStatus)
        })
        .collect();
    let mut best: Option<(Reason, usize)> = None;
    for reason in &failing {
        let n = failing.iter().filter(|r| *r == reason).count();
        if best.is_none_or(|(_, most)| n > most) {
            best = Some((*reason, n));
        }
    }
    best.map_or(Reason::UnexpectedStatus, |(reason, _)| reason)
}

/// Failing locations with their reasons, then the others: `eu-west Timeout, us-east
/// Timeout; ap-south ok`.
fn message(statuses: &[LocationStatus], states: &[LocationState]) -> String {
    let mut failing = Vec::new();
    let mut others = Vec::new();
    for (status, state) in statuses.iter().zip(states) {
        let name = &status.name;
        match state {
            LocationState::Failing => failing.push(format!(
                "{name} {}",
                status.reason.as_deref().unwrap_or("failing")
            )),
            LocationState::Passing => others.push(format!("{name} ok")),
            LocationState::Pending => others.push(format!("{name} pending")),
            LocationState::Stale => others.push(format!("{name} stale")),
        }
    }
    match (failing.is_empty(), others.is_empty()) {
        (true, _) => others.join(", "),
        (false, true) => failing.join(", "),
        (false, false) => format!("{}; {}", failing.join(", "), others.join(", ")),
    }
}

/// A report's `lastRunTime`, for the check's own `lastRunTime`: the latest of the fresh
/// locations' (display only: never compared with the hub's clock).
pub fn last_run(aggregate: &Aggregate) -> Option<Time> {
    (aggregate.locations.iter())
        .filter(|l| !l.stale)
        .filter_map(|l| l.last_run_time.clone())
        .max_by_key(|t| t.0)
}
