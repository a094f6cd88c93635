//! The chart installed with the real helm 4 into the local API server (`tests/apiserver`):
//! install, upgrade, uninstall, with the CRD and HealthChecks kept.

use std::path::Path;
use std::process::Output;

use crate::support::{NAMESPACE, RELEASE, chart, fixture, run_in_cluster, text};

/// helm or kubectl against `kubeconfig`; panics with the output unless it succeeds.
fn ok(tool: &str, kubeconfig: &Path, args: &[&str]) -> String {
    let output: Output = run_in_cluster(tool, kubeconfig, args);
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `kubectl get -o name` of `what`, or "" when none exist.
fn names(kubeconfig: &Path, what: &str, namespace: &str) -> String {
    ok(
        "kubectl",
        kubeconfig,
        &[
            "get",
            what,
            "-n",
            namespace,
            "-o",
            "name",
            "--ignore-not-found",
        ],
    )
}

const HEALTHCHECK: &str = "
apiVersion: canary.dev/v1alpha1
kind: HealthCheck
metadata: {name: api, namespace: shop}
spec:
  tcp: {host: 127.0.0.1, port: 9}
";

pub fn helm_installs_upgrades_and_uninstalls_keeping_the_crd(kubeconfig: &Path) {
    let chart = chart().display().to_string();
    let monitoring = fixture("monitoring-crds.yaml").display().to_string();
    ok("kubectl", kubeconfig, &["apply", "-f", &monitoring]);
    let notes = ok(
        "helm",
        kubeconfig,
        &[
            "install",
            RELEASE,
            &chart,
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--set",
            "serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true",
        ],
    );
    // NOTES.txt tells the user what to run next.
    for next in [
        "kubectl -n canary rollout status deployment/canary-operator",
        "kubectl get healthchecks.canary.dev -A",
        "port-forward service/canary-operator-metrics 8080",
    ] {
        assert!(notes.contains(next), "NOTES lack {next:?}:\n{notes}");
    }
    let established = ok(
        "kubectl",
        kubeconfig,
        &[
            "get",
            "crd",
            "healthchecks.canary.dev",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ],
    );
    assert_eq!(established, "True");
    let installed = names(
        kubeconfig,
        "deploy,svc,sa,role,rolebinding,cm,servicemonitors,prometheusrules",
        NAMESPACE,
    );
    for want in [
        "deployment.apps/canary-operator",
        "service/canary-operator-metrics",
        "serviceaccount/canary-operator",
        "role.rbac.authorization.k8s.io/canary-operator-leader-election",
        "configmap/canary-operator-dashboard",
        "servicemonitor.monitoring.coreos.com/canary-operator",
        "prometheusrule.monitoring.coreos.com/canary-operator",
    ] {
        assert!(installed.contains(want), "missing {want} in {installed}");
    }
    ok(
        "kubectl",
        kubeconfig,
        &[
            "get",
            "clusterrole/canary-operator",
            "clusterrolebinding/canary-operator",
        ],
    );
    ok("kubectl", kubeconfig, &["create", "namespace", "shop"]);
    let output = run_in_cluster_stdin(kubeconfig, HEALTHCHECK);
    assert!(output.status.success(), "{}", text(&output));

    ok(
        "helm",
        kubeconfig,
        &[
            "upgrade",
            RELEASE,
            &chart,
            "--namespace",
            NAMESPACE,
            "--reuse-values",
            "--set",
            "replicaCount=2,config.logFormat=text",
        ],
    );
    let deployment = ok(
        "kubectl",
        kubeconfig,
        &[
            "get",
            "deploy",
            RELEASE,
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].args}",
        ],
    );
    assert!(deployment.starts_with("2 "), "{deployment}");
    assert!(deployment.contains("--log-format=text"), "{deployment}");

    ok(
        "helm",
        kubeconfig,
        &["uninstall", RELEASE, "--namespace", NAMESPACE],
    );
    let left = names(
        kubeconfig,
        "deploy,svc,sa,role,rolebinding,cm,servicemonitors,prometheusrules",
        NAMESPACE,
    );
    assert!(!left.contains("canary-operator"), "left behind: {left}");
    let cluster_left = ok(
        "kubectl",
        kubeconfig,
        &["get", "clusterrole,clusterrolebinding", "-o", "name"],
    );
    assert!(!cluster_left.contains("canary-operator"), "{cluster_left}");
    // helm.sh/resource-policy: keep: the CRD and the HealthChecks survive the uninstall.
    ok(
        "kubectl",
        kubeconfig,
        &["get", "crd", "healthchecks.canary.dev"],
    );
    let checks = names(kubeconfig, "healthchecks.canary.dev", "shop");
    assert_eq!(checks.trim(), "healthcheck.canary.dev/api");
}

/// `kubectl apply -f -` with `manifest` on stdin.
fn run_in_cluster_stdin(kubeconfig: &Path, manifest: &str) -> Output {
    let path = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(path.path(), manifest).unwrap();
    let file = path.path().display().to_string();
    run_in_cluster("kubectl", kubeconfig, &["apply", "-f", &file])
}
