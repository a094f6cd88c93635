//! An operator newer than the installed CRD (here: one without `status.probedBy`, as after an
//! upgrade with `crds.enabled=false`, or a GitOps sync that updates the Deployment before the
//! CRD). kube refuses the status apply (500, `field not declared in schema`); the operator says
//! so once, within seconds, and keeps writing every other status field, ready all along. An
//! operator without the CRD at all says how to install it, once, retries with a growing backoff,
//! and its `/readyz` says why it is not ready.

use std::time::{Duration, Instant};

use canary_test_harness::{
    cluster::{Cluster, http_check, ready},
    http, read, repo,
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::{Value, json};

use crate::{SEC, operator};

/// The CRD in `crds/` without `status.probedBy`.
fn crd_without_probed_by() -> Value {
    let text = read(&repo().join("crds/healthchecks.canary.dev.yaml"));
    let mut crd: Value = serde_saphyr::from_str(&text).expect("the CRD parses");
    let schema = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let status = schema["properties"]["status"]["properties"].as_object_mut();
    let removed = status.and_then(|s| s.remove("probedBy"));
    assert!(
        removed.is_some(),
        "the current CRD declares status.probedBy"
    );
    crd
}

/// Operator log lines at ERROR naming the undeclared field and the fix.
fn schema_errors(lines: &[String]) -> Vec<&String> {
    (lines.iter())
        .filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains("status.probedBy"))
        .filter(|l| l.contains("kubectl apply -f crds/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_an_older_crd_the_operator_says_so_once_and_writes_the_other_status_fields() {
    let ns = "skew";
    let cluster = Cluster::bare().await;
    cluster.kubectl.apply(&[crd_without_probed_by()]).await;
    let established = [
        "wait",
        "--for=condition=Established",
        "crd/healthchecks.canary.dev",
    ];
    cluster.kubectl.ok(&established).await;
    cluster.namespace(ns).await;
    let echo = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let canary = operator(&cluster).process().await;
    let applied = Instant::now();
    let check = http_check(ns, "web", &echo.url("/"), json!({}));
    cluster.kubectl.apply(&[check]).await;
    let written = eventually(
        10 * SEC,
        "Ready=True written and the mismatch reported",
        Duration::from_millis(100),
        async || {
            let check = cluster.check(ns, "web").await;
            let ready = ready(&check).map(|(status, ..)| status);
            match (ready.as_deref(), schema_errors(&canary.logs()).len()) {
                (Some("True"), 1) => Ok(check),
                (ready, logged) => Err(format!(
                    "Ready {ready:?}, {logged} ERROR logs; logs:\n{}",
                    canary.tail(10)
                )),
            }
        },
    )
    .await;
    let took = applied.elapsed();
    println!("older CRD: reported and Ready=True written {took:?} after the apply");
    assert!(took < 10 * SEC, "{took:?}");
    let status = &written["status"];
    assert!(status.get("probedBy").is_none(), "{status}");
    assert!(
        status["lastResult"]["success"] == true && status["observedGeneration"] == 1,
        "{status}"
    );
    let dropped = canary.try_metric("canary_status_fields_dropped", &[]).await;
    assert_eq!(dropped, Ok(1.0));
    assert_eq!(
        canary.health_code("/readyz").await,
        Some(200),
        "readiness is not about the CRD"
    );

    // A new generation is written too, without another error or another refused write.
    let edit = [
        "patch",
        "healthchecks.canary.dev",
        "web",
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"spec": {"interval": "2s"}}"#,
    ];
    cluster.kubectl.ok(&edit).await;
    eventually(
        10 * SEC,
        "generation 2 observed",
        Duration::from_millis(100),
        async || {
            let check = cluster.check(ns, "web").await;
            match check["status"]["observedGeneration"].as_i64() {
                Some(2) => Ok(()),
                other => Err(format!("observedGeneration {other:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        schema_errors(&canary.logs()).len(),
        1,
        "said once:\n{}",
        canary.tail(20)
    );
    let refused: Vec<_> = (cluster.operator_requests().into_iter())
        .filter(|r| r.subresource == "status" && r.code == 500)
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "one refused write, then none: {refused:?}"
    );
    assert_eq!(
        canary.health_code("/healthz").await,
        Some(200),
        "{}",
        canary.tail(20)
    );
}

/// The operator's list requests of HealthCheck collections, in order of arrival.
fn healthcheck_lists(cluster: &Cluster) -> Vec<Instant> {
    (cluster.operator_requests().into_iter())
        .filter(|r| r.resource == "healthchecks" && r.verb == "list")
        .map(|r| r.received)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crd_the_operator_says_how_to_install_it_once_backs_off_and_readyz_says_why() {
    let cluster = Cluster::bare().await;
    let canary = operator(&cluster).process().await;
    let started = Instant::now();
    let readyz = eventually(
        10 * SEC,
        "/readyz naming the missing CRD",
        Duration::from_millis(100),
        async || {
            let answer = http::get(canary.health, "/readyz").await?;
            match (
                answer.status,
                answer.body.contains("kubectl apply -f crds/"),
            ) {
                (503, true) => Ok(answer.body),
                (code, _) => Err(format!("{code}: {}", answer.body)),
            }
        },
    )
    .await;
    assert!(readyz.contains("crds.enabled=true"), "{readyz}");
    // Retried with an exponential backoff (0.8 s doubled, with jitter up to as much again):
    // the list waits at least 0.8 + 1.6 + 3.2 s before its fourth retry.
    tokio::time::sleep_until((started + 12 * SEC).into()).await;
    let lists = healthcheck_lists(&cluster);
    let gaps: Vec<Duration> = lists.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        (2..=5).contains(&lists.len()) && gaps.last() >= Some(&(3 * SEC)),
        "{} lists in 12 s, gaps {gaps:?}",
        lists.len()
    );
    let logs = canary.logs();
    let told: Vec<&String> = (logs.iter())
        .filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains("kubectl apply -f crds/"))
        .collect();
    assert_eq!(
        told.len(),
        1,
        "said once, however often retried:\n{}",
        canary.tail(20)
    );
    let debug_structs: Vec<&String> = (logs.iter()).filter(|l| l.contains("Status {")).collect();
    assert!(
        debug_structs.is_empty(),
        "Rust debug output in logs: {debug_structs:#?}"
    );

    // Installed, the watch recovers within the backoff's cap and the operator turns ready.
    let crds = repo().join("crds").display().to_string();
    cluster.kubectl.ok(&["apply", "-f", &crds]).await;
    eventually(
        40 * SEC,
        "/readyz 200 once the CRD is installed",
        Duration::from_millis(200),
        async || match canary.health_code("/readyz").await {
            Some(200) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    assert!(
        canary.logged("HealthCheck watch recovered"),
        "{}",
        canary.tail(20)
    );
}
