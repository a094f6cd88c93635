//! Who asks ([`UserInfo`]) and what for ([`Attributes`]), derived from a request as
//! kube-apiserver's `RequestInfoFactory` derives them (`staging/src/k8s.io/apiserver/pkg/
//! endpoints/request/requestinfo.go`).

use http::Method;

/// kube's `system:masters`: every request is allowed.
pub const MASTERS: &str = "system:masters";
/// Every authenticated user is in this group.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The anonymous user's group.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// Prefix of ServiceAccount user names: `system:serviceaccount:<namespace>:<name>`.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// An authenticated identity: a user name and its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name, e.g. `system:serviceaccount:canary:canary-operator`.
    pub name: String,
    /// Groups, e.g. `system:serviceaccounts`, `system:authenticated`.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The administrator kubectl and helm act as (`kubernetes-admin` in `system:masters`).
    pub fn admin() -> Self {
        Self {
            name: "kubernetes-admin".into(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
        }
    }

    /// A request without credentials.
    pub fn anonymous() -> Self {
        Self {
            name: ANONYMOUS.into(),
            groups: vec![UNAUTHENTICATED.into()],
        }
    }

    /// ServiceAccount `namespace/name`, with the groups kube gives every ServiceAccount.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED.into(),
            ],
        }
    }

    /// (namespace, name) when the user is a ServiceAccount.
    pub fn as_service_account(&self) -> Option<(&str, &str)> {
        service_account_of(&self.name)
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// (namespace, name) of a ServiceAccount user name `system:serviceaccount:<ns>:<name>`.
pub fn service_account_of(user_name: &str) -> Option<(&str, &str)> {
    let rest = user_name.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// What a request asks to do, as the authorizer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`
    /// for resources; the lower-cased HTTP method for non-resource URLs.
    pub verb: String,
    /// Whether this addresses a resource (`/api/v1/...`, `/apis/g/v/...`).
    pub resource_request: bool,
    /// API group ("" for core).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource such as `status`, or "".
    pub subresource: String,
    /// Namespace ("" for cluster-scoped objects and all-namespace collections; a namespace's
    /// own name for `/api/v1/namespaces/<name>`).
    pub namespace: String,
    /// Object name; for a list, watch or deletecollection whose field selector requires
    /// `metadata.name`, that name (so `resourceNames` can allow it).
    pub name: String,
    /// The URL path.
    pub path: String,
}

impl Attributes {
    /// The attributes of a request with `method` on `path_and_query`.
    pub fn of_request(method: &Method, path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut attrs = Self {
            verb: method.as_str().to_ascii_lowercase(),
            path: path.to_string(),
            ..Self::default()
        };
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let rest = match parts.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => {
                attrs.api_version = version.to_string();
                rest
            }
            ["apis", group, version, rest @ ..] if !rest.is_empty() => {
                attrs.api_group = group.to_string();
                attrs.api_version = version.to_string();
                rest
            }
            _ => return attrs,
        };
        attrs.resource_request = true;
        attrs.resource_parts(method, rest, query);
        attrs
    }

    fn resource_parts(&mut self, method: &Method, rest: &[&str], query: &str) {
        let (special, rest) = match rest {
            ["watch", tail @ ..] if !tail.is_empty() => (Some("watch"), tail),
            ["proxy", tail @ ..] if !tail.is_empty() => (Some("proxy"), tail),
            _ => (None, rest),
        };
        self.verb = special.map_or_else(|| method_verb(method), str::to_string);
        let parts = match rest {
            ["namespaces", namespace, tail @ ..] => {
                self.namespace = namespace.to_string();
                match tail {
                    [first, ..] if !matches!(*first, "status" | "finalize") => tail,
                    _ => rest,
                }
            }
            _ => rest,
        };
        self.resource = parts[0].to_string();
        if let Some(name) = parts.get(1) {
            self.name = name.to_string();
        }
        if let Some(sub) = parts.get(2)
            && special != Some("proxy")
        {
            self.subresource = sub.to_string();
        }
        if self.name.is_empty() {
            self.collection_verb(query);
        }
    }

    /// A request without a name: `get` is a list or a watch, `delete` a deletecollection; a
    /// field selector requiring `metadata.name` names the object.
    fn collection_verb(&mut self, query: &str) {
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let param = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        match self.verb.as_str() {
            "get" if param("watch").is_some_and(|w| is_true(w)) => self.verb = "watch".into(),
            "get" => self.verb = "list".into(),
            "delete" => self.verb = "deletecollection".into(),
            _ => return,
        }
        if let Some(name) = param("fieldSelector").and_then(|s| required_name(s)) {
            self.name = name;
        }
    }
}

fn method_verb(method: &Method) -> String {
    match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
    .to_string()
}

/// Go's `strconv.ParseBool` truths.
fn is_true(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// The name a field selector requires (`metadata.name=x` or `==x` among its terms), if it is
/// a valid path segment.
fn required_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let value = (term.trim().strip_prefix("metadata.name"))?;
        let value = value
            .strip_prefix("==")
            .or_else(|| value.strip_prefix('='))?;
        let valid = !matches!(value, "" | "." | "..") && !value.contains(['/', '%']);
        valid.then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, uri: &str) -> Attributes {
        Attributes::of_request(&method, uri)
    }

    #[test]
    fn resource_requests_are_parsed_as_kube_parses_them() {
        let a = attrs(
            Method::PATCH,
            "/apis/canary.dev/v1alpha1/namespaces/a/healthchecks/b/status?fieldManager=x",
        );
        let got = (a.verb.as_str(), a.api_group.as_str(), a.resource.as_str());
        assert_eq!(got, ("patch", "canary.dev", "healthchecks"));
        let got = (
            a.subresource.as_str(),
            a.namespace.as_str(),
            a.name.as_str(),
        );
        assert_eq!(got, ("status", "a", "b"));
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/a/secrets/s",
                "get",
                "a",
                "s",
            ),
            (Method::GET, "/api/v1/secrets", "list", "", ""),
            (Method::GET, "/api/v1/secrets?watch=true", "watch", "", ""),
            (Method::GET, "/api/v1/watch/secrets", "watch", "", ""),
            (Method::HEAD, "/api/v1/namespaces/a/pods/p", "get", "a", "p"),
            (
                Method::DELETE,
                "/api/v1/namespaces/a/pods",
                "deletecollection",
                "a",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/kube-system",
                "get",
                "kube-system",
                "kube-system",
            ),
            (Method::GET, "/api/v1/namespaces", "list", "", ""),
        ];
        for (method, uri, verb, namespace, name) in cases {
            let a = attrs(method, uri);
            let got = (a.verb.as_str(), a.namespace.as_str(), a.name.as_str());
            assert_eq!(got, (verb, namespace, name), "{uri}");
            assert!(a.resource_request, "{uri}");
        }
        let ns_status = attrs(Method::PUT, "/api/v1/namespaces/a/finalize");
        let got = (ns_status.resource.as_str(), ns_status.subresource.as_str());
        assert_eq!(got, ("namespaces", "finalize"));
    }

    #[test]
    fn a_metadata_name_field_selector_names_the_object_of_a_list_or_watch() {
        let uri = "/apis/coordination.k8s.io/v1/namespaces/a/leases?fieldSelector=metadata.name%3Dl&watch=1";
        let a = attrs(Method::GET, uri);
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "l"));
        let other = attrs(Method::GET, "/api/v1/pods?fieldSelector=spec.nodeName%3Dn");
        assert_eq!(other.name, "");
        let bad = attrs(Method::GET, "/api/v1/pods?fieldSelector=metadata.name%3D..");
        assert_eq!(bad.name, "");
    }

    #[test]
    fn discovery_and_health_are_non_resource_urls() {
        for uri in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/healthz",
        ] {
            let a = attrs(Method::GET, uri);
            assert!(!a.resource_request, "{uri}");
            assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", uri));
        }
    }

    #[test]
    fn service_account_users_carry_kubes_groups() {
        let sa = UserInfo::service_account("canary", "op");
        assert_eq!(sa.name, "system:serviceaccount:canary:op");
        assert!(sa.in_group("system:serviceaccounts:canary") && sa.in_group(AUTHENTICATED));
        assert_eq!(sa.as_service_account(), Some(("canary", "op")));
        assert_eq!(UserInfo::admin().as_service_account(), None);
    }
}
