//! The status an aggregate verdict gives a check (pure): Ready, Degraded and Probed
//! conditions (each keeping its lastTransitionTime while its status holds), the locations and
//! the LOCATIONS column; and the change of Ready worth an Event, judged against the last
//! settled Ready (True or False), so a spell of `LocationsStale` between two failures neither
//! re-announces the failure nor hides a recovery.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::aggregate::{Aggregate, last_run};
use crate::{
    api::{DEGRADED, HealthCheckStatus, LastResult, PROBED, READY, ReadyStatus},
    readiness::Transition,
};

/// Longest condition message (the API convention's limit).
const MAX_MESSAGE: usize = 1024;

/// The next status, and the transition it makes, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Next {
    pub status: HealthCheckStatus,
    pub transition: Option<Transition>,
    /// Ready as last settled (True or False), for the next judgement.
    pub settled: Option<ReadyStatus>,
}

/// The status of a check with locations after `aggregate`, from `previous`.
pub fn next_status(
    aggregate: &Aggregate,
    previous: &HealthCheckStatus,
    settled: Option<ReadyStatus>,
    generation: Option<i64>,
    now: &Time,
) -> Next {
    let mut status = HealthCheckStatus {
        observed_generation: generation,
        last_run_time: last_run(aggregate),
        locations: aggregate.locations.clone(),
        locations_passing: Some(aggregate.passing_column()),
        // Always whole: a check that was probed here before keeps no half of its last result
        // (server-side apply drops the fields, maybe not the object, and the schema then
        // refuses it for the fields it requires).
        last_result: Some(Box::new(LastResult::new(
            aggregate.ready == ReadyStatus::True,
            aggregate.reason,
            truncate(&aggregate.message),
            (aggregate.duration.clone()).unwrap_or_else(|| "0.000s".into()),
        ))),
        ..HealthCheckStatus::default()
    };
    let message = truncate(&aggregate.message);
    let ready = aggregate.ready.as_str();
    let degraded = if aggregate.degraded { "True" } else { "False" };
    let verdict = aggregate.ready != ReadyStatus::Unknown;
    let probed = if verdict { "True" } else { "False" };
    let conditions = [
        (READY, ready, aggregate.reason, message.clone()),
        (DEGRADED, degraded, aggregate.reason, message),
        (PROBED, probed, aggregate.reason, probed_message(verdict)),
    ];
    for (type_, value, reason, message) in conditions {
        let since = (previous.conditions.iter())
            .find(|c| c.type_ == type_ && c.status == value)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
        status.conditions.push(Condition {
            type_: type_.into(),
            status: value.into(),
            reason: reason.as_str().into(),
            message,
            observed_generation: generation,
            last_transition_time: since,
        });
    }
    let from = settled.or(previous.ready().filter(|r| *r != ReadyStatus::Unknown));
    let transition = (verdict && from != Some(aggregate.ready)).then(|| Transition {
        from,
        to: aggregate.ready,
        reason: aggregate.reason,
        message: aggregate.message.clone(),
    });
    Next {
        status,
        transition,
        settled: if verdict { Some(aggregate.ready) } else { from },
    }
}

fn probed_message(verdict: bool) -> String {
    if verdict {
        "the locations' reports give a verdict".into()
    } else {
        "too few locations' reports for a verdict".into()
    }
}

fn truncate(message: &str) -> String {
    message.chars().take(MAX_MESSAGE).collect()
}
