//! CronJob judgement on hand-written CronJobs and Jobs and a virtual clock.

use serde_json::{Value, json};

use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn cronjob(spec: Value, status: Value) -> CronJob {
    let mut spec_with_template = json!({"schedule": "0 6 * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}});
    if let (Some(base), Some(extra)) = (spec_with_template.as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly-backup", "namespace": "ops",
                     "creationTimestamp": "2026-12-01T00:00:00Z"},
        "spec": spec_with_template, "status": status,
    }))
    .unwrap()
}

fn job(scheduled: Timestamp, status: Value) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name("nightly-backup", scheduled), "namespace": "ops",
                     "annotations": {SCHEDULED_TIMESTAMP: scheduled.to_string()}},
        "status": status,
    }))
    .unwrap()
}

const SIX: &str = "2026-12-07T06:00:00Z";

fn verdict(cron: &CronJob, job: Option<&Job>, now: &str) -> Verdict {
    judge(cron, job, at(SIX), at(now), minutes(120))
}

#[test]
fn schedules_read_as_the_cronjob_controller_reads_them() {
    let from = at("2026-12-07T05:30:00Z");
    let next = |schedule: &str, zone: Option<&str>| {
        Schedule::parse(schedule, zone)
            .unwrap()
            .next_after(from)
            .unwrap()
            .to_string()
    };
    assert_eq!(next("0 6 * * *", None), "2026-12-07T06:00:00Z");
    assert_eq!(next("@daily", None), "2026-12-08T00:00:00Z");
    assert_eq!(next("@midnight", None), "2026-12-08T00:00:00Z");
    assert_eq!(next("@hourly", None), "2026-12-07T06:00:00Z");
    assert_eq!(next("@weekly", None), "2026-12-13T00:00:00Z");
    assert_eq!(next("@monthly", None), "2027-01-01T00:00:00Z");
    assert_eq!(next("@yearly", None), "2027-01-01T00:00:00Z");
    assert_eq!(next("0 6 ? * *", None), "2026-12-07T06:00:00Z");
    // 07:00 in Berlin is 06:00 UTC in winter; CRON_TZ= wins over spec.timeZone.
    assert_eq!(
        next("0 7 * * *", Some("Europe/Berlin")),
        "2026-12-07T06:00:00Z"
    );
    assert_eq!(
        next("CRON_TZ=Europe/Berlin 0 7 * * *", Some("Asia/Tokyo")),
        "2026-12-07T06:00:00Z"
    );
    assert_eq!(
        next("TZ=Europe/Berlin 0 7 * * *", None),
        "2026-12-07T06:00:00Z"
    );
    let error = |schedule: &str, zone: Option<&str>| Schedule::parse(schedule, zone).unwrap_err();
    assert!(matches!(error("@every 1h", None), CronJobError::Every(_)));
    assert!(matches!(error("0 6 * *", None), CronJobError::Schedule(..)));
    assert_eq!(
        error("0 6 * * *", Some("Mars/Base")),
        CronJobError::TimeZone("Mars/Base".into())
    );
}

#[test]
fn a_schedule_follows_its_zone_across_a_dst_change() {
    // Berlin moves to summer time on 2026-03-29: 06:00 local is 05:00 UTC before, 04:00 after.
    let schedule = Schedule::parse("0 6 * * *", Some("Europe/Berlin")).unwrap();
    let times = schedule.between(at("2026-03-27T12:00:00Z"), at("2026-03-30T12:00:00Z"), 10);
    let times: Vec<String> = times.iter().map(ToString::to_string).collect();
    assert_eq!(
        times,
        [
            "2026-03-28T05:00:00Z",
            "2026-03-29T04:00:00Z",
            "2026-03-30T04:00:00Z"
        ]
    );
}

#[test]
fn the_job_is_named_by_its_scheduled_minute() {
    assert_eq!(
        job_name("nightly-backup", at(SIX)),
        "nightly-backup-29943720"
    );
}

#[test]
fn a_complete_job_succeeds_and_a_failed_one_names_its_reason() {
    let cron = cronjob(json!({}), json!({}));
    let complete = job(
        at(SIX),
        json!({"startTime": SIX, "completionTime": "2026-12-07T06:20:00Z",
        "conditions": [{"type": "Complete", "status": "True"}]}),
    );
    match verdict(&cron, Some(&complete), "2026-12-07T06:30:00Z") {
        Verdict::Succeeded(message) => assert!(message.contains("20m"), "{message}"),
        other => panic!("{other:?}"),
    }
    let failed = job(
        at(SIX),
        json!({"startTime": SIX, "conditions": [{"type": "Failed",
        "status": "True", "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit"}]}),
    );
    match verdict(&cron, Some(&failed), "2026-12-07T06:30:00Z") {
        Verdict::JobFailed(message) => {
            assert!(message.contains("BackoffLimitExceeded"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_running_job_is_read_again_until_it_runs_too_long() {
    let cron = cronjob(json!({}), json!({}));
    let running = job(
        at(SIX),
        json!({"startTime": "2026-12-07T06:01:00Z", "active": 1}),
    );
    let early = verdict(&cron, Some(&running), "2026-12-07T07:00:00Z");
    assert!(
        matches!(early, Verdict::Running(_)) && !early.is_final(),
        "{early:?}"
    );
    match verdict(&cron, Some(&running), "2026-12-07T08:02:00Z") {
        Verdict::RunTooLong(message) => assert!(message.contains("2h 1m"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_job_is_a_missed_schedule_saying_why() {
    let down = cronjob(
        json!({}),
        json!({"lastScheduleTime": "2026-12-06T06:00:00Z"}),
    );
    match verdict(&down, None, "2026-12-07T06:10:00Z") {
        Verdict::MissedSchedule(message) => {
            assert!(message.contains("kube-controller-manager"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let forbid = cronjob(
        json!({"concurrencyPolicy": "Forbid"}),
        json!({"lastScheduleTime": "2026-12-06T06:00:00Z",
               "active": [{"name": "nightly-backup-29942280"}]}),
    );
    match verdict(&forbid, None, "2026-12-07T06:10:00Z") {
        Verdict::MissedSchedule(message) => {
            assert!(
                message.contains("Forbid while Job nightly-backup-29942280"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    let every_minute = cronjob(
        json!({"schedule": "* * * * *"}),
        json!({"lastScheduleTime": "2026-12-07T03:00:00Z"}),
    );
    match verdict(&every_minute, None, "2026-12-07T06:10:00Z") {
        Verdict::MissedSchedule(message) => assert!(message.contains("more than 100"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_removed_job_is_judged_from_the_cronjob_never_as_missed() {
    let succeeded = cronjob(
        json!({}),
        json!({"lastScheduleTime": SIX, "lastSuccessfulTime": "2026-12-07T06:20:00Z"}),
    );
    assert!(matches!(
        verdict(&succeeded, None, "2026-12-07T07:00:00Z"),
        Verdict::Succeeded(_)
    ));
    let unfinished = cronjob(
        json!({}),
        json!({"lastScheduleTime": SIX, "lastSuccessfulTime": "2026-12-06T06:20:00Z"}),
    );
    assert!(matches!(
        verdict(&unfinished, None, "2026-12-07T07:00:00Z"),
        Verdict::JobFailed(_)
    ));
}

#[test]
fn a_job_of_another_scheduled_time_is_not_this_run() {
    let cron = cronjob(json!({}), json!({}));
    let mut other = job(
        at(SIX),
        json!({"conditions": [{"type": "Complete", "status": "True"}]}),
    );
    let annotations = other.metadata.annotations.get_or_insert_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), "2026-12-06T06:00:00Z".into());
    assert!(matches!(
        verdict(&cron, Some(&other), "2026-12-07T06:10:00Z"),
        Verdict::MissedSchedule(_)
    ));
}

#[test]
fn a_suspended_cronjob_expects_nothing() {
    let cron = cronjob(json!({"suspend": true}), json!({}));
    assert!(matches!(
        verdict(&cron, None, "2026-12-07T06:10:00Z"),
        Verdict::Suspended(_)
    ));
}

#[test]
fn errors_the_user_must_act_on_are_reported_and_outages_are_not() {
    let read = |code| CronJobError::Read {
        what: "CronJob ops/x".into(),
        code,
        message: "denied".into(),
    };
    assert_eq!(read(Some(403)).reason(), Some(Reason::ReferenceForbidden));
    assert_eq!(
        read(None).reason(),
        None,
        "an unreachable API server is read again"
    );
    assert_eq!(read(Some(503)).reason(), None);
    let missing = CronJobError::NotFound("ops/x".into());
    assert_eq!(missing.reason(), Some(Reason::ReferenceNotFound));
    let every = Schedule::parse("@every 1h", None).unwrap_err();
    assert_eq!(every.reason(), Some(Reason::InvalidSpec));
}
