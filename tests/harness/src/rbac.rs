//! The chart's RBAC, seen through the local API server's RBAC model
//! ([`canary_test_apiserver::rbac`], the one the server enforces): the rules bound to a
//! ServiceAccount, expanded into one grant per (group, resource, verb, name) for assertions and
//! messages, and checked against API calls (the server's audit records) with the same matching
//! the server's authorizer uses. Rules bound to nobody grant nothing.

use std::{collections::BTreeSet, fmt};

use canary_test_apiserver::{
    AuditRecord,
    rbac::{self, Attributes, PolicyRule, UserInfo},
};
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

impl Access {
    /// The request attributes the authorizer sees.
    pub fn attributes(&self) -> Attributes {
        let (resource, subresource) =
            (self.resource.split_once('/')).unwrap_or((self.resource.as_str(), ""));
        Attributes {
            verb: self.verb.clone(),
            resource_request: true,
            api_group: self.api_group.clone(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            ..Attributes::default()
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
    /// Whether this grant allows `access` (a RoleBinding's only in its namespace; the rule
    /// matched as the server's authorizer matches it).
    pub fn allows(&self, access: &Access) -> bool {
        let rule = PolicyRule {
            verbs: vec![self.verb.clone()],
            api_groups: vec![self.api_group.clone()],
            resources: vec![self.resource.clone()],
            resource_names: Some(self.name.clone())
                .filter(|n| !n.is_empty())
                .into_iter()
                .collect(),
            non_resource_urls: Vec::new(),
        };
        let in_scope = (self.namespace.as_deref())
            .is_none_or(|ns| !access.namespace.is_empty() && ns == access.namespace);
        in_scope && rule.allows(&access.attributes())
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

/// Every grant the rendered (Cluster)Roles give ServiceAccount `namespace/name` through the
/// rendered bindings (as the server's authorizer resolves them): what kube-apiserver's RBAC
/// authorizer would allow it. Fails on a binding to a role the chart does not render.
pub fn service_account_grants(objects: &[Value], namespace: &str, name: &str) -> Vec<Grant> {
    let user = UserInfo::service_account(namespace, name);
    let (bound, errors) = rbac::bound_rules(objects, &user);
    assert!(
        errors.is_empty(),
        "the chart binds roles it does not render: {errors:?}"
    );
    let mut grants = BTreeSet::new();
    for bound in bound {
        let rule = &bound.rule;
        assert!(rule.non_resource_urls.is_empty(), "unexpected {rule:?}");
        let names = match rule.resource_names.as_slice() {
            [] => vec![String::new()],
            names => names.to_vec(),
        };
        for api_group in &rule.api_groups {
            for resource in &rule.resources {
                for (verb, name) in cross(&rule.verbs, &names) {
                    grants.insert(Grant {
                        namespace: bound.namespace.clone(),
                        api_group: api_group.clone(),
                        resource: resource.clone(),
                        verb,
                        name,
                        role: bound.role.clone(),
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
    let (namespace, account) = chart::service_account(objects);
    service_account_grants(objects, &namespace, &account)
}

/// The Lease name the grants are limited to, if any.
pub fn lease_name(grants: &[Grant]) -> Option<String> {
    (grants.iter())
        .find(|g| g.resource == "leases" && !g.name.is_empty())
        .map(|g| g.name.clone())
}

/// Non-resource URLs every authenticated user may read (kube's `system:discovery`,
/// `system:public-info-viewer` ClusterRoles, which the server's bootstrap policy holds), so no
/// chart rule is needed for them.
pub fn is_discovery(record: &AuditRecord) -> bool {
    let user = UserInfo::service_account("any", "any");
    let policy = rbac::bootstrap::objects();
    !record.is_resource_request()
        && rbac::authorize(&policy[..], &user, &record.attributes()).allowed
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
