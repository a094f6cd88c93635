//! Discovery storm through the local API server: a CheckDiscovery (`optIn: Annotation`), then
//! `INGRESSES` (default 500) annotated Ingresses (hosts under `.test`) applied at once with one
//! `kubectl apply`; time until every generated HealthCheck exists, and the writes the storm
//! cost at the API server: discovery's own (applies of HealthChecks, CheckDiscovery status) and
//! the status writer's, the most in any one second against the budgets both spend
//! (`--status-first-write-*` for creates, `--status-write-*` for the rest).
//! Ready is not measured: the checks are generated suspended (nothing leaves loopback; `.test`
//! does not resolve, and `dial: LoadBalancer` to a loopback address needs `http.connectTo`).
//! Run: `cargo bench --bench discovery --features jemalloc` (release, as shipped), or
//! `cargo test --features jemalloc --bench discovery` (a debug build; quicker to build).

use std::time::{Duration, Instant};

use canary_test_apiserver::AuditRecord;
use canary_test_harness::{
    cluster::Cluster, env_or, operator::Launch, tools::documents, wait::eventually,
};
use serde_json::{Value, json};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
const NS: &str = "shop";

fn ingress(i: usize) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": format!("app-{i}"), "namespace": NS,
                     "annotations": {"canary.dev/check": "true"}},
        "spec": {"rules": [{"host": format!("app-{i}.test"), "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "app", "port": {"number": 80}}},
        }]}}]},
    })
}

fn discovery() -> Value {
    json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "CheckDiscovery",
        "metadata": {"name": "apps", "namespace": NS},
        "spec": {"sources": {"ingress": {}}, "maxChecks": 10_000,
                 "template": {"interval": "60s", "timeout": "5s", "suspend": true}},
    })
}

/// (what, count) of the writes in `records`.
fn writes(records: &[&AuditRecord]) -> Vec<(String, usize)> {
    let mut out: std::collections::BTreeMap<String, usize> = Default::default();
    for r in records {
        let what = format!(
            "{} {}{}",
            r.verb,
            r.resource,
            match r.subresource.as_str() {
                "" => String::new(),
                s => format!("/{s}"),
            }
        );
        *out.entry(what).or_default() += 1;
    }
    out.into_iter().collect()
}

/// The most of `times` (sorted) within any second.
fn peak(times: &[Instant]) -> usize {
    let (mut best, mut start) = (0, 0);
    for end in 0..times.len() {
        while times[end] - times[start] > Duration::from_secs(1) {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[tokio::main]
async fn main() {
    let count: usize = env_or("INGRESSES", 500);
    let cluster = Cluster::alone().await;
    cluster.namespace(NS).await;
    let canary = Launch::operator(CANARY, cluster.operator_kubeconfig())
        .args(&["--discovery"])
        .process()
        .await;
    canary.wait_ready(Duration::from_secs(30)).await;
    cluster.kubectl.apply(&[discovery()]).await;
    let ingresses: Vec<Value> = (0..count).map(ingress).collect();
    let text = documents(&ingresses);
    let start = Instant::now();
    cluster.kubectl.ok_stdin(&["apply", "-f", "-"], &text).await;
    let applied = start.elapsed();
    let every = Duration::from_millis(100);
    let what = format!("{count} generated HealthChecks");
    eventually(Duration::from_secs(120), &what, every, async || {
        let created = (cluster.server.requests().iter())
            .filter(|r| r.resource == "healthchecks" && r.subresource.is_empty())
            .filter(|r| r.verb == "patch" && r.code < 300)
            .count();
        (created >= count).then_some(()).ok_or(format!("{created}"))
    })
    .await;
    let all_exist = start.elapsed();
    let names = cluster
        .kubectl
        .ok(&["get", "chc", "-n", NS, "-o", "name"])
        .await;
    assert_eq!(names.lines().count(), count, "every generated check exists");
    // Let the status of the storm settle, then count what it cost.
    let ready = "the CheckDiscovery's status";
    eventually(Duration::from_secs(30), ready, every, async || {
        let chd = cluster.kubectl.get_json(&["chd", "apps", "-n", NS]).await;
        (chd["status"]["generated"] == count)
            .then_some(())
            .ok_or(format!("{}", chd["status"]))
    })
    .await;
    let records = cluster.server.requests();
    let written: Vec<&AuditRecord> = (records.iter())
        .filter(|r| matches!(r.verb.as_str(), "create" | "patch" | "update" | "delete"))
        .filter(|r| r.api_group == "canary.dev" && r.received >= start)
        .collect();
    let times: Vec<Instant> = written.iter().map(|r| r.received).collect();
    println!(
        "{count} annotated Ingresses applied in {:.2}s (one kubectl apply); all {count} generated \
         HealthChecks existed {:.2}s after the apply started",
        applied.as_secs_f64(),
        all_exist.as_secs_f64()
    );
    println!("writes to canary.dev since the apply ({}):", written.len());
    for (what, n) in writes(&written) {
        println!("  {what}: {n}");
    }
    println!(
        "most writes in any second: {} (budgets: first writes 100/s, burst 200; steady 10/s, burst 50)",
        peak(&times)
    );
}
