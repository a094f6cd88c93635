//! The command-line tools the tests drive, found where `scripts/test` installs them: kubectl 1.35,
//! helm 4 and kubernetes-validate under `.tools/bin`, promtool and prometheus from the Debian
//! package. A missing tool fails the test (never skips) naming the setup command.

use std::{
    ops::Deref,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// The command that installs every tool the tests use.
pub const SETUP: &str = "scripts/test";

/// Tools whose version matters (kubectl 1.35, helm 4): only the copies `scripts/test` installs.
const PINNED: &[&str] = &["kubectl", "helm", "kubernetes-validate"];

/// How long one tool invocation may take.
const LIMIT: Duration = Duration::from_secs(120);

/// The path of tool `name`; fails the test when it is not installed.
pub fn tool(name: &str) -> PathBuf {
    let mut places = vec![crate::repo().join(".tools/bin")];
    if !PINNED.contains(&name) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        places.extend(std::env::split_paths(&path));
        places.extend(["/usr/bin".into(), "/usr/sbin".into()]);
    }
    places
        .iter()
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed (looked in {}): run {SETUP}, which installs every tool \
                 the tests use",
                places
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Text of an output, stdout then stderr.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// One tool with a private HOME (and kubectl/helm cache and config folders in it), optionally
/// pointed at a cluster's kubeconfig.
pub struct Tool {
    name: String,
    path: PathBuf,
    home: tempfile::TempDir,
    kubeconfig: Option<PathBuf>,
}

impl Tool {
    /// Tool `name`, not pointed at any cluster.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            path: tool(name),
            home: tempfile::tempdir().expect("tempdir"),
            kubeconfig: None,
        }
    }

    /// Tool `name` against the cluster of `kubeconfig`.
    pub fn for_cluster(name: &str, kubeconfig: &Path) -> Self {
        Self {
            kubeconfig: Some(kubeconfig.to_path_buf()),
            ..Self::new(name)
        }
    }

    /// The command with a clean environment (also used for long-running watches).
    pub fn command(&self, args: &[&str]) -> Command {
        let home = self.home.path();
        let kubeconfig = (self.kubeconfig.clone()).unwrap_or_else(|| home.join("no-kubeconfig"));
        let mut cmd = Command::new(&self.path);
        cmd.args(args)
            .env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/bin:/bin")
            .env("KUBECONFIG", kubeconfig)
            .env("KUBECACHEDIR", home.join("kube-cache"))
            .env("HELM_CACHE_HOME", home.join("helm-cache"))
            .env("HELM_CONFIG_HOME", home.join("helm-config"))
            .env("HELM_DATA_HOME", home.join("helm-data"));
        cmd
    }

    /// Runs the tool with `stdin`, returning its output whatever the exit status.
    pub async fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = tokio::process::Command::from(self.command(args));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = (cmd.spawn()).unwrap_or_else(|e| panic!("running {}: {e}", self.name));
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).await.expect("stdin");
        drop(input);
        let name = &self.name;
        tokio::time::timeout(LIMIT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{name} {args:?} did not finish within {LIMIT:?}"))
            .unwrap_or_else(|e| panic!("{name} {args:?}: {e}"))
    }

    /// Runs the tool, asserting success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        self.ok_stdin(args, "").await
    }

    /// Runs the tool with `stdin`, asserting success; returns stdout.
    pub async fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin).await;
        let name = &self.name;
        assert!(
            out.status.success(),
            "{name} {args:?} failed: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the tool expecting failure; returns stderr.
    pub async fn fails(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin).await;
        let name = &self.name;
        assert!(
            !out.status.success(),
            "{name} {args:?} unexpectedly succeeded: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// The real kubectl against one cluster.
pub struct Kubectl(Tool);

impl Kubectl {
    /// kubectl against the cluster of `kubeconfig`.
    pub fn new(kubeconfig: &Path) -> Self {
        Self(Tool::for_cluster("kubectl", kubeconfig))
    }

    /// `kubectl apply -f -` of objects.
    pub async fn apply(&self, objects: &[Value]) -> String {
        self.ok_stdin(&["apply", "-f", "-"], &documents(objects))
            .await
    }

    /// `kubectl get ARGS -o json`, parsed.
    pub async fn get_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all).await).expect("kubectl -o json")
    }
}

impl Deref for Kubectl {
    type Target = Tool;
    fn deref(&self) -> &Tool {
        &self.0
    }
}

/// The real helm, offline (template, lint) or against one cluster.
pub struct Helm(Tool);

impl Helm {
    /// helm without a cluster (template, lint).
    pub fn offline() -> Self {
        Self(Tool::new("helm"))
    }

    /// helm against the cluster of `kubeconfig`.
    pub fn for_cluster(kubeconfig: &Path) -> Self {
        Self(Tool::for_cluster("helm", kubeconfig))
    }
}

impl Deref for Helm {
    type Target = Tool;
    fn deref(&self) -> &Tool {
        &self.0
    }
}

/// Several objects as one multi-document stream (JSON documents are YAML documents).
pub fn documents(objects: &[Value]) -> String {
    let docs: Vec<String> = objects.iter().map(Value::to_string).collect();
    docs.join("\n---\n")
}

/// `promtool check metrics` of an exposition: its complaints, empty when there are none.
pub async fn promtool_check_metrics(exposition: &str) -> Result<(), String> {
    let out = Tool::new("promtool")
        .run(&["check", "metrics"], exposition)
        .await;
    let complaints = text(&out);
    if out.status.success() && complaints.trim().is_empty() {
        Ok(())
    } else {
        Err(complaints)
    }
}

#[test]
#[should_panic(expected = "run scripts/test")]
fn a_missing_tool_fails_naming_the_setup_command() {
    tool("canary-no-such-tool");
}
