//! RBAC as kube-apiserver enforces it, in one model the server ([`crate::Options::rbac`]) and
//! the tests (comparing what a client did against a chart's rules) share: request
//! [`Attributes`], the [`UserInfo`] asking, a [`PolicyRule`]'s match, and the [`authorize`]
//! decision over stored or rendered (Cluster)Roles and bindings ([`RbacObjects`]).

mod attributes;
mod authorizer;
pub mod bootstrap;
mod rules;
#[cfg(test)]
mod tests;

pub use attributes::{
    ANONYMOUS, AUTHENTICATED, Attributes, MASTERS, SERVICE_ACCOUNT_PREFIX, UNAUTHENTICATED,
    UserInfo, service_account_of,
};
pub use authorizer::{
    BoundRule, Decision, RbacKind, RbacObjects, authorize, bound_rules, rules_in,
};
pub use rules::PolicyRule;

use crate::store::Store;

/// The storage id of each kind.
fn storage_id(kind: RbacKind) -> &'static str {
    match kind {
        RbacKind::Role => "roles.rbac.authorization.k8s.io",
        RbacKind::ClusterRole => "clusterroles.rbac.authorization.k8s.io",
        RbacKind::RoleBinding => "rolebindings.rbac.authorization.k8s.io",
        RbacKind::ClusterRoleBinding => "clusterrolebindings.rbac.authorization.k8s.io",
    }
}

impl RbacObjects for Store {
    fn rbac_objects(&self, kind: RbacKind, namespace: Option<&str>) -> Vec<&serde_json::Value> {
        let namespaced = matches!(kind, RbacKind::Role | RbacKind::RoleBinding);
        self.objects_in(storage_id(kind), namespace.filter(|_| namespaced))
    }
}
