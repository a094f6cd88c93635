//! kube's RBAC authorizer (`plugin/pkg/auth/authorizer/rbac/rbac.go` and `pkg/registry/rbac/
//! validation/rule.go`) over any set of stored or rendered RBAC objects: the ClusterRoleBindings
//! and the RoleBindings of the request's namespace whose subjects include the user grant the
//! rules of the role they reference. `system:masters` is allowed everything first, as kube's
//! privileged-group authorizer does.

use serde_json::Value;

use super::{Attributes, MASTERS, PolicyRule, UserInfo};

/// The four RBAC kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RbacKind {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

impl RbacKind {
    /// The `kind` of the objects.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Role => "Role",
            Self::ClusterRole => "ClusterRole",
            Self::RoleBinding => "RoleBinding",
            Self::ClusterRoleBinding => "ClusterRoleBinding",
        }
    }
}

/// Where RBAC objects come from: the server's store, or objects a chart renders.
pub trait RbacObjects {
    /// The objects of `kind`; for Roles and RoleBindings only those in `namespace` (any
    /// namespace when `None`).
    fn rbac_objects(&self, kind: RbacKind, namespace: Option<&str>) -> Vec<&Value>;
}

impl RbacObjects for [Value] {
    fn rbac_objects(&self, kind: RbacKind, namespace: Option<&str>) -> Vec<&Value> {
        let namespaced = matches!(kind, RbacKind::Role | RbacKind::RoleBinding);
        (self.iter())
            .filter(|o| o["kind"] == kind.kind())
            .filter(|o| {
                !namespaced
                    || namespace.is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
            })
            .collect()
    }
}

/// What the authorizer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// kube's reason: `RBAC: allowed by ...` when allowed, the errors met (a binding to a
    /// missing role) when not, "" otherwise.
    pub reason: String,
}

/// A rule bound to a user, and where it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundRule {
    /// `None`: cluster-wide (a ClusterRoleBinding); `Some(ns)`: a RoleBinding in `ns`.
    pub namespace: Option<String>,
    /// `Kind/name` of the role.
    pub role: String,
    /// How kube describes the binding: `ClusterRoleBinding "x" of ClusterRole "y" to Group "z"`.
    pub binding: String,
    /// The rule.
    pub rule: PolicyRule,
}

/// Decides `attrs` for `user` from `objects`.
pub fn authorize<O: RbacObjects + ?Sized>(
    objects: &O,
    user: &UserInfo,
    attrs: &Attributes,
) -> Decision {
    if user.in_group(MASTERS) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let mut errors = Vec::new();
    for (binding, rules) in bindings_of(objects, user, Scope::of(&attrs.namespace), &mut errors) {
        if rules.iter().any(|rule| rule.allows(attrs)) {
            return Decision {
                allowed: true,
                reason: format!("RBAC: allowed by {}", binding.description),
            };
        }
    }
    let reason = match errors.as_slice() {
        [] => String::new(),
        [one] => format!("RBAC: {one}"),
        many => format!("RBAC: [{}]", many.join(", ")),
    };
    Decision {
        allowed: false,
        reason,
    }
}

/// Every rule bound to `user`: through ClusterRoleBindings (cluster-wide) and RoleBindings of
/// every namespace; and the errors met (bindings to roles that do not exist).
pub fn bound_rules<O: RbacObjects + ?Sized>(
    objects: &O,
    user: &UserInfo,
) -> (Vec<BoundRule>, Vec<String>) {
    let mut errors = Vec::new();
    let rules = (bindings_of(objects, user, Scope::Everywhere, &mut errors).into_iter())
        .flat_map(|(binding, rules)| {
            rules.into_iter().map(move |rule| BoundRule {
                namespace: binding.namespace.clone(),
                role: binding.role.clone(),
                binding: binding.description.clone(),
                rule,
            })
        })
        .collect();
    (rules, errors)
}

/// The rules a user has in `namespace` (cluster-wide ones included), as kube's `RulesFor`
/// (SelfSubjectRulesReview) lists them.
pub fn rules_in<O: RbacObjects + ?Sized>(
    objects: &O,
    user: &UserInfo,
    namespace: &str,
) -> (Vec<PolicyRule>, Vec<String>) {
    let mut errors = Vec::new();
    let rules = (bindings_of(objects, user, Scope::of(namespace), &mut errors).into_iter())
        .flat_map(|(_, rules)| rules)
        .collect();
    (rules, errors)
}

/// A binding that applies to the user.
struct Applied {
    namespace: Option<String>,
    role: String,
    description: String,
}

/// Which RoleBindings count (ClusterRoleBindings always do).
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// None: a cluster-scoped or all-namespaces request.
    Cluster,
    /// Those of one namespace.
    Namespace(&'a str),
    /// Those of every namespace (to list everything a user is granted).
    Everywhere,
}

impl<'a> Scope<'a> {
    fn of(namespace: &'a str) -> Self {
        match namespace {
            "" => Self::Cluster,
            ns => Self::Namespace(ns),
        }
    }
}

/// The bindings in `scope` that apply to `user`, with their role's rules: ClusterRoleBindings
/// first, then RoleBindings.
fn bindings_of<O: RbacObjects + ?Sized>(
    objects: &O,
    user: &UserInfo,
    scope: Scope<'_>,
    errors: &mut Vec<String>,
) -> Vec<(Applied, Vec<PolicyRule>)> {
    let cluster = objects.rbac_objects(RbacKind::ClusterRoleBinding, None);
    let local = match scope {
        Scope::Cluster => Vec::new(),
        Scope::Namespace(ns) => objects.rbac_objects(RbacKind::RoleBinding, Some(ns)),
        Scope::Everywhere => objects.rbac_objects(RbacKind::RoleBinding, None),
    };
    let mut out = Vec::new();
    for binding in cluster.into_iter().chain(local) {
        let binding_ns = binding["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        let Some(subject) = subject_for(binding, user, binding_ns) else {
            continue;
        };
        let role_ref = &binding["roleRef"];
        let (kind, name) = (text(role_ref, "kind"), text(role_ref, "name"));
        let applied = Applied {
            namespace: Some(binding_ns.to_string()).filter(|ns| !ns.is_empty()),
            role: format!("{kind}/{name}"),
            description: describe(binding, subject, binding_ns),
        };
        match role(objects, kind, name, binding_ns) {
            Some(role) => out.push((applied, PolicyRule::of_role(role))),
            None => errors.push(missing_role(kind, name)),
        }
    }
    out
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

/// The role a binding references: a ClusterRole, or a Role in the binding's namespace.
fn role<'a, O: RbacObjects + ?Sized>(
    objects: &'a O,
    kind: &str,
    name: &str,
    namespace: &str,
) -> Option<&'a Value> {
    let (kind, ns) = match kind {
        "Role" => (RbacKind::Role, Some(namespace)),
        "ClusterRole" => (RbacKind::ClusterRole, None),
        _ => return None,
    };
    (objects.rbac_objects(kind, ns).into_iter()).find(|r| r["metadata"]["name"] == name)
}

/// kube's error for a binding to a role that does not exist (the lister's NotFound).
fn missing_role(kind: &str, name: &str) -> String {
    format!(
        "{}.rbac.authorization.k8s.io \"{name}\" not found",
        kind.to_ascii_lowercase()
    )
}

/// The first subject of `binding` that is `user` (kube's `appliesTo`).
fn subject_for<'a>(binding: &'a Value, user: &UserInfo, binding_ns: &str) -> Option<&'a Value> {
    let subjects = binding["subjects"].as_array()?;
    subjects.iter().find(|s| {
        let name = text(s, "name");
        match text(s, "kind") {
            "User" => user.name == name,
            "Group" => user.in_group(name),
            "ServiceAccount" => {
                let ns = Some(text(s, "namespace")).filter(|ns| !ns.is_empty());
                let ns = ns.unwrap_or(binding_ns);
                !ns.is_empty() && user.as_service_account() == Some((ns, name))
            }
            _ => false,
        }
    })
}

/// `ClusterRoleBinding "b" of ClusterRole "r" to Group "g"`, `RoleBinding "b/ns" of Role "r"
/// to ServiceAccount "sa/ns"`, as kube's authorizer words the source of an allowing rule.
fn describe(binding: &Value, subject: &Value, binding_ns: &str) -> String {
    let name = text(&binding["metadata"], "name");
    let role_ref = &binding["roleRef"];
    let (kind, role) = (text(role_ref, "kind"), text(role_ref, "name"));
    let subject_kind = text(subject, "kind");
    let subject_name = match subject_kind {
        "ServiceAccount" => {
            let ns = Some(text(subject, "namespace")).filter(|ns| !ns.is_empty());
            format!("{}/{}", text(subject, "name"), ns.unwrap_or(binding_ns))
        }
        _ => text(subject, "name").to_string(),
    };
    let subject = format!("{subject_kind} \"{subject_name}\"");
    match binding_ns {
        "" => format!("ClusterRoleBinding \"{name}\" of {kind} \"{role}\" to {subject}"),
        ns => format!("RoleBinding \"{name}/{ns}\" of {kind} \"{role}\" to {subject}"),
    }
}
