//! Gateway API CRDs (`gateway.networking.k8s.io/v1` Gateway, HTTPRoute, GRPCRoute) for tests:
//! the upstream YAML is in no package registry reachable here, so these are written for the
//! tests, with the names, scope and subresources of the upstream CRDs and a schema that keeps
//! `spec` and `status` as given (`x-kubernetes-preserve-unknown-fields`): upstream validation
//! and defaulting are not modelled (see the README's divergence table). Create them like any
//! CRD (`POST .../customresourcedefinitions`); without them the group is not served, as on a
//! cluster without Gateway API.

use serde_json::{Value, json};

/// The group the CRDs define.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The three CRDs, ready to create.
pub fn gateway_api_crds() -> Vec<Value> {
    [
        ("gateways", "Gateway", "gateway", &["gtw"][..]),
        ("httproutes", "HTTPRoute", "httproute", &[][..]),
        ("grpcroutes", "GRPCRoute", "grpcroute", &[][..]),
    ]
    .into_iter()
    .map(|(plural, kind, singular, short)| crd(plural, kind, singular, short))
    .collect()
}

fn crd(plural: &str, kind: &str, singular: &str, short_names: &[&str]) -> Value {
    let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": plural, "singular": singular, "kind": kind,
                "listKind": format!("{kind}List"), "shortNames": short_names,
                "categories": ["gateway-api"],
            },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": open, "status": open},
                }},
            }],
        },
    })
}
