//! Shared helpers for the conformance tests: servers, kube clients and the real kubectl/helm.
#![allow(dead_code)]

use canary_test_apiserver::{Options, Server};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Starts a server with default options.
pub async fn server() -> Server {
    canary_test_apiserver::start(Options::default())
        .await
        .expect("server starts")
}

/// A kube-rs client for `server`.
pub fn client(server: &Server) -> kube::Client {
    let mut config = kube::Config::new(server.url().parse().expect("url"));
    config.default_namespace = "default".into();
    config.read_timeout = Some(Duration::from_secs(10));
    kube::Client::try_from(config).expect("client")
}

/// Path of a tool installed by `scripts/install-test-tools.sh`; fails the test when missing.
pub fn tool(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools/bin")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/install-test-tools.sh first",
        path.display()
    );
    path
}

/// A fixture file path.
pub fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// Runs the real kubectl or helm against a server, with private cache/config dirs.
pub struct Cli {
    home: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Cli {
    /// For `server`.
    pub fn new(server: &Server) -> Self {
        Self {
            home: tempfile::tempdir().expect("tempdir"),
            kubeconfig: server.kubeconfig_path().to_path_buf(),
        }
    }

    fn command(&self, tool_name: &str, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(tool(tool_name));
        let home = self.home.path();
        cmd.args(args)
            .env_clear()
            .env("HOME", home)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", home.join("kube-cache"))
            .env("HELM_CACHE_HOME", home.join("helm-cache"))
            .env("HELM_CONFIG_HOME", home.join("helm-config"))
            .env("HELM_DATA_HOME", home.join("helm-data"))
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `tool args` with `stdin`, returning its output.
    pub async fn run(&self, tool_name: &str, args: &[&str], stdin: &str) -> Output {
        let mut child = self.command(tool_name, args).spawn().expect("spawn tool");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.as_bytes())
            .await
            .expect("write stdin");
        drop(input);
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("tool finished in time")
            .expect("tool output")
    }

    /// Runs kubectl and asserts success, returning stdout.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_stdin(args, "").await
    }

    /// Runs kubectl with stdin and asserts success, returning stdout.
    pub async fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run("kubectl", args, stdin).await;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {stderr}\n{stdout}"
        );
        stdout.into_owned()
    }

    /// Runs kubectl expecting failure, returning stderr.
    pub async fn kubectl_fails(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run("kubectl", args, stdin).await;
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs helm and asserts success, returning stdout.
    pub async fn helm(&self, args: &[&str]) -> String {
        let kubeconfig = self.kubeconfig.display().to_string();
        let mut all = args.to_vec();
        all.extend(["--kubeconfig", kubeconfig.as_str()]);
        let out = self.run("helm", &all, "").await;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "helm {args:?} failed: {stderr}\n{stdout}"
        );
        stdout.into_owned()
    }

    /// Spawns a long-running tool (e.g. `kubectl get --watch`).
    pub fn spawn(&self, tool_name: &str, args: &[&str]) -> tokio::process::Child {
        self.command(tool_name, args).spawn().expect("spawn tool")
    }
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A raw HTTP/1.1 GET (no client library), returning the status line, headers and body text.
pub async fn raw_get(server: &Server, path: &str, accept: &str) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n",
        server.addr()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_string(), body.to_string())
}
