//! What the status page shows of a check, copied out of the scheduler under its locks and
//! redacted once, so the pages, the API and the badges read the same figures (the runner's
//! history, fed by the runs that feed the metrics).

use std::sync::Arc;

use super::located::{Located, LocatedCheck};
use crate::{
    api::{
        CheckKey, HealthCheckSpec, HealthCheckStatus, LastPing, LastResult, LocationStatus, Reason,
        TlsFacts, redact,
    },
    runner::{
        CheckState, PackedSpec, RunnerSpec, RunnerView, Scheduler,
        history::{Hour, RunEntry, TransitionEntry, Window},
    },
};

/// The windows uptime is reported over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Day,
    Week,
    Month,
}

impl Span {
    pub const ALL: [Span; 3] = [Span::Day, Span::Week, Span::Month];

    /// As the API and badges spell it.
    pub fn label(self) -> &'static str {
        match self {
            Span::Day => "24h",
            Span::Week => "7d",
            Span::Month => "30d",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.label() == text)
    }

    pub fn hours(self) -> u32 {
        match self {
            Span::Day => 24,
            Span::Week => 7 * 24,
            Span::Month => 30 * 24,
        }
    }
}

/// What the overview and the list API show of one check.
#[derive(Debug, Clone)]
pub struct Check {
    pub key: CheckKey,
    pub group: String,
    /// `http`, `tcp`, `tls`; empty when the spec is invalid.
    pub kind: &'static str,
    /// `None` when redacted.
    pub target: Option<String>,
    /// The runner's state, in the names the metrics and `/healthz` use.
    pub state: CheckState,
    pub reason: Option<Reason>,
    /// What the card says ([`said`]); `None` when redacted.
    pub message: Option<String>,
    /// The reason `message` belongs to (kept when redacted).
    pub message_reason: Option<Reason>,
    /// Unix seconds.
    pub last_run: Option<i64>,
    /// The last results, oldest first.
    pub results: Vec<RunEntry>,
    /// Over 24h, 7d, 30d ([`Span::ALL`] order).
    pub uptime: [Window; 3],
    pub tls_not_after: Option<jiff::Timestamp>,
    /// Unix seconds since which the history has data.
    pub since: i64,
    /// The hourly history is kept in status too (`status.history`), not only in memory.
    pub stored: bool,
    /// With `--prometheus-url`: the uptime windows and `since` are Prometheus's, or why not.
    pub prometheus: Option<PromNote>,
    /// A check with `spec.locations`: each location's verdict (empty otherwise).
    pub locations: Vec<LocationStatus>,
    /// Some locations fail, fewer than `minFailing` (the `Degraded` condition).
    pub degraded: bool,
}

/// Whether Prometheus answered for a check (`--prometheus-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromNote {
    /// As shown (no userinfo, query or fragment).
    pub url: String,
    /// Why Prometheus's figures are not shown; `None`: they are.
    pub error: Option<String>,
}

impl Check {
    pub fn window(&self, span: Span) -> Window {
        self.uptime[Span::ALL.iter().position(|s| *s == span).unwrap_or(0)]
    }
}

/// What the detail page and the check API add.
#[derive(Debug, Clone)]
pub struct Detail {
    pub check: Check,
    pub transitions: Vec<TransitionEntry>,
    /// Hours with runs over the last 30 days, oldest first.
    pub hours: Vec<Hour>,
    pub last_result: Option<LastResult>,
    pub tls: Option<TlsFacts>,
    /// The spec, its URL shown as everywhere else; `None` when redacted or not known.
    pub spec: Option<HealthCheckSpec>,
    /// The replica whose run status last recorded (`status.probedBy`): with `--sharding
    /// shards`, the owner, so a reader of another replica's page knows whose history this is.
    pub probed_by: Option<String>,
    /// Heartbeat checks: when the last ping arrived and what it said.
    pub last_ping: Option<(jiff::Timestamp, LastPing)>,
    /// With `--prometheus-url`, when it answered: the latency chart's points from there.
    pub chart: Option<Vec<super::chart::Point>>,
}

/// How the page reads the scheduler.
#[derive(Clone)]
pub struct Source {
    pub scheduler: Scheduler,
    /// Hide targets, messages, certificate names and specs.
    pub redact: bool,
    /// The checks with `spec.locations` this replica aggregates (an operator's hub).
    pub located: Option<Arc<Located>>,
}

impl Source {
    /// Whether this replica runs `key` (hidden or not).
    pub fn holds(&self, key: &CheckKey) -> bool {
        let mut held = false;
        self.scheduler.visit_one(key, |_, _| held = true);
        held || self.located(key).is_some()
    }

    /// The check with locations `key`, when this replica aggregates it (and it is not hidden).
    pub(super) fn located(&self, key: &CheckKey) -> Option<Arc<LocatedCheck>> {
        (self.located.as_ref()?.get(key)).filter(|c| !c.info.hidden)
    }

    /// The checks with locations this replica aggregates and shows.
    pub(super) fn located_all(&self) -> Vec<Arc<LocatedCheck>> {
        let all = self.located.as_ref().map(|l| l.all()).unwrap_or_default();
        all.into_iter().filter(|c| !c.info.hidden).collect()
    }

    /// Every check not hidden from the page, sorted by namespace and name.
    pub fn checks(&self, now: i64) -> Vec<Check> {
        let mut checks = Vec::new();
        self.scheduler.visit(|spec, view| {
            if !spec.info.hidden {
                checks.push(self.check_of(spec, view, now));
            }
        });
        let located = self.located_all();
        checks.extend(located.iter().map(|c| c.check(self.redact, now)));
        checks.sort_by(|a, b| a.key.cmp(&b.key));
        checks
    }

    /// One check; `None` when unknown or hidden.
    pub fn check(&self, key: &CheckKey, now: i64) -> Option<Check> {
        (self.visible(key, |spec, view| self.check_of(spec, view, now)))
            .or_else(|| Some(self.located(key)?.check(self.redact, now)))
    }

    /// One check with its history; `None` when unknown or hidden.
    pub fn detail(&self, key: &CheckKey, now: i64) -> Option<Detail> {
        (self.visible(key, |spec, view| self.detail_of(spec, view, now)))
            .or_else(|| Some(self.located(key)?.detail(self.redact, now)))
    }

    /// What `read` makes of the runner of `key`, unless it is unknown or hidden.
    fn visible<T>(
        &self,
        key: &CheckKey,
        read: impl FnOnce(&RunnerSpec, &RunnerView<'_>) -> T,
    ) -> Option<T> {
        let mut found = None;
        self.scheduler.visit_one(key, |spec, view| {
            if !spec.info.hidden {
                found = Some(read(spec, view));
            }
        });
        found
    }

    fn check_of(&self, spec: &RunnerSpec, view: &RunnerView<'_>, now: i64) -> Check {
        let status = view.status;
        let history = view.history;
        let (message_reason, message) = said(status, view.state);
        let tls_not_after = (status.tls.as_deref()).and_then(earliest_expiry);
        Check {
            key: spec.key.clone(),
            group: spec.info.group(&spec.key).to_string(),
            kind: spec.info.kind,
            target: (!self.redact).then(|| spec.info.target.clone()),
            state: view.state,
            reason: status.ready_reason(),
            message: message.filter(|_| !self.redact),
            message_reason,
            last_run: status.last_run_time.as_ref().map(|t| t.0.as_second()),
            results: history.results().copied().collect(),
            uptime: Span::ALL.map(|span| history.window(now, span.hours())),
            tls_not_after,
            since: history.since,
            stored: history.stored_in_status(),
            prometheus: None,
            locations: Vec::new(),
            degraded: false,
        }
    }

    fn detail_of(&self, spec: &RunnerSpec, view: &RunnerView<'_>, now: i64) -> Detail {
        let detail = Detail {
            check: self.check_of(spec, view, now),
            transitions: view.history.transitions().cloned().collect(),
            hours: view.history.hours(now),
            last_result: view.status.last_result.as_deref().cloned(),
            tls: view.status.tls.as_deref().cloned(),
            spec: (spec.info.spec.as_ref())
                .and_then(PackedSpec::parse)
                .as_ref()
                .map(shown),
            probed_by: view.status.probed_by.clone(),
            last_ping: (view.status.last_ping_time.as_ref())
                .zip(view.status.last_ping.as_deref().cloned())
                .map(|(at, ping)| (at.0, ping)),
            chart: None,
        };
        match self.redact {
            true => redacted(detail),
            false => detail,
        }
    }
}

/// `detail` as `--ui-redact` shows it: no messages, DNS answers or server, certificate names
/// or serial, gRPC status, spec, or replica name (`probedBy`).
fn redacted(mut detail: Detail) -> Detail {
    (detail.transitions.iter_mut()).for_each(|t| t.message = Box::default());
    if let Some(result) = &mut detail.last_result {
        result.message.clear();
        // DNS answers and the server asked name internal addresses.
        if let Some(dns) = &mut result.dns {
            dns.answers.clear();
            dns.server.clear();
        }
        if let Some(grpc) = &mut result.grpc {
            (grpc.status, grpc.status_code) = (None, None);
        }
    }
    if let Some(tls) = &mut detail.tls {
        (tls.subject, tls.issuer, tls.serial_number) = (None, None, None);
        tls.dns_names.clear();
    }
    (detail.spec, detail.probed_by) = (None, None);
    // A job's output and run id may name internal hosts and data.
    if let Some((_, ping)) = &mut detail.last_ping {
        (ping.message, ping.run_id) = (String::new(), None);
    }
    detail
}

/// The message a card shows and the reason it belongs to: the Ready condition's when the state
/// is about the schedule or the spec (maintenance, suspended, invalid, blocked), else the last
/// result's, so a pending check shows why its runs fail (`TargetDenied`), not `Pending`.
fn said(status: &HealthCheckStatus, state: CheckState) -> (Option<Reason>, Option<String>) {
    let condition = (status.ready_condition())
        .filter(|c| !c.message.is_empty())
        .map(|c| (status.ready_reason(), c.message.clone()));
    let result = (status.last_result.as_ref())
        .filter(|r| !r.message.is_empty())
        .map(|r| (Some(r.reason), r.message.clone()));
    let about_state = matches!(
        state,
        CheckState::Maintenance | CheckState::Suspended | CheckState::Invalid | CheckState::Blocked
    );
    let picked = match about_state {
        true => condition.or(result),
        false => result.or(condition),
    };
    picked.map_or((None, None), |(reason, message)| (reason, Some(message)))
}

/// The earlier of the leaf's and the chain's expiry.
fn earliest_expiry(tls: &TlsFacts) -> Option<jiff::Timestamp> {
    let leaf = tls.not_after.as_ref().map(|t| t.0);
    let chain = tls.chain_earliest_not_after.as_ref().map(|t| t.0);
    match (leaf, chain) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Stands for an inline header or metadata value on the page and in the API.
pub const SET: &str = "<set>";

/// The spec with its URL shown as everywhere else (no userinfo, query or fragment) and inline
/// header and gRPC metadata values as [`SET`]: they are often credentials (a bearer token
/// written inline), and values from Secrets are not shown either.
pub(super) fn shown(spec: &HealthCheckSpec) -> HealthCheckSpec {
    let mut shown = spec.clone();
    let hide = |headers: &mut Vec<crate::api::HttpHeader>| {
        for header in headers.iter_mut().filter(|h| h.value.is_some()) {
            header.value = Some(SET.into());
        }
    };
    if let Some(http) = &mut shown.http {
        if let Ok(url) = url::Url::parse(&http.url) {
            http.url = redact(&url);
        }
        hide(&mut http.headers);
    }
    if let Some(grpc) = &mut shown.grpc {
        hide(&mut grpc.metadata);
    }
    shown
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
