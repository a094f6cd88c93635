//! RBAC enforced (`Options::rbac`): the admin (kubectl, helm) may do anything, a
//! ServiceAccount's token only what its (Cluster)Roles grant, answered with kube's 403; the real
//! kubectl's `auth can-i` (SelfSubjectAccessReview, impersonation), `auth can-i --list` and
//! `auth whoami` agree.

mod common;

use canary_test_apiserver::{Options, Server};
use common::Kubectl;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::{Value, json};

const SA: &str = "system:serviceaccount:canary:canary";

/// A server enforcing RBAC with namespaces `canary` and `a`, ServiceAccount `canary/canary`
/// and Secret `a/x`; the admin's kubectl.
async fn enforcing() -> (Server, Kubectl) {
    let options = Options {
        rbac: true,
        ..Options::default()
    };
    let server = canary_test_apiserver::start(options).await.expect("starts");
    let kubectl = common::kubectl(&server);
    let objects = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "canary"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "canary", "namespace": "canary"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "a"},
            "stringData": {"k": "v"}}),
    ];
    kubectl.apply(&objects).await;
    (server, kubectl)
}

/// A Role in `a` allowing `get` of Secret `x` only, bound to ServiceAccount canary/canary.
fn secret_reader() -> Vec<Value> {
    let meta = json!({"name": "reader", "namespace": "a"});
    vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["x"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "canary", "namespace": "canary"}]}),
    ]
}

/// kubectl without a token (`system:anonymous`): the admin's kubeconfig with a user name
/// instead of the token (kube has no basic authentication; without any user field kubectl
/// would prompt for one).
fn anonymous_kubectl(server: &Server) -> Kubectl {
    let admin = std::fs::read_to_string(server.kubeconfig_path()).expect("kubeconfig");
    let anonymous: String = (admin.lines())
        .map(|l| match l.trim_start().starts_with("token:") {
            true => "    username: anonymous\n".to_string(),
            false => format!("{l}\n"),
        })
        .collect();
    let path = server
        .kubeconfig_path()
        .with_file_name("kubeconfig-anonymous");
    std::fs::write(&path, anonymous).expect("write");
    Kubectl::new(&path)
}

/// kube-rs as ServiceAccount canary/canary.
async fn service_account_client(server: &Server) -> kube::Client {
    let path = server
        .kubeconfig_for_service_account("canary", "canary")
        .expect("kubeconfig");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig parses");
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_gets_kubes_403_until_a_role_grants_it() {
    let (server, kubectl) = enforcing().await;
    let secrets: Api<Secret> = Api::namespaced(service_account_client(&server).await, "a");
    let denied = secrets.get("x").await.expect_err("no Role grants it yet");
    let kube::Error::Api(status) = denied else {
        panic!("not a Status: {denied:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    let message = format!(
        "secrets \"x\" is forbidden: User \"{SA}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"a\""
    );
    assert_eq!(status.message, message);
    let details = status.details.expect("details");
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("x", "secrets")
    );
    kubectl.apply(&secret_reader()).await;
    let secret = secrets.get("x").await.expect("the Role grants get of x");
    assert_eq!(secret.metadata.name.as_deref(), Some("x"));
    let list = secrets
        .list(&Default::default())
        .await
        .expect_err("list is not granted");
    assert!(
        list.to_string()
            .contains("cannot list resource \"secrets\""),
        "{list}"
    );
    let audit = server.requests();
    let users: Vec<&str> = (audit.iter())
        .filter(|r| r.resource == "secrets" && r.namespace == "a")
        .map(|r| r.user.as_str())
        .collect();
    assert!(
        users.contains(&SA) && users.contains(&"kubernetes-admin"),
        "{users:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_deleted_service_accounts_and_unknown_tokens_get_401_and_anonymous_users_403() {
    let (server, kubectl) = enforcing().await;
    let path = server
        .kubeconfig_for_service_account("canary", "canary")
        .expect("kubeconfig");
    let as_sa = Kubectl::new(&path);
    let whoami = as_sa
        .ok(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .await;
    assert_eq!(whoami, SA);
    kubectl
        .ok(&["delete", "serviceaccount", "canary", "-n", "canary"])
        .await;
    let refused = as_sa.fails(&["get", "ns", "a"], "").await;
    assert!(refused.contains("provide credentials"), "401: {refused}");
    let anonymous = anonymous_kubectl(&server);
    let denied = anonymous
        .fails(&["get", "--raw", "/api/v1/namespaces/a/secrets"], "")
        .await;
    assert!(
        denied.contains(
            "secrets is forbidden: User \"system:anonymous\" cannot list resource \"secrets\""
        ),
        "{denied}"
    );
    let healthz = anonymous.ok(&["get", "--raw", "/healthz"]).await;
    assert_eq!(healthz, "ok", "system:public-info-viewer");
    let discovery = anonymous.fails(&["get", "--raw", "/apis"], "").await;
    assert!(
        discovery.contains("cannot get path \"/apis\""),
        "{discovery}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_agrees_with_the_authorizer_as_the_account_and_through_impersonation() {
    let (server, kubectl) = enforcing().await;
    kubectl.apply(&secret_reader()).await;
    let path = server
        .kubeconfig_for_service_account("canary", "canary")
        .expect("kubeconfig");
    let as_sa = Kubectl::new(&path);
    let as_flag = format!("--as={SA}");
    for (verb_resource, namespace, want) in [
        (["get", "secrets/x"], "a", "yes"),
        (["get", "secrets/y"], "a", "no"),
        (["list", "secrets"], "a", "no"),
        (["get", "secrets/x"], "b", "no"),
    ] {
        let args = [
            "auth",
            "can-i",
            verb_resource[0],
            verb_resource[1],
            "-n",
            namespace,
        ];
        for (who, out) in [
            ("the account", as_sa.run(&args, "").await),
            (
                "impersonated",
                kubectl
                    .run(&[&args[..], &[as_flag.as_str()]].concat(), "")
                    .await,
            ),
        ] {
            let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert_eq!(
                said,
                want,
                "{who}: {args:?}: {}",
                canary_test_harness::tools::text(&out)
            );
        }
    }
    let admin = kubectl
        .ok(&["auth", "can-i", "delete", "secrets", "-A"])
        .await;
    assert_eq!(admin.trim(), "yes");
    let list = as_sa.ok(&["auth", "can-i", "--list", "-n", "a"]).await;
    assert!(
        list.contains("secrets") && list.contains("[x]") && list.contains("/api/*"),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_as_the_admin_and_impersonation_needs_a_grant() {
    let (server, kubectl) = enforcing().await;
    let path = server
        .kubeconfig_for_service_account("canary", "canary")
        .expect("kubeconfig");
    let as_sa = Kubectl::new(&path);
    let raw = ["get", "--raw", "/api/v1/namespaces/a/secrets", "--as=jane"];
    let denied = as_sa.fails(&raw, "").await;
    assert!(
        denied.contains(&format!("users \"jane\" is forbidden: User \"{SA}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope")),
        "{denied}"
    );
    let helm = common::Helm::for_cluster(server.kubeconfig_path());
    let chart = common::fixture("chart");
    helm.ok(&["install", "demo", &chart, "--namespace", "a"])
        .await;
    let released = kubectl
        .ok(&[
            "get",
            "secrets",
            "-n",
            "a",
            "-l",
            "owner=helm",
            "-o",
            "name",
        ])
        .await;
    assert!(
        released.contains("sh.helm.release.v1.demo.v1"),
        "{released}"
    );
}
