//! Discovery storm through the local API server: a CheckDiscovery (`optIn: Annotation`), then
//! `INGRESSES` (default 500) annotated Ingresses (hosts under `.test`) applied at once with one
//! `kubectl apply`; time until every generated HealthCheck exists, and the writes the storm
//! cost at the API server: discovery's own (applies of HealthChecks, CheckDiscovery status) and
//! the status writer's, the most in any one second against the budgets both spend
//! (`--status-first-write-*` for creates, `--status-write-*` for the rest).
//! Each Ingress's status names a loopback load balancer (`127.0.0.80`, written as an Ingress
//! controller would, right after the apply), and the discovery dials it (`dial:
//! LoadBalancer`, so `http.connectTo: 127.0.0.80:80` with Host `app-N.test`): also the time
//! until every check is Ready. Nothing leaves loopback (`.test` is never resolved). Binding
//! port 80 needs root or `CAP_NET_BIND_SERVICE`.
//! Run: `cargo bench --bench discovery --features jemalloc` (release, as shipped), or
//! `cargo test --features jemalloc --bench discovery` (a debug build; quicker to build).

use std::time::{Duration, Instant};

use canary_test_apiserver::AuditRecord;
use canary_test_harness::{
    cluster::{Cluster, ready},
    env_or,
    operator::Launch,
    targets::{Reply, TestServer, Transport},
    tools::documents,
    wait::eventually,
};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
const NS: &str = "shop";
/// The load balancer every Ingress's status names: its own loopback address, port 80.
const BALANCER: [u8; 4] = [127, 0, 0, 80];

/// Writes each Ingress's `status.loadBalancer`, as an Ingress controller does.
async fn publish_addresses(cluster: &Cluster, count: usize) {
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap();
    let api = Api::<Ingress>::namespaced(kube::Client::try_from(config).unwrap(), NS);
    let ip = std::net::Ipv4Addr::from(BALANCER).to_string();
    let patch = Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}));
    let patches = (0..count).map(|i| {
        let (api, patch) = (api.clone(), &patch);
        async move {
            api.patch_status(&format!("app-{i}"), &PatchParams::default(), patch)
                .await
        }
    });
    for result in futures::future::join_all(patches).await {
        result.expect("an Ingress status written");
    }
}

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
                 "dial": "LoadBalancer",
                 "template": {"interval": "60s", "timeout": "5s"}},
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
    let balancer = (BALANCER, 80).into();
    let _target = TestServer::start_on(balancer, Transport::Plain, |_| Reply::ok("ok")).await;
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
    publish_addresses(&cluster, count).await;
    let published = start.elapsed();
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
    let what = format!("{count} generated HealthChecks Ready");
    eventually(
        Duration::from_secs(120),
        &what,
        Duration::from_millis(500),
        async || {
            let list = cluster.kubectl.get_json(&["chc", "-n", NS]).await;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let up = (items.iter())
                .filter(|c| ready(c).is_some_and(|(status, ..)| status == "True"))
                .count();
            (up >= count).then_some(()).ok_or(format!("{up} Ready"))
        },
    )
    .await;
    let all_ready = start.elapsed();
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
    println!(
        "their load balancer address in status {:.2}s after; all {count} checks Ready (dialling \
         it) {:.2}s after the apply started",
        published.as_secs_f64(),
        all_ready.as_secs_f64()
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
