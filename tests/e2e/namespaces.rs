//! `--namespaces` limits what the operator watches and reads, within the chart's namespaced RBAC
//! (enforced: the operator runs as the chart's ServiceAccount).

use std::collections::BTreeSet;

use canary_test_harness::{
    cluster::{Cluster, describe, enforcing, http_check, secret},
    rbac,
    targets::{Reply, TestServer, Transport},
    watch::Watch,
};
use serde_json::{Value, json};

use crate::{SEC, operator};

const TEAMS: [&str; 3] = ["team-a", "team-b", "team-c"];

/// A check `web` in each team namespace sending that namespace's Secret `token` as a header.
fn team_objects(target: &TestServer) -> Vec<Value> {
    let header = json!({"http": {"headers": [{"name": "X-Token",
        "valueFrom": {"secretKeyRef": {"name": "token", "key": "token"}}}]}});
    let secrets = TEAMS.map(|ns| secret(ns, "token", "Opaque", &[("token", ns)]));
    let checks =
        TEAMS.map(|ns| http_check(ns, "web", &target.url(&format!("/{ns}")), header.clone()));
    secrets.into_iter().chain(checks).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_list_limits_what_the_operator_watches_and_reads() {
    let cluster = Cluster::with(enforcing()).await;
    for ns in TEAMS {
        cluster.namespace(ns).await;
    }
    let values = ["--set", "watchNamespaces={team-a,team-b}"];
    let rendered = cluster.as_chart_service_account("default", &values).await;
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let operator = operator(&cluster)
        .args(&["--namespaces", "team-a,team-b"])
        .process()
        .await;
    cluster.kubectl.apply(&team_objects(&target)).await;
    let watch = Watch::start(cluster.kubectl.clone(), None);
    for ns in ["team-a", "team-b"] {
        watch
            .ready_as(&format!("{ns}/web"), "True", "Succeeded")
            .await;
    }
    operator.wait_ready(10 * SEC).await;
    // Absence over time: three intervals without a status or a probe for team-c.
    tokio::time::sleep(3 * SEC).await;
    watch.with(|seen| {
        let c = seen.get("team-c/web").expect("team-c/web exists");
        assert!(
            c["status"].is_null(),
            "team-c is not watched: {}",
            describe(c)
        );
    });
    let paths: Vec<String> = target.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.iter().all(|p| p != "/team-c"),
        "team-c is never probed"
    );
    let requests = cluster.operator_requests();
    let namespaces: BTreeSet<String> = (requests.iter())
        .filter(|r| r.is_resource_request() && r.resource != "leases")
        .map(|r| r.namespace.clone())
        .collect();
    let teams = BTreeSet::from(["team-a".to_string(), "team-b".to_string()]);
    assert_eq!(
        namespaces, teams,
        "no cluster-wide or other-namespace requests: {requests:#?}"
    );
    let grants = rbac::deployment_grants(&rendered);
    assert!(
        grants.iter().all(|g| g.namespace.is_some()),
        "only Roles: {grants:?}"
    );
    let denied = rbac::denied(&requests, &grants);
    assert!(
        denied.is_empty(),
        "requests the chart's namespaced RBAC does not allow: {denied:#?}"
    );
}
