//! The local Kubernetes API server (`tests/apiserver`) with the HealthCheck CRD applied and
//! the real kubectl for it, plus the HealthCheck, Secret, ConfigMap and Event shapes the
//! scenarios build and read.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::Duration,
};

use base64::Engine as _;
use canary_test_apiserver::{AuditRecord, Options, Server};
use serde_json::{Value, json};

use crate::{chart, slots, tools::Kubectl, wait::eventually};

/// The local API server and kubectl (the admin) for it; holds a [`slots`] slot while it lives.
pub struct Cluster {
    pub server: Server,
    pub kubectl: Arc<Kubectl>,
    /// The operator's kubeconfig once it runs as the chart's ServiceAccount.
    operator_kubeconfig: OnceLock<PathBuf>,
    _slot: slots::Slot,
}

/// Options of a server that enforces RBAC (HTTPS; kubectl and helm are the admin; ServiceAccount
/// tokens for everyone else), as a real cluster does.
pub fn enforcing() -> Options {
    Options {
        rbac: true,
        ..Options::default()
    }
}

impl Cluster {
    /// A server with the CRD applied and Established, sharing the machine with other scenarios.
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    /// Like [`Cluster::start`], for a timing-sensitive scenario that must run alone.
    pub async fn alone() -> Self {
        let slot = slots::alone().await;
        Self::crd(Self::launch(Options::default(), slot).await).await
    }

    /// A server started with `options`, with the CRD applied.
    pub async fn with(options: Options) -> Self {
        let slot = slots::shared().await;
        Self::crd(Self::launch(options, slot).await).await
    }

    /// A server without the CRD (for installing the chart, which brings it).
    pub async fn bare() -> Self {
        Self::bare_with(Options::default()).await
    }

    /// A server started with `options`, without the CRD.
    pub async fn bare_with(options: Options) -> Self {
        Self::launch(options, slots::shared().await).await
    }

    async fn launch(options: Options, slot: slots::Slot) -> Self {
        let server = (canary_test_apiserver::start(options).await).expect("API server starts");
        let kubectl = Arc::new(Kubectl::new(server.kubeconfig_path()));
        Self {
            server,
            kubectl,
            operator_kubeconfig: OnceLock::new(),
            _slot: slot,
        }
    }

    async fn crd(self) -> Self {
        let crds = crate::repo().join("crds").display().to_string();
        self.kubectl.ok(&["apply", "-f", &crds]).await;
        let crd = "crd/healthchecks.canary.dev";
        let established = ["wait", "--for=condition=Established", crd, "--timeout=30s"];
        self.kubectl.ok(&established).await;
        self
    }

    /// The admin's kubeconfig (kubectl, helm; the operator unless it runs as a ServiceAccount).
    pub fn kubeconfig(&self) -> &Path {
        self.server.kubeconfig_path()
    }

    /// The kubeconfig the operator runs with: its ServiceAccount's after
    /// [`Cluster::as_chart_service_account`], else the admin's.
    pub fn operator_kubeconfig(&self) -> &Path {
        (self.operator_kubeconfig.get()).map_or(self.kubeconfig(), PathBuf::as_path)
    }

    /// Applies the ServiceAccount and RBAC objects the chart renders for a release in
    /// `namespace` with `values` (helm arguments), as `helm install` would (the namespaces they
    /// go to must exist), and makes the operator run as that ServiceAccount
    /// ([`Cluster::operator_kubeconfig`]). Returns everything rendered.
    pub async fn as_chart_service_account(&self, namespace: &str, values: &[&str]) -> Vec<Value> {
        let rendered = chart::render_in(namespace, values).await;
        let kinds = [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ];
        let rbac: Vec<Value> = (rendered.iter())
            .filter(|o| kinds.iter().any(|k| o["kind"] == *k))
            .cloned()
            .collect();
        self.kubectl.apply(&rbac).await;
        let (ns, name) = chart::service_account(&rendered);
        let path = (self.server.kubeconfig_for_service_account(&ns, &name))
            .expect("the ServiceAccount's kubeconfig is written");
        assert!(
            self.operator_kubeconfig.set(path).is_ok(),
            "the operator runs as one ServiceAccount"
        );
        rendered
    }

    /// Creates namespace `name`.
    pub async fn namespace(&self, name: &str) {
        self.kubectl.ok(&["create", "namespace", name]).await;
    }

    /// One HealthCheck as JSON.
    pub async fn check(&self, namespace: &str, name: &str) -> Value {
        let args = ["healthchecks.canary.dev", "-n", namespace, name];
        self.kubectl.get_json(&args).await
    }

    /// events.k8s.io/v1 Events in `namespace` reported by `canary-operator`.
    pub async fn events(&self, namespace: &str) -> Vec<Event> {
        let list = (self.kubectl)
            .get_json(&["events.v1.events.k8s.io", "-n", namespace])
            .await;
        (list["items"].as_array().into_iter().flatten())
            .map(Event::from_json)
            .filter(|e| e.reporting_controller == "canary-operator")
            .collect()
    }

    /// Waits until the Events about `name` add up to exactly `want` (type, reason, occurrences).
    pub async fn wait_events(&self, namespace: &str, name: &str, want: &[(&str, &str, u64)]) {
        let mut want: Vec<(String, String, u64)> = (want.iter())
            .map(|(t, r, n)| (t.to_string(), r.to_string(), *n))
            .collect();
        want.sort();
        let what = format!("Events about {namespace}/{name}: {want:?}");
        let every = Duration::from_millis(300);
        eventually(Duration::from_secs(15), &what, every, async || {
            let got = occurrences(&self.events(namespace).await, name);
            (got == want)
                .then_some(())
                .ok_or_else(|| format!("{got:?}"))
        })
        .await;
    }

    /// What the operator asked the API server (everything but kubectl and helm).
    pub fn operator_requests(&self) -> Vec<AuditRecord> {
        (self.server.requests().into_iter())
            .filter(|r| {
                let agent = r.user_agent.to_ascii_lowercase();
                !agent.starts_with("kubectl") && !agent.starts_with("helm")
            })
            .collect()
    }

    /// The Lease `namespace/name`, if it exists.
    pub async fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        let args = ["get", "lease", name, "-n", namespace, "-o", "json"];
        let out = self.kubectl.run(&args, "").await;
        (out.status.success())
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// The holder of Lease `namespace/name` ("" when none holds it or it does not exist).
    pub async fn lease_holder(&self, namespace: &str, name: &str) -> String {
        let lease = self.lease(namespace, name).await;
        (lease.as_ref())
            .and_then(|l| l["spec"]["holderIdentity"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

/// The parts of an events.k8s.io/v1 Event the tests look at.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub type_: String,
    pub reason: String,
    pub note: String,
    pub regarding: String,
    pub regarding_kind: String,
    pub reporting_controller: String,
    /// Occurrences: `series.count`, else `deprecatedCount`, else 1.
    pub count: u64,
}

impl Event {
    fn from_json(v: &Value) -> Self {
        let text = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let count = (v.pointer("/series/count").and_then(Value::as_u64))
            .or_else(|| v["deprecatedCount"].as_u64().filter(|c| *c > 0))
            .unwrap_or(1);
        Self {
            name: text("/metadata/name").into(),
            type_: text("/type").into(),
            reason: text("/reason").into(),
            note: text("/note").into(),
            regarding: text("/regarding/name").into(),
            regarding_kind: text("/regarding/kind").into(),
            reporting_controller: text("/reportingController").into(),
            count,
        }
    }
}

/// Occurrences of `(type, reason)` Events about HealthCheck `name`, sorted.
pub fn occurrences(events: &[Event], name: &str) -> Vec<(String, String, u64)> {
    let mut out: Vec<(String, String, u64)> = Vec::new();
    for e in events.iter().filter(|e| e.regarding == name) {
        match (out.iter_mut()).find(|(t, r, _)| *t == e.type_ && *r == e.reason) {
            Some(entry) => entry.2 += e.count,
            None => out.push((e.type_.clone(), e.reason.clone(), e.count)),
        }
    }
    out.sort();
    out
}

/// A HealthCheck with `spec`.
pub fn healthcheck(namespace: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "HealthCheck",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

/// A HealthCheck with an HTTP probe of `url` at a 1s interval; `extra` is merged into `spec`.
pub fn http_check(namespace: &str, name: &str, url: &str, extra: Value) -> Value {
    let mut spec = json!({"interval": "1s", "timeout": "800ms", "http": {"url": url}});
    merge(&mut spec, extra);
    healthcheck(namespace, name, spec)
}

/// JSON merge of `patch` into `target` (objects merge, everything else replaces).
pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

/// A ConfigMap with one key.
pub fn config_map(namespace: &str, name: &str, key: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace}, "data": {key: value}})
}

/// A Secret of `type_` with `data` (encoded here).
pub fn secret(namespace: &str, name: &str, type_: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = (data.iter())
        .map(|(k, v)| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(v);
            (k.to_string(), Value::String(encoded))
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": type_,
        "metadata": {"name": name, "namespace": namespace}, "data": data})
}

/// The Ready condition of a HealthCheck: (status, reason, message).
pub fn ready(check: &Value) -> Option<(String, String, String)> {
    let conditions = check["status"]["conditions"].as_array()?;
    let cond = conditions.iter().find(|c| c["type"] == "Ready")?;
    let text = |k: &str| cond[k].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}

/// `status.<field>` as an integer (0 when absent).
pub fn status_int(check: &Value, field: &str) -> i64 {
    check["status"][field].as_i64().unwrap_or(0)
}

/// A compact description of a HealthCheck's state for failure messages.
pub fn describe(check: &Value) -> String {
    format!(
        "{}: ready={:?} gen={} observed={} failures={} successes={} lastResult={}",
        check["metadata"]["name"].as_str().unwrap_or("?"),
        ready(check),
        check["metadata"]["generation"],
        check["status"]["observedGeneration"],
        status_int(check, "consecutiveFailures"),
        status_int(check, "consecutiveSuccesses"),
        check["status"]["lastResult"],
    )
}
