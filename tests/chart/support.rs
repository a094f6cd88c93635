//! Helpers for the chart tests: the real helm, promtool and kubernetes-validate binaries, and
//! the rendered manifests as JSON values.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The chart folder.
pub fn chart() -> PathBuf {
    repo().join("charts/canary-operator")
}

/// A file under `tests/chart/`.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/chart").join(name)
}

/// Reads a repository file.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A tool from `.tools/bin` or `PATH`; fails (never skips) when it is not installed.
pub fn tool(name: &str) -> PathBuf {
    let local = repo().join(".tools/bin").join(name);
    if local.is_file() {
        return local;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed (looked in .tools/bin and PATH): run \
                 scripts/install-chart-test-tools.sh (scripts/test runs it)"
            )
        })
}

/// Runs a tool and returns its output (whatever the exit status).
pub fn run(name: &str, args: &[&str], dir: Option<&Path>) -> Output {
    let home = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(tool(name));
    command
        .args(args)
        .env("HOME", home.path())
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env("KUBECONFIG", home.path().join("no-kubeconfig"));
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"))
}

/// Runs helm or kubectl against the API server of `kubeconfig`.
pub fn run_in_cluster(name: &str, kubeconfig: &Path, args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("tempdir");
    Command::new(tool(name))
        .args(args)
        .env("HOME", home.path())
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", home.path().join("kube-cache"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"))
}

/// Text of an output, stdout then stderr.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a tool and panics, with its output, unless it succeeds.
pub fn run_ok(name: &str, args: &[&str], dir: Option<&Path>) -> String {
    let output = run(name, args, dir);
    assert!(
        output.status.success(),
        "{name} {args:?} failed: {}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Release name used by the tests; the full name (and job label) follow from it.
pub const RELEASE: &str = "canary-operator";
/// Release namespace used by the tests.
pub const NAMESPACE: &str = "canary";
/// Kubernetes version the chart is rendered and validated for.
pub const KUBE_VERSION: &str = "1.35.0";

/// `helm template` arguments for the test release plus `extra`.
fn template_args<'a>(chart: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "template",
        RELEASE,
        chart,
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ];
    args.extend_from_slice(extra);
    args
}

/// `helm template` output (YAML) of the chart with `extra` arguments; panics on failure.
pub fn render_text(extra: &[&str]) -> String {
    let chart = chart().display().to_string();
    run_ok("helm", &template_args(&chart, extra), None)
}

/// `helm template` of the chart with `extra` arguments, expected to fail: its error text.
pub fn render_error(extra: &[&str]) -> String {
    let chart = chart().display().to_string();
    let output = run("helm", &template_args(&chart, extra), None);
    assert!(
        !output.status.success(),
        "helm template {extra:?} must fail, rendered:\n{}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every object `helm template` renders, as JSON.
pub fn render(extra: &[&str]) -> Vec<Value> {
    parse_documents(&render_text(extra))
}

/// The non-empty documents of a multi-document YAML text.
pub fn parse_documents(yaml: &str) -> Vec<Value> {
    let documents: Vec<Value> =
        serde_saphyr::from_str_multiple(yaml).expect("rendered YAML parses");
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

/// Arguments that turn every optional feature on (the Prometheus Operator API served too).
pub const ALL_FEATURES: &[&str] = &["--api-versions", "monitoring.coreos.com/v1", "-f"];

/// `helm template` with every optional feature on.
pub fn render_all_features() -> Vec<Value> {
    let values = fixture("all-features.yaml").display().to_string();
    let mut args = ALL_FEATURES.to_vec();
    args.push(&values);
    render(&args)
}

/// The objects of one kind.
pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The only object of one kind.
pub fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "expected exactly one {kind}, got {found:?}");
    found[0]
}

/// The kinds rendered, sorted.
pub fn kinds(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().expect("kind").to_owned())
        .collect()
}

/// One permission: (API group, resource, verb, resource name or "" for any).
pub type Grant = (String, String, String, String);

/// The grants of an RBAC rule list, one per group x resource x verb x name.
pub fn grants(rules: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    for rule in rules.as_array().expect("rules") {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "unexpected rule {rule}"
        );
        let names = match strings(&rule["resourceNames"]) {
            names if names.is_empty() => vec![String::new()],
            names => names,
        };
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    for name in &names {
                        out.insert((group.clone(), resource.clone(), verb.clone(), name.clone()));
                    }
                }
            }
        }
    }
    out
}

/// Builds grants from (group, resource, verbs) triples, for any name.
pub fn grant_set(triples: &[(&str, &str, &[&str])]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for (group, resource, verbs) in triples {
        for verb in *verbs {
            out.insert((
                group.to_string(),
                resource.to_string(),
                verb.to_string(),
                String::new(),
            ));
        }
    }
    out
}

/// The container of the operator Deployment.
pub fn container(objects: &[Value]) -> &Value {
    &one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

/// The operator's command-line arguments.
pub fn args(objects: &[Value]) -> Vec<String> {
    container(objects)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}
