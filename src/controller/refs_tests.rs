//! The reference cache against the local API server enforcing RBAC: a 403 is the referencing
//! check's own `ReferenceForbidden`, and a failed read pauses only what it concerns.

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::json;

use super::*;
use canary_test_apiserver::{Options, Server};

const NS: &str = "a";

/// kube-rs for the kubeconfig at `path`.
async fn client_of(path: &std::path::Path) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).expect("kubeconfig");
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await;
    Client::try_from(config.expect("config")).expect("client")
}

/// Creates `object` of type `K` as the admin.
async fn create<K: kube::Resource<DynamicType = ()>>(
    admin: &Client,
    namespace: Option<&str>,
    mut object: serde_json::Value,
) {
    let resource = ApiResource::erase::<K>(&());
    object["apiVersion"] = json!(resource.api_version);
    object["kind"] = json!(resource.kind);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(admin.clone(), ns, &resource),
        None => Api::all_with(admin.clone(), &resource),
    };
    let object: DynamicObject = serde_json::from_value(object).expect("object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("created");
}

/// A server enforcing RBAC where ServiceAccount `a/canary` may get ConfigMaps (not Secrets) in
/// `a`, which holds Secrets `s1`, `s2` and ConfigMap `c`; a cache reading as that account.
async fn cache() -> (Server, RefCache) {
    use k8s_openapi::api::{core::v1 as core, rbac::v1 as rbac};
    let options = Options {
        rbac: true,
        ..Options::default()
    };
    let server = canary_test_apiserver::start(options).await.expect("server");
    let admin = client_of(server.kubeconfig_path()).await;
    create::<core::Namespace>(&admin, None, json!({"metadata": {"name": NS}})).await;
    create::<core::ServiceAccount>(&admin, Some(NS), json!({"metadata": {"name": "canary"}})).await;
    for name in ["s1", "s2"] {
        let secret = json!({"metadata": {"name": name}, "stringData": {"k": "v"}});
        create::<core::Secret>(&admin, Some(NS), secret).await;
    }
    create::<core::ConfigMap>(
        &admin,
        Some(NS),
        json!({"metadata": {"name": "c"}, "data": {"k": "v"}}),
    )
    .await;
    let rule = json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]});
    create::<rbac::Role>(
        &admin,
        Some(NS),
        json!({"metadata": {"name": "r"}, "rules": [rule]}),
    )
    .await;
    let binding = json!({"metadata": {"name": "r"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "canary", "namespace": NS}]});
    create::<rbac::RoleBinding>(&admin, Some(NS), binding).await;
    let path = server
        .kubeconfig_for_service_account(NS, "canary")
        .expect("kubeconfig");
    let cache = RefCache::new(client_of(&path).await, Duration::from_secs(60), None);
    (server, cache)
}

fn reference(kind: ReferenceKind, name: &str) -> ValueRef {
    let object = Reference {
        kind,
        name: name.into(),
    };
    ValueRef {
        object,
        key: "k".into(),
    }
}

#[tokio::test]
async fn a_forbidden_secret_is_that_checks_reference_forbidden_and_holds_up_no_other_read() {
    let (_server, cache) = cache().await;
    let secret = reference(ReferenceKind::Secret, "s1");
    let resolved = cache
        .resolve(NS, std::slice::from_ref(&secret.object))
        .await;
    let forbidden = resolved.expect("a 403 is an answer").read(&secret);
    let Err(ReferenceError::Forbidden { why, .. }) = forbidden else {
        panic!("not forbidden: {forbidden:?}")
    };
    assert!(
        why.contains("rbac.secrets=true") && why.contains("cannot get resource \"secrets\""),
        "{why}"
    );
    let config_map = reference(ReferenceKind::ConfigMap, "c");
    let resolved = cache
        .resolve(NS, std::slice::from_ref(&config_map.object))
        .await;
    let data = resolved
        .expect("another check's reference is read at once")
        .read(&config_map);
    assert_eq!(data, Ok(b"v".to_vec()));
}

#[tokio::test]
async fn a_server_error_pauses_that_reference_only() {
    let (server, cache) = cache().await;
    let (c, d) = (
        reference(ReferenceKind::ConfigMap, "c"),
        reference(ReferenceKind::ConfigMap, "d"),
    );
    server.fail_next(1, 500, Some("/configmaps/c"));
    let failed = cache.resolve(NS, std::slice::from_ref(&c.object)).await;
    assert!(
        matches!(failed, Err(FetchError::Get { .. })),
        "{:?}",
        failed.err()
    );
    let other = cache.resolve(NS, std::slice::from_ref(&d.object)).await;
    assert!(matches!(
        other.expect("not paused").read(&d),
        Err(ReferenceError::NotFound { .. })
    ));
    let again = cache.resolve(NS, std::slice::from_ref(&c.object)).await;
    assert!(
        matches!(again, Err(FetchError::Backoff(..))),
        "{:?}",
        again.err()
    );
}

#[test]
fn an_unanswered_read_pauses_its_namespace() {
    let timeout = FetchError::Timeout {
        kind: ReferenceKind::Secret,
        namespace: NS.into(),
        name: "s".into(),
    };
    let s = reference(ReferenceKind::Secret, "s").object;
    assert_eq!(timeout.pause(NS, &s), Pause::Namespace(NS.into()));
}
