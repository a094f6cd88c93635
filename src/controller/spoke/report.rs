//! What a spoke writes into the hub for one (check, location): the [`CheckReport`] built from
//! the status the check's runner reported (so the check's own thresholds decide `ready`, as
//! they decide a local check's Ready), and whether a new report is worth a write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use kube::Resource;
use serde_json::{Value, json};

use crate::api::{
    CheckKey, CheckReport, CheckReportStatus, HealthCheck, HealthCheckStatus, READY, ReadyStatus,
    report_name,
};

/// Label of every report: its location (a spoke lists its own reports to resume from them).
pub const LOCATION_LABEL: &str = "canary.dev/location";
/// Longest `status.message` the CRD accepts.
pub const MAX_MESSAGE_CHARS: usize = 1024;
/// Bounds of `spec.heartbeatSeconds` in the CRD.
const HEARTBEAT_SECONDS: std::ops::RangeInclusive<i64> = 1..=86_400;

/// The report's status from the runner's status of the check.
pub fn report_status(status: &HealthCheckStatus) -> CheckReportStatus {
    let ready = status.ready_condition();
    let message = ready
        .map(|c| truncate(&c.message, MAX_MESSAGE_CHARS))
        .filter(|m| !m.is_empty());
    CheckReportStatus {
        ready: Some(
            status
                .ready()
                .unwrap_or(ReadyStatus::Unknown)
                .as_str()
                .into(),
        ),
        reason: ready.map(|c| c.reason.clone()).filter(|r| !r.is_empty()),
        message,
        last_run_time: status.last_run_time.clone(),
        duration: (status.last_result.as_ref())
            .map(|r| r.duration.clone())
            .filter(|d| !d.is_empty()),
        consecutive_failures: status.consecutive_failures,
        probed_by: status.probed_by.clone(),
    }
}

/// Whether `next` says something `last` did not: a change of verdict, reason, prober or of the
/// failure count below `clamp` (the larger threshold; beyond it a count changes nothing). The
/// run's time, duration and message change on every run and are written with the heartbeat.
pub fn changed(last: &CheckReportStatus, next: &CheckReportStatus, clamp: i64) -> bool {
    let state = |s: &CheckReportStatus| {
        (
            s.ready.clone(),
            s.reason.clone(),
            s.probed_by.clone(),
            s.consecutive_failures.min(clamp),
        )
    };
    state(last) != state(next)
}

/// The object part of the report (metadata and spec, applied when the report is created or
/// its check was recreated): named `<check>.<location>` in the check's namespace, owned by the
/// HealthCheck `uid` so the API server's garbage collector deletes it with the check.
pub fn report_object(key: &CheckKey, uid: &str, location: &str, heartbeat_seconds: i64) -> Value {
    let owner = OwnerReference {
        api_version: HealthCheck::api_version(&()).into(),
        kind: HealthCheck::kind(&()).into(),
        name: key.name.clone(),
        uid: uid.into(),
        controller: Some(true),
        // blockOwnerDeletion would need `update` on healthchecks/finalizers in the hub.
        block_owner_deletion: None,
    };
    json!({
        "apiVersion": CheckReport::api_version(&()),
        "kind": CheckReport::kind(&()),
        "metadata": {
            "name": report_name(&key.name, location),
            "namespace": key.namespace,
            "labels": {LOCATION_LABEL: location},
            "ownerReferences": [owner],
        },
        "spec": {
            "check": key.name,
            "location": location,
            "heartbeatSeconds": heartbeat_seconds.clamp(*HEARTBEAT_SECONDS.start(), *HEARTBEAT_SECONDS.end()),
        },
    })
}

/// The status a runner resumes from after a restart: what the location's report says (its
/// verdict and failure count), as if the check's status held it, so thresholds are not reset
/// and a failing location does not turn Unknown for a few runs.
pub fn resumed(report: &CheckReportStatus, generation: Option<i64>) -> HealthCheckStatus {
    let since = (report.last_run_time.clone()).unwrap_or(Time(jiff::Timestamp::now()));
    let ready = report.ready.as_ref().map(|ready| Condition {
        type_: READY.into(),
        status: ready.clone(),
        reason: report.reason.clone().unwrap_or_default(),
        message: report.message.clone().unwrap_or_default(),
        last_transition_time: since,
        observed_generation: generation,
    });
    HealthCheckStatus {
        observed_generation: generation,
        probed_by: report.probed_by.clone(),
        conditions: ready.into_iter().collect(),
        last_run_time: report.last_run_time.clone(),
        consecutive_failures: report.consecutive_failures,
        ..HealthCheckStatus::default()
    }
}

/// The status part of the report, for an apply to its `/status`.
pub fn status_patch(status: &CheckReportStatus) -> Value {
    json!({
        "apiVersion": CheckReport::api_version(&()),
        "kind": CheckReport::kind(&()),
        "status": status,
    })
}

/// `text` cut to at most `max` characters (on a character boundary).
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => text[..at].to_string(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LastResult, Reason};

    fn status(ready: &str, reason: Reason, failures: i64, duration: &str) -> HealthCheckStatus {
        HealthCheckStatus {
            probed_by: Some("spoke-a-0".into()),
            conditions: vec![Condition {
                type_: READY.into(),
                status: ready.into(),
                reason: reason.as_str().into(),
                message: format!("answered in {duration}"),
                last_transition_time: Time(jiff::Timestamp::now()),
                observed_generation: None,
            }],
            last_run_time: Some(Time(jiff::Timestamp::now())),
            consecutive_failures: failures,
            last_result: Some(Box::new(LastResult::new(
                reason == Reason::Succeeded,
                reason,
                format!("answered in {duration}"),
                duration.into(),
            ))),
            ..HealthCheckStatus::default()
        }
    }

    #[test]
    fn a_report_carries_the_runners_verdict_under_the_checks_thresholds() {
        // One failure under failureThreshold 3: the runner still says Ready=True.
        let report = report_status(&status("True", Reason::Succeeded, 1, "0.012s"));
        assert_eq!(report.ready.as_deref(), Some("True"));
        assert_eq!(report.reason.as_deref(), Some("Succeeded"));
        assert_eq!(report.consecutive_failures, 1);
        assert_eq!(report.duration.as_deref(), Some("0.012s"));
        assert_eq!(report.probed_by.as_deref(), Some("spoke-a-0"));
        assert!(report.last_run_time.is_some());
        let failing = report_status(&status("False", Reason::Timeout, 3, "2s"));
        assert_eq!(failing.ready.as_deref(), Some("False"));
        assert_eq!(failing.reason.as_deref(), Some("Timeout"));
    }

    #[test]
    fn a_check_not_run_yet_reports_unknown() {
        let report = report_status(&HealthCheckStatus::default());
        assert_eq!(report.ready.as_deref(), Some("Unknown"));
        assert_eq!(report.reason, None);
        assert_eq!(report.message, None);
    }

    #[test]
    fn long_messages_are_cut_to_what_the_crd_accepts() {
        let mut long = status("False", Reason::BodyMismatch, 1, "1s");
        long.conditions[0].message = "é".repeat(3000);
        let report = report_status(&long);
        assert_eq!(report.message.unwrap().chars().count(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn only_timestamps_durations_and_counts_past_the_thresholds_are_not_a_change() {
        let a = report_status(&status("False", Reason::Timeout, 5, "2.1s"));
        let b = report_status(&status("False", Reason::Timeout, 6, "2.3s"));
        assert!(!changed(&a, &b, 3), "counts past the thresholds");
        assert!(changed(&a, &b, 10), "counts below a threshold are state");
        let ok = report_status(&status("True", Reason::Succeeded, 0, "0.1s"));
        assert!(changed(&a, &ok, 3), "a new verdict");
        let moved = CheckReportStatus {
            probed_by: Some("spoke-a-1".into()),
            ..ok.clone()
        };
        assert!(changed(&ok, &moved, 3), "another replica probes it now");
        let refused = report_status(&status("False", Reason::ConnectionRefused, 5, "0.1s"));
        assert!(changed(&a, &refused, 3), "a new reason");
    }

    #[test]
    fn a_runner_resumes_from_its_locations_report() {
        let failing = report_status(&status("False", Reason::Timeout, 4, "2s"));
        let resumed = resumed(&failing, Some(3));
        assert_eq!(resumed.ready(), Some(ReadyStatus::False));
        assert_eq!(resumed.ready_reason(), Some(Reason::Timeout));
        assert_eq!(resumed.consecutive_failures, 4);
        assert_eq!(resumed.observed_generation, Some(3));
        assert_eq!(
            report_status(&resumed),
            CheckReportStatus {
                duration: None,
                ..failing
            },
            "the same report again"
        );
        let unwritten = super::resumed(&CheckReportStatus::default(), Some(1));
        assert_eq!(
            unwritten.ready(),
            None,
            "no verdict: the runner starts afresh"
        );
    }

    #[test]
    fn the_report_is_named_for_its_check_and_location_and_owned_by_the_check() {
        let key = CheckKey {
            namespace: "shop".into(),
            name: "api".into(),
        };
        let object = report_object(&key, "uid-1", "eu-west", 300);
        assert_eq!(object["metadata"]["name"], "api.eu-west");
        assert_eq!(object["metadata"]["labels"][LOCATION_LABEL], "eu-west");
        assert_eq!(object["metadata"]["namespace"], "shop");
        let owner = &object["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "HealthCheck");
        assert_eq!(owner["uid"], "uid-1");
        assert_eq!(owner["apiVersion"], "canary.dev/v1alpha1");
        assert_eq!(
            object["spec"],
            json!({"check": "api", "location": "eu-west", "heartbeatSeconds": 300})
        );
        let capped = report_object(&key, "uid-1", "eu-west", 1_000_000);
        assert_eq!(capped["spec"]["heartbeatSeconds"], 86_400);
        let report: CheckReport = serde_json::from_value(object).expect("a CheckReport");
        assert_eq!(report.spec.location, "eu-west");
    }
}
