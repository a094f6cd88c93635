//! The real helm 4 against the server: install, upgrade, list, uninstall of a small chart.

mod common;

use common::{Cli, fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_lists_and_uninstalls_a_chart() {
    let server = common::server().await;
    let cli = Cli::new(&server);
    let chart = fixture("chart");
    cli.helm(&["install", "demo", &chart, "--namespace", "default"])
        .await;
    let crd = cli
        .kubectl(&[
            "get",
            "crd",
            "healthchecks.canary.dev",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ])
        .await;
    assert_eq!(crd, "True", "CRD from crds/ installed");
    let objects = cli
        .kubectl(&[
            "get",
            "deploy,svc,sa,cm,clusterrole,clusterrolebinding",
            "-l",
            "app=demo",
            "-o",
            "name",
        ])
        .await;
    for want in [
        "deployment.apps/demo",
        "service/demo",
        "serviceaccount/demo",
        "configmap/demo-config",
    ] {
        assert!(objects.contains(want), "missing {want} in {objects}");
    }
    cli.kubectl(&[
        "get",
        "clusterrole/demo-reader",
        "clusterrolebinding/demo-reader",
    ])
    .await;

    cli.helm(&[
        "upgrade",
        "demo",
        &chart,
        "--namespace",
        "default",
        "--set",
        "replicas=3",
        "--set",
        "greeting=hi",
    ])
    .await;
    let replicas = cli
        .kubectl(&[
            "get",
            "deploy",
            "demo",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}",
        ])
        .await;
    assert_eq!(replicas, "3 2");
    let greeting = cli
        .kubectl(&[
            "get",
            "cm",
            "demo-config",
            "-o",
            "jsonpath={.data.greeting}",
        ])
        .await;
    assert_eq!(greeting, "hi");
    let list = cli.helm(&["list", "--namespace", "default"]).await;
    let row = list
        .lines()
        .find(|l| l.starts_with("demo"))
        .unwrap_or_default();
    let cells: Vec<&str> = row.split('\t').map(str::trim).collect();
    assert_eq!((cells[2], cells[4]), ("2", "deployed"), "{list}");

    cli.helm(&["uninstall", "demo", "--namespace", "default"])
        .await;
    let left = cli
        .kubectl(&[
            "get",
            "deploy,svc,sa,cm,secret,clusterrole,clusterrolebinding",
            "-l",
            "app=demo",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(left.trim(), "");
    let releases = cli
        .kubectl(&["get", "secrets", "-l", "owner=helm", "-o", "name"])
        .await;
    assert_eq!(releases.trim(), "", "release history removed");
    assert!(
        cli.helm(&["list", "--namespace", "default", "-q"])
            .await
            .trim()
            .is_empty()
    );
}
