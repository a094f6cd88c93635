//! The ClusterRoles and ClusterRoleBindings kube-apiserver creates at start-up that matter to
//! clients (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`, 1.14+): discovery and
//! health for authenticated users, health and version for everyone, self-reviews for
//! authenticated users, and `cluster-admin` for `system:masters`. Aggregated roles (`admin`,
//! `edit`, `view`) and the controllers' roles are left out.

use serde_json::{Value, json};

use super::{AUTHENTICATED, MASTERS, UNAUTHENTICATED};

/// (name, rules, groups bound)
type Bootstrap = (&'static str, Value, &'static [&'static str]);

fn policy() -> Vec<Bootstrap> {
    let discovery = [
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/healthz",
        "/livez",
        "/openapi",
        "/openapi/*",
        "/readyz",
        "/version",
        "/version/",
    ];
    let public = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    vec![
        (
            "cluster-admin",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                   {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
            &[MASTERS],
        ),
        (
            "system:discovery",
            json!([{"nonResourceURLs": discovery, "verbs": ["get"]}]),
            &[AUTHENTICATED],
        ),
        (
            "system:public-info-viewer",
            json!([{"nonResourceURLs": public, "verbs": ["get"]}]),
            &[AUTHENTICATED, UNAUTHENTICATED],
        ),
        (
            "system:basic-user",
            json!([
                {"apiGroups": ["authorization.k8s.io"],
                 "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                 "verbs": ["create"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
                 "verbs": ["create"]},
            ]),
            &[AUTHENTICATED],
        ),
    ]
}

/// The bootstrap ClusterRoles and their ClusterRoleBindings (same names), without metadata a
/// store adds (uid, resourceVersion, creationTimestamp).
pub fn objects() -> Vec<Value> {
    let labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    let annotations = json!({"rbac.authorization.kubernetes.io/autoupdate": "true"});
    let mut out = Vec::new();
    for (name, rules, groups) in policy() {
        let metadata = json!({"name": name, "labels": labels, "annotations": annotations});
        out.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": metadata, "rules": rules}),
        );
        let subjects: Vec<Value> = (groups.iter())
            .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
            .collect();
        out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding", "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": subjects}));
    }
    out
}
