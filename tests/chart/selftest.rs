//! The chart's `helm test` Pod: `canary selftest` run with the Pod's args and its
//! ServiceAccount's identity against the deployed operator, RBAC enforced.

use canary_test_harness::tools::text;
use serde_json::json;

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
    deployed.operator.kill();
    let failed = deployed.selftest().await;
    assert!(
        !failed.status.success(),
        "the test fails when the operator is down"
    );
}

impl Deployed {
    /// `canary selftest` as the chart's `helm test` Pod runs it: its args (the readiness URL
    /// moved to where the operator listens here) and its ServiceAccount's identity.
    pub(crate) async fn selftest(&self) -> std::process::Output {
        self.selftest_edited(|_| {}).await
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
