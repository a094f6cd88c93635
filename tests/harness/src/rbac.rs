//! One RBAC model: the rules of the (Cluster)Roles bound to a ServiceAccount, expanded into
//! grants and checked against API calls (the local API server's audit records) the way
//! kube-apiserver's RBAC authorizer would. Rules bound to nobody grant nothing.

use std::{collections::BTreeSet, fmt};

use canary_test_apiserver::AuditRecord;
use serde_json::Value;

use crate::chart;

/// One API call, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub verb: String,
    pub api_group: String,
    /// `resource` or `resource/subresource`.
    pub resource: String,
    /// "" for a cluster-wide request (all namespaces or a cluster-scoped object).
    pub namespace: String,
    /// "" for collections and `create`.
    pub name: String,
}

impl Access {
    /// The access an audited request needed.
    pub fn of(record: &AuditRecord) -> Self {
        let resource = match record.subresource.as_str() {
            "" => record.resource.clone(),
            sub => format!("{}/{sub}", record.resource),
        };
        Self {
            verb: record.verb.clone(),
            api_group: record.api_group.clone(),
            resource,
            namespace: record.namespace.clone(),
            name: record.name.clone(),
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = Some(self.namespace.as_str()).filter(|ns| !ns.is_empty());
        let (verb, group, resource) = (&self.verb, &self.api_group, &self.resource);
        write_permission(f, [verb, group, resource], scope, &self.name)
    }
}

/// One expanded grant of a (Cluster)Role bound to the ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// `None`: granted cluster-wide (ClusterRoleBinding); `Some(ns)`: a RoleBinding in `ns`.
    pub namespace: Option<String>,
    pub api_group: String,
    pub resource: String,
    pub verb: String,
    /// "" for any name.
    pub name: String,
    /// `Kind/name` of the role that grants it.
    pub role: String,
}

impl Grant {
    /// Whether this grant allows `access`.
    pub fn allows(&self, access: &Access) -> bool {
        let any = |granted: &str, wanted: &str| granted == "*" || granted == wanted;
        self.namespace
            .as_deref()
            .is_none_or(|ns| !access.namespace.is_empty() && ns == access.namespace)
            && any(&self.api_group, &access.api_group)
            && any(&self.resource, &access.resource)
            && any(&self.verb, &access.verb)
            && (self.name.is_empty() || self.name == access.name)
    }

    /// (API group, resource, verb, name or "" for any): the rule, without scope and role.
    pub fn rule(&self) -> Rule {
        let Self {
            api_group,
            resource,
            verb,
            name,
            ..
        } = self.clone();
        (api_group, resource, verb, name)
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (verb, group, resource) = (&self.verb, &self.api_group, &self.resource);
        write_permission(
            f,
            [verb, group, resource],
            self.namespace.as_deref(),
            &self.name,
        )?;
        write!(f, " [{}]", self.role)
    }
}

/// A rule without scope: (API group, resource, verb, name or "" for any).
pub type Rule = (String, String, String, String);

/// Rules for (group, resource, verbs) triples, for any name.
pub fn rules(triples: &[(&str, &str, &[&str])]) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for (group, resource, verbs) in triples {
        for verb in *verbs {
            out.insert((
                group.to_string(),
                resource.to_string(),
                verb.to_string(),
                String::new(),
            ));
        }
    }
    out
}

fn write_permission(
    f: &mut fmt::Formatter<'_>,
    [verb, group, resource]: [&String; 3],
    namespace: Option<&str>,
    name: &str,
) -> fmt::Result {
    let group = if group.is_empty() { "core" } else { group };
    write!(f, "{verb} {resource} ({group})")?;
    match namespace {
        None => write!(f, " cluster-wide")?,
        Some(ns) => write!(f, " in namespace {ns}")?,
    }
    if !name.is_empty() {
        write!(f, " name {name}")?;
    }
    Ok(())
}

fn strings(value: &Value) -> Vec<String> {
    (value.as_array().into_iter().flatten())
        .map(|s| s.as_str().expect("RBAC lists hold strings").to_owned())
        .collect()
}

/// The (Cluster)Roles bound to ServiceAccount `namespace/name`, with the namespace each binding
/// limits them to (`None`: a ClusterRoleBinding).
fn bound_roles(objects: &[Value], namespace: &str, name: &str) -> Vec<(Option<String>, Value)> {
    let binds_us = |binding: &Value| {
        (binding["subjects"].as_array().into_iter().flatten()).any(|s| {
            s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"] == namespace
        })
    };
    let role = |kind: &str, name: &Value, ns: Option<&str>| -> Value {
        (chart::of_kind(objects, kind).into_iter())
            .find(|r| {
                &r["metadata"]["name"] == name
                    && ns.is_none_or(|ns| r["metadata"]["namespace"] == ns)
            })
            .unwrap_or_else(|| panic!("no rendered {kind} {name} (namespace {ns:?})"))
            .clone()
    };
    let mut bound = Vec::new();
    for binding in chart::of_kind(objects, "ClusterRoleBinding")
        .into_iter()
        .filter(|b| binds_us(b))
    {
        let r = &binding["roleRef"];
        assert_eq!(r["kind"], "ClusterRole", "{binding}");
        bound.push((None, role("ClusterRole", &r["name"], None)));
    }
    for binding in chart::of_kind(objects, "RoleBinding")
        .into_iter()
        .filter(|b| binds_us(b))
    {
        let ns = binding["metadata"]["namespace"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = &binding["roleRef"];
        let granting = match r["kind"].as_str() {
            Some("Role") => role("Role", &r["name"], Some(&ns)),
            _ => role("ClusterRole", &r["name"], None),
        };
        bound.push((Some(ns), granting));
    }
    bound
}

/// Every grant the rendered (Cluster)Roles give ServiceAccount `namespace/name` through the
/// rendered bindings: what kube-apiserver's RBAC authorizer would allow it.
pub fn service_account_grants(objects: &[Value], namespace: &str, name: &str) -> Vec<Grant> {
    let mut grants = BTreeSet::new();
    for (scope, role) in bound_roles(objects, namespace, name) {
        let role_name = format!(
            "{}/{}",
            role["kind"].as_str().unwrap(),
            role["metadata"]["name"].as_str().unwrap()
        );
        for rule in role["rules"].as_array().expect("rules") {
            assert!(rule.get("nonResourceURLs").is_none(), "unexpected {rule}");
            let mut names = strings(&rule["resourceNames"]);
            if names.is_empty() {
                names.push(String::new());
            }
            for (api_group, resource) in
                cross(&strings(&rule["apiGroups"]), &strings(&rule["resources"]))
            {
                for (verb, name) in cross(&strings(&rule["verbs"]), &names) {
                    grants.insert(Grant {
                        namespace: scope.clone(),
                        api_group: api_group.clone(),
                        resource: resource.clone(),
                        verb,
                        name,
                        role: role_name.clone(),
                    });
                }
            }
        }
    }
    grants.into_iter().collect()
}

fn cross(a: &[String], b: &[String]) -> Vec<(String, String)> {
    (a.iter())
        .flat_map(|x| b.iter().map(move |y| (x.clone(), y.clone())))
        .collect()
}

/// The grants of the ServiceAccount the rendered Deployment runs as.
pub fn deployment_grants(objects: &[Value]) -> Vec<Grant> {
    let deployment = chart::one(objects, "Deployment");
    let namespace = deployment["metadata"]["namespace"]
        .as_str()
        .expect("namespace");
    let pod = &deployment["spec"]["template"]["spec"];
    let account = pod["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    service_account_grants(objects, namespace, account)
}

/// The Lease name the grants are limited to, if any.
pub fn lease_name(grants: &[Grant]) -> Option<String> {
    (grants.iter())
        .find(|g| g.resource == "leases" && !g.name.is_empty())
        .map(|g| g.name.clone())
}

/// Non-resource URLs every authenticated user may read (kube's `system:discovery`,
/// `system:public-info-viewer` ClusterRoles), so no chart rule is needed for them.
pub fn is_discovery(record: &AuditRecord) -> bool {
    let path = record.request_uri.split('?').next().unwrap_or_default();
    record.verb == "get"
        && [
            "/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz",
        ]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// The calls in `records` that `grants` do not allow (non-resource URLs other than discovery
/// included), one line each, sorted and deduplicated.
pub fn denied(records: &[AuditRecord], grants: &[Grant]) -> Vec<String> {
    let mut out: Vec<String> = (records.iter())
        .filter_map(|r| {
            if !r.is_resource_request() {
                let what = format!(
                    "{} {} (non-resource URL, no rule grants it)",
                    r.verb, r.request_uri
                );
                return (!is_discovery(r)).then_some(what);
            }
            let access = Access::of(r);
            let allowed = grants.iter().any(|g| g.allows(&access));
            (!allowed)
                .then(|| format!("{access}: {} {} answered {}", r.verb, r.request_uri, r.code))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
