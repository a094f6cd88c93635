//! The server handle: start, kubeconfig, fault injection, stop and restart.

use crate::audit::AuditRecord;
use crate::faults::FaultAction;
use crate::kubeconfig::Kubeconfig;
pub use crate::kubeconfig::write_kubeconfig;
use crate::state::Shared;
use crate::tls::{Tls, TlsError};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Starting or restarting the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificates could not be generated.
    #[error("cannot set up TLS: {0}")]
    Tls(#[source] TlsError),
    /// The kubeconfig could not be written.
    #[error("cannot write kubeconfig {path}: {source}")]
    Kubeconfig {
        /// File tried.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Listen address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Bearer token of the admin (`system:masters`), written into the kubeconfig. Without
    /// `rbac`, clients must send it (`None` accepts everyone); with `rbac`, one is generated
    /// when `None`, and requests without a token are `system:anonymous`.
    pub token: Option<String>,
    /// Authorize every request with RBAC from the stored (Cluster)Roles and bindings, as
    /// kube-apiserver's RBAC authorizer does (kube's bootstrap ClusterRoles are added).
    pub rbac: bool,
    /// Validate custom resources against their CRD schema.
    pub validation: bool,
    /// Watch events kept for resuming watches; older versions get 410 Gone.
    pub watch_history: usize,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Where to write the kubeconfig; default: a temp dir owned by the server.
    pub kubeconfig: Option<PathBuf>,
    /// Audit records kept (the oldest are dropped first); see [`Server::requests`].
    pub audit_capacity: usize,
    /// CRD validation ratcheting (`CRDValidationRatcheting`: on by default since kube 1.30,
    /// GA in 1.33; alpha and off in 1.28 and 1.29): an update is not refused for errors on
    /// fields it leaves unchanged. `false` answers as 1.28/1.29 do.
    pub ratcheting: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            rbac: false,
            validation: true,
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(1),
            kubeconfig: None,
            audit_capacity: crate::audit::DEFAULT_CAPACITY,
            ratcheting: true,
        }
    }
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    /// With RBAC: HTTPS.
    tls: Option<Tls>,
}

/// Starts a server.
pub async fn start(opts: Options) -> Result<Server, ServerError> {
    let auth = crate::authn::Auth::new(opts.rbac, opts.token.clone());
    let admin_token = auth.admin_token.clone();
    let shared = Arc::new(Shared::new(
        opts.watch_history,
        opts.validation,
        auth,
        opts.bookmark_interval,
        opts.audit_capacity,
    ));
    shared.set_ratcheting(opts.ratcheting);
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: opts.listen,
        source,
    })?;
    let dir = tempfile::tempdir().map_err(|source| ServerError::Kubeconfig {
        path: PathBuf::from("<tempdir>"),
        source,
    })?;
    let tls = (opts.rbac)
        .then(Tls::generate)
        .transpose()
        .map_err(ServerError::Tls)?;
    let kubeconfig = opts
        .kubeconfig
        .clone()
        .unwrap_or_else(|| dir.path().join("kubeconfig"));
    let task = tokio::spawn(accept_loop(listener, shared.clone(), tls.clone()));
    let server = Server {
        shared,
        addr,
        task: Some(task),
        kubeconfig,
        dir,
        tls,
    };
    server.kubeconfig_for(admin_token.as_deref(), "default", &server.kubeconfig)?;
    Ok(server)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tls: Option<Tls>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (shared, tls) = (shared.clone(), tls.clone());
                conns.spawn(async move {
                    let svc = service_fn(move |req| crate::http::serve(shared.clone(), req));
                    let http = http1::Builder::new();
                    // A connection error (a failed handshake too) only concerns that client.
                    let _ = match tls {
                        None => http.serve_connection(TokioIo::new(stream), svc).await,
                        Some(tls) => match tls.acceptor.accept(stream).await {
                            Ok(stream) => http.serve_connection(TokioIo::new(stream), svc).await,
                            Err(_) => return,
                        },
                    };
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

impl Server {
    /// Base URL, e.g. `http://127.0.0.1:43125` (`https://` with RBAC).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA certificate (PEM) clients must trust, when the server speaks HTTPS (with RBAC).
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|tls| tls.ca_pem.as_str())
    }

    fn kubeconfig_for(
        &self,
        token: Option<&str>,
        namespace: &str,
        path: &Path,
    ) -> Result<(), ServerError> {
        let kubeconfig = Kubeconfig {
            url: &self.url(),
            ca_pem: self.ca_pem(),
            token,
            namespace,
        };
        kubeconfig.write(path)
    }

    /// Listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Path of the kubeconfig file for kubectl, helm and kube-rs.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Whether requests are authorized with RBAC ([`Options::rbac`]).
    pub fn rbac(&self) -> bool {
        self.shared.auth.rbac
    }

    /// The bearer token of ServiceAccount `namespace/name` (the same each time). Requests with
    /// it are that ServiceAccount's (`system:serviceaccount:<ns>:<name>`, groups
    /// `system:serviceaccounts`, `system:serviceaccounts:<ns>`, `system:authenticated`) while
    /// the ServiceAccount exists; 401 otherwise.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        self.shared.auth.service_account_token(namespace, name)
    }

    /// Writes a kubeconfig (next to the admin's, in the server's temp dir) that authenticates
    /// as ServiceAccount `namespace/name`, its context in `namespace`, as a pod of that
    /// ServiceAccount would see the cluster.
    pub fn kubeconfig_for_service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<PathBuf, ServerError> {
        let token = self.service_account_token(namespace, name);
        let path = self
            .dir
            .path()
            .join(format!("kubeconfig-{namespace}-{name}"));
        self.kubeconfig_for(Some(&token), namespace, &path)?;
        Ok(path)
    }

    /// Turns custom resource schema validation on or off at runtime.
    pub fn set_validation(&self, on: bool) {
        self.shared.set_validation(on);
    }

    /// The next `count` requests whose path contains `path_contains` (any, if `None`) fail with `status`.
    pub fn fail_next(&self, count: u32, status: u16, path_contains: Option<&str>) {
        self.shared.faults().add(
            count,
            path_contains.map(str::to_string),
            FaultAction::Fail(status),
        );
    }

    /// The next `count` matching requests never get an answer.
    pub fn hang_next(&self, count: u32, path_contains: Option<&str>) {
        self.shared
            .faults()
            .add(count, path_contains.map(str::to_string), FaultAction::Hang);
    }

    /// Adds `latency` before every answer (zero removes it).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults().latency = latency;
    }

    /// Removes all fault rules and latency.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// Ends every open watch (clients see the stream close and re-watch).
    pub fn drop_watches(&self) {
        self.shared.drop_watches.send_modify(|n| *n += 1);
    }

    /// Expires the watches whose collection path (e.g.
    /// `/apis/canary.dev/v1alpha1/namespaces/a/healthchecks`) contains `path_contains`, as an
    /// etcd compaction or a watch-cache reset does: each open one gets kube's ERROR event (410
    /// `Expired`, "too old resource version") and ends, so its client relists; when none is
    /// open, the next resume of one does. Other watches are untouched.
    pub fn expire_watches(&self, path_contains: &str) {
        self.shared
            .expire_watches
            .send_replace(Some(path_contains.to_string()));
    }

    /// Forgets the watch history: resuming from any earlier resourceVersion gets 410 Gone.
    pub fn compact_history(&self) {
        self.shared.store().compact();
    }

    /// The audit log: every answered request, oldest first (bounded by
    /// [`Options::audit_capacity`]; requests that hang are not recorded).
    pub fn requests(&self) -> Vec<AuditRecord> {
        self.shared.audit().records()
    }

    /// How many audit records were dropped because the buffer was full.
    pub fn requests_dropped(&self) -> u64 {
        self.shared.audit().dropped()
    }

    /// Forgets the audit records collected so far.
    pub fn clear_requests(&self) {
        self.shared.audit().clear();
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv
    }

    /// Stops listening and closes all connections; state is kept for [`Server::restart`].
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // A cancelled task reports JoinError::Cancelled, which is what we asked for.
            let _ = task.await;
        }
        self.drop_watches();
    }

    /// Listens again on the same address with the same state.
    pub async fn restart(&mut self) -> Result<(), ServerError> {
        self.stop().await;
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: self.addr,
                source,
            })?;
        let tls = self.tls.clone();
        self.task = Some(tokio::spawn(accept_loop(
            listener,
            self.shared.clone(),
            tls,
        )));
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.drop_watches();
    }
}
