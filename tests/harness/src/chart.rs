//! The Helm chart (`charts/canary-operator`) rendered with the real helm, as JSON objects, and
//! the pieces of the rendered Deployment the tests look at.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use serde_json::Value;

use crate::tools::{Helm, text};

/// Release name used by the tests; the full name (and job label) follow from it.
pub const RELEASE: &str = "canary-operator";
/// Release namespace the chart tests use.
pub const NAMESPACE: &str = "canary";
/// Kubernetes version the chart is rendered and validated for.
pub const KUBE_VERSION: &str = "1.35.0";

/// The chart folder.
pub fn dir() -> PathBuf {
    crate::repo().join("charts/canary-operator")
}

/// A file under `tests/chart/` (values files, alert unit tests, CRDs of other operators).
pub fn fixture(name: &str) -> PathBuf {
    crate::repo().join("tests/chart").join(name)
}

/// `helm install` of the chart as [`RELEASE`] into [`NAMESPACE`] (created) of the cluster of
/// `kubeconfig`, with `extra` arguments; helm's NOTES.
pub async fn install(kubeconfig: &Path, extra: &[&str]) -> String {
    let chart = dir().display().to_string();
    let mut args = vec!["install", RELEASE, &chart, "--namespace", NAMESPACE];
    args.push("--create-namespace");
    args.extend_from_slice(extra);
    Helm::for_cluster(kubeconfig).ok(&args).await
}

/// `helm template` arguments for the test release in `namespace` plus `extra`.
fn template_args<'a>(chart: &'a str, namespace: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["template", RELEASE, chart, "--namespace", namespace];
    args.extend(["--kube-version", KUBE_VERSION]);
    args.extend_from_slice(extra);
    args
}

/// `helm template` output (YAML) in [`NAMESPACE`] with `extra` arguments; fails on error.
pub async fn render_text(extra: &[&str]) -> String {
    render_text_in(NAMESPACE, extra).await
}

async fn render_text_in(namespace: &str, extra: &[&str]) -> String {
    let chart = dir().display().to_string();
    (Helm::offline())
        .ok(&template_args(&chart, namespace, extra))
        .await
}

/// `helm template` with `extra` arguments, expected to fail: its error text.
pub async fn render_error(extra: &[&str]) -> String {
    let chart = dir().display().to_string();
    let out = (Helm::offline())
        .run(&template_args(&chart, NAMESPACE, extra), "")
        .await;
    assert!(
        !out.status.success(),
        "helm template {extra:?} must fail, rendered:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every object `helm template` renders in [`NAMESPACE`], as JSON.
pub async fn render(extra: &[&str]) -> Vec<Value> {
    render_in(NAMESPACE, extra).await
}

/// Every object `helm template` renders with the release in `namespace`, as JSON.
pub async fn render_in(namespace: &str, extra: &[&str]) -> Vec<Value> {
    parse_documents(&render_text_in(namespace, extra).await)
}

/// The non-empty documents of a multi-document YAML text.
pub fn parse_documents(yaml: &str) -> Vec<Value> {
    let documents: Vec<Value> =
        serde_saphyr::from_str_multiple(yaml).expect("rendered YAML parses");
    documents.into_iter().filter(|d| d.is_object()).collect()
}

/// Arguments that turn every optional feature on (the Prometheus Operator API served too),
/// followed by the values file.
pub fn all_features_args() -> Vec<String> {
    let values = fixture("all-features.yaml").display().to_string();
    ["--api-versions", "monitoring.coreos.com/v1", "-f", &values]
        .map(String::from)
        .to_vec()
}

/// `helm template` with every optional feature on.
pub async fn render_all_features() -> Vec<Value> {
    let args = all_features_args();
    render(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
}

/// The objects of one kind.
pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The only object of one kind.
pub fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "expected exactly one {kind}, got {found:?}");
    found[0]
}

/// The kinds rendered, sorted.
pub fn kinds(objects: &[Value]) -> BTreeSet<String> {
    (objects.iter())
        .map(|o| o["kind"].as_str().expect("kind").to_owned())
        .collect()
}

/// The pod spec of the operator Deployment.
pub fn pod(objects: &[Value]) -> &Value {
    &one(objects, "Deployment")["spec"]["template"]["spec"]
}

/// (namespace, name) of the ServiceAccount the operator Deployment runs as.
pub fn service_account(objects: &[Value]) -> (String, String) {
    let deployment = one(objects, "Deployment");
    let namespace = deployment["metadata"]["namespace"]
        .as_str()
        .expect("namespace");
    let account = pod(objects)["serviceAccountName"].as_str();
    (
        namespace.to_owned(),
        account.expect("serviceAccountName").to_owned(),
    )
}

/// The container of the operator Deployment.
pub fn container(objects: &[Value]) -> &Value {
    &pod(objects)["containers"][0]
}

/// The operator's command-line arguments.
pub fn args(objects: &[Value]) -> Vec<String> {
    (container(objects)["args"].as_array().expect("args").iter())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// The port number of `port` (a name or a number) among the container's ports.
pub fn container_port(container: &Value, port: &Value) -> u64 {
    if let Some(number) = port.as_u64() {
        return number;
    }
    (container["ports"].as_array().unwrap().iter())
        .find(|p| p["name"] == *port)
        .unwrap_or_else(|| panic!("no container port named {port}"))["containerPort"]
        .as_u64()
        .unwrap()
}

/// Values of the container's env, with the Downward API fieldRefs filled in as the kubelet
/// would for pod `pod_name` in `namespace`.
pub fn container_env(container: &Value, pod_name: &str, namespace: &str) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap().to_owned();
        let value = match (&var["value"], &var["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(value), _) => value.clone(),
            (_, Value::String(path)) if path == "metadata.name" => pod_name.to_owned(),
            (_, Value::String(path)) if path == "metadata.namespace" => namespace.to_owned(),
            // The binary runs on this host, its listeners moved to loopback.
            (_, Value::String(path)) if path == "status.podIP" => "127.0.0.1".to_owned(),
            _ => panic!("the test cannot provide env {var}"),
        };
        env.push((name, value));
    }
    env
}
