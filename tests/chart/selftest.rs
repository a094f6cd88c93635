//! The chart's `helm test` Pod: `canary selftest` run with the Pod's args and its
//! ServiceAccount's identity against the deployed operator, RBAC enforced.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use canary_test_harness::{
    chart::{one, render},
    targets::{Reply, TestServer, Transport},
    tools::text,
};
use serde_json::{Value, json};

use crate::{
    CANARY,
    deployed::{Deployed, deployed_with},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helm_test_pod_passes_against_the_deployed_operator_and_fails_without_it() {
    let deployed = deployed_with(&[]).await;
    let passed = deployed.selftest().await;
    assert!(passed.status.success(), "{}", text(&passed));
    let out = String::from_utf8_lossy(&passed.stdout);
    assert!(
        out.contains("serves healthchecks.canary.dev/v1alpha1 (all namespaces)"),
        "{out}"
    );
    // An operator that is not ready at first (still starting, endpoints lagging): the test
    // retries within its deadline and passes.
    let answered = Arc::new(AtomicUsize::new(0));
    let late = TestServer::start(Transport::Plain, move |_| {
        match answered.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::status(503, "not ready: checks not loaded yet"),
            _ => Reply::ok("ok"),
        }
    })
    .await;
    let url = format!("--readyz-url=http://127.0.0.1:{}/readyz", late.port());
    let passed = deployed.selftest_spawned(&url, "--timeout=30s").await;
    let out = text(&passed);
    assert!(passed.status.success(), "{out}");
    assert!(
        out.contains("retrying in 500ms: ") && out.contains("answered 503"),
        "{out}"
    );
    deployed.operator.kill();
    let started = Instant::now();
    let failed = (deployed.selftest_edited(|args| args.push("--timeout=2s".into()))).await;
    let out = text(&failed);
    assert!(
        !failed.status.success(),
        "the test fails when the operator is down: {out}"
    );
    assert!(out.contains("retrying in "), "it retried first: {out}");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "gave up at its deadline: {took:?}"
    );
}

impl Deployed {
    /// `canary selftest` as the chart's `helm test` Pod runs it: its args (the readiness URL
    /// moved to where the operator listens here) and its ServiceAccount's identity.
    pub(crate) async fn selftest(&self) -> std::process::Output {
        self.selftest_edited(|_| {}).await
    }

    /// [`Deployed::selftest`] with `readyz` for the readiness URL and one more flag.
    async fn selftest_spawned(&self, readyz: &str, flag: &str) -> std::process::Output {
        self.selftest_edited(|args| {
            for arg in args.iter_mut().filter(|a| a.starts_with("--readyz-url=")) {
                *arg = readyz.to_string();
            }
            args.push(flag.to_string());
        })
        .await
    }

    /// [`Deployed::selftest`] with its arguments edited by `edit`.
    pub(crate) async fn selftest_edited(
        &self,
        edit: impl FnOnce(&mut Vec<String>),
    ) -> std::process::Output {
        let test = (self.objects.iter())
            .find(|o| o["kind"] == "Pod" && o["metadata"]["annotations"]["helm.sh/hook"] == "test")
            .expect("the chart renders a helm test Pod");
        let container = &test["spec"]["containers"][0];
        assert_eq!(container["command"], json!(["/canary"]));
        let mut args: Vec<String> = (container["args"].as_array().unwrap().iter())
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        // In the cluster the URL names the Service; here the operator listens on loopback.
        let url = (args.iter_mut())
            .find(|a| a.starts_with("--readyz-url="))
            .unwrap();
        assert!(url.ends_with(":8081/readyz"), "{url}");
        *url = format!("--readyz-url=http://{}/readyz", self.operator.health);
        edit(&mut args);
        let namespace = test["metadata"]["namespace"].as_str().unwrap();
        let account = test["spec"]["serviceAccountName"].as_str().unwrap();
        let kubeconfig = (self.cluster.server)
            .kubeconfig_for_service_account(namespace, account)
            .expect("kubeconfig");
        let mut command = tokio::process::Command::new(CANARY);
        command
            .args(&args)
            .env_clear()
            .env("KUBECONFIG", kubeconfig);
        command.output().await.unwrap()
    }
}

#[tokio::test]
async fn the_helm_test_pod_is_never_one_of_the_operators_pods_but_may_ask_readyz() {
    let values = "networkPolicy.enabled=true,podDisruptionBudget.enabled=true";
    let objects = render(&["--set", values]).await;
    let test = (objects.iter())
        .find(|o| o["kind"] == "Pod" && o["metadata"]["annotations"]["helm.sh/hook"] == "test")
        .expect("the chart renders a helm test Pod");
    let labels = &test["metadata"]["labels"];
    let selects = |selector: &Value| {
        let selector = selector.as_object().expect("a label selector");
        !selector.is_empty() && selector.iter().all(|(k, v)| &labels[k] == v)
    };
    let service = one(&objects, "Service");
    let budget = one(&objects, "PodDisruptionBudget");
    let deployment = one(&objects, "Deployment");
    for (what, selector) in [
        ("the Service", &service["spec"]["selector"]),
        (
            "the PodDisruptionBudget",
            &budget["spec"]["selector"]["matchLabels"],
        ),
        (
            "the Deployment",
            &deployment["spec"]["selector"]["matchLabels"],
        ),
    ] {
        assert!(
            !selects(selector),
            "{what} selects the test Pod: {selector} ~ {labels}"
        );
    }
    let policy = one(&objects, "NetworkPolicy");
    let health = (policy["spec"]["ingress"].as_array().unwrap().iter())
        .find(|rule| rule["ports"][0]["port"] == "health")
        .expect("an ingress rule for the health port");
    let peer = &health["from"][0]["podSelector"]["matchLabels"];
    assert!(
        selects(peer),
        "the NetworkPolicy lets the test Pod ask /readyz: {peer}"
    );
}
