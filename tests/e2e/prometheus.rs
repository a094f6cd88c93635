//! A real Prometheus scrapes the operator: the target is up and every check's success is there.

use std::time::Duration;

use canary_test_harness::{
    cluster::{config_map, http_check},
    prom::Prometheus,
    targets::{Ca, Reply, TestServer, Transport, days},
    wait::eventually,
};
use serde_json::json;

use crate::{SEC, Scenario, https_check};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_operator_and_sees_each_checks_success() {
    let ns = "shop";
    let ca = Ca::root("Lifecycle CA");
    let healthy = TestServer::https(&ca.leaf(&["localhost"], days(-1), days(90))).await;
    let expired = TestServer::https(&ca.leaf(&["localhost"], days(-30), days(-1))).await;
    let plain = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let checks = [
        config_map(ns, "test-ca", "ca.crt", &ca.pem),
        https_check(ns, "healthy", healthy.port()),
        https_check(ns, "expired", expired.port()),
        http_check(ns, "flaky", &plain.url("/"), json!({})),
    ];
    let s = Scenario::start(ns, &[], &checks).await;
    let prometheus = Prometheus::start(&[s.operator.metrics]).await;
    let query = format!("canary_check_success{{job=\"canary\",namespace=\"{ns}\"}}");
    let every = Duration::from_millis(500);
    eventually(
        30 * SEC,
        "Prometheus sees the operator and its checks",
        every,
        async || {
            let up = prometheus.query("up{job=\"canary\"}").await?;
            if up.iter().map(|(_, v)| *v).collect::<Vec<_>>() != [1.0] {
                return Err(format!("up: {up:?}"));
            }
            let success = prometheus.query(&query).await?;
            let value = |name: &str| {
                success
                    .iter()
                    .find(|(m, _)| m["name"] == name)
                    .map(|(_, v)| *v)
            };
            match (value("healthy"), value("expired"), value("flaky")) {
                (Some(1.0), Some(0.0), Some(1.0)) => Ok(()),
                _ => Err(format!("canary_check_success: {success:?}")),
            }
        },
    )
    .await;
}
