//! The chart installed with the real helm 4 into the local API server (`tests/apiserver`):
//! install, upgrade, uninstall, with the CRD and HealthChecks kept; a CRD applied with kubectl
//! beforehand stops the install with what to do, and both ways it names work.

use canary_test_harness::{
    chart::{self, NAMESPACE, RELEASE, fixture},
    cluster::{Cluster, healthcheck},
    tools::Helm,
};
use serde_json::json;

/// Objects of the release in its namespace, as `kind/name` lines.
const RELEASED: &str = "deploy,svc,sa,role,rolebinding,cm,servicemonitors,prometheusrules";

/// What the release installs in its namespace, with every monitoring object.
const INSTALLED: &str = "deployment.apps/canary-operator service/canary-operator-metrics \
    serviceaccount/canary-operator role.rbac.authorization.k8s.io/canary-operator-leader-election \
    configmap/canary-operator-dashboard servicemonitor.monitoring.coreos.com/canary-operator \
    prometheusrule.monitoring.coreos.com/canary-operator";

/// A local API server with the Prometheus Operator's CRDs, the chart installed with every
/// monitoring object; helm's NOTES.
async fn installed() -> (Cluster, Helm, String) {
    let cluster = Cluster::bare().await;
    let monitoring = fixture("monitoring-crds.yaml").display().to_string();
    cluster.kubectl.ok(&["apply", "-f", &monitoring]).await;
    let helm = Helm::for_cluster(cluster.kubeconfig());
    let monitors =
        "serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true";
    let notes = chart::install(cluster.kubeconfig(), &["--set", monitors]).await;
    (cluster, helm, notes)
}

/// `kubectl get -o name` of `what` in `namespace`, or "" when none exist.
async fn names(cluster: &Cluster, what: &str, namespace: &str) -> String {
    let args = [
        "get",
        what,
        "-n",
        namespace,
        "-o",
        "name",
        "--ignore-not-found",
    ];
    cluster.kubectl.ok(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_brings_the_crd_every_object_and_notes_on_what_to_run_next() {
    let (cluster, _helm, notes) = installed().await;
    let next = [
        "kubectl -n canary rollout status deployment/canary-operator",
        "kubectl get healthchecks.canary.dev -A",
        "kubectl wait --for=condition=Probed healthchecks.canary.dev/example",
        "port-forward service/canary-operator-metrics 8080",
    ];
    let missing = canary_test_harness::missing(&notes, next);
    assert!(missing.is_empty(), "NOTES lack {missing:?}:\n{notes}");
    let established = "jsonpath={.status.conditions[?(@.type==\"Established\")].status}";
    let crd = cluster
        .kubectl
        .ok(&["get", "crd", "healthchecks.canary.dev", "-o", established])
        .await;
    assert_eq!(crd, "True");
    let installed = names(&cluster, RELEASED, NAMESPACE).await;
    let missing = canary_test_harness::missing(&installed, INSTALLED.split_whitespace());
    assert!(missing.is_empty(), "missing {missing:?} in {installed}");
    let cluster_wide = [
        "get",
        "clusterrole/canary-operator",
        "clusterrolebinding/canary-operator",
    ];
    cluster.kubectl.ok(&cluster_wide).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrade_with_reused_values_changes_replicas_and_flags() {
    let (cluster, helm, _) = installed().await;
    let chart = chart::dir().display().to_string();
    let upgrade = [
        "upgrade",
        RELEASE,
        &chart,
        "--namespace",
        NAMESPACE,
        "--reuse-values",
    ];
    helm.ok(&[
        &upgrade[..],
        &["--set", "replicaCount=2,config.logFormat=text"],
    ]
    .concat())
        .await;
    let shape = "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].args}";
    let deployment = cluster
        .kubectl
        .ok(&["get", "deploy", RELEASE, "-n", NAMESPACE, "-o", shape])
        .await;
    assert!(deployment.starts_with("2 "), "{deployment}");
    assert!(deployment.contains("--log-format=text"), "{deployment}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_uninstall_removes_the_release_but_keeps_the_crd_and_the_healthchecks() {
    let (cluster, helm, _) = installed().await;
    cluster.namespace("shop").await;
    let check = healthcheck(
        "shop",
        "api",
        json!({"tcp": {"host": "127.0.0.1", "port": 9}}),
    );
    cluster.kubectl.apply(&[check]).await;
    helm.ok(&["uninstall", RELEASE, "--namespace", NAMESPACE])
        .await;
    let left = names(&cluster, RELEASED, NAMESPACE).await;
    assert!(!left.contains("canary-operator"), "left behind: {left}");
    let cluster_wide = ["get", "clusterrole,clusterrolebinding", "-o", "name"];
    let cluster_left = cluster.kubectl.ok(&cluster_wide).await;
    assert!(!cluster_left.contains("canary-operator"), "{cluster_left}");
    // helm.sh/resource-policy: keep: the CRD and the HealthChecks survive the uninstall.
    cluster
        .kubectl
        .ok(&["get", "crd", "healthchecks.canary.dev"])
        .await;
    let checks = names(&cluster, "healthchecks.canary.dev", "shop").await;
    assert_eq!(checks.trim(), "healthcheck.canary.dev/api");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_applied_with_kubectl_stops_the_default_install_with_both_ways_forward_and_each_works()
 {
    let cluster = Cluster::bare().await;
    let crds = canary_test_harness::repo()
        .join("crds")
        .display()
        .to_string();
    cluster.kubectl.ok(&["apply", "-f", &crds]).await;
    let helm = Helm::for_cluster(cluster.kubeconfig());
    let chart = chart::dir().display().to_string();
    let install = ["install", RELEASE, &chart, "--namespace", NAMESPACE];
    let install = [&install[..], &["--create-namespace"]].concat();
    let refused = helm.fails(&install, "").await;
    let ways = [
        "already installed, by kubectl apply -f crds/",
        "--set crds.enabled=false",
        "kubectl label crd healthchecks.canary.dev app.kubernetes.io/managed-by=Helm --overwrite",
        "meta.helm.sh/release-name=canary-operator meta.helm.sh/release-namespace=canary",
    ];
    let missing = canary_test_harness::missing(&refused, ways);
    assert!(
        missing.is_empty(),
        "the error lacks {missing:?}:\n{refused}"
    );
    assert!(!refused.contains("invalid ownership metadata"), "{refused}");

    // The first way: the CRD stays the user's.
    helm.ok(&[&install[..], &["--set", "crds.enabled=false"]].concat())
        .await;
    helm.ok(&["uninstall", RELEASE, "--namespace", NAMESPACE])
        .await;
    // The second way, as the message spells it: the release adopts the CRD.
    let (label, annotate) = (refused.lines())
        .map(str::trim)
        .filter(|l| l.starts_with("kubectl "))
        .fold((None, None), |(label, annotate), line| {
            match line.split_whitespace().nth(1) {
                Some("label") => (Some(line), annotate),
                Some("annotate") => (label, Some(line)),
                _ => (label, annotate),
            }
        });
    for line in [label, annotate] {
        let line = line.unwrap_or_else(|| panic!("a kubectl command in:\n{refused}"));
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        cluster.kubectl.ok(&args).await;
    }
    helm.ok(&install).await;
    let owner = "jsonpath={.metadata.annotations.meta\\.helm\\.sh/release-name}";
    let crd = ["get", "crd", "healthchecks.canary.dev", "-o", owner];
    assert_eq!(cluster.kubectl.ok(&crd).await, RELEASE);
}
