//! The authorizer over hand-written RBAC objects, on the cases kube's `rbac_test.go` covers.

use http::Method;
use serde_json::{Value, json};

use super::*;

fn role(kind: &str, namespace: Option<&str>, name: &str, rules: Value) -> Value {
    let mut meta = json!({"name": name});
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    json!({"kind": kind, "metadata": meta, "rules": rules})
}

fn binding(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    role: (&str, &str),
    subjects: Value,
) -> Value {
    let mut meta = json!({"name": name});
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    json!({"kind": kind, "metadata": meta, "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.0, "name": role.1}})
}

fn sa(name: &str, namespace: Option<&str>) -> Value {
    let mut s = json!({"kind": "ServiceAccount", "name": name});
    if let Some(ns) = namespace {
        s["namespace"] = json!(ns);
    }
    s
}

/// A chart-like policy: a ClusterRole reading HealthChecks bound cluster-wide to SA canary/op,
/// a Role reading Secrets in `a` bound to it, a RoleBinding in `b` of the ClusterRole
/// `secret-reader`, and a binding in `c` to a Role that does not exist.
fn policy() -> Vec<Value> {
    let checks = json!([{"apiGroups": ["canary.dev"], "resources": ["healthchecks"], "verbs": ["get", "list", "watch"]}]);
    let secrets = json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]);
    vec![
        role("ClusterRole", None, "checks", checks),
        binding(
            "ClusterRoleBinding",
            None,
            "checks",
            ("ClusterRole", "checks"),
            json!([sa("op", Some("canary"))]),
        ),
        role("Role", Some("a"), "secrets", secrets.clone()),
        binding(
            "RoleBinding",
            Some("a"),
            "secrets",
            ("Role", "secrets"),
            json!([sa("op", Some("canary"))]),
        ),
        role("ClusterRole", None, "secret-reader", secrets),
        // No namespace on the subject: the binding's own (`b`), so not canary/op.
        binding(
            "RoleBinding",
            Some("b"),
            "reader",
            ("ClusterRole", "secret-reader"),
            json!([sa("op", None)]),
        ),
        binding(
            "RoleBinding",
            Some("c"),
            "broken",
            ("Role", "gone"),
            json!([sa("op", Some("canary"))]),
        ),
    ]
}

fn decide(objects: &[Value], user: &UserInfo, method: Method, uri: &str) -> Decision {
    authorize(objects, user, &Attributes::of_request(&method, uri))
}

#[test]
fn cluster_bindings_grant_everywhere_and_role_bindings_only_in_their_namespace() {
    let (objects, op) = (policy(), UserInfo::service_account("canary", "op"));
    let checks = decide(
        &objects,
        &op,
        Method::GET,
        "/apis/canary.dev/v1alpha1/healthchecks",
    );
    assert!(checks.allowed);
    assert_eq!(
        checks.reason,
        "RBAC: allowed by ClusterRoleBinding \"checks\" of ClusterRole \"checks\" to ServiceAccount \"op/canary\""
    );
    let secret_a = decide(&objects, &op, Method::GET, "/api/v1/namespaces/a/secrets/x");
    assert_eq!(
        secret_a.reason,
        "RBAC: allowed by RoleBinding \"secrets/a\" of Role \"secrets\" to ServiceAccount \"op/canary\""
    );
    assert!(!decide(&objects, &op, Method::GET, "/api/v1/namespaces/d/secrets/x").allowed);
    let list = json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]);
    let objects = [
        objects,
        vec![
            role("Role", Some("a"), "pods", list),
            binding(
                "RoleBinding",
                Some("a"),
                "pods",
                ("Role", "pods"),
                json!([sa("op", Some("canary"))]),
            ),
        ],
    ]
    .concat();
    assert!(decide(&objects, &op, Method::GET, "/api/v1/namespaces/a/pods").allowed);
    assert!(
        !decide(&objects, &op, Method::GET, "/api/v1/pods").allowed,
        "a Role grants nothing cluster-wide"
    );
    let other = UserInfo::service_account("canary", "other");
    assert!(
        !decide(
            &objects,
            &other,
            Method::GET,
            "/apis/canary.dev/v1alpha1/healthchecks"
        )
        .allowed
    );
}

#[test]
fn a_subject_without_namespace_is_the_service_account_of_the_bindings_namespace() {
    let objects = policy();
    let in_b = UserInfo::service_account("b", "op");
    let decision = decide(
        &objects,
        &in_b,
        Method::GET,
        "/api/v1/namespaces/b/secrets/x",
    );
    assert!(decision.allowed, "{decision:?}");
    let op = UserInfo::service_account("canary", "op");
    assert!(!decide(&objects, &op, Method::GET, "/api/v1/namespaces/b/secrets/x").allowed);
}

#[test]
fn a_binding_to_a_missing_role_denies_with_kubes_reason() {
    let (objects, op) = (policy(), UserInfo::service_account("canary", "op"));
    let decision = decide(&objects, &op, Method::GET, "/api/v1/namespaces/c/secrets/x");
    assert!(!decision.allowed);
    assert_eq!(
        decision.reason,
        "RBAC: role.rbac.authorization.k8s.io \"gone\" not found"
    );
}

#[test]
fn masters_may_do_anything_and_groups_and_users_are_subjects() {
    let objects = bootstrap::objects();
    let admin = UserInfo::admin();
    assert!(
        decide(
            &[],
            &admin,
            Method::DELETE,
            "/api/v1/namespaces/a/secrets/x"
        )
        .allowed
    );
    let anonymous = UserInfo::anonymous();
    assert!(decide(&objects, &anonymous, Method::GET, "/healthz").allowed);
    assert!(decide(&objects, &anonymous, Method::GET, "/version").allowed);
    assert!(
        !decide(&objects, &anonymous, Method::GET, "/apis").allowed,
        "discovery needs a login"
    );
    let op = UserInfo::service_account("canary", "op");
    for uri in [
        "/api",
        "/api/v1",
        "/apis/canary.dev/v1alpha1",
        "/openapi/v3",
        "/livez",
    ] {
        assert!(decide(&objects, &op, Method::GET, uri).allowed, "{uri}");
    }
    assert!(!decide(&objects, &op, Method::GET, "/metrics").allowed);
    let ssar = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    assert!(decide(&objects, &op, Method::POST, ssar).allowed);
    let user = binding(
        "ClusterRoleBinding",
        None,
        "jane",
        ("ClusterRole", "cluster-admin"),
        json!([{"kind": "User", "name": "jane"}]),
    );
    let jane = UserInfo {
        name: "jane".into(),
        groups: vec![AUTHENTICATED.into()],
    };
    let objects = [objects, vec![user]].concat();
    assert!(
        decide(
            &objects,
            &jane,
            Method::DELETE,
            "/api/v1/namespaces/a/secrets/x"
        )
        .allowed
    );
}

#[test]
fn bound_rules_list_every_grant_with_its_scope_and_rules_in_one_namespace_add_cluster_rules() {
    let (objects, op) = (policy(), UserInfo::service_account("canary", "op"));
    let (rules, errors) = bound_rules(&objects[..], &op);
    let scopes: Vec<(Option<&str>, &str)> = rules
        .iter()
        .map(|r| (r.namespace.as_deref(), r.role.as_str()))
        .collect();
    assert_eq!(
        scopes,
        [(None, "ClusterRole/checks"), (Some("a"), "Role/secrets")]
    );
    assert_eq!(
        errors,
        ["role.rbac.authorization.k8s.io \"gone\" not found"]
    );
    let (in_a, _) = rules_in(&objects[..], &op, "a");
    assert_eq!(in_a.len(), 2);
    let (cluster, _) = rules_in(&objects[..], &op, "");
    assert_eq!(cluster.len(), 1);
}
