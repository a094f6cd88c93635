//! The chart's RBAC grants the operator's ServiceAccount exactly what the operator calls: the
//! HealthCheck API and what checks reference, cluster-wide or per watched namespace, and its
//! own Lease.

use std::collections::BTreeSet;

use canary_test_harness::{
    chart::{NAMESPACE, RELEASE, args, of_kind, one, render},
    rbac::{Grant, Rule, deployment_grants, rules},
};
use serde_json::{Value, json};

/// What the operator's API calls need on HealthChecks and what they reference (see DESIGN.md).
fn needed_check_rules() -> BTreeSet<Rule> {
    rules(&[
        ("canary.dev", "healthchecks", &["get", "list", "watch"]),
        ("canary.dev", "healthchecks/status", &["patch"]),
        ("events.k8s.io", "events", &["create", "patch"]),
        ("", "secrets", &["get"]),
        ("", "configmaps", &["get"]),
        ("batch", "cronjobs", &["get"]),
        ("batch", "jobs", &["get"]),
    ])
}

/// The leader-election Lease: created (create cannot be limited by name), then only its own.
fn needed_lease_rules() -> BTreeSet<Rule> {
    let mut needed = rules(&[("coordination.k8s.io", "leases", &["create"])]);
    for verb in ["get", "update"] {
        let lease = ("coordination.k8s.io", "leases", verb, RELEASE);
        needed.insert((
            lease.0.into(),
            lease.1.into(),
            lease.2.into(),
            lease.3.into(),
        ));
    }
    needed
}

/// The rules the ServiceAccount gets from `role` (`Kind/name`) in `scope`.
fn granted_by(grants: &[Grant], role: &Value, scope: Option<&str>) -> BTreeSet<Rule> {
    let name = format!(
        "{}/{}",
        role["kind"].as_str().unwrap(),
        role["metadata"]["name"].as_str().unwrap()
    );
    (grants.iter())
        .filter(|g| g.role == name && g.namespace.as_deref() == scope)
        .map(Grant::rule)
        .collect()
}

/// Asserts `binding` binds `role` to the operator's ServiceAccount.
fn assert_binds(binding: &Value, role: &Value) {
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let subject =
        json!({"kind": "ServiceAccount", "name": "canary-operator", "namespace": NAMESPACE});
    assert_eq!(binding["subjects"], json!([subject]));
}

#[tokio::test]
async fn cluster_role_grants_exactly_what_the_operator_calls() {
    let objects = render(&[]).await;
    let grants = deployment_grants(&objects);
    let role = one(&objects, "ClusterRole");
    let granted = granted_by(&grants, role, None);
    let needed = needed_check_rules();
    let extra: Vec<_> = granted.difference(&needed).collect();
    let missing: Vec<_> = needed.difference(&granted).collect();
    assert!(
        extra.is_empty(),
        "ClusterRole grants more than needed: {extra:?}"
    );
    assert!(missing.is_empty(), "ClusterRole lacks: {missing:?}");
    assert_binds(one(&objects, "ClusterRoleBinding"), role);

    let lease_role = one(&objects, "Role");
    assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        granted_by(&grants, lease_role, Some(NAMESPACE)),
        needed_lease_rules()
    );
    let lease_binding = one(&objects, "RoleBinding");
    assert_eq!(lease_binding["metadata"]["namespace"], NAMESPACE);
    assert_binds(lease_binding, lease_role);

    // Without referenced Secrets/ConfigMaps, those grants go away.
    let objects = render(&["--set", "rbac.secrets=false,rbac.configMaps=false"]).await;
    let grants = deployment_grants(&objects);
    assert!(
        grants
            .iter()
            .all(|g| g.resource != "secrets" && g.resource != "configmaps")
    );
}

#[tokio::test]
async fn watch_namespaces_switch_to_namespaced_roles() {
    let objects = render(&["--set", "watchNamespaces={shop,payments}"]).await;
    assert!(of_kind(&objects, "ClusterRole").is_empty());
    assert!(of_kind(&objects, "ClusterRoleBinding").is_empty());
    assert!(args(&objects).contains(&"--namespaces=shop,payments".to_string()));
    let grants = deployment_grants(&objects);
    let in_namespace = |kind: &str, namespace: &str| {
        let found = of_kind(&objects, kind)
            .into_iter()
            .find(|r| r["metadata"]["namespace"] == namespace);
        found
            .unwrap_or_else(|| panic!("no {kind} in {namespace}"))
            .clone()
    };
    for namespace in ["shop", "payments"] {
        let role = in_namespace("Role", namespace);
        let granted = granted_by(&grants, &role, Some(namespace));
        assert_eq!(granted, needed_check_rules(), "{namespace}");
        assert_binds(&in_namespace("RoleBinding", namespace), &role);
    }
    // Plus the Lease Role in the release namespace, and nothing else.
    assert_eq!(of_kind(&objects, "Role").len(), 3);
}

/// A shard member's Leases: its own (named after its pod, so not limited by name), the ring's
/// (list, watch) and departed pods' (delete).
fn needed_shard_rules() -> BTreeSet<Rule> {
    let verbs: &[&str] = &["create", "list", "watch", "update", "delete"];
    rules(&[("coordination.k8s.io", "leases", verbs)])
}

#[tokio::test]
async fn shards_mode_grants_the_member_leases_in_the_release_namespace_only() {
    let objects = render(&["--set", "replicaCount=3"]).await;
    let grants = deployment_grants(&objects);
    let role = one(&objects, "Role");
    assert_eq!(role["metadata"]["name"], "canary-operator-shards");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        granted_by(&grants, role, Some(NAMESPACE)),
        needed_shard_rules()
    );
    assert_binds(one(&objects, "RoleBinding"), role);
    let cluster_role = one(&objects, "ClusterRole");
    assert_eq!(
        granted_by(&grants, cluster_role, None),
        needed_check_rules()
    );
}

/// What the discovery controller adds in the watched namespaces, and cluster-wide.
fn needed_discovery_rules() -> (BTreeSet<Rule>, BTreeSet<Rule>) {
    let list_watch: &[&str] = &["list", "watch"];
    let namespaced = rules(&[
        ("canary.dev", "healthchecks", &["create", "patch", "delete"]),
        ("canary.dev", "checkdiscoveries", &["get", "list", "watch"]),
        ("canary.dev", "checkdiscoveries/status", &["patch"]),
        ("networking.k8s.io", "ingresses", list_watch),
        ("", "services", list_watch),
        ("gateway.networking.k8s.io", "httproutes", list_watch),
        ("gateway.networking.k8s.io", "grpcroutes", list_watch),
    ]);
    let cluster = rules(&[
        ("networking.k8s.io", "ingressclasses", list_watch),
        ("", "namespaces", list_watch),
        ("gateway.networking.k8s.io", "gateways", list_watch),
    ]);
    (namespaced, cluster)
}

#[tokio::test]
async fn discovery_adds_its_sources_and_writes_and_a_cluster_role_for_gateways() {
    let objects = render(&["--set", "discovery.enabled=true"]).await;
    assert!(args(&objects).contains(&"--discovery".to_string()));
    assert!(args(&objects).contains(&"--cluster-domain=cluster.local".to_string()));
    let grants = deployment_grants(&objects);
    let (namespaced, cluster) = needed_discovery_rules();
    let roles = of_kind(&objects, "ClusterRole");
    let find = |name: &str| {
        *roles
            .iter()
            .find(|r| r["metadata"]["name"] == name)
            .unwrap()
    };
    let checks = find("canary-operator");
    let want: BTreeSet<Rule> = needed_check_rules().union(&namespaced).cloned().collect();
    assert_eq!(granted_by(&grants, checks, None), want);
    let discovery = find("canary-operator-discovery");
    assert_eq!(granted_by(&grants, discovery, None), cluster);
    let crds: Vec<&str> = (of_kind(&objects, "CustomResourceDefinition").iter())
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        crds,
        ["checkdiscoveries.canary.dev", "healthchecks.canary.dev"]
    );

    // With watchNamespaces, the namespaced rules go to each namespace's Role.
    let objects = render(&["--set", "discovery.enabled=true,watchNamespaces={shop}"]).await;
    let grants = deployment_grants(&objects);
    let role = (of_kind(&objects, "Role").into_iter())
        .find(|r| r["metadata"]["namespace"] == "shop")
        .unwrap();
    assert_eq!(granted_by(&grants, role, Some("shop")), want);
    let discovery = one(&objects, "ClusterRole");
    assert_eq!(granted_by(&grants, discovery, None), cluster);
}
