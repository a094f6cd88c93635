//! The chart's RBAC rules (rendered with the real helm) against what the operator actually
//! asked the API server (its audit records).

use std::process::Stdio;

use canary_test_apiserver::AuditRecord;
use serde_json::Value;

use super::{repo, tool};

/// One RBAC rule, with the namespace of its Role (`None` for a ClusterRole).
#[derive(Debug, Clone)]
pub struct Rule {
    pub namespace: Option<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub verbs: Vec<String>,
}

impl Rule {
    /// Whether this rule allows `record` (a resource request).
    pub fn allows(&self, r: &AuditRecord) -> bool {
        let resource = if r.subresource.is_empty() {
            r.resource.clone()
        } else {
            format!("{}/{}", r.resource, r.subresource)
        };
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        self.namespace.as_deref().is_none_or(|ns| ns == r.namespace)
            && any(&self.api_groups, &r.api_group)
            && any(&self.resources, &resource)
            && any(&self.verbs, &r.verb)
            && (self.resource_names.is_empty() || any(&self.resource_names, &r.name))
    }
}

/// The chart rendered by `helm template canary charts/canary-operator --namespace NS ARGS`.
pub async fn render_chart(namespace: &str, args: &[&str]) -> Vec<Value> {
    let home = tempfile::tempdir().expect("tempdir");
    let chart = repo().join("charts/canary-operator").display().to_string();
    let out = tokio::process::Command::new(tool("helm"))
        .args(["template", "canary", &chart, "--namespace", namespace])
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_saphyr::from_multiple::<Value>(&text)
        .expect("rendered chart is YAML")
        .into_iter()
        .filter(|d| d.is_object())
        .collect()
}

/// Rules of every Role and ClusterRole in `docs`.
pub fn rules(docs: &[Value]) -> Vec<Rule> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    docs.iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        .flat_map(|d| {
            let namespace = (d["kind"] == "Role").then(|| {
                d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            });
            d["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |r| Rule {
                    namespace: namespace.clone(),
                    api_groups: strings(&r["apiGroups"]),
                    resources: strings(&r["resources"]),
                    resource_names: strings(&r["resourceNames"]),
                    verbs: strings(&r["verbs"]),
                })
        })
        .collect()
}

/// The lease name the chart's leader-election Role is limited to.
pub fn lease_name(docs: &[Value]) -> Option<String> {
    rules(docs)
        .into_iter()
        .find(|r| r.resources.iter().any(|x| x == "leases") && !r.resource_names.is_empty())
        .map(|r| r.resource_names[0].clone())
}

/// Resource requests in `records` that no rule allows, as `verb group/resource ns/name`.
pub fn denied(records: &[AuditRecord], rules: &[Rule]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .filter(|r| r.is_resource_request())
        .filter(|r| !rules.iter().any(|rule| rule.allows(r)))
        .map(|r| {
            let sub = if r.subresource.is_empty() {
                String::new()
            } else {
                format!("/{}", r.subresource)
            };
            format!(
                "{} {}/{}{} {}/{}",
                r.verb, r.api_group, r.resource, sub, r.namespace, r.name
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
