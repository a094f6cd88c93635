//! End-to-end harness for `canary operator`: the local API server with the CRD applied, the
//! real kubectl, the operator as a child process, a kubectl watch that records every version of
//! the HealthChecks, Prometheus, metrics parsing and the chart's RBAC rules.
#![allow(dead_code)]

pub mod metrics;
pub mod process;
pub mod prom;
pub mod rbac;
pub mod watch;

use std::{
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use canary_test_apiserver::{AuditRecord, Options, Server};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tool installed by `scripts/install-test-tools.sh` (run by `scripts/test`); the test fails
/// (never skips) when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let path = repo().join(".tools/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test (it installs kubectl and helm with scripts/install-test-tools.sh)",
        path.display()
    );
    path
}

/// Polls `probe` every `every` until it returns `Ok`, failing after `deadline` with `what` and
/// the last observation.
pub async fn eventually<T>(
    deadline: Duration,
    what: &str,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let until = Instant::now() + deadline;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= until => {
                panic!("timed out after {deadline:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// The real kubectl against one server, with private HOME and cache directories.
pub struct Kubectl {
    home: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Self {
        Self {
            home: tempfile::tempdir().expect("tempdir"),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    /// The environment kubectl runs with (also used for long-running watches).
    pub fn std_command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(tool("kubectl"));
        let home = self.home.path();
        cmd.args(args)
            .env_clear()
            .env("HOME", home)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", home.join("kube-cache"))
            .env("PATH", "/usr/bin:/bin");
        cmd
    }

    /// Runs kubectl with `stdin`, returning its output (bounded by 60s).
    pub async fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = tokio::process::Command::from(self.std_command(args));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn kubectl");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).await.expect("stdin");
        drop(input);
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within 60s"))
            .expect("kubectl output")
    }

    /// Runs kubectl, asserting success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        self.ok_stdin(args, "").await
    }

    /// Runs kubectl with `stdin`, asserting success; returns stdout.
    pub async fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub async fn fails(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin).await;
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `kubectl apply -f -` of objects.
    pub async fn apply(&self, objects: &[Value]) -> String {
        self.ok_stdin(&["apply", "-f", "-"], &list(objects)).await
    }

    /// `kubectl get ARGS -o json`, parsed.
    pub async fn get_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all).await).expect("kubectl -o json")
    }
}

/// Several objects as one multi-document stream (JSON documents are YAML documents).
pub fn list(objects: &[Value]) -> String {
    objects
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The local API server with the HealthCheck CRD applied and Established, and kubectl for it.
pub struct Cluster {
    pub server: Server,
    pub kubectl: std::sync::Arc<Kubectl>,
}

impl Cluster {
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(options: Options) -> Self {
        let server = canary_test_apiserver::start(options)
            .await
            .expect("API server starts");
        let kubectl = std::sync::Arc::new(Kubectl::new(server.kubeconfig_path()));
        let crds = repo().join("crds").display().to_string();
        kubectl.ok(&["apply", "-f", &crds]).await;
        kubectl
            .ok(&[
                "wait",
                "--for=condition=Established",
                "crd/healthchecks.canary.dev",
                "--timeout=30s",
            ])
            .await;
        Self { server, kubectl }
    }

    pub async fn namespace(&self, name: &str) {
        self.kubectl.ok(&["create", "namespace", name]).await;
    }

    /// One HealthCheck as JSON.
    pub async fn check(&self, namespace: &str, name: &str) -> Value {
        self.kubectl
            .get_json(&["healthchecks.canary.dev", "-n", namespace, name])
            .await
    }

    /// events.k8s.io/v1 Events in `namespace` reported by `canary-operator`.
    pub async fn events(&self, namespace: &str) -> Vec<Event> {
        let list = self
            .kubectl
            .get_json(&["events.v1.events.k8s.io", "-n", namespace])
            .await;
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Event::from_json)
            .filter(|e| e.reporting_controller == "canary-operator")
            .collect()
    }

    /// What the operator asked the API server (everything but kubectl and helm).
    pub fn operator_requests(&self) -> Vec<AuditRecord> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| !r.user_agent.starts_with("kubectl") && !r.user_agent.starts_with("helm"))
            .collect()
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
        let count = v
            .pointer("/series/count")
            .and_then(Value::as_u64)
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

/// Occurrences of `(type, reason)` Events about HealthCheck `name`.
pub fn occurrences(events: &[Event], name: &str) -> Vec<(String, String, u64)> {
    let mut out: Vec<(String, String, u64)> = Vec::new();
    for e in events.iter().filter(|e| e.regarding == name) {
        match out
            .iter_mut()
            .find(|(t, r, _)| *t == e.type_ && *r == e.reason)
        {
            Some(entry) => entry.2 += e.count,
            None => out.push((e.type_.clone(), e.reason.clone(), e.count)),
        }
    }
    out.sort();
    out
}

/// A HealthCheck with an HTTP probe of `url` at a 1s interval; `extra` is merged into `spec`.
pub fn http_check(namespace: &str, name: &str, url: &str, extra: Value) -> Value {
    let mut spec = json!({"interval": "1s", "timeout": "800ms", "http": {"url": url}});
    merge(&mut spec, extra);
    json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "HealthCheck",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
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

/// The Ready condition of a HealthCheck: (status, reason, message).
pub fn ready(check: &Value) -> Option<(String, String, String)> {
    let cond = check["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
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

/// GET over a plain socket: `(status, body)`, or `None` when nothing answers in time.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::AsyncReadExt;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}
