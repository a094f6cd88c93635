//! Every flag and variable the chart passes is one `canary operator --help` documents, in the
//! form it takes (a value or a switch).

use std::collections::{BTreeMap, BTreeSet};

use canary_test_harness::{
    chart::{all_features_args, args, container, render},
    tools::text,
};
use serde_json::Value;

use crate::CANARY;

/// What `canary operator --help` documents.
#[derive(Debug, Default)]
struct Help {
    /// Long flag name (without `--`) -> whether it takes a value (`--flag <VALUE>`).
    flags: BTreeMap<String, bool>,
    /// Environment variables named by `[env: NAME=]`.
    env: BTreeSet<String>,
}

/// Parses clap's `--help` output.
fn parse_help(help: &str) -> Help {
    let mut out = Help::default();
    for line in help
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
    {
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

/// The problem with one `--flag[=value]` argument, if any.
fn flag_problem(arg: &str, help: &Help, seen: &mut BTreeSet<String>) -> Option<String> {
    let Some(flag) = arg.strip_prefix("--") else {
        return Some(format!(
            "`{arg}` is not a --flag (positional arguments are not accepted)"
        ));
    };
    let (name, value) = match flag.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (flag, None),
    };
    if !seen.insert(name.to_owned()) {
        return Some(format!(
            "`--{name}` is given twice (the operator rejects that)"
        ));
    }
    match help.flags.get(name) {
        None => Some(format!("`--{name}` is not a flag of `canary operator`")),
        Some(true) if value.is_none_or(str::is_empty) => Some(format!(
            "`--{name}` takes a value, the chart passes `{arg}`"
        )),
        Some(false) if value.is_some() => {
            Some(format!("`--{name}` is a switch, the chart passes `{arg}`"))
        }
        Some(_) => None,
    }
}

/// Problems with the arguments the chart passes, as `canary operator --help` documents them.
fn undocumented_args(args: &[String], help: &Help) -> Vec<String> {
    let mut problems = Vec::new();
    if args.first().map(String::as_str) != Some("operator") {
        problems.push(format!("the first argument must be `operator`: {args:?}"));
    }
    let mut seen = BTreeSet::new();
    problems.extend(
        args.iter()
            .skip(1)
            .filter_map(|arg| flag_problem(arg, help, &mut seen)),
    );
    problems
}

/// The chart's Deployment with default values, every optional feature, and namespaced
/// watching plus an extra flag.
async fn deployment_variants() -> Vec<(&'static str, Vec<Value>)> {
    let all = all_features_args();
    let namespaced = [
        "--set",
        "watchNamespaces={shop,payments},replicaCount=2",
        "--set-json",
        r#"config.extraArgs=["--reference-ttl=1m"]"#,
    ];
    vec![
        ("defaults", render(&[]).await),
        (
            "all-features",
            render(&all.iter().map(String::as_str).collect::<Vec<_>>()).await,
        ),
        ("watch-namespaces", render(&namespaced).await),
    ]
}

/// Variables the operator reads that are not flags: log levels for tracing's EnvFilter
/// (src/main.rs; `canary --help` does not list it, src/cli.rs documents it).
const NON_FLAG_ENV: &[&str] = &["RUST_LOG"];

/// `canary operator --help`, understood.
fn operator_help() -> Help {
    let output = std::process::Command::new(CANARY)
        .args(["operator", "--help"])
        .env_clear()
        .output()
        .expect("canary runs");
    assert!(output.status.success(), "{}", text(&output));
    let help = parse_help(&String::from_utf8_lossy(&output.stdout));
    let understood =
        help.flags.contains_key("metrics-bind-address") && help.env.contains("POD_NAME");
    assert!(understood, "help not understood: {help:?}");
    help
}

#[tokio::test]
async fn chart_flags_are_accepted_by_the_operator() {
    let help = operator_help();
    let mut problems = Vec::new();
    for (variant, objects) in deployment_variants().await {
        let c = container(&objects);
        let problem = |p: String| format!("{variant}: {p}");
        problems.extend(
            undocumented_args(&args(&objects), &help)
                .into_iter()
                .map(problem),
        );
        let env: Vec<&str> = (c["env"].as_array().unwrap().iter())
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        for name in env
            .iter()
            .filter(|n| !help.env.contains(**n) && !NON_FLAG_ENV.contains(n))
        {
            problems.push(format!(
                "{variant}: env {name} is not read by any flag of `canary operator --help`"
            ));
        }
        // The Downward API variables feed the flags whose defaults they are.
        for (name, flag) in [
            ("POD_NAME", "leader-election-identity"),
            ("POD_NAMESPACE", "leader-election-namespace"),
        ] {
            assert!(help.flags.contains_key(flag), "{flag}");
            assert!(env.contains(&name), "{variant}: {name}");
        }
    }
    assert!(
        problems.is_empty(),
        "the chart passes what `canary operator` does not document:\n{}",
        problems.join("\n")
    );
}
