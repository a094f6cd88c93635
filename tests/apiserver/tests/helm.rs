//! The real helm 4 against the server: install, upgrade, list, uninstall of a small chart.

mod common;

use canary_test_apiserver::Server;
use common::{Helm, Kubectl, fixture};

/// The fixture chart installed as release `demo`, and helm and kubectl for the server.
async fn installed(server: &Server) -> (Helm, Kubectl) {
    let (helm, kubectl) = (
        Helm::for_cluster(server.kubeconfig_path()),
        common::kubectl(server),
    );
    helm.ok(&[
        "install",
        "demo",
        &fixture("chart"),
        "--namespace",
        "default",
    ])
    .await;
    (helm, kubectl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_a_chart_with_its_crd_and_objects() {
    let server = common::server().await;
    let (_, kubectl) = installed(&server).await;
    let established = "jsonpath={.status.conditions[?(@.type==\"Established\")].status}";
    let crd = kubectl
        .ok(&["get", "crd", "healthchecks.canary.dev", "-o", established])
        .await;
    assert_eq!(crd, "True", "CRD from crds/ installed");
    let kinds = "deploy,svc,sa,cm,clusterrole,clusterrolebinding";
    let objects = kubectl
        .ok(&["get", kinds, "-l", "app=demo", "-o", "name"])
        .await;
    let wanted = "deployment.apps/demo service/demo serviceaccount/demo configmap/demo-config";
    let missing = canary_test_harness::missing(&objects, wanted.split(' '));
    assert!(missing.is_empty(), "missing {missing:?} in {objects}");
    kubectl
        .ok(&[
            "get",
            "clusterrole/demo-reader",
            "clusterrolebinding/demo-reader",
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrades_a_release_and_lists_its_revision() {
    let server = common::server().await;
    let (helm, kubectl) = installed(&server).await;
    let values = ["--set", "replicas=3", "--set", "greeting=hi"];
    let upgrade = [
        "upgrade",
        "demo",
        &fixture("chart"),
        "--namespace",
        "default",
    ];
    helm.ok(&[&upgrade[..], &values].concat()).await;
    let shape = "jsonpath={.spec.replicas} {.metadata.generation}";
    assert_eq!(
        kubectl.ok(&["get", "deploy", "demo", "-o", shape]).await,
        "3 2"
    );
    let greeting = "jsonpath={.data.greeting}";
    assert_eq!(
        kubectl
            .ok(&["get", "cm", "demo-config", "-o", greeting])
            .await,
        "hi"
    );
    let list = helm.ok(&["list", "--namespace", "default"]).await;
    let row = list
        .lines()
        .find(|l| l.starts_with("demo"))
        .unwrap_or_default();
    let cells: Vec<&str> = row.split('\t').map(str::trim).collect();
    assert_eq!((cells[2], cells[4]), ("2", "deployed"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_uninstalls_a_release_with_its_history() {
    let server = common::server().await;
    let (helm, kubectl) = installed(&server).await;
    helm.ok(&["uninstall", "demo", "--namespace", "default"])
        .await;
    let kinds = "deploy,svc,sa,cm,secret,clusterrole,clusterrolebinding";
    let left = kubectl
        .ok(&["get", kinds, "-l", "app=demo", "-o", "name"])
        .await;
    assert_eq!(left.trim(), "");
    let releases = kubectl
        .ok(&["get", "secrets", "-l", "owner=helm", "-o", "name"])
        .await;
    assert_eq!(releases.trim(), "", "release history removed");
    let listed = helm.ok(&["list", "--namespace", "default", "-q"]).await;
    assert!(listed.trim().is_empty());
}
