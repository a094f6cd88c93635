//! Which objects a discovery reads: label selectors, the opt-in annotation, Ingress classes.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::ObjectMeta;

use super::{CHECK_ANNOTATION, Scope, namespace_of};
use crate::api::{OptIn, Selector, SelectorOperator};

/// The annotation that marks the default IngressClass.
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The class annotation older Ingresses use instead of `spec.ingressClassName`.
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Whether `labels` satisfy `selector` (none, or an empty one, selects everything).
pub(super) fn matches(selector: Option<&Selector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    let by_label = (selector.match_labels.iter()).all(|(k, v)| labels.get(k) == Some(v));
    by_label
        && (selector.match_expressions.iter()).all(|r| {
            let value = labels.get(&r.key);
            match r.operator {
                SelectorOperator::In => value.is_some_and(|v| r.values.contains(v)),
                SelectorOperator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                SelectorOperator::Exists => value.is_some(),
                SelectorOperator::DoesNotExist => value.is_none(),
            }
        })
}

/// Whether an object of the discovery's namespace is selected and opted in.
pub(super) fn wanted(scope: &Scope<'_>, meta: &ObjectMeta, selector: Option<&Selector>) -> bool {
    let annotation = (meta.annotations.as_ref()).and_then(|a| a.get(CHECK_ANNOTATION));
    let opted = match (annotation.map(String::as_str), scope.discovery.spec.opt_in) {
        (Some("false"), _) => false,
        (Some("true"), _) => true,
        (_, OptIn::All) => true,
        (_, OptIn::Annotation) => false,
    };
    let empty = BTreeMap::new();
    opted
        && namespace_of(meta) == scope.namespace
        && matches(selector, meta.labels.as_ref().unwrap_or(&empty))
}

/// Whether an Ingress is of one of `classes` (its own class, else the default class); any
/// class when `classes` is empty.
pub(super) fn of_class(ingress: &Ingress, classes: &[String], known: &[IngressClass]) -> bool {
    if classes.is_empty() {
        return true;
    }
    let annotated = (ingress.metadata.annotations.as_ref()).and_then(|a| a.get(CLASS_ANNOTATION));
    let named = (ingress.spec.as_ref())
        .and_then(|s| s.ingress_class_name.as_ref())
        .or(annotated);
    let class = named.cloned().or_else(|| {
        let default = known.iter().find(|c| {
            (c.metadata.annotations.as_ref())
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .is_some_and(|v| v == "true")
        });
        default.and_then(|c| c.metadata.name.clone())
    });
    class.is_some_and(|c| classes.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        (pairs.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_labels_and_every_operator() {
        let requirement = |key: &str, operator, values: &[&str]| SelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let selector = Selector {
            match_labels: labels(&[("team", "shop")]),
            match_expressions: vec![
                requirement("tier", SelectorOperator::In, &["web", "api"]),
                requirement("env", SelectorOperator::NotIn, &["dev"]),
                requirement("public", SelectorOperator::Exists, &[]),
                requirement("internal", SelectorOperator::DoesNotExist, &[]),
            ],
        };
        let good = labels(&[("team", "shop"), ("tier", "web"), ("public", "")]);
        assert!(matches(Some(&selector), &good));
        assert!(matches(None, &good));
        assert!(matches(Some(&Selector::default()), &BTreeMap::new()));
        let mut bad = good.clone();
        bad.insert("env".into(), "dev".into());
        assert!(!matches(Some(&selector), &bad));
        let mut bad = good.clone();
        bad.insert("internal".into(), "x".into());
        assert!(!matches(Some(&selector), &bad));
        assert!(!matches(
            Some(&selector),
            &labels(&[("team", "shop"), ("tier", "db"), ("public", "")])
        ));
    }
}
