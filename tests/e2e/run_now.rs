//! `canary.dev/run-now` as a user sees it: the run shows in `kubectl get chc -o wide` (LAST-RUN)
//! and in `status.lastHandledRunNow` within seconds, and a flood of annotations costs the
//! target one run at once and one coalesced run per 10 s window, with one log line each.

use std::time::{Duration, Instant};

use canary_test_harness::{
    cluster::http_check,
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

use crate::{SEC, Scenario, table};

const NS: &str = "run-now";

/// A kubectl age (`4s`, `2m3s`, `1h`) in seconds.
fn age_seconds(age: &str) -> Option<u64> {
    let (mut total, mut digits) = (0, String::new());
    for c in age.chars() {
        match c {
            '0'..='9' => digits.push(c),
            unit => {
                let n: u64 = digits.parse().ok()?;
                digits.clear();
                total += n * [('s', 1), ('m', 60), ('h', 3600), ('d', 86400)]
                    .iter()
                    .find(|(u, _)| *u == unit)?
                    .1;
            }
        }
    }
    digits.is_empty().then_some(total)
}

/// `kubectl get chc -o wide`'s LAST-RUN of `name`, in seconds.
async fn last_run(s: &Scenario, name: &str) -> Result<u64, String> {
    let (header, rows) = table(&s.cluster.kubectl, s.ns, true).await;
    let column = (header.iter().position(|h| h == "LAST-RUN")).ok_or(format!("{header:?}"))?;
    let row = (rows.iter().find(|r| r[0] == name)).ok_or(format!("{rows:?}"))?;
    age_seconds(&row[column]).ok_or(format!("LAST-RUN {:?}", row[column]))
}

async fn handled(s: &Scenario, name: &str) -> String {
    let check = s.cluster.check(NS, name).await;
    check["status"]["lastHandledRunNow"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_run_now_kubectl_shows_a_fresh_last_run_and_the_handled_value_within_5s() {
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let check = http_check(NS, "api", &target.url("/"), json!({"interval": "60s"}));
    let s = Scenario::start(NS, &[], &[check]).await;
    s.watch.ready_as("api", "True", "Succeeded").await;
    // Passing runs only refresh status on the heartbeat: LAST-RUN grows stale first.
    let stale = async || match last_run(&s, "api").await? {
        age if age >= 6 => Ok(age),
        age => Err(format!("LAST-RUN {age}s")),
    };
    eventually(20 * SEC, "LAST-RUN at least 6s old", SEC, stale).await;
    let value = format!("e2e-{}", jiff::Timestamp::now().as_millisecond());
    let annotation = format!("canary.dev/run-now={value}");
    let asked = Instant::now();
    let annotate = ["annotate", "chc/api", "-n", NS, &annotation, "--overwrite"];
    s.cluster.kubectl.ok(&annotate).await;
    let fresh = async || {
        let (age, seen) = (last_run(&s, "api").await?, handled(&s, "api").await);
        match (age < 5, seen == value) {
            (true, true) => Ok(age),
            _ => Err(format!("LAST-RUN {age}s, lastHandledRunNow {seen:?}")),
        }
    };
    let age = eventually(
        5 * SEC,
        "a fresh LAST-RUN and the handled value",
        200 * Duration::from_millis(1),
        fresh,
    )
    .await;
    println!(
        "LAST-RUN {age}s and lastHandledRunNow after {:?}",
        asked.elapsed()
    );
    assert!(asked.elapsed() < 5 * SEC, "took {:?}", asked.elapsed());
}

/// A kube client of the scenario's cluster (as the admin).
async fn client(s: &Scenario) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(s.cluster.kubeconfig()).unwrap();
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Lines of the operator's log containing `text`.
fn lines_with(s: &Scenario, text: &str) -> usize {
    s.operator
        .logs()
        .iter()
        .filter(|l| l.contains(text))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_run_now_patches_runs_the_check_twice_and_logs_twice() {
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let check = http_check(NS, "daily", &target.url("/"), json!({"interval": "24h"}));
    let s = Scenario::start(NS, &[], &[check]).await;
    s.watch.ready_as("daily", "True", "Succeeded").await;
    let before = target.requests().len();
    let resource = kube::discovery::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("canary.dev", "v1alpha1", "HealthCheck"),
        "healthchecks",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client(&s).await, NS, &resource);
    const PATCHES: usize = 300;
    let started = Instant::now();
    for i in 1..=PATCHES {
        let patch = json!({"metadata": {"annotations": {"canary.dev/run-now": i.to_string()}}});
        api.patch("daily", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    let patching = started.elapsed();
    println!("{PATCHES} patches in {patching:?}");
    // One run at once, then one per 10 s window the burst reached into.
    let windows = 1 + patching.as_secs() / 10;
    let expected = before + 1 + windows as usize;
    let last = PATCHES.to_string();
    let settled = async || {
        let (runs, seen) = (target.requests().len(), handled(&s, "daily").await);
        match runs >= expected && seen == last {
            true => Ok(runs),
            false => Err(format!(
                "{} runs, lastHandledRunNow {seen:?}",
                runs - before
            )),
        }
    };
    eventually(
        20 * SEC + patching,
        "the coalesced run",
        200 * Duration::from_millis(1),
        settled,
    )
    .await;
    let coalesced = [("result", "coalesced")];
    let counted = s
        .operator
        .metric_sum("canary_run_now_requests_total", &coalesced)
        .await;
    let ran = s
        .operator
        .metric_sum("canary_run_now_requests_total", &[("result", "run")])
        .await;
    assert_eq!(ran + counted, PATCHES as f64, "every request counted");
    assert!(
        counted >= (PATCHES - 1 - windows as usize) as f64,
        "{counted} coalesced"
    );
    let runs = target.requests().len() - before;
    assert_eq!(
        runs,
        1 + windows as usize,
        "{PATCHES} patches in {patching:?}"
    );
    assert_eq!(
        lines_with(&s, "running now"),
        1,
        "one line for the run at once"
    );
    assert_eq!(
        lines_with(&s, "coalescing"),
        1,
        "one line for the burst: {}",
        s.operator.tail(10)
    );
}
