//! The operator-wide deny list holds at connect time and at every redirect hop.

use std::net::SocketAddr;

use canary_test_harness::{
    cluster::http_check,
    targets::{Reply, TestServer, Transport},
};
use serde_json::json;

use crate::Scenario;

const NS: &str = "refs";
const DENY: [&str; 2] = ["--deny-cidrs", "169.254.0.0/16,127.0.0.2/32"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_metadata_is_denied_by_default() {
    let metadata = http_check(
        NS,
        "metadata",
        "http://169.254.169.254/latest/meta-data/",
        json!({}),
    );
    let s = Scenario::start(NS, &[], &[metadata]).await;
    s.watch.ready_as("metadata", "False", "TargetDenied").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_address_is_never_connected_to_directly_or_through_a_redirect() {
    let denied_addr: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let denied = TestServer::start_on(denied_addr, Transport::Plain, |_| {
        Reply::ok("should not be reached")
    })
    .await;
    let denied_url = denied.url("/x");
    let location = denied_url.clone();
    let redirect =
        TestServer::start(Transport::Plain, move |_| Reply::redirect(302, &location)).await;
    let checks = [
        http_check(
            NS,
            "metadata",
            "http://169.254.169.254/latest/meta-data/",
            json!({}),
        ),
        http_check(NS, "denied", &denied_url, json!({})),
        http_check(NS, "denied-redirect", &redirect.url("/"), json!({})),
    ];
    let s = Scenario::start(NS, &DENY, &checks).await;
    s.watch.ready_as("metadata", "False", "TargetDenied").await;
    s.watch.ready_as("denied", "False", "TargetDenied").await;
    s.watch
        .ready_as("denied-redirect", "False", "TargetDenied")
        .await;
    assert!(!redirect.requests().is_empty(), "the first hop is allowed");
    assert_eq!(
        denied.accepted(),
        0,
        "the denied address was never connected to"
    );
}
