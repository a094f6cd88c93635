//! Discovery (`/version`, `/api`, `/apis`, group versions) and minimal OpenAPI v3 documents.
//!
//! Only legacy discovery is served: a client asking for aggregated discovery
//! (`as=APIGroupDiscoveryList`) gets the legacy document with `Content-Type: application/json`
//! and falls back, as client-go does against old servers.

use crate::registry::Registry;
use serde_json::{Value, json};
use std::hash::{DefaultHasher, Hash, Hasher};

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "35", "gitVersion": "v1.35.0", "gitCommit": "canary-test-apiserver",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

/// `/apis/{group}`.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    let versions = registry.groups().remove(name)?;
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": vs, "preferredVersion": vs[0]}),
    )
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// One group version's OpenAPI v3 document: a PATCH operation per kind that declares the
/// `fieldValidation` parameter, so kubectl and helm leave validation to the server.
pub fn openapi_gv(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for rt in registry
        .all()
        .filter(|rt| rt.group == group && rt.versions.iter().any(|v| v == version))
    {
        let ns = if rt.namespaced {
            "namespaces/{namespace}/"
        } else {
            ""
        };
        let path = format!("/{}/{ns}{}/{{name}}", gv_path(group, version), rt.plural);
        let params = ["fieldValidation", "fieldManager", "force", "dryRun"]
            .map(|p| json!({"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": true}}));
        let gvk = json!({"group": group, "version": version, "kind": rt.kind});
        let op = |verb: &str| {
            json!({"operationId": format!("{verb}{}", rt.kind), "parameters": params,
            "x-kubernetes-action": verb, "x-kubernetes-group-version-kind": gvk,
            "responses": {"200": {"description": "OK"}}})
        };
        paths.insert(path, json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths, "components": {"schemas": {}}}),
    )
}

/// `/openapi/v3`: the group versions with content-hash URLs.
pub fn openapi_root(registry: &Registry) -> Value {
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".into())];
    for (group, versions) in registry.groups() {
        gvs.extend(versions.into_iter().map(|v| (group.clone(), v)));
    }
    let mut paths = serde_json::Map::new();
    for (group, version) in gvs {
        let Some(doc) = openapi_gv(registry, &group, &version) else {
            continue;
        };
        let mut h = DefaultHasher::new();
        doc.to_string().hash(&mut h);
        let path = gv_path(&group, &version);
        let url = format!("/openapi/v3/{path}?hash={:016X}", h.finish());
        paths.insert(path, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_declares_field_validation_for_patch() {
        let reg = Registry::default();
        let doc = openapi_gv(&reg, "apps", "v1").expect("apps/v1");
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert_eq!(op["parameters"][0]["name"], "fieldValidation");
        assert!(
            openapi_root(&reg)["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .is_some()
        );
    }
}
