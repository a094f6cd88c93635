//! The resource types the server serves: built-ins and those added by CRDs, and their discovery.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One served resource type (all served versions share one storage, like a CRD without
/// conversion; events.k8s.io/v1 Events share core/v1's, see [`crate::events`]).
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group, empty for core.
    pub group: String,
    /// Served versions; the first is the preferred one.
    pub versions: Vec<String>,
    /// Plural resource name used in URLs.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind of the objects.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories such as `all`.
    pub categories: Vec<String>,
    /// Whether a `/status` subresource exists.
    pub status_subresource: bool,
    /// The CRD object that defines this type, if any.
    pub crd: Option<Arc<Value>>,
}

impl ResourceType {
    /// Storage id: `plural.group` or `plural` for core.
    pub fn id(&self) -> String {
        crate::error::qualified(&self.group, &self.plural)
    }

    /// Id of the storage holding the objects: the type's own id, except for events.k8s.io/v1
    /// Events, which are core/v1 Events seen through another API (as in kube-apiserver).
    pub fn storage_id(&self) -> String {
        if crate::events::is_events_v1(self) {
            "events".to_string()
        } else {
            self.id()
        }
    }

    /// `group/version` or `version` for core.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    fn discovery_entries(&self) -> Vec<Value> {
        let verbs: &[&str] = if crate::review::is_review(&self.group) {
            &["create"]
        } else {
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        };
        let mut main = json!({
            "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
            "kind": self.kind, "verbs": verbs,
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        let mut out = vec![main];
        if self.status_subresource {
            out.push(json!({
                "name": format!("{}/status", self.plural), "singularName": "", "namespaced": self.namespaced,
                "kind": self.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
);

/// group, version, plural, kind, namespaced, short names, status subresource
const BUILTINS: &[Builtin] = &[
    ("", "v1", "namespaces", "Namespace", false, &["ns"], true),
    ("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
    ("", "v1", "secrets", "Secret", true, &[], false),
    (
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
        false,
    ),
    ("", "v1", "services", "Service", true, &["svc"], true),
    ("", "v1", "events", "Event", true, &["ev"], false),
    ("", "v1", "pods", "Pod", true, &["po"], true),
    (
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        true,
        &["ev"],
        false,
    ),
    (
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
        false,
    ),
    ("batch", "v1", "cronjobs", "CronJob", true, &["cj"], true),
    ("batch", "v1", "jobs", "Job", true, &[], true),
    (
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        &[],
        false,
    ),
    (
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "IngressClass",
        false,
        &[],
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
        false,
    ),
    // Reviews: answered by the authorizer, never stored (see `review.rs`).
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
        &[],
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        false,
        &[],
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
        &[],
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        true,
        &[],
        false,
    ),
    (
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        false,
        &[],
        false,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        true,
    ),
];

/// All served resource types, keyed by storage id.
#[derive(Debug, Clone)]
pub struct Registry {
    types: BTreeMap<String, Arc<ResourceType>>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut types = BTreeMap::new();
        for &(group, version, plural, kind, namespaced, short, status) in BUILTINS {
            let categories = match plural {
                "pods" | "services" | "deployments" => vec!["all".to_string()],
                _ => vec![],
            };
            let rt = ResourceType {
                group: group.into(),
                versions: vec![version.into()],
                plural: plural.into(),
                singular: kind.to_lowercase(),
                kind: kind.into(),
                namespaced,
                short_names: short.iter().map(|s| s.to_string()).collect(),
                categories,
                status_subresource: status,
                crd: None,
            };
            types.insert(rt.id(), Arc::new(rt));
        }
        Self { types }
    }
}

impl Registry {
    /// Finds the type served at `group/version/plural`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        let rt = self.types.get(&crate::error::qualified(group, plural))?;
        rt.versions.iter().any(|v| v == version).then(|| rt.clone())
    }

    /// Finds a type by storage id.
    pub fn by_id(&self, id: &str) -> Option<Arc<ResourceType>> {
        self.types.get(id).cloned()
    }

    /// Adds or replaces a type (from a CRD).
    pub fn insert(&mut self, rt: ResourceType) {
        self.types.insert(rt.id(), Arc::new(rt));
    }

    /// Removes a type by storage id.
    pub fn remove(&mut self, id: &str) {
        self.types.remove(id);
    }

    /// All types.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// `APIResourceList` for one group version, or None when nothing is served there.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let resources: Vec<Value> = self
            .types
            .values()
            .filter(|rt| rt.group == group && rt.versions.iter().any(|v| v == version))
            .flat_map(|rt| rt.discovery_entries())
            .collect();
        if resources.is_empty() {
            return None;
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
        )
    }

    /// Named groups and their versions, preferred first.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for rt in self.types.values().filter(|rt| !rt.group.is_empty()) {
            let versions = groups.entry(rt.group.clone()).or_default();
            for v in &rt.versions {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
        }
        groups
    }

    /// Legacy `APIGroupList` for `/apis`.
    pub fn group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .into_iter()
            .map(|(name, versions)| {
                let vs: Vec<Value> = versions
                    .iter()
                    .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                    .collect();
                json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_served_at_their_group_version() {
        let reg = Registry::default();
        assert!(reg.lookup("apps", "v1", "deployments").is_some());
        assert!(reg.lookup("", "v1", "deployments").is_none());
        let list = reg.resource_list("", "v1").expect("core list");
        assert!(
            list["resources"]
                .as_array()
                .expect("array")
                .iter()
                .any(|r| r["name"] == "pods/status")
        );
    }
}
