//! CronJob checks' reads on the local API server (batch/v1 served, no controller runs): each
//! verdict from a hand-written CronJob and the Job the CronJob controller would have created,
//! read through kube-rs as the operator reads them.

use canary_operator::controller::cronjob::{self, KubeBatch, SCHEDULED_TIMESTAMP, Verdict};
use canary_test_harness::{cluster::Cluster, wait::eventually};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "default";
const SIX: &str = "2026-12-07T06:00:00Z";

async fn client(cluster: &Cluster) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn template() -> Value {
    json!({"spec": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "backup", "image": "busybox"}]}}}})
}

/// Creates a CronJob and writes its status, as its controller would.
async fn cronjob(client: &kube::Client, name: &str, spec: Value, status: Value) {
    let api = Api::<CronJob>::namespaced(client.clone(), NS);
    let mut full = json!({"schedule": "0 6 * * *", "jobTemplate": template()});
    full.as_object_mut()
        .unwrap()
        .extend(spec.as_object().unwrap().clone());
    let object = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": NS}, "spec": full});
    api.create(
        &PostParams::default(),
        &serde_json::from_value(object).unwrap(),
    )
    .await
    .unwrap();
    let patch = Patch::Merge(json!({"status": status}));
    api.patch_status(name, &PatchParams::default(), &patch)
        .await
        .unwrap();
}

/// Creates the Job of `cronjob`'s run at `scheduled` with `status`.
async fn job(client: &kube::Client, cronjob: &str, scheduled: Timestamp, status: Value) {
    let api = Api::<Job>::namespaced(client.clone(), NS);
    let name = cronjob::job_name(cronjob, scheduled);
    let object = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NS,
                     "annotations": {SCHEDULED_TIMESTAMP: scheduled.to_string()}},
        "spec": template()["spec"].clone()});
    api.create(
        &PostParams::default(),
        &serde_json::from_value(object).unwrap(),
    )
    .await
    .unwrap();
    let patch = Patch::Merge(json!({"status": status}));
    api.patch_status(&name, &PatchParams::default(), &patch)
        .await
        .unwrap();
}

#[tokio::test]
async fn each_cronjob_verdict_from_hand_written_jobs() {
    let cluster = Cluster::start().await;
    let client = client(&cluster).await;
    let reader = KubeBatch(client.clone());
    let six: Timestamp = SIX.parse().unwrap();
    let complete = json!({"startTime": SIX, "completionTime": "2026-12-07T06:20:00Z",
        "conditions": [{"type": "Complete", "status": "True"}]});
    let failed = json!({"startTime": SIX, "conditions": [{"type": "Failed", "status": "True",
        "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
    let running = json!({"startTime": SIX, "active": 1});
    cronjob(
        &client,
        "succeeds",
        json!({}),
        json!({"lastScheduleTime": SIX}),
    )
    .await;
    job(&client, "succeeds", six, complete).await;
    cronjob(
        &client,
        "fails",
        json!({}),
        json!({"lastScheduleTime": SIX}),
    )
    .await;
    job(&client, "fails", six, failed).await;
    cronjob(&client, "runs", json!({}), json!({"lastScheduleTime": SIX})).await;
    job(&client, "runs", six, running).await;
    cronjob(
        &client,
        "missed",
        json!({}),
        json!({"lastScheduleTime": "2026-12-06T06:00:00Z"}),
    )
    .await;
    cronjob(&client, "paused", json!({"suspend": true}), json!({})).await;
    let removed = json!({"lastScheduleTime": SIX, "lastSuccessfulTime": "2026-12-07T06:30:00Z"});
    cronjob(&client, "removed", json!({}), removed).await;

    let observe = async |name: &str, now: &str| {
        let now: Timestamp = now.parse().unwrap();
        let two_hours = SignedDuration::from_hours(2);
        cronjob::observe(&reader, NS, name, six, now, two_hours)
            .await
            .unwrap()
    };
    let soon = "2026-12-07T06:40:00Z";
    assert!(matches!(
        observe("succeeds", soon).await,
        Verdict::Succeeded(_)
    ));
    match observe("fails", soon).await {
        Verdict::JobFailed(message) => {
            assert!(message.contains("BackoffLimitExceeded"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(observe("runs", soon).await, Verdict::Running(_)));
    let late = "2026-12-07T08:30:00Z";
    assert!(matches!(
        observe("runs", late).await,
        Verdict::RunTooLong(_)
    ));
    assert!(matches!(
        observe("missed", soon).await,
        Verdict::MissedSchedule(_)
    ));
    assert!(matches!(
        observe("paused", soon).await,
        Verdict::Suspended(_)
    ));
    assert!(matches!(
        observe("removed", soon).await,
        Verdict::Succeeded(_)
    ));
    let gone = cronjob::observe(&reader, NS, "absent", six, six, SignedDuration::ZERO).await;
    assert!(
        matches!(gone, Err(cronjob::CronJobError::NotFound(_))),
        "{gone:?}"
    );
}

/// The reason and message of a check's Ready condition, once it has a verdict other than
/// Pending.
async fn verdict(cluster: &Cluster, name: &str) -> Result<(String, String), String> {
    let check = cluster.check(NS, name).await;
    match canary_test_harness::cluster::ready(&check) {
        Some((_, reason, message)) if reason != "Pending" => Ok((reason, message)),
        other => Err(format!("{other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_judges_each_scheduled_run_of_a_cronjob() {
    let cluster = Cluster::start().await;
    let client = client(&cluster).await;
    let every_minute = json!({"schedule": "* * * * *"});
    for name in ["ok", "broken", "forgotten"] {
        cronjob(&client, name, every_minute.clone(), json!({})).await;
    }
    // The Jobs of the next two scheduled minutes, so whichever the check judges first (it judges
    // runs scheduled after its creation) is there, hand-written as the CronJob controller and
    // the Job controller would have left them.
    let now = Timestamp::now().as_second();
    let complete = json!({"conditions": [{"type": "Complete", "status": "True"}]});
    let failed = json!({"conditions": [{"type": "Failed", "status": "True",
        "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
    for minute in 1..=2 {
        let scheduled = Timestamp::from_second((now / 60 + minute) * 60).unwrap();
        job(&client, "ok", scheduled, complete.clone()).await;
        job(&client, "broken", scheduled, failed.clone()).await;
    }
    let check = |name: &str| {
        json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"cronJob": {"name": name, "startGrace": "2s"}}})
    };
    let checks = [
        check("ok"),
        check("broken"),
        check("forgotten"),
        check("absent"),
    ];
    cluster.kubectl.apply(&checks).await;
    let operator = crate::operator(&cluster).process().await;
    // The first scheduled minute is at most 60 s away, plus the grace.
    let wait = std::time::Duration::from_secs(150);
    let every = std::time::Duration::from_millis(500);
    let (reason, message) = eventually(wait, "ok judged", every, async || {
        verdict(&cluster, "ok").await
    })
    .await;
    assert_eq!(reason, "Succeeded", "{message}");
    let (reason, message) = eventually(wait, "broken judged", every, async || {
        verdict(&cluster, "broken").await
    })
    .await;
    assert_eq!(reason, "JobFailed", "{message}");
    assert!(message.contains("BackoffLimitExceeded"), "{message}");
    let (reason, message) = eventually(wait, "forgotten judged", every, async || {
        verdict(&cluster, "forgotten").await
    })
    .await;
    assert_eq!(reason, "MissedSchedule", "{message}");
    assert!(message.contains("kube-controller-manager"), "{message}");
    // A CronJob that does not exist is said at once, never a silent Pending.
    let (reason, message) = eventually(wait, "absent judged", every, async || {
        verdict(&cluster, "absent").await
    })
    .await;
    assert_eq!(reason, "ReferenceNotFound", "{message}");
    assert!(
        message.contains("CronJob default/absent not found"),
        "{message}"
    );
    let _ = operator.terminate().await;
}
