//! Hostile HealthChecks meet the operator: a service-account token is never handed out, the
//! opt-in label gate limits which Secrets may be referenced, and an object the API server stored
//! without validation (a huge duration that used to crash every replica) becomes InvalidSpec
//! while the other checks keep running.

use canary_test_harness::{
    cluster::{Cluster, http_check, secret},
    targets::{Reply, TestServer, Transport},
};
use serde_json::{Value, json};

use crate::Scenario;

const NS: &str = "trust";

/// A check sending header `Authorization` from key `token` of Secret `name`.
fn sends_secret(name: &str, url: &str) -> Value {
    let from = json!({"secretKeyRef": {"name": name, "key": "token"}});
    let header = json!({"http": {"headers": [{"name": "Authorization", "valueFrom": from}]}});
    http_check(NS, name, url, header)
}

async fn echo() -> TestServer {
    TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_token_is_never_sent_to_a_target() {
    let target = echo().await;
    let token = secret(
        NS,
        "sa-token",
        "kubernetes.io/service-account-token",
        &[("token", "eyJ-stolen")],
    );
    let objects = [token, sends_secret("sa-token", &target.url("/"))];
    let s = Scenario::start(NS, &[], &objects).await;
    let check = s
        .watch
        .ready_as("sa-token", "False", "ReferenceForbidden")
        .await;
    let message = check["status"]["conditions"].to_string();
    assert!(message.contains("service-account-token"), "{message}");
    assert!(
        !message.contains("eyJ-stolen"),
        "the token never reaches status"
    );
    assert!(
        target.requests().is_empty(),
        "the target never saw the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_label_gate_only_labelled_secrets_may_be_referenced() {
    let target = echo().await;
    let mut labelled = secret(NS, "labelled", "Opaque", &[("token", "Bearer ok")]);
    labelled["metadata"]["labels"] = json!({"canary.dev/reference": "allowed"});
    let unlabelled = secret(NS, "unlabelled", "Opaque", &[("token", "Bearer no")]);
    let objects = [
        labelled,
        unlabelled,
        sends_secret("labelled", &target.url("/a")),
        sends_secret("unlabelled", &target.url("/b")),
    ];
    let gate = ["--secret-reference-label", "canary.dev/reference=allowed"];
    let s = Scenario::start(NS, &gate, &objects).await;
    s.watch.ready_as("labelled", "True", "Succeeded").await;
    let refused = s
        .watch
        .ready_as("unlabelled", "False", "ReferenceForbidden")
        .await;
    assert!(
        refused["status"]["conditions"]
            .to_string()
            .contains("canary.dev/reference=allowed")
    );
    let sent: Vec<String> = (target.requests().iter())
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert!(
        sent.iter().all(|h| h == "Bearer ok"),
        "only the labelled Secret left: {sent:?}"
    );
    let stalled = &refused["status"]["conditions"];
    assert!(
        stalled.to_string().contains("\"Stalled\""),
        "Stalled marks it for a human: {stalled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_object_that_breaks_every_rule_is_reported_and_crashes_nothing() {
    let target = echo().await;
    let cluster = Cluster::start().await;
    cluster.namespace(NS).await;
    cluster.server.set_validation(false);
    let hostile = http_check(
        NS,
        "hostile",
        &target.url("/h"),
        json!({
            "interval": "99999999999999999999h",
            "http": {"expect": {"maxDuration": "99999999999999999999h"}},
            "failureThreshold": -5,
        }),
    );
    cluster.kubectl.apply(&[hostile]).await;
    cluster.server.set_validation(true);
    let healthy = http_check(NS, "healthy", &target.url("/ok"), json!({}));
    let s = Scenario::on_cluster(cluster, NS, &[], &[healthy]).await;
    let invalid = s.watch.ready_as("hostile", "False", "InvalidSpec").await;
    let message = invalid["status"]["conditions"].to_string();
    assert!(
        message.contains("spec.interval") && message.contains("spec.http.expect.maxDuration"),
        "{message}"
    );
    s.watch.ready_as("healthy", "True", "Succeeded").await;
    s.operator
        .wait_runs(NS, "healthy", Some("success"), 3.0)
        .await;
    assert!(s.operator.running(), "the operator lives on");
}
