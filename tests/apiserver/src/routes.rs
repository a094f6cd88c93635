//! Parses request paths into what they address.

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/version`
    Version,
    /// `/healthz`, `/livez`, `/readyz`
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`
    Resources {
        /// API group ("" for core).
        group: String,
        /// Version.
        version: String,
    },
    /// `/openapi/v2`
    OpenApiV2,
    /// `/openapi/v3`
    OpenApiV3,
    /// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`
    OpenApiV3Gv {
        /// API group ("" for core).
        group: String,
        /// Version.
        version: String,
    },
    /// A collection, object or subresource.
    Object(ObjectPath),
}

/// The parts of a resource URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectPath {
    /// API group ("" for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace from the URL, if namespaced.
    pub namespace: Option<String>,
    /// Plural resource name.
    pub plural: String,
    /// Object name, absent for collections.
    pub name: Option<String>,
    /// Subresource such as `status`.
    pub sub: Option<String>,
}

fn object_path(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let owned = |s: &&str| s.to_string();
    let (namespace, tail): (Option<String>, &[&str]) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !matches!(*plural, "status" | "finalize") || !tail.is_empty() =>
        {
            (Some(ns.to_string()), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match tail {
        [plural] => (plural, None, None),
        [plural, name] => (plural, Some(name), None),
        [plural, name, sub] => (plural, Some(name), Some(sub)),
        _ => return None,
    };
    Some(Route::Object(ObjectPath {
        group: group.into(),
        version: version.into(),
        namespace,
        plural: plural.to_string(),
        name: name.map(owned),
        sub: sub.map(owned),
    }))
}

/// Parses a URL path (without query).
pub fn parse(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => Some(Route::Health),
        ["api"] => Some(Route::CoreVersions),
        ["apis"] => Some(Route::Groups),
        ["apis", group] => Some(Route::Group(group.to_string())),
        ["api", version] => Some(Route::Resources {
            group: String::new(),
            version: version.to_string(),
        }),
        ["apis", group, version] => Some(Route::Resources {
            group: group.to_string(),
            version: version.to_string(),
        }),
        ["openapi", "v2"] | ["swagger.json"] => Some(Route::OpenApiV2),
        ["openapi", "v3"] => Some(Route::OpenApiV3),
        ["openapi", "v3", "api", version] => Some(Route::OpenApiV3Gv {
            group: String::new(),
            version: version.to_string(),
        }),
        ["openapi", "v3", "apis", group, version] => Some(Route::OpenApiV3Gv {
            group: group.to_string(),
            version: version.to_string(),
        }),
        ["api", version, rest @ ..] => object_path("", version, rest),
        ["apis", group, version, rest @ ..] => object_path(group, version, rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(route: Option<Route>) -> ObjectPath {
        match route {
            Some(Route::Object(p)) => p,
            other => panic!("not an object route: {other:?}"),
        }
    }

    #[test]
    fn namespaced_and_cluster_paths() {
        let p = obj(parse("/api/v1/namespaces/default/configmaps/x"));
        assert_eq!(
            (p.namespace.as_deref(), p.plural.as_str(), p.name.as_deref()),
            (Some("default"), "configmaps", Some("x"))
        );
        let p = obj(parse("/api/v1/namespaces/default"));
        assert_eq!(
            (p.namespace, p.plural.as_str(), p.name.as_deref()),
            (None, "namespaces", Some("default"))
        );
        let p = obj(parse("/api/v1/namespaces/default/status"));
        assert_eq!(
            (p.plural.as_str(), p.sub.as_deref()),
            ("namespaces", Some("status"))
        );
        let p = obj(parse(
            "/apis/canary.dev/v1/namespaces/a/healthchecks/b/status",
        ));
        assert_eq!(
            (p.group.as_str(), p.sub.as_deref()),
            ("canary.dev", Some("status"))
        );
        let p = obj(parse("/apis/apps/v1/deployments"));
        assert_eq!((p.namespace, p.name), (None, None));
    }
}
