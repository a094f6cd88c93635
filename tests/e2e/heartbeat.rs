//! Heartbeat checks in the operator: a ping sent to the replica that does not run the check
//! (a standby under leader election) is authenticated there, recorded in the check's status
//! (`lastPing`), and judged by the leader from its watch.

use std::time::Duration;

use canary_test_harness::{
    cluster::{Cluster, healthcheck, secret},
    operator::Operator,
    wait::eventually,
};
use serde_json::json;

use crate::{SEC, operator};

const NS: &str = "heartbeat";
const TOKEN: &str = "e2e-heartbeat-token-0123456789";

async fn replica(cluster: &Cluster, pod: &str) -> Operator {
    let args = [
        "--leader-elect",
        "--leader-election-lease-duration",
        "2s",
        "--leader-election-lease-name",
        "canary-heartbeat",
        "--leader-election-namespace",
        "default",
        "--heartbeat-bind-address",
        "127.0.0.1:0",
    ];
    let replica = operator(cluster)
        .args(&args)
        .env("POD_NAME", pod)
        .process()
        .await;
    replica.wait_ready(10 * SEC).await;
    replica
}

/// `GET|POST path` on `addr` with the bearer token: the status code.
async fn ping(addr: std::net::SocketAddr, path: &str) -> u16 {
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str())];
    let answer = canary_test_harness::http::send(addr, "POST", path, &headers).await;
    answer
        .map(|a| a.status)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_to_the_standby_is_recorded_in_status_and_judged_by_the_leader() {
    let cluster = Cluster::start().await;
    cluster.namespace(NS).await;
    let (a, b) = (
        replica(&cluster, "replica-a").await,
        replica(&cluster, "replica-b").await,
    );
    let holder = eventually(
        10 * SEC,
        "a lease holder",
        Duration::from_millis(100),
        async || match cluster
            .lease_holder("default", "canary-heartbeat")
            .await
            .as_str()
        {
            h @ ("replica-a" | "replica-b") => Ok(h.to_string()),
            h => Err(format!("holder {h:?}")),
        },
    )
    .await;
    let standby = if holder == "replica-a" { &b } else { &a };
    let spec = json!({"heartbeat": {"tokenSecretRef": {"name": "ping", "key": "token"},
        "period": "1h", "grace": "5m"}});
    let objects = [
        secret(NS, "ping", "Opaque", &[("token", TOKEN)]),
        healthcheck(NS, "backup", spec),
    ];
    cluster.kubectl.apply(&objects).await;
    let addr = standby.heartbeat.expect("the standby's heartbeat listener");
    let path = format!("/api/v1/ping/{NS}/backup");
    // The standby learns of the check from its own watch.
    eventually(
        10 * SEC,
        "the standby accepts the ping",
        Duration::from_millis(200),
        async || match ping(addr, &path).await {
            200 => Ok(()),
            status => Err(format!("{status}")),
        },
    )
    .await;
    let watch = canary_test_harness::watch::Watch::start(cluster.kubectl.clone(), Some(NS));
    let check = watch.ready_as("backup", "True", "Succeeded").await;
    assert_eq!(check["status"]["lastPing"]["result"], "success", "{check}");
    assert_eq!(
        check["status"]["probedBy"],
        holder.as_str(),
        "the leader judged it"
    );
    assert_eq!(ping(addr, &format!("{path}/fail")).await, 200);
    let check = watch.ready_as("backup", "False", "HeartbeatFailed").await;
    assert_eq!(check["status"]["lastPing"]["result"], "fail", "{check}");
    assert_eq!(
        ping(addr, &format!("/api/v1/ping/{NS}/nosuch")).await,
        401,
        "an unknown check is refused like a wrong token"
    );
}
