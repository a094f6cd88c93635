//! The chart's RBAC modes against a local API server that enforces RBAC, the operator and the
//! `helm test` Pod running as the chart's ServiceAccount: `watchNamespaces` (namespaced Roles
//! only) and `rbac.secrets=false` (a check referencing a Secret is refused, alone).

use canary_test_harness::{
    chart::args,
    cluster::{Cluster, enforcing, healthcheck},
    targets::{Reply, TestServer, Transport},
    tools::text,
    wait::eventually,
};
use serde_json::json;

use crate::deployed::{deployed_on, deployed_with, shop_objects};

const SEC: std::time::Duration = std::time::Duration::from_secs(1);
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_watch_namespaces_the_operator_probes_there_and_the_helm_test_lists_there() {
    let cluster = Cluster::bare_with(enforcing()).await;
    cluster.namespace("shop").await;
    let d = deployed_on(cluster, &["--set", "watchNamespaces={shop}"]).await;
    assert!(args(&d.objects).contains(&"--namespaces=shop".to_string()));
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    d.cluster.kubectl.apply(&shop_objects(&target)).await;
    d.wait_shop().await;
    let forbidden: Vec<String> = (d.cluster.server.requests().iter())
        .filter(|r| r.code == 403)
        .map(|r| format!("{} {} {}", r.user, r.verb, r.request_uri))
        .collect();
    assert!(forbidden.is_empty(), "refused: {forbidden:#?}");
    let passed = d.selftest().await;
    assert!(passed.status.success(), "{}", text(&passed));
    let out = String::from_utf8_lossy(&passed.stdout);
    assert!(
        out.contains("healthchecks.canary.dev/v1alpha1 (namespace shop)"),
        "{out}"
    );
    let cluster_wide = d
        .selftest_edited(|args| {
            args.retain(|a| !a.starts_with("--namespaces"));
            args.push("--timeout=1s".into());
        })
        .await;
    assert!(
        !cluster_wide.status.success(),
        "a cluster-wide list is refused: {}",
        text(&cluster_wide)
    );
    let refused = text(&cluster_wide);
    assert!(
        refused.contains("cannot list resource \"healthchecks\""),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_secret_rbac_only_the_check_referencing_a_secret_is_reference_forbidden() {
    let d = deployed_with(&["--set", "rbac.secrets=false"]).await;
    d.cluster.namespace("shop").await;
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    // `web` (a header from Secret probe-token) is reconciled before the checks that only read
    // the ConfigMap (created after it), so a pause after its 403 would hold them up.
    let ca = json!({"caBundle": {"configMapKeyRef": {"name": "internal-ca", "key": "ca.crt"}}});
    let mut objects = shop_objects(&target);
    let names = ["x1", "x2", "x3", "x4"];
    for name in names {
        let spec = json!({"interval": "2s", "timeout": "1s", "http": {"url": target.url("/x")}, "tlsPolicy": ca});
        objects.push(healthcheck("shop", name, spec));
    }
    d.cluster.kubectl.apply(&objects).await;
    let mut want: Vec<(&str, &str)> = names.map(|n| (n, "True/true/Succeeded")).to_vec();
    want.push(("down", "False/false/ConnectionRefused"));
    want.push(("web", "False/false/ReferenceForbidden"));
    d.wait_checks("shop", &want).await;
    let web = d.cluster.check("shop", "web").await;
    let message = web["status"]["lastResult"]["message"]
        .as_str()
        .unwrap_or_default();
    let wanted = [
        "may not read it",
        "403",
        "get on secrets in namespace shop",
        "rbac.secrets=true",
    ];
    let missing = canary_test_harness::missing(message, wanted);
    assert!(
        missing.is_empty(),
        "the message lacks {missing:?}: {message}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");
    let probed: Vec<String> = target.requests().into_iter().map(|r| r.path).collect();
    assert!(
        !probed.contains(&"/healthz".to_string()),
        "web is never probed: {probed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_discovery_the_operator_generates_checks_as_its_service_account_unrefused() {
    let cluster = Cluster::bare_with(enforcing()).await;
    cluster.namespace("shop").await;
    let values = ["--set", "discovery.enabled=true,watchNamespaces={shop}"];
    let d = deployed_on(cluster, &values).await;
    let discovery = json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "CheckDiscovery",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"sources": {"ingress": {}, "service": {}, "httpRoute": {}}, "optIn": "All",
                 "template": {"suspend": true}},
    });
    let ingress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"rules": [{"host": "web.test"}]},
    });
    d.cluster.kubectl.apply(&[discovery, ingress]).await;
    let what = "the generated check and the discovery's Ready condition";
    eventually(30 * SEC, what, POLL, async || {
        let list = d.cluster.kubectl.get_json(&["chc", "-n", "shop"]).await;
        let chd = d
            .cluster
            .kubectl
            .get_json(&["chd", "web", "-n", "shop"])
            .await;
        let urls: Vec<&str> = (list["items"].as_array().into_iter().flatten())
            .filter_map(|c| c["spec"]["http"]["url"].as_str())
            .collect();
        let ready = (chd["status"]["conditions"].as_array().into_iter().flatten())
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        (urls == ["http://web.test/"] && ready)
            .then_some(())
            .ok_or(format!("{urls:?} {}", chd["status"]))
    })
    .await;
    let forbidden: Vec<String> = (d.cluster.server.requests().iter())
        .filter(|r| r.code == 403)
        .map(|r| format!("{} {} {}", r.user, r.verb, r.request_uri))
        .collect();
    assert!(forbidden.is_empty(), "refused: {forbidden:#?}");
}
