//! Fault injection on the server handle, observed through kube-rs; and the binary.

mod common;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};

fn code(err: kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn with_cm(server: &canary_test_apiserver::Server) -> Api<ConfigMap> {
    let api: Api<ConfigMap> = Api::default_namespaced(common::client(server));
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("cm");
    api.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    api
}

#[tokio::test]
async fn injected_errors_fail_only_matching_requests_and_run_out() {
    let server = common::server().await;
    let api = with_cm(&server).await;
    server.fail_next(2, 500, Some("configmaps/x"));
    assert!(
        api.list(&Default::default()).await.is_ok(),
        "other paths are unaffected"
    );
    assert_eq!(code(api.get("x").await.expect_err("first")), 500);
    assert_eq!(code(api.get("x").await.expect_err("second")), 500);
    api.get("x").await.expect("rule ran out");
    // kube-rs 5 retries 429/503/504 by default, so two 503s are absorbed by one call.
    server.fail_next(2, 503, Some("configmaps/x"));
    api.get("x").await.expect("retried past 503s");
    let mut config = kube::Config::new(server.url().parse().expect("url"));
    config.default_namespace = "default".into();
    config.default_retry = false;
    let no_retry: Api<ConfigMap> =
        Api::default_namespaced(kube::Client::try_from(config).expect("client"));
    server.fail_next(1, 429, None);
    assert_eq!(code(no_retry.get("x").await.expect_err("throttled")), 429);
    server.fail_next(1, 500, None);
    server.clear_faults();
    api.get("x").await.expect("cleared");
}

#[tokio::test]
async fn hanging_requests_time_out_and_latency_is_added() {
    let server = common::server().await;
    let _ = with_cm(&server).await;
    let mut config = kube::Config::new(server.url().parse().expect("url"));
    config.default_namespace = "default".into();
    config.read_timeout = Some(Duration::from_millis(300));
    let api: Api<ConfigMap> =
        Api::default_namespaced(kube::Client::try_from(config).expect("client"));
    server.hang_next(1, Some("configmaps/x"));
    let started = Instant::now();
    assert!(
        api.get("x").await.is_err(),
        "hung request times out on the client"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    api.get("x").await.expect("next request answered");
    server.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    api.get("x").await.expect("slow but fine");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn restart_on_the_same_port_keeps_state() {
    let mut server = common::server().await;
    let api = with_cm(&server).await;
    let url = server.url();
    server.stop().await;
    assert!(
        api.get("x").await.is_err(),
        "stopped server refuses requests"
    );
    server.restart().await.expect("restart");
    assert_eq!(server.url(), url);
    let cm = api.get("x").await.expect("state kept");
    assert_eq!(cm.metadata.name.as_deref(), Some("x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_writes_a_kubeconfig_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_canary-test-apiserver"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn binary");
    let written = async || kubeconfig.is_file();
    common::until(Duration::from_secs(10), "the kubeconfig written", written).await;
    let namespaces = common::Kubectl::new(&kubeconfig)
        .ok(&["get", "namespaces", "-o", "name"])
        .await;
    assert!(namespaces.contains("namespace/kube-system"), "{namespaces}");
    let pid = child.id().expect("pid").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}
