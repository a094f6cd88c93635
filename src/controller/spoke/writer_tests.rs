use super::*;
use crate::{
    api::{HealthCheckStatus, Reason},
    controller::{fixtures::unreachable_client, writer::WriterConfig},
    metrics::Metrics,
    probe::Outcome,
    runner::{Plan, Registration, RunnerSpec, Schedule},
};

fn writer(heartbeat: Duration) -> ReportWriter {
    let metrics = Arc::new(Metrics::new().unwrap());
    let config = WriterConfig {
        qps: 1,
        burst: 1,
        first_qps: 1,
        first_burst: 1,
        heartbeat,
        history: Duration::from_secs(3600),
        stall: Duration::from_secs(60),
    };
    let budget = StatusWriter::new(unreachable_client(), config, metrics.clone());
    let writes = metrics.operator.status_writes.clone();
    ReportWriter::new(unreachable_client(), "a".into(), heartbeat, budget, writes)
}

fn key() -> CheckKey {
    CheckKey {
        namespace: "shop".into(),
        name: "api".into(),
    }
}

fn report(ready: &str, failures: i64) -> CheckReportStatus {
    CheckReportStatus {
        ready: Some(ready.into()),
        reason: Some("Timeout".into()),
        consecutive_failures: failures,
        ..CheckReportStatus::default()
    }
}

fn written(writer: &ReportWriter, uid: &str, status: CheckReportStatus) {
    let last = LastWrite {
        uid: uid.into(),
        status,
        at: Instant::now(),
    };
    lock(&writer.shared.written).insert(key(), last);
}

#[tokio::test]
async fn a_report_is_written_first_then_on_a_change_or_the_heartbeat() {
    let writer = writer(Duration::from_secs(300));
    assert_eq!(
        writer.due(&key(), "u1", &report("False", 3), 3),
        (true, true)
    );
    written(&writer, "u1", report("False", 3));
    let same = report("False", 4);
    assert_eq!(
        writer.due(&key(), "u1", &same, 3),
        (false, false),
        "past the threshold"
    );
    let recovered = report("True", 0);
    assert_eq!(writer.due(&key(), "u1", &recovered, 3), (false, true));
    assert_eq!(
        writer.due(&key(), "u2", &same, 3),
        (true, true),
        "a recreated check gets a report owned by the new object"
    );
    let beating = self::writer(Duration::ZERO);
    written(&beating, "u1", report("False", 3));
    assert_eq!(
        beating.due(&key(), "u1", &same, 3),
        (false, true),
        "heartbeat due"
    );
}

#[tokio::test]
async fn a_run_reported_after_its_check_was_removed_queues_no_report() {
    let writer = writer(Duration::from_secs(300));
    let plan = Plan::Blocked {
        reason: Reason::InvalidSpec,
        message: String::new(),
    };
    let schedule = Schedule::every(Duration::from_secs(1), Duration::ZERO);
    let spec = RunnerSpec {
        uid: Some("u1".into()),
        ..RunnerSpec::new(key(), schedule, plan)
    };
    let outcome = Outcome::not_run(Reason::InvalidSpec, "");
    let status = HealthCheckStatus::default();
    let registration = Arc::new(Registration::default());
    writer.on_run(&RunReport::of(&spec, &outcome, &status, &registration));
    assert!(lock(&writer.shared.pending).items.contains_key(&key()));
    registration.end();
    writer.on_remove(&key());
    writer.on_run(&RunReport::of(&spec, &outcome, &status, &registration));
    assert!(!lock(&writer.shared.pending).items.contains_key(&key()));
    assert!(!lock(&writer.shared.uids).contains_key(&key()));
}
