//! The audit log: one record per answered request, named as kube-apiserver's audit log names
//! it (verb, apiGroup, resource, subresource, namespace, name), kept in a bounded buffer.

use crate::rbac::Attributes;
use http::Method;
use std::collections::VecDeque;
use std::time::{Instant, SystemTime};

/// Records kept by default (the oldest are dropped first).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// kube-apiserver's verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection` for resources; the lower-cased HTTP method for non-resource URLs.
    pub verb: String,
    /// API group ("" for core and for non-resource URLs).
    pub api_group: String,
    /// API version ("" for non-resource URLs).
    pub api_version: String,
    /// Plural resource ("" for non-resource URLs such as `/api` or `/version`).
    pub resource: String,
    /// Subresource such as `status`, or "".
    pub subresource: String,
    /// Namespace ("" for cluster-scoped objects and all-namespace collections).
    pub namespace: String,
    /// Object name ("" for collections). For namespaces, the namespace's own name.
    pub name: String,
    /// Path and query as requested.
    pub request_uri: String,
    /// HTTP status of the answer (for watches: the status the stream started with).
    pub code: u16,
    /// The user the request acted as ("" when it was answered before authentication, e.g. an
    /// injected fault; 401s too).
    pub user: String,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Wall-clock time the request arrived.
    pub timestamp: SystemTime,
    /// Monotonic time the request arrived (for rates and ordering).
    pub received: Instant,
}

impl AuditRecord {
    /// Describes a request before it is answered (`code` and `user` are filled in later).
    pub fn new(method: &Method, path_and_query: &str, user_agent: &str) -> Self {
        let attrs = Attributes::of_request(method, path_and_query);
        Self {
            verb: attrs.verb,
            api_group: attrs.api_group,
            api_version: attrs.api_version,
            resource: attrs.resource,
            subresource: attrs.subresource,
            namespace: attrs.namespace,
            name: attrs.name,
            request_uri: path_and_query.to_string(),
            code: 0,
            user: String::new(),
            user_agent: user_agent.to_string(),
            timestamp: SystemTime::now(),
            received: Instant::now(),
        }
    }

    /// What the request asked, as the authorizer sees it (to check it against RBAC rules).
    pub fn attributes(&self) -> Attributes {
        Attributes {
            verb: self.verb.clone(),
            resource_request: self.is_resource_request(),
            api_group: self.api_group.clone(),
            api_version: self.api_version.clone(),
            resource: self.resource.clone(),
            subresource: self.subresource.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            path: (self.request_uri.split('?').next())
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// Whether this is a request on a resource (not discovery, OpenAPI or health).
    pub fn is_resource_request(&self) -> bool {
        !self.resource.is_empty()
    }
}

/// A bounded buffer of audit records.
#[derive(Debug)]
pub struct AuditLog {
    records: VecDeque<AuditRecord>,
    capacity: usize,
    dropped: u64,
}

impl AuditLog {
    /// An empty log keeping at most `capacity` records.
    pub fn new(capacity: usize) -> Self {
        Self {
            records: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    /// Appends a record, dropping the oldest beyond the capacity.
    pub fn push(&mut self, record: AuditRecord) {
        if self.capacity == 0 {
            self.dropped += 1;
            return;
        }
        while self.records.len() >= self.capacity {
            self.records.pop_front();
            self.dropped += 1;
        }
        self.records.push_back(record);
    }

    /// All kept records, oldest first.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records.iter().cloned().collect()
    }

    /// Records dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Forgets every record.
    pub fn clear(&mut self) {
        self.records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(method: Method, uri: &str) -> AuditRecord {
        AuditRecord::new(&method, uri, "kubectl/v1.35.0")
    }

    #[test]
    fn verbs_and_coordinates_are_named_as_kube_names_them() {
        let r = verb(
            Method::PATCH,
            "/apis/canary.dev/v1alpha1/namespaces/a/healthchecks/b/status?fieldManager=x",
        );
        assert_eq!(
            (
                r.verb.as_str(),
                r.api_group.as_str(),
                r.api_version.as_str(),
                r.resource.as_str(),
                r.subresource.as_str(),
                r.namespace.as_str(),
                r.name.as_str()
            ),
            (
                "patch",
                "canary.dev",
                "v1alpha1",
                "healthchecks",
                "status",
                "a",
                "b"
            )
        );
        let cases = [
            (Method::GET, "/api/v1/namespaces/a/secrets/s", "get"),
            (Method::GET, "/api/v1/secrets", "list"),
            (Method::GET, "/api/v1/secrets?watch=true&rv=1", "watch"),
            (Method::GET, "/api/v1/secrets?watch=1", "watch"),
            (Method::GET, "/api/v1/secrets?watch=false", "list"),
            (Method::POST, "/api/v1/namespaces/a/configmaps", "create"),
            (Method::PUT, "/api/v1/namespaces/a/configmaps/c", "update"),
            (
                Method::DELETE,
                "/api/v1/namespaces/a/configmaps/c",
                "delete",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/a/configmaps",
                "deletecollection",
            ),
            (Method::GET, "/apis", "get"),
            (Method::GET, "/version", "get"),
        ];
        for (method, uri, want) in cases {
            assert_eq!(verb(method, uri).verb, want, "{uri}");
        }
        let ns = verb(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (
                ns.resource.as_str(),
                ns.namespace.as_str(),
                ns.name.as_str()
            ),
            ("namespaces", "kube-system", "kube-system")
        );
        let discovery = verb(Method::GET, "/apis/canary.dev/v1alpha1");
        assert!(!discovery.is_resource_request());
        assert_eq!(discovery.request_uri, "/apis/canary.dev/v1alpha1");
    }

    #[test]
    fn the_buffer_is_bounded_and_keeps_the_newest() {
        let mut log = AuditLog::new(3);
        for i in 0..5 {
            log.push(verb(
                Method::GET,
                &format!("/api/v1/namespaces/a/secrets/s{i}"),
            ));
        }
        let names: Vec<String> = log.records().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["s2", "s3", "s4"]);
        assert_eq!(log.dropped(), 2);
        log.clear();
        assert!(log.records().is_empty());
    }
}
