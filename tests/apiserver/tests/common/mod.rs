//! Shared pieces of the conformance tests: a server, kube-rs clients and fixtures. The real
//! kubectl and helm, waiting with a deadline and raw HTTP come from the workspace's test
//! harness (`tests/harness`).
#![allow(dead_code, unused_imports)]

use std::{path::PathBuf, time::Duration};

use canary_test_apiserver::{Options, Server};
pub use canary_test_harness::{
    http,
    tools::{Helm, Kubectl},
    wait::eventually,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DynamicObject};

/// Starts a server with default options.
pub async fn server() -> Server {
    canary_test_apiserver::start(Options::default())
        .await
        .expect("server starts")
}

/// A kube-rs client for `server`.
pub fn client(server: &Server) -> kube::Client {
    let mut config = kube::Config::new(server.url().parse().expect("url"));
    config.default_namespace = "default".into();
    config.read_timeout = Some(Duration::from_secs(10));
    kube::Client::try_from(config).expect("client")
}

/// A server and the ConfigMaps of its `default` namespace.
pub async fn configmaps() -> (Server, Api<ConfigMap>) {
    let server = server().await;
    let api = Api::default_namespaced(client(&server));
    (server, api)
}

/// The real kubectl for `server`.
pub fn kubectl(server: &Server) -> Kubectl {
    Kubectl::new(server.kubeconfig_path())
}

/// A fixture file path.
pub fn fixture(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    dir.join(name).display().to_string()
}

/// HealthChecks of the fixture CRD in `namespace`, as dynamic objects.
pub fn healthchecks(server: &Server, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "canary.dev".into(),
        version: "v1alpha1".into(),
        api_version: "canary.dev/v1alpha1".into(),
        kind: "HealthCheck".into(),
        plural: "healthchecks".into(),
    };
    Api::namespaced_with(client(server), namespace, &resource)
}

/// Creates the fixture CRD (`healthchecks.canary.dev`, served at once).
pub async fn install_crd(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let text = std::fs::read_to_string(fixture("healthcheck-crd.yaml")).expect("read fixture");
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("parse fixture");
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&Default::default(), &crd)
        .await
        .expect("create crd");
}

/// A raw HTTP/1.1 GET (no client library) with `Accept: accept`: the status line and headers,
/// and the body.
pub async fn raw_get(server: &Server, path: &str, accept: &str) -> (String, String) {
    let answer = http::request(server.addr(), path, &[("Accept", accept)]).await;
    let answer = answer.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (answer.head, answer.body)
}

/// Waits (`deadline` at most) until `done` holds.
pub async fn until(deadline: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let every = Duration::from_millis(20);
    eventually(deadline, what, every, async || match done().await {
        true => Ok(()),
        false => Err("not yet".to_string()),
    })
    .await;
}
