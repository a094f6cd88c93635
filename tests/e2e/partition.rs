//! Leader election that cannot split: a leader cut off from the API server (a TCP proxy that
//! blackholes) stops probing before its standby takes over, and a standby never steals a Lease
//! that keeps being renewed, however far behind the holder's clock runs. A recording target
//! tells which replica probed (the User-Agent carries the identity) and when.

use std::time::{Duration, Instant};

use canary_test_harness::{
    cluster::{Cluster, http_check},
    operator::{Launch, Operator},
    targets::{Proxy, Recorded, Reply, TestServer, Transport},
    wait::{eventually, steady},
};
use serde_json::json;

use crate::{CANARY, SEC};

const NS: &str = "split";
const LEASE: &str = "canary-split";
/// The Lease duration; the leader steps down after 2/3 of it, a standby retries every 1/6.
const DURATION: Duration = Duration::from_secs(3);

/// A replica named `pod` on the API server at `kubeconfig`.
async fn replica(kubeconfig: &std::path::Path, pod: &str) -> Operator {
    let replica = Launch::operator(CANARY, kubeconfig)
        .args(&["--leader-elect", "--leader-election-lease-duration", "3s"])
        .args(&["--leader-election-lease-name", LEASE])
        .env("POD_NAME", pod)
        .process()
        .await;
    replica.wait_ready(10 * SEC).await;
    replica
}

/// Times of the requests `pod` made for `path`.
fn probes_by(requests: &[Recorded], pod: &str, path: &str) -> Vec<Instant> {
    let agent = format!("({pod})");
    (requests.iter())
        .filter(|r| r.path == path && r.header("user-agent").is_some_and(|ua| ua.contains(&agent)))
        .map(|r| r.at)
        .collect()
}

/// Waits until `pod` has probed every check.
async fn wait_probing(target: &TestServer, pod: &str) {
    eventually(10 * SEC, "probes", Duration::from_millis(50), async || {
        let requests = target.requests();
        let missing: Vec<usize> = (0..3)
            .filter(|i| probes_by(&requests, pod, &format!("/c{i}")).is_empty())
            .collect();
        match missing.is_empty() {
            true => Ok(()),
            false => Err(format!("no probe by {pod} yet of checks {missing:?}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_stops_before_its_standby_takes_over() {
    let cluster = Cluster::start().await;
    cluster.namespace(NS).await;
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let checks: Vec<_> = (0..3)
        .map(|i| {
            http_check(
                NS,
                &format!("c{i}"),
                &target.url(&format!("/c{i}")),
                json!({}),
            )
        })
        .collect();
    cluster.kubectl.apply(&checks).await;
    let proxy = Proxy::start(cluster.server.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let through_proxy = dir.path().join("kubeconfig");
    let url = format!("http://127.0.0.1:{}", proxy.port());
    canary_test_apiserver::write_kubeconfig(&through_proxy, &url, None).unwrap();
    let a = replica(&through_proxy, "replica-a").await;
    wait_probing(&target, "replica-a").await;
    let _b = replica(cluster.kubeconfig(), "replica-b").await;
    proxy.blackhole(true);
    let cut = Instant::now();
    wait_probing(&target, "replica-b").await;
    let requests = target.requests();
    for i in 0..3 {
        let path = format!("/c{i}");
        let last_a = *probes_by(&requests, "replica-a", &path)
            .iter()
            .max()
            .unwrap();
        let first_b = *probes_by(&requests, "replica-b", &path)
            .iter()
            .min()
            .unwrap();
        assert!(last_a < first_b, "{path}: both replicas probed at once");
        let gap = first_b - last_a;
        println!(
            "{path}: the leader stopped {:?} after the cut, gap {gap:?}",
            last_a.saturating_duration_since(cut)
        );
        // Lease duration + a retry period, plus one probe interval (1s) for the next run.
        assert!(gap < DURATION + DURATION / 6 + SEC, "{path}: gap {gap:?}");
    }
    assert!(
        a.logged("\"leadership\":\"Standby\""),
        "the cut-off leader stepped down:\n{}",
        a.tail(10)
    );
}

/// Renews Lease `LEASE` as `holder` every half second with a `renewTime` an hour behind.
fn skewed_holder(cluster: &Cluster) -> tokio::task::JoinHandle<()> {
    let kubectl = cluster.kubectl.clone();
    tokio::spawn(async move {
        loop {
            let behind = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": LEASE, "namespace": "default"},
                "spec": {"holderIdentity": "skewed-holder", "leaseDurationSeconds": 3,
                         "renewTime": behind.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()},
            });
            kubectl.apply(&[lease]).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// Waits until `who` holds the Lease.
async fn wait_holder(cluster: &Cluster, who: &str) {
    let what = format!("{who} holding the Lease");
    eventually(
        10 * SEC,
        &what,
        Duration::from_millis(100),
        async || match cluster.lease_holder("default", LEASE).await {
            holder if holder == who => Ok(()),
            other => Err(other),
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_never_steals_a_renewed_lease_whose_clock_runs_behind() {
    let cluster = Cluster::start().await;
    let holder = skewed_holder(&cluster);
    wait_holder(&cluster, "skewed-holder").await;
    let _standby = replica(cluster.kubeconfig(), "replica-b").await;
    // Three lease durations with the holder unchanged: the standby judged by what it saw.
    let kept = steady(
        20 * SEC,
        3 * DURATION,
        "the holder",
        Duration::from_millis(200),
        async || cluster.lease_holder("default", LEASE).await,
    )
    .await;
    assert_eq!(kept, "skewed-holder", "the Lease was stolen");
    holder.abort();
    let released = Instant::now();
    wait_holder(&cluster, "replica-b").await;
    let took = released.elapsed();
    assert!(
        took < DURATION + 2 * SEC,
        "takeover {took:?} after the last renewal"
    );
}
