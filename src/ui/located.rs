//! Checks with `spec.locations` on the status page: no runner holds them (spokes probe them),
//! so the hub's aggregation puts here what it last judged of each check it owns, and the page
//! shows them beside the runners' checks, with each location's state and `Degraded`.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use super::model::{Check, Detail, Span, shown};
use crate::{
    api::{CheckKey, DEGRADED, HealthCheckStatus, ReadyStatus},
    lock,
    runner::{CheckInfo, CheckState, PackedSpec, history::Window},
};

/// What the hub last judged of one check.
#[derive(Debug, Clone)]
pub struct LocatedCheck {
    pub key: CheckKey,
    pub info: Arc<CheckInfo>,
    pub status: HealthCheckStatus,
}

/// The checks with locations this replica aggregates (filled by the hub).
#[derive(Debug, Default)]
pub struct Located(Mutex<BTreeMap<CheckKey, Arc<LocatedCheck>>>);

impl Located {
    pub fn set(&self, check: LocatedCheck) {
        lock(&self.0).insert(check.key.clone(), Arc::new(check));
    }

    pub fn remove(&self, key: &CheckKey) {
        lock(&self.0).remove(key);
    }

    pub fn get(&self, key: &CheckKey) -> Option<Arc<LocatedCheck>> {
        lock(&self.0).get(key).cloned()
    }

    /// Every check, by key.
    pub fn all(&self) -> Vec<Arc<LocatedCheck>> {
        lock(&self.0).values().cloned().collect()
    }
}

/// No runs: the uptime windows of a check this replica does not probe.
const NO_RUNS: Window = Window {
    runs: 0,
    successes: 0,
    uptime: None,
    average_latency_ms: None,
};

impl LocatedCheck {
    /// The page's state of the aggregate Ready.
    pub fn state(&self) -> CheckState {
        match self.status.ready() {
            Some(ReadyStatus::True) => CheckState::Ready,
            Some(ReadyStatus::False) => CheckState::Failing,
            _ => CheckState::Pending,
        }
    }

    /// As a card; messages and targets left out when `redact`.
    pub fn check(&self, redact: bool, now: i64) -> Check {
        let ready = self.status.ready_condition();
        let degraded =
            (self.status.conditions.iter()).any(|c| c.type_ == DEGRADED && c.status == "True");
        Check {
            key: self.key.clone(),
            group: self.info.group(&self.key).to_string(),
            kind: self.info.kind,
            target: (!redact).then(|| self.info.target.clone()),
            state: self.state(),
            reason: self.status.ready_reason(),
            message: ready.map(|c| c.message.clone()).filter(|_| !redact),
            message_reason: self.status.ready_reason(),
            last_run: (self.status.last_run_time.as_ref()).map(|t| t.0.as_second()),
            results: Vec::new(),
            uptime: Span::ALL.map(|_| NO_RUNS),
            tls_not_after: None,
            since: now,
            stored: false,
            prometheus: None,
            locations: self.status.locations.clone(),
            degraded,
        }
    }

    /// As a detail page: the card, the spec; no history (the spokes hold it).
    pub fn detail(&self, redact: bool, now: i64) -> Detail {
        Detail {
            check: self.check(redact, now),
            transitions: Vec::new(),
            hours: Vec::new(),
            last_result: None,
            tls: None,
            spec: (self.info.spec.as_ref())
                .filter(|_| !redact)
                .and_then(PackedSpec::parse)
                .as_ref()
                .map(shown),
            probed_by: None,
            last_ping: None,
            chart: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::{
        api::LocationStatus,
        runner::{Scheduler, SchedulerConfig},
        ui::{
            model::Source,
            page::{PageContext, card, detail},
        },
    };

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: Time(jiff::Timestamp::now()),
        }
    }

    fn location(name: &str, ready: &str, reason: &str, stale: bool) -> LocationStatus {
        LocationStatus {
            name: name.into(),
            ready: ready.into(),
            reason: Some(reason.into()),
            last_run_time: None,
            stale,
        }
    }

    fn source(hidden: bool) -> Source {
        let located = Arc::new(Located::default());
        let message = "eu-west Timeout; us-east ok, ap-south stale";
        located.set(LocatedCheck {
            key: CheckKey {
                namespace: "shop".into(),
                name: "api".into(),
            },
            info: Arc::new(CheckInfo {
                kind: "http",
                target: "https://api.shop.example/".into(),
                labels: Default::default(),
                hidden,
                spec: None,
            }),
            status: HealthCheckStatus {
                conditions: vec![
                    condition("Ready", "True", "Succeeded", message),
                    condition(DEGRADED, "True", "Succeeded", message),
                ],
                locations: vec![
                    location("eu-west", "False", "Timeout", false),
                    location("us-east", "True", "Succeeded", false),
                    location("ap-south", "Unknown", "Succeeded", true),
                ],
                locations_passing: Some("1/3".into()),
                ..HealthCheckStatus::default()
            },
        });
        Source {
            scheduler: Scheduler::new(SchedulerConfig::default(), vec![]),
            redact: false,
            located: Some(located),
        }
    }

    fn ctx() -> PageContext {
        PageContext {
            now: 1_800_000_000,
            standby: false,
            redacted: false,
            forwarding: false,
            peers: Vec::new(),
        }
    }

    #[test]
    fn a_check_with_locations_shows_each_location_and_degraded() {
        let source = source(false);
        let checks = source.checks(1_800_000_000);
        assert_eq!(checks.len(), 1, "the aggregated check is listed");
        let check = &checks[0];
        assert_eq!(check.state, CheckState::Ready);
        assert!(check.degraded);
        let html = card(check, &ctx()).into_string();
        assert!(html.contains("degraded"), "{html}");
        for shown in [
            r#"data-state="failing">eu-west <span class="dim">Timeout"#,
            r#"data-state="ready">us-east <span class="dim">ok"#,
            r#"data-state="stale">ap-south <span class="dim">stale"#,
        ] {
            assert!(html.contains(shown), "{shown} not in {html}");
        }
        let key = check.key.clone();
        assert!(source.holds(&key));
        let page = detail(&source.detail(&key, 1_800_000_000).unwrap(), &ctx()).into_string();
        assert!(page.contains("<h2>Locations</h2>"), "{page}");
    }

    #[test]
    fn a_hidden_check_with_locations_is_not_shown() {
        let source = source(true);
        assert!(source.checks(1_800_000_000).is_empty());
        let key = CheckKey {
            namespace: "shop".into(),
            name: "api".into(),
        };
        assert!(source.check(&key, 1_800_000_000).is_none());
    }
}
