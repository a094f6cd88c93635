//! State shared by all connections: the store, switches and fault rules.

use crate::audit::AuditLog;
use crate::error::ApiError;
use crate::faults::Faults;
use crate::registry::ResourceType;
use crate::routes::ObjectPath;
use crate::store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Shared server state; survives a stop/restart of the listener.
#[derive(Debug)]
pub struct Shared {
    store: Mutex<Store>,
    validation: AtomicBool,
    ratcheting: AtomicBool,
    /// Injected faults.
    pub faults: Mutex<Faults>,
    /// Bumped to end every open watch.
    pub drop_watches: tokio::sync::watch::Sender<u64>,
    /// The path fragment whose watches are expired (see `Server::expire_watches`): open ones
    /// hear it on this channel; it stays pending for the next resume until one is expired.
    pub expire_watches: tokio::sync::watch::Sender<Option<String>>,
    /// Credentials and whether RBAC is enforced.
    pub auth: crate::authn::Auth,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Answered requests.
    audit: Mutex<AuditLog>,
}

impl Shared {
    /// Fresh state.
    pub fn new(
        history: usize,
        validation: bool,
        auth: crate::authn::Auth,
        bookmark_interval: Duration,
        audit_capacity: usize,
    ) -> Self {
        let mut store = crate::bootstrap::seeded_store(history);
        if auth.rbac {
            crate::bootstrap::seed_rbac(&mut store);
        }
        Self {
            store: Mutex::new(store),
            validation: AtomicBool::new(validation),
            ratcheting: AtomicBool::new(true),
            faults: Mutex::new(Faults::default()),
            drop_watches: tokio::sync::watch::channel(0).0,
            expire_watches: tokio::sync::watch::channel(None).0,
            auth,
            bookmark_interval,
            audit: Mutex::new(AuditLog::new(audit_capacity)),
        }
    }

    /// Locks the audit log.
    pub fn audit(&self) -> MutexGuard<'_, AuditLog> {
        self.audit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks the store (a poisoned lock is recovered: the store stays usable for tests).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a watch of `path` is to be expired now; consumes the pending expiry.
    pub fn take_expiry(&self, path: &str) -> bool {
        let mut taken = false;
        self.expire_watches.send_if_modified(|pending| {
            taken = pending
                .as_deref()
                .is_some_and(|fragment| path.contains(fragment));
            if taken {
                *pending = None;
            }
            taken
        });
        taken
    }

    /// Locks the fault rules.
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether custom resources are validated against their schema.
    pub fn validation(&self) -> bool {
        self.validation.load(Ordering::SeqCst)
    }

    /// Whether CRD validation ratchets (see `Options::ratcheting`).
    pub fn ratcheting(&self) -> bool {
        self.ratcheting.load(Ordering::SeqCst)
    }

    /// Turns validation ratcheting on or off.
    pub fn set_ratcheting(&self, on: bool) {
        self.ratcheting.store(on, Ordering::SeqCst);
    }

    /// Turns schema validation on or off.
    pub fn set_validation(&self, on: bool) {
        self.validation.store(on, Ordering::SeqCst);
    }
}

/// A resolved resource request.
#[derive(Debug, Clone)]
pub struct Target {
    /// The served type.
    pub rt: Arc<ResourceType>,
    /// Requested version.
    pub version: String,
    /// Namespace ("" for cluster-scoped or all namespaces).
    pub namespace: String,
    /// Object name.
    pub name: Option<String>,
    /// Subresource.
    pub sub: Option<String>,
}

impl Target {
    /// Resolves a parsed path against the registry.
    pub fn resolve(store: &Store, path: &ObjectPath) -> Result<Self, ApiError> {
        let rt = store
            .registry
            .lookup(&path.group, &path.version, &path.plural)
            .ok_or_else(ApiError::no_route)?;
        if path.namespace.is_some() && !rt.namespaced {
            return Err(ApiError::no_route());
        }
        if let Some(sub) = &path.sub
            && !(sub == "status" && rt.status_subresource)
            && !(sub == "finalize" && rt.plural == "namespaces")
        {
            return Err(ApiError::no_route());
        }
        Ok(Self {
            rt,
            version: path.version.clone(),
            namespace: path.namespace.clone().unwrap_or_default(),
            name: path.name.clone(),
            sub: path.sub.clone(),
        })
    }

    /// `apiVersion` for objects answered on this request.
    pub fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }

    /// The collection's URL path, as a client asks for it (`/apis/g/v/namespaces/ns/plural`).
    pub fn collection_path(&self) -> String {
        let root = match self.rt.group.as_str() {
            "" => format!("/api/{}", self.version),
            group => format!("/apis/{group}/{}", self.version),
        };
        match self.namespace.as_str() {
            "" => format!("{root}/{}", self.rt.plural),
            ns => format!("{root}/namespaces/{ns}/{}", self.rt.plural),
        }
    }

    /// `apiVersion` of the stored objects: the request's, except for events.k8s.io/v1 Events,
    /// which are stored as core/v1 Events.
    pub fn storage_api_version(&self) -> String {
        if crate::events::is_events_v1(&self.rt) {
            "v1".to_string()
        } else {
            self.api_version()
        }
    }

    /// The object name, or 405 on a collection.
    pub fn name(&self) -> Result<&str, ApiError> {
        self.name
            .as_deref()
            .ok_or_else(ApiError::method_not_allowed)
    }

    /// Whether this addresses the status subresource.
    pub fn is_status(&self) -> bool {
        self.sub.as_deref() == Some("status")
    }

    /// 404 for this object.
    pub fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(&self.rt.group, &self.rt.plural, name)
    }
}
