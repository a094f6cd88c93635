//! Every name the documents give exists: a `--flag` is one of `canary`'s (the `--help` of every
//! command) or one of the other tools' listed here, a chart value is in values.schema.json (what
//! helm enforces), a `canary_*` metric is in the registry, and a Lease is one the chart and the
//! operator create.

use std::collections::BTreeSet;

use canary_operator::controller::shard::LEASE_PREFIX;
use canary_test_harness::{chart, metrics, read, repo, tools::Helm};
use regex::Regex;
use serde_json::Value;

use crate::{CANARY, docs};

/// Flags of the other programs the documents show (helm, kubectl, cargo, docker, podman,
/// scripts, unshare, strip, curl, a Dockerfile's COPY): a flag that is in neither list is a
/// mistake.
const OTHER_TOOLS_FLAGS: &[&str] = &[
    "--api-versions",
    "--as",
    "--bench",
    "--bin",
    "--binary",
    "--build-arg",
    "--check",
    "--connect-to",
    "--create-namespace",
    "--features",
    "--for",
    "--from",
    "--from-literal",
    "--install",
    "--layers",
    "--locked",
    "--mount",
    "--net",
    "--overwrite",
    "--platform",
    "--profile",
    "--pull",
    "--push",
    "--release",
    "--retry",
    "--retry-all-errors",
    "--rm",
    "--server-side",
    "--set",
    "--show-only",
    "--strip-debug",
    "--tag",
    "--target",
    "--test",
    "--userspec",
    "--validate",
    "--workspace",
];

/// `--flag` tokens of `text`.
fn flags(text: &str) -> BTreeSet<String> {
    let flag = Regex::new(r"(?:^|[^A-Za-z0-9-])(--[a-z][a-z0-9-]*[a-z0-9])").unwrap();
    (flag.captures_iter(text))
        .map(|c| c[1].to_string())
        .collect()
}

/// Every flag of `canary` and its subcommands, as `--help` prints them.
fn canary_flags() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for command in [
        &[][..],
        &["check"],
        &["standalone"],
        &["operator"],
        &["crd"],
        &["discover"],
        &["selftest"],
        &["ping"],
    ] {
        let out = std::process::Command::new(CANARY)
            .args(command)
            .arg("--help")
            .output()
            .expect("canary --help");
        assert!(out.status.success(), "canary {command:?} --help");
        all.extend(flags(&String::from_utf8_lossy(&out.stdout)));
    }
    all
}

#[test]
fn every_flag_the_docs_name_is_canarys_or_another_tools() {
    let known = canary_flags();
    assert!(known.contains("--stall-grace"), "{known:?}");
    let mut unknown = Vec::new();
    for (path, text) in docs() {
        for flag in flags(&text) {
            if !known.contains(&flag) && !OTHER_TOOLS_FLAGS.contains(&flag.as_str()) {
                unknown.push(format!("{path}: {flag}"));
            }
        }
    }
    assert!(unknown.is_empty(), "flags of no command: {unknown:#?}");
}

/// Whether `path` (`config.denyCIDRs`) is a value the chart's schema accepts.
fn is_value(schema: &Value, path: &str) -> bool {
    let mut node = schema;
    for segment in path.split('.') {
        match node["properties"].get(segment) {
            Some(child) => node = child,
            // A free-form map (labels, annotations, resources' quantities) takes any key.
            None => return node["additionalProperties"].is_object(),
        }
    }
    true
}

/// Every key of values.yaml at any depth, and its top-level keys.
fn value_keys(values: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    fn walk(value: &Value, keys: &mut BTreeSet<String>) {
        for (key, child) in value.as_object().into_iter().flatten() {
            keys.insert(key.clone());
            walk(child, keys);
        }
    }
    let mut all = BTreeSet::new();
    walk(values, &mut all);
    let top = values
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone());
    (all, top.collect())
}

/// Dotted names in backticks (`config.denyCIDRs`, `crds.enabled=false`) and `--set` keys.
fn dotted_names(text: &str) -> BTreeSet<String> {
    let quoted = Regex::new(r"`([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)+)(?:=[^`]*)?`").unwrap();
    let set = Regex::new(r"--set[ =]([^\s`]+)").unwrap();
    let mut names: BTreeSet<String> = quoted.captures_iter(text).map(|c| c[1].into()).collect();
    for args in set.captures_iter(text) {
        let keys = args[1]
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, _)| k);
        names.extend(keys.map(String::from));
    }
    names
}

/// Whether `name` is a HealthCheck field (`spec.interval`, `dns.query.name`), not a value.
fn is_resource_field(crd: &Value, name: &str) -> bool {
    let first = name.split('.').next().unwrap_or_default();
    let mut node = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    if matches!(first, "spec" | "status" | "metadata") {
        return true;
    }
    for segment in name.split('.') {
        match node["properties"].get(segment) {
            Some(child) => node = child,
            None => return false,
        }
    }
    true
}

#[test]
fn every_chart_value_the_docs_name_is_in_the_charts_schema() {
    let values: Value = serde_saphyr::from_str(&read(&chart::dir().join("values.yaml"))).unwrap();
    let schema: Value =
        serde_json::from_str(&read(&chart::dir().join("values.schema.json"))).unwrap();
    let crd: Value =
        serde_saphyr::from_str(&read(&repo().join("crds/healthchecks.canary.dev.yaml"))).unwrap();
    let (keys, top) = value_keys(&values);
    let mut wrong = Vec::new();
    let mut named = 0;
    for (path, text) in docs() {
        for name in dotted_names(&text) {
            let segments: Vec<&str> = name.split('.').collect();
            let (first, last) = (segments[0], segments[segments.len() - 1]);
            // A value is named by its place (`config.x`) or by its own name (`x.denyCIDRs`).
            let looks_like_a_value = top.contains(first) || keys.contains(last);
            if !looks_like_a_value || is_resource_field(&crd, &name) {
                continue;
            }
            named += 1;
            if !is_value(&schema, &name) {
                wrong.push(format!("{path}: {name}"));
            }
        }
    }
    assert!(named > 50, "the docs name chart values: {named}");
    assert!(wrong.is_empty(), "not values of the chart: {wrong:#?}");
}

#[test]
fn every_metric_the_docs_name_is_in_the_registry() {
    let families = metrics::names();
    let metric = Regex::new(r"\bcanary_[a-z0-9_]*[a-z0-9*](?:::)?").unwrap();
    let mut unknown = Vec::new();
    for (path, text) in docs() {
        for found in metric.find_iter(&text).map(|m| m.as_str()) {
            // `canary_operator::controller` is the crate in a log filter, not a metric.
            if found.ends_with("::") || found.starts_with("canary_test_") {
                continue;
            }
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| found.strip_suffix(suffix))
                .unwrap_or(found);
            let exists = match name.strip_suffix('*') {
                Some(prefix) => families.iter().any(|f| f.starts_with(prefix)),
                None => families.contains(name),
            };
            if !exists {
                unknown.push(format!("{path}: {found}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics Canary does not expose: {unknown:#?}"
    );
}

/// The Lease the chart elects a leader with, for the release the docs use (`canary` in
/// `canary`), and the flag's default (both, and the chart's alone).
async fn lease_names() -> (BTreeSet<String>, BTreeSet<String>) {
    let chart = chart::dir().display().to_string();
    let args = ["template", "canary", &chart, "--namespace", "canary"];
    let objects = chart::parse_documents(&Helm::offline().ok(&args).await);
    let mut names: BTreeSet<String> = (chart::args(&objects).iter())
        .filter_map(|a| a.strip_prefix("--leader-election-lease-name="))
        .map(String::from)
        .collect();
    assert_eq!(names.len(), 1, "the chart names its Lease: {names:?}");
    let chart_names = names.clone();
    let mut help = std::process::Command::new(CANARY);
    let help = help.args(["operator", "--help"]).output().expect("help");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let default = Regex::new(r"lease-name <[A-Z_]+>(?s:.*?)\[default: ([a-z0-9-]+)\]").unwrap();
    let default = default.captures(&help).map(|c| c[1].to_string());
    names.insert(default.unwrap_or_else(|| panic!("no default Lease name in:\n{help}")));
    (names, chart_names)
}

#[tokio::test]
async fn every_lease_the_docs_name_is_one_the_chart_or_the_operator_creates() {
    let (known, chart) = lease_names().await;
    // In the chart's namespace (`-n canary`, the docs' release), only the chart's Lease.
    let named =
        Regex::new(r"(?i)(-n canary )?\b(?:lease `([^`]+)`|get leases? ([a-z0-9][a-z0-9.-]*))")
            .unwrap();
    let mut wrong = Vec::new();
    for (path, text) in docs() {
        for found in named.captures_iter(&text) {
            let name = found.get(2).or(found.get(3)).map_or("", |m| m.as_str());
            let known = if found.get(1).is_some() {
                &chart
            } else {
                &known
            };
            let valid = match name.split_once('<') {
                // A placeholder: `<fullname>`, or the shard prefix the operator uses.
                Some((prefix, _)) => prefix.is_empty() || prefix == LEASE_PREFIX,
                None => known.contains(name),
            };
            if !valid {
                wrong.push(format!("{path}: {name} (known: {known:?})"));
            }
        }
    }
    assert!(wrong.is_empty(), "Leases nobody creates: {wrong:#?}");
}
