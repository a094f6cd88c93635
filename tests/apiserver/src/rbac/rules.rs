//! One RBAC `PolicyRule` and whether it allows a request, as kube's `RuleAllows` decides
//! (`pkg/apis/rbac/v1/evaluation_helpers.go`): `*` matches any verb, group, resource or URL;
//! `*/status` any resource's `status`; `resourceNames` limit by name (so never a `create` or a
//! list without a `metadata.name` field selector); a URL ending in `*` matches its prefix.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Attributes;

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// Verbs, or `*`.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// API groups ("" for core), or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources (`secrets`, `healthchecks/status`, `*/status`), or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Object names the rule is limited to; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource URLs (`/healthz`, `/api/*`); only in ClusterRoles.
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

impl PolicyRule {
    /// The `rules` of a Role or ClusterRole object (malformed rules are skipped, as a
    /// validated object never has them).
    pub fn of_role(role: &Value) -> Vec<Self> {
        (role["rules"].as_array().into_iter().flatten())
            .filter_map(|rule| serde_json::from_value(rule.clone()).ok())
            .collect()
    }

    /// Whether this rule allows `attrs`.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !any_or(&self.verbs, &attrs.verb) {
            return false;
        }
        if !attrs.resource_request {
            return self.url_matches(&attrs.path);
        }
        let combined = match attrs.subresource.as_str() {
            "" => attrs.resource.clone(),
            sub => format!("{}/{sub}", attrs.resource),
        };
        any_or(&self.api_groups, &attrs.api_group)
            && self.resource_matches(&combined, &attrs.subresource)
            && (self.resource_names.is_empty() || self.resource_names.contains(&attrs.name))
    }

    fn resource_matches(&self, combined: &str, subresource: &str) -> bool {
        self.resources.iter().any(|granted| {
            granted == "*"
                || granted == combined
                || (!subresource.is_empty() && granted.strip_prefix("*/") == Some(subresource))
        })
    }

    fn url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|granted| {
            granted == "*"
                || granted == path
                || granted
                    .strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
    }
}

fn any_or(granted: &[String], wanted: &str) -> bool {
    granted.iter().any(|g| g == "*" || g == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use serde_json::json;

    fn rule(value: Value) -> PolicyRule {
        serde_json::from_value(value).expect("rule")
    }

    fn allows(rule: &PolicyRule, method: Method, uri: &str) -> bool {
        rule.allows(&Attributes::of_request(&method, uri))
    }

    #[test]
    fn verbs_groups_and_resources_match_exactly_or_by_star() {
        let r = rule(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}));
        assert!(allows(&r, Method::GET, "/api/v1/namespaces/a/secrets/x"));
        assert!(
            !allows(&r, Method::GET, "/api/v1/namespaces/a/secrets"),
            "list"
        );
        assert!(!allows(
            &r,
            Method::GET,
            "/api/v1/namespaces/a/configmaps/x"
        ));
        assert!(!allows(
            &r,
            Method::GET,
            "/apis/other/v1/namespaces/a/secrets/x"
        ));
        let star = rule(json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
        assert!(allows(
            &star,
            Method::DELETE,
            "/apis/apps/v1/namespaces/a/deployments"
        ));
        assert!(allows(
            &star,
            Method::PATCH,
            "/api/v1/namespaces/a/pods/p/status"
        ));
        assert!(
            !allows(&star, Method::GET, "/healthz"),
            "resources rules grant no URL"
        );
    }

    #[test]
    fn subresources_need_their_own_rule_or_a_star_prefix() {
        let main = rule(
            json!({"apiGroups": ["canary.dev"], "resources": ["healthchecks"], "verbs": ["patch"]}),
        );
        let status = "/apis/canary.dev/v1alpha1/namespaces/a/healthchecks/c/status";
        assert!(!allows(&main, Method::PATCH, status));
        let sub = rule(
            json!({"apiGroups": ["canary.dev"], "resources": ["healthchecks/status"], "verbs": ["patch"]}),
        );
        assert!(allows(&sub, Method::PATCH, status));
        assert!(!allows(
            &sub,
            Method::PATCH,
            "/apis/canary.dev/v1alpha1/namespaces/a/healthchecks/c"
        ));
        let any = rule(
            json!({"apiGroups": ["canary.dev"], "resources": ["*/status"], "verbs": ["patch"]}),
        );
        assert!(allows(&any, Method::PATCH, status));
        assert!(!allows(
            &any,
            Method::PATCH,
            "/apis/canary.dev/v1alpha1/namespaces/a/healthchecks/c"
        ));
    }

    #[test]
    fn resource_names_limit_gets_and_named_lists_but_never_create() {
        let r = rule(
            json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
            "resourceNames": ["l"], "verbs": ["get", "list", "watch", "create", "update"]}),
        );
        let leases = "/apis/coordination.k8s.io/v1/namespaces/a/leases";
        assert!(allows(&r, Method::GET, &format!("{leases}/l")));
        assert!(allows(&r, Method::PUT, &format!("{leases}/l")));
        assert!(!allows(&r, Method::GET, &format!("{leases}/m")));
        assert!(!allows(&r, Method::GET, leases), "a list without a name");
        assert!(allows(
            &r,
            Method::GET,
            &format!("{leases}?watch=1&fieldSelector=metadata.name%3Dl")
        ));
        assert!(!allows(&r, Method::POST, leases), "create has no name");
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_prefix() {
        let r = rule(json!({"nonResourceURLs": ["/api", "/api/*", "/healthz"], "verbs": ["get"]}));
        assert!(allows(&r, Method::GET, "/api"));
        assert!(allows(&r, Method::GET, "/api/v1"));
        assert!(allows(&r, Method::GET, "/healthz"));
        assert!(!allows(&r, Method::GET, "/healthz/etcd"));
        assert!(!allows(&r, Method::POST, "/api"));
        assert!(!allows(&r, Method::GET, "/apis"));
        assert!(
            !allows(&r, Method::GET, "/api/v1/namespaces/a/pods"),
            "URLs grant no resource"
        );
    }
}
