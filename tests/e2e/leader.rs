//! Leader election between replicas: one probes, a stalled or killed leader is replaced within
//! the lease duration, SIGTERM hands over cleanly; every Lease request within the chart's RBAC.

use std::time::{Duration, Instant};

use canary_test_harness::{
    cluster::{Cluster, describe, enforcing, http_check, ready},
    operator::Operator,
    rbac::{self, Grant},
    targets::Switchable,
    wait::{eventually, steady},
    watch::Watch,
};
use serde_json::json;

use crate::{SEC, operator};

const NS: &str = "ha";

/// How soon a standby must hold the Lease after the leader stops, with a 2s lease: the lease
/// runs out at most 2s after the leader's last renewal, the standby retries every third of the
/// duration, and kubectl polling adds a little.
const TAKEOVER: Duration = Duration::from_millis(3500);

/// Replicas with a 2s Lease (named as the chart names it) probing check `c1` of `target`.
struct Replicas {
    cluster: Cluster,
    watch: Watch,
    target: Switchable,
    lease: String,
    grants: Vec<Grant>,
}

impl Replicas {
    async fn start() -> Self {
        let cluster = Cluster::with(enforcing()).await;
        cluster.namespace(NS).await;
        // Two replicas default to shards; these are the active/standby replicas of leader mode,
        // running as the chart's ServiceAccount (RBAC enforced).
        let values = ["--set", "replicaCount=2", "--set", "sharding.mode=leader"];
        let rendered = cluster.as_chart_service_account("default", &values).await;
        let grants = rbac::deployment_grants(&rendered);
        let lease = rbac::lease_name(&grants).expect("the chart limits the Lease by name");
        let target = Switchable::start(200).await;
        cluster
            .kubectl
            .apply(&[http_check(NS, "c1", &target.url("/"), json!({}))])
            .await;
        let watch = Watch::start(cluster.kubectl.clone(), Some(NS));
        Self {
            cluster,
            watch,
            target,
            lease,
            grants,
        }
    }

    /// A replica named `pod` (its `POD_NAME`); ready once its cache synced, leader or not.
    async fn replica(&self, pod: &str) -> Operator {
        let lease = ["--leader-elect", "--leader-election-lease-duration", "2s"];
        let name = [
            "--leader-election-lease-name",
            &self.lease,
            "--leader-election-namespace",
            "default",
        ];
        let replica = operator(&self.cluster)
            .args(&lease)
            .args(&name)
            .env("POD_NAME", pod)
            .process()
            .await;
        replica.wait_ready(10 * SEC).await;
        replica
    }

    /// Replicas `replica-a` and `replica-b`, once one holds the Lease: (leader, standby, the
    /// standby's name).
    async fn elect(&self) -> (Operator, Operator, &'static str) {
        let (a, b) = (
            self.replica("replica-a").await,
            self.replica("replica-b").await,
        );
        self.c1_ready_as("True", "Succeeded").await;
        let holder = eventually(
            10 * SEC,
            "a lease holder",
            Duration::from_millis(100),
            async || match self.holder().await.as_str() {
                h @ ("replica-a" | "replica-b") => Ok(h.to_string()),
                h => Err(format!("holder {h:?}")),
            },
        )
        .await;
        match holder.as_str() {
            "replica-a" => (a, b, "replica-b"),
            _ => (b, a, "replica-a"),
        }
    }

    async fn holder(&self) -> String {
        self.cluster.lease_holder("default", &self.lease).await
    }

    /// Waits (within [`TAKEOVER`] of `since`) until `standby` holds the Lease.
    async fn taken_over_by(&self, standby: &str, since: Instant, what: &str) {
        eventually(
            10 * SEC,
            what,
            Duration::from_millis(50),
            async || match self.holder().await {
                h if h == standby => Ok(()),
                h => Err(format!("holder {h:?}")),
            },
        )
        .await;
        let took = since.elapsed();
        println!("{what}: the standby held the lease after {took:?} (lease 2s)");
        assert!(took <= TAKEOVER, "takeover took {took:?} with a 2s lease");
    }

    /// Sends `signal` to `leader`; waits until the standby holds the Lease (within
    /// [`TAKEOVER`]) and probes.
    async fn replace(
        &self,
        leader: &Operator,
        signal: &str,
        standby: (&Operator, &str),
        what: &str,
    ) {
        leader.signal(signal);
        self.taken_over_by(standby.1, Instant::now(), what).await;
        standby.0.wait_runs(NS, "c1", None, 2.0).await;
    }

    /// Waits until check `c1` shows Ready=`status` with `reason`.
    async fn c1_ready_as(&self, status: &str, reason: &str) {
        self.watch.ready_as("c1", status, reason).await;
    }

    /// Exactly one probes: over three more runs of `leader`, the target sees one request per run.
    async fn assert_only_probing(&self, leader: &Operator, what: &str) {
        let (runs0, hits0) = (leader.runs(NS, "c1").await, self.target.requests().len());
        leader.wait_runs(NS, "c1", None, runs0 + 3.0).await;
        let (runs1, hits1) = (leader.runs(NS, "c1").await, self.target.requests().len());
        let (leader_runs, hits) = (runs1 - runs0, (hits1 - hits0) as f64);
        assert!(
            hits <= leader_runs + 1.0,
            "{what}: target saw {hits} requests for {leader_runs} leader runs"
        );
    }

    /// Lease requests (and every other) stay within the chart's RBAC.
    fn assert_within_rbac(&self) {
        let denied = rbac::denied(&self.cluster.operator_requests(), &self.grants);
        assert!(
            denied.is_empty(),
            "requests the chart's RBAC does not allow: {denied:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_only_the_leader_probes() {
    let replicas = Replicas::start().await;
    let (leader, standby, _) = replicas.elect().await;
    replicas.assert_only_probing(&leader, "one leader").await;
    assert_eq!(
        standby.runs(NS, "c1").await,
        0.0,
        "the standby does not probe"
    );
    replicas.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_leader_loses_the_lease_and_stops_probing_once_resumed() {
    let replicas = Replicas::start().await;
    let (leader, standby, standby_name) = replicas.elect().await;
    let what = "the standby takes the Lease from the stalled leader";
    replicas
        .replace(&leader, "STOP", (&standby, standby_name), what)
        .await;
    leader.signal("CONT");
    // Resumed, it finds the Lease taken and stops its runners: its run count stays still for
    // two and a half intervals (or its series are gone), within a few lease durations.
    let still = Duration::from_millis(2500);
    let what = "the resumed old leader to stop probing";
    steady(
        10 * SEC,
        still,
        what,
        Duration::from_millis(250),
        async || leader.runs(NS, "c1").await,
    )
    .await;
    assert_eq!(
        replicas.holder().await,
        standby_name,
        "the Lease stays with the new leader"
    );
    replicas
        .assert_only_probing(&standby, "after the stall")
        .await;
    replicas.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_within_the_lease_duration() {
    let replicas = Replicas::start().await;
    let (leader, standby, standby_name) = replicas.elect().await;
    let standing_in = (&standby, standby_name);
    replicas
        .replace(&leader, "KILL", standing_in, "leader killed")
        .await;
    leader.wait_exit(5 * SEC).await;
    // The new leader writes status (the old one is dead): the target fails, status follows.
    replicas.target.set(500);
    replicas.c1_ready_as("False", "UnexpectedStatus").await;
    replicas.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_leader_flushes_the_pending_write_and_releases_the_lease() {
    let replicas = Replicas::start().await;
    let leader = replicas.replica("replica-a").await;
    replicas.target.set(500);
    replicas.c1_ready_as("False", "UnexpectedStatus").await;
    // Slow API answers keep the write in flight when the signal arrives.
    replicas
        .cluster
        .server
        .set_latency(Duration::from_millis(300));
    replicas.target.set(200);
    // The recovery seen by the leader.
    leader.wait_success(NS, "c1", 1.0).await;
    let (exit, shutdown) = leader.terminate().await;
    assert!(
        exit.success(),
        "exit after SIGTERM: {exit:?}; logs:\n{}",
        leader.tail(20)
    );
    assert!(shutdown < 5 * SEC, "shutdown took {shutdown:?}");
    replicas.cluster.server.set_latency(Duration::ZERO);
    let check = replicas.cluster.check(NS, "c1").await;
    let flushed = Some(("True".to_string(), "Succeeded".to_string()));
    assert_eq!(
        ready(&check).map(|r| (r.0, r.1)),
        flushed,
        "the pending write was flushed: {}",
        describe(&check)
    );
    let released = replicas.cluster.lease("default", &replicas.lease).await;
    assert_eq!(replicas.holder().await, "", "lease released: {released:?}");
    replicas.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leaders_status_page_lists_checks_and_a_standbys_says_why() {
    let replicas = Replicas::start().await;
    let (leader, standby, _) = replicas.elect().await;
    leader.wait_runs(NS, "c1", None, 1.0).await;
    let page = |operator: &Operator| operator.ui.expect("the status page is on");
    let list = canary_test_harness::http::get(page(&leader), "/api/v1/checks")
        .await
        .unwrap();
    assert_eq!(list.json()["total"], 1, "{}", list.body);
    let list = canary_test_harness::http::get(page(&standby), "/api/v1/checks")
        .await
        .unwrap();
    assert_eq!(
        list.json()["total"],
        0,
        "a standby probes nothing: {}",
        list.body
    );
    let overview = canary_test_harness::http::get(page(&standby), "/")
        .await
        .unwrap();
    assert!(overview.body.contains("on standby"), "{}", overview.body);
    let overview = canary_test_harness::http::get(page(&leader), "/")
        .await
        .unwrap();
    assert!(!overview.body.contains("on standby"));
}
