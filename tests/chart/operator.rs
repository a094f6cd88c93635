//! The `canary` binary run as the chart's Deployment runs it: its documented flags, its
//! ServiceAccount's RBAC rules against the API calls it made (the local API server's audit
//! log), and small loopback HTTP helpers for its probes and for a probe target.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canary_test_apiserver::AuditRecord;
use serde_json::Value;

use crate::support::{
    NAMESPACE, RELEASE, args, chart, container, of_kind, one, run_in_cluster, text,
};

/// The `canary` binary built for this test run.
pub fn canary() -> &'static str {
    env!("CARGO_BIN_EXE_canary")
}

/// What `canary operator --help` documents.
#[derive(Debug, Default)]
pub struct Help {
    /// Long flag name (without `--`) -> whether it takes a value (`--flag <VALUE>`).
    pub flags: BTreeMap<String, bool>,
    /// Environment variables named by `[env: NAME=]`.
    pub env: BTreeSet<String>,
}

/// Parses clap's `--help` output.
pub fn parse_help(help: &str) -> Help {
    let mut out = Help::default();
    for line in help.lines().map(str::trim_start) {
        if !line.starts_with('-') {
            continue;
        }
        let mut tokens = line.split_whitespace();
        while let Some(token) = tokens.next() {
            if let Some(name) = token.strip_prefix("--") {
                let name = name.trim_end_matches(',');
                let takes_value = tokens.next().is_some_and(|t| t.starts_with('<'));
                out.flags.insert(name.to_owned(), takes_value);
                break;
            }
        }
    }
    let mut rest = help;
    while let Some(index) = rest.find("[env: ") {
        rest = &rest[index + "[env: ".len()..];
        let end = rest.find('=').expect("[env: NAME=...]");
        out.env.insert(rest[..end].to_owned());
    }
    out
}

/// Problems with the arguments the chart passes, as `canary operator --help` documents them.
pub fn undocumented_args(args: &[String], help: &Help) -> Vec<String> {
    let mut problems = Vec::new();
    if args.first().map(String::as_str) != Some("operator") {
        problems.push(format!("the first argument must be `operator`: {args:?}"));
    }
    let mut seen = BTreeSet::new();
    for arg in args.iter().skip(1) {
        let Some(flag) = arg.strip_prefix("--") else {
            problems.push(format!(
                "`{arg}` is not a --flag (positional arguments are not accepted)"
            ));
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (flag, None),
        };
        if !seen.insert(name.to_owned()) {
            problems.push(format!(
                "`--{name}` is given twice (the operator rejects that)"
            ));
        }
        match help.flags.get(name) {
            None => problems.push(format!("`--{name}` is not a flag of `canary operator`")),
            Some(true) if value.is_none_or(str::is_empty) => problems.push(format!(
                "`--{name}` takes a value, the chart passes `{arg}`"
            )),
            Some(false) if value.is_some() => {
                problems.push(format!("`--{name}` is a switch, the chart passes `{arg}`"))
            }
            Some(_) => {}
        }
    }
    problems
}

/// One API call, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub verb: String,
    pub api_group: String,
    /// `resource` or `resource/subresource`.
    pub resource: String,
    /// "" for a cluster-wide request (all namespaces or a cluster-scoped object).
    pub namespace: String,
    /// "" for collections and `create`.
    pub name: String,
}

impl Access {
    pub fn of(record: &AuditRecord) -> Self {
        let resource = if record.subresource.is_empty() {
            record.resource.clone()
        } else {
            format!("{}/{}", record.resource, record.subresource)
        };
        Self {
            verb: record.verb.clone(),
            api_group: record.api_group.clone(),
            resource,
            namespace: record.namespace.clone(),
            name: record.name.clone(),
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(f, "{} {} ({group})", self.verb, self.resource)?;
        match self.namespace.as_str() {
            "" => write!(f, " cluster-wide")?,
            ns => write!(f, " in namespace {ns}")?,
        }
        if !self.name.is_empty() {
            write!(f, " name {}", self.name)?;
        }
        Ok(())
    }
}

/// One expanded grant of a (Cluster)Role bound to the ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScopedGrant {
    /// `None`: granted cluster-wide (ClusterRoleBinding); `Some(ns)`: a RoleBinding in `ns`.
    pub namespace: Option<String>,
    pub api_group: String,
    pub resource: String,
    pub verb: String,
    /// "" for any name.
    pub name: String,
    /// `Kind/name` of the role that grants it.
    pub role: String,
}

impl ScopedGrant {
    pub fn allows(&self, access: &Access) -> bool {
        let any = |granted: &str, wanted: &str| granted == "*" || granted == wanted;
        self.namespace
            .as_deref()
            .is_none_or(|ns| !access.namespace.is_empty() && ns == access.namespace)
            && any(&self.api_group, &access.api_group)
            && any(&self.resource, &access.resource)
            && any(&self.verb, &access.verb)
            && (self.name.is_empty() || self.name == access.name)
    }
}

impl std::fmt::Display for ScopedGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(f, "{} {} ({group})", self.verb, self.resource)?;
        match &self.namespace {
            None => write!(f, " cluster-wide")?,
            Some(ns) => write!(f, " in namespace {ns}")?,
        }
        if !self.name.is_empty() {
            write!(f, " name {}", self.name)?;
        }
        write!(f, " [{}]", self.role)
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Every grant the rendered (Cluster)Roles give the ServiceAccount `namespace/name` through
/// the rendered bindings: what kube-apiserver's RBAC authorizer would allow it.
pub fn service_account_grants(objects: &[Value], namespace: &str, name: &str) -> Vec<ScopedGrant> {
    let binds_us = |binding: &Value| {
        binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"] == namespace
            })
    };
    let role = |kind: &str, name: &Value, ns: Option<&str>| -> Value {
        of_kind(objects, kind)
            .into_iter()
            .find(|r| {
                &r["metadata"]["name"] == name
                    && ns.is_none_or(|ns| r["metadata"]["namespace"] == ns)
            })
            .unwrap_or_else(|| panic!("no rendered {kind} {name} (namespace {ns:?})"))
            .clone()
    };
    let mut bound = Vec::new();
    for binding in of_kind(objects, "ClusterRoleBinding") {
        if binds_us(binding) {
            let r = &binding["roleRef"];
            assert_eq!(r["kind"], "ClusterRole", "{binding}");
            bound.push((None, role("ClusterRole", &r["name"], None)));
        }
    }
    for binding in of_kind(objects, "RoleBinding") {
        if binds_us(binding) {
            let ns = binding["metadata"]["namespace"]
                .as_str()
                .unwrap()
                .to_owned();
            let r = &binding["roleRef"];
            let granting = match r["kind"].as_str() {
                Some("Role") => role("Role", &r["name"], Some(&ns)),
                _ => role("ClusterRole", &r["name"], None),
            };
            bound.push((Some(ns), granting));
        }
    }
    let mut grants = BTreeSet::new();
    for (scope, role) in bound {
        let role_name = format!(
            "{}/{}",
            role["kind"].as_str().unwrap(),
            role["metadata"]["name"].as_str().unwrap()
        );
        for rule in role["rules"].as_array().expect("rules") {
            assert!(rule.get("nonResourceURLs").is_none(), "unexpected {rule}");
            let mut names = strings(&rule["resourceNames"]);
            if names.is_empty() {
                names.push(String::new());
            }
            for api_group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        for name in &names {
                            grants.insert(ScopedGrant {
                                namespace: scope.clone(),
                                api_group: api_group.clone(),
                                resource: resource.clone(),
                                verb: verb.clone(),
                                name: name.clone(),
                                role: role_name.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    grants.into_iter().collect()
}

/// Non-resource URLs every authenticated user may read (kube's `system:discovery`,
/// `system:public-info-viewer` ClusterRoles), so no chart rule is needed for them.
pub fn is_discovery(record: &AuditRecord) -> bool {
    let path = record.request_uri.split('?').next().unwrap_or_default();
    record.verb == "get"
        && [
            "/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz",
        ]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over HTTP/1.0 (no chunking): the status code and body, or an error text.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in {answer:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((code, body.to_owned()))
}

/// Polls `probe` until it returns `Some`, or panics with `what` and the last state after
/// `deadline`.
pub fn wait_for<T>(
    what: &str,
    deadline: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if start.elapsed() > deadline => {
                panic!("timed out after {deadline:?} waiting for {what}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A loopback HTTP server answering every request `200 ok`, keeping the request heads.
pub struct Target {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Target {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        // The thread ends with the test process (accept never returns an error here).
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\
                      Connection: close\r\n\r\nok",
                );
            }
        });
        Self { addr, requests }
    }
}

/// helm or kubectl against `kubeconfig`; panics with the output unless it succeeds.
pub fn ok(tool: &str, kubeconfig: &Path, args: &[&str]) -> String {
    let output = run_in_cluster(tool, kubeconfig, args);
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `kubectl apply` of a manifest.
fn apply(kubeconfig: &Path, manifest: &str) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), manifest).unwrap();
    ok(
        "kubectl",
        kubeconfig,
        &["apply", "-f", &file.path().display().to_string()],
    );
}

/// The operator process; killed if the test ends before it exits.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails with the operator's log when it has exited.
    fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            status => panic!("the operator exited early ({status:?}):\n{}", self.log()),
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The pod name the test pretends the Deployment's pod has (`POD_NAME`).
pub const POD_NAME: &str = "canary-operator-6d5f8b7c9d-x7k2p";

/// The port number of `port` (a name or a number) among the container's ports.
fn container_port(container: &Value, port: &Value) -> u64 {
    if let Some(number) = port.as_u64() {
        return number;
    }
    (container["ports"].as_array().unwrap().iter())
        .find(|p| p["name"] == *port)
        .unwrap_or_else(|| panic!("no container port named {port}"))["containerPort"]
        .as_u64()
        .unwrap()
}

/// Values of the container's env, with the Downward API fieldRefs filled in as the kubelet
/// would for pod `POD_NAME` in `namespace`.
fn container_env(container: &Value, namespace: &str) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap().to_owned();
        let value = match (&var["value"], &var["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(value), _) => value.clone(),
            (_, Value::String(path)) if path == "metadata.name" => POD_NAME.to_owned(),
            (_, Value::String(path)) if path == "metadata.namespace" => namespace.to_owned(),
            _ => panic!("the test cannot provide env {var}"),
        };
        env.push((name, value));
    }
    env
}

/// Whether the operator's /metrics text has `canary_check_success 1` for `namespace/name`.
fn check_succeeds_in_metrics(metrics: &str, namespace: &str, name: &str) -> bool {
    metrics.lines().any(|line| {
        line.starts_with("canary_check_success{")
            && line.contains(&format!("namespace=\"{namespace}\""))
            && line.contains(&format!("name=\"{name}\""))
            && line.ends_with(" 1")
    })
}

const CHECKS: &str = "
apiVersion: canary.dev/v1alpha1
kind: HealthCheck
metadata: {name: web, namespace: shop}
spec:
  interval: 2s
  timeout: 1s
  http:
    url: http://__TARGET__/healthz
    headers:
      - name: X-Probe-Token
        valueFrom: {secretKeyRef: {name: probe-token, key: token}}
  tlsPolicy:
    caBundle: {configMapKeyRef: {name: internal-ca, key: ca.crt}}
---
apiVersion: canary.dev/v1alpha1
kind: HealthCheck
metadata: {name: down, namespace: shop}
spec:
  interval: 2s
  timeout: 1s
  tcp: {host: 127.0.0.1, port: __CLOSED__}
";

/// Installs the chart (default values) with helm, then runs `canary` with the rendered
/// Deployment's args and env (bind addresses moved to free loopback ports), checks its probes,
/// metrics, Lease and the status of two HealthChecks, and stops it with SIGTERM. Returns the
/// operator's log.
pub fn run_as_deployed(kubeconfig: &Path, objects: &[Value]) -> String {
    let chart = chart().display().to_string();
    ok(
        "helm",
        kubeconfig,
        &[
            "install",
            RELEASE,
            &chart,
            "--namespace",
            NAMESPACE,
            "--create-namespace",
        ],
    );
    let c = container(objects);
    let rendered_args = args(objects);
    let installed = ok(
        "kubectl",
        kubeconfig,
        &[
            "get",
            "deployment",
            RELEASE,
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].args}",
        ],
    );
    let installed: Vec<String> = serde_json::from_str(&installed).unwrap();
    assert_eq!(
        installed, rendered_args,
        "helm installs what helm template renders"
    );

    // The ports the Deployment's probes and the metrics Service use, and the flags that bind
    // them: each declared container port must be some --*-bind-address of the operator.
    let health_port = container_port(c, &c["livenessProbe"]["httpGet"]["port"]);
    assert_eq!(
        health_port,
        container_port(c, &c["readinessProbe"]["httpGet"]["port"])
    );
    let service = one(objects, "Service");
    let metrics_port = container_port(c, &service["spec"]["ports"][0]["targetPort"]);
    let mut local: BTreeMap<u64, SocketAddr> = BTreeMap::new();
    let run_args: Vec<String> = rendered_args
        .iter()
        .map(|arg| {
            let Some((flag, address)) = arg.split_once('=') else {
                return arg.clone();
            };
            let port = address
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u64>().ok());
            match port {
                Some(port) if flag.ends_with("-bind-address") => {
                    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
                    local.insert(port, addr);
                    format!("{flag}={addr}")
                }
                _ => arg.clone(),
            }
        })
        .collect();
    let health = *local.get(&health_port).unwrap_or_else(|| {
        panic!("no bind-address flag serves the probes' port {health_port}: {rendered_args:?}")
    });
    let metrics = *local.get(&metrics_port).unwrap_or_else(|| {
        panic!("no bind-address flag serves the metrics port {metrics_port}: {rendered_args:?}")
    });
    let env = container_env(c, NAMESPACE);
    let lease = rendered_args
        .iter()
        .find_map(|a| a.strip_prefix("--leader-election-lease-name="))
        .expect("leader election is on by default")
        .to_owned();

    ok("kubectl", kubeconfig, &["create", "namespace", "shop"]);
    ok(
        "kubectl",
        kubeconfig,
        &[
            "create",
            "secret",
            "generic",
            "probe-token",
            "-n",
            "shop",
            "--from-literal=token=s3cr3t-token",
        ],
    );
    let ca = rcgen::generate_simple_self_signed(vec!["internal-ca.test".to_owned()])
        .unwrap()
        .cert
        .pem();
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca).unwrap();
    ok(
        "kubectl",
        kubeconfig,
        &[
            "create",
            "configmap",
            "internal-ca",
            "-n",
            "shop",
            &format!("--from-file=ca.crt={}", ca_file.path().display()),
        ],
    );

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("operator.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(canary())
        .args(&run_args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("canary starts");
    let mut operator = Operator { child, log };

    let readyz = c["readinessProbe"]["httpGet"]["path"].as_str().unwrap();
    let healthz = c["livenessProbe"]["httpGet"]["path"].as_str().unwrap();
    wait_for("the readiness probe", Duration::from_secs(30), || {
        operator.alive()?;
        match http_get(health, readyz)? {
            (200, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let (code, body) = http_get(health, healthz).unwrap();
    assert_eq!(code, 200, "liveness probe: {body}\n{}", operator.log());

    let target = Target::start();
    let manifest = CHECKS
        .replace("__TARGET__", &target.addr.to_string())
        .replace("__CLOSED__", &free_port().to_string());
    apply(kubeconfig, &manifest);
    let state = |name: &str| {
        ok(
            "kubectl",
            kubeconfig,
            &[
                "get",
                "chc",
                name,
                "-n",
                "shop",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}/\
                 {.status.lastResult.success}/{.status.lastResult.reason}",
            ],
        )
    };
    for (name, want) in [
        ("web", "True/true/Succeeded"),
        ("down", "False/false/ConnectionRefused"),
    ] {
        wait_for(
            &format!("HealthCheck shop/{name} to be {want}"),
            Duration::from_secs(30),
            || {
                operator.alive()?;
                match state(name) {
                    got if got == want => Ok(()),
                    got => Err(got),
                }
            },
        );
    }
    let heads = target.requests.lock().unwrap().clone();
    assert!(
        heads.iter().any(|h| h
            .to_ascii_lowercase()
            .contains("x-probe-token: s3cr3t-token")),
        "the Secret's value reaches the target: {heads:?}"
    );
    // The transition to failing is an events.k8s.io Event (published in the background).
    wait_for("the Event for shop/down", Duration::from_secs(30), || {
        let regarding = ok(
            "kubectl",
            kubeconfig,
            &[
                "get",
                "events.v1.events.k8s.io",
                "-n",
                "shop",
                "-o",
                "jsonpath={.items[*].regarding.name}",
            ],
        );
        if regarding.split_whitespace().any(|n| n == "down") {
            Ok(())
        } else {
            Err(regarding)
        }
    });
    let holder = ok(
        "kubectl",
        kubeconfig,
        &[
            "get",
            "lease",
            &lease,
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    assert_eq!(holder, POD_NAME, "the Lease is held as POD_NAME");
    let metrics_path = "/metrics";
    wait_for(
        "canary_check_success for shop/web",
        Duration::from_secs(10),
        || {
            let (code, body) = http_get(metrics, metrics_path)?;
            if code == 200 && check_succeeds_in_metrics(&body, "shop", "web") {
                Ok(())
            } else {
                Err(format!("{code}: {body}"))
            }
        },
    );

    let pid = operator.child.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let stopped = Instant::now();
    let status = wait_for(
        "the operator to exit after SIGTERM",
        Duration::from_secs(10),
        || {
            operator
                .child
                .try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "still running".to_owned())
        },
    );
    assert!(
        status.success(),
        "exit status {status:?} after SIGTERM:\n{}",
        operator.log()
    );
    println!("operator exited 0 {:?} after SIGTERM", stopped.elapsed());
    let holder = ok(
        "kubectl",
        kubeconfig,
        &[
            "get",
            "lease",
            &lease,
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    assert_eq!(holder, "", "the Lease is released on shutdown");
    operator.log()
}
