//! Reviews answered by the authorizer and never stored, as kube serves them:
//! SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview,
//! LocalSubjectAccessReview, SelfSubjectRulesReview (`kubectl auth can-i --list`) and
//! authentication.k8s.io's SelfSubjectReview (`kubectl auth whoami`). Without RBAC every
//! review allows everything, as kube's AlwaysAllow authorizer does.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::rbac::{self, Attributes, PolicyRule, UserInfo};
use crate::routes::ObjectPath;
use crate::state::Shared;

/// Whether `group` is served here rather than by the store.
pub fn is_review(group: &str) -> bool {
    matches!(group, "authorization.k8s.io" | "authentication.k8s.io")
}

/// Answers a `create` of a review at `path` by `user` (the review with its `status`).
pub fn create(
    shared: &Shared,
    path: &ObjectPath,
    user: &UserInfo,
    body: Value,
) -> Result<Value, ApiError> {
    if path.name.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let spec = &body["spec"];
    let status = match (path.group.as_str(), path.plural.as_str(), &path.namespace) {
        ("authentication.k8s.io", "selfsubjectreviews", None) => {
            json!({"userInfo": {"username": user.name, "groups": user.groups}})
        }
        ("authorization.k8s.io", "selfsubjectaccessreviews", None) => {
            access(shared, user, spec, None)?
        }
        ("authorization.k8s.io", "subjectaccessreviews", None) => {
            access(shared, &subject(spec), spec, None)?
        }
        ("authorization.k8s.io", "localsubjectaccessreviews", Some(ns)) => {
            access(shared, &subject(spec), spec, Some(ns))?
        }
        ("authorization.k8s.io", "selfsubjectrulesreviews", None) => rules(shared, user, spec),
        _ => return Err(ApiError::no_route()),
    };
    let mut review = body.clone();
    review["apiVersion"] = json!(format!("{}/{}", path.group, path.version));
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = status;
    Ok(review)
}

/// The user a SubjectAccessReview asks about.
fn subject(spec: &Value) -> UserInfo {
    let groups = (spec["groups"].as_array().into_iter().flatten())
        .filter_map(|g| g.as_str().map(str::to_string))
        .collect();
    UserInfo {
        name: spec["user"].as_str().unwrap_or_default().to_string(),
        groups,
    }
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_string()
}

/// The status of an access review of `spec` for `user`.
fn access(
    shared: &Shared,
    user: &UserInfo,
    spec: &Value,
    local: Option<&str>,
) -> Result<Value, ApiError> {
    let (resource, non_resource) = (&spec["resourceAttributes"], &spec["nonResourceAttributes"]);
    let attrs = match (resource.is_object(), non_resource.is_object()) {
        (true, false) => {
            let namespace = text(resource, "namespace");
            if let Some(ns) = local.filter(|ns| !namespace.is_empty() && namespace != *ns) {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {ns}"
                )));
            }
            Attributes {
                verb: text(resource, "verb"),
                resource_request: true,
                api_group: text(resource, "group"),
                api_version: text(resource, "version"),
                resource: text(resource, "resource"),
                subresource: text(resource, "subresource"),
                namespace: local.map_or(namespace, str::to_string),
                name: text(resource, "name"),
                path: String::new(),
            }
        }
        (false, true) => Attributes {
            verb: text(non_resource, "verb"),
            path: text(non_resource, "path"),
            ..Attributes::default()
        },
        _ => {
            return Err(ApiError::bad_request(
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    if !shared.auth.rbac {
        return Ok(json!({"allowed": true}));
    }
    let decision = rbac::authorize(&*shared.store(), user, &attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    Ok(status)
}

/// The status of a SelfSubjectRulesReview: the user's rules in `spec.namespace`.
fn rules(shared: &Shared, user: &UserInfo, spec: &Value) -> Value {
    let namespace = text(spec, "namespace");
    let (rules, errors) = match shared.auth.rbac {
        true => rbac::rules_in(&*shared.store(), user, &namespace),
        false => (
            serde_json::from_value(json!([
                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                {"verbs": ["*"], "nonResourceURLs": ["*"]},
            ]))
            .unwrap_or_default(),
            Vec::new(),
        ),
    };
    let (urls, resources): (Vec<PolicyRule>, Vec<PolicyRule>) = rules
        .into_iter()
        .partition(|r| !r.non_resource_urls.is_empty());
    let non_resource: Vec<Value> = (urls.iter())
        .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
        .collect();
    let mut status = json!({"resourceRules": resources, "nonResourceRules": non_resource,
        "incomplete": !errors.is_empty()});
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    status
}
