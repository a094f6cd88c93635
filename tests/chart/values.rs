//! Every value of the chart is documented and typed, and the image it runs is the one the
//! Dockerfile builds, as the user the chart runs it as.

use std::collections::BTreeSet;

use canary_test_harness::{
    chart::{self, container, one, render},
    read, repo,
};
use serde_json::{Value, json};

/// Dotted paths of the leaves of values.yaml (an empty map or list is a leaf).
fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value.as_object() {
        Some(map) if !map.is_empty() => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_paths(child, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// Asserts `path` (dotted) is typed in the schema as far as the schema has properties.
fn assert_typed(schema: &Value, path: &str) {
    let mut node = schema;
    for part in path.split('.') {
        let Some(properties) = node.get("properties") else {
            break;
        };
        let typed = properties.get(part);
        node = typed.unwrap_or_else(|| panic!("values.schema.json lacks {path}"));
    }
}

#[test]
fn every_value_is_documented_in_the_readme_and_typed_in_the_schema() {
    let values: Value = serde_saphyr::from_str(&read(&chart::dir().join("values.yaml"))).unwrap();
    let schema: Value =
        serde_json::from_str(&read(&chart::dir().join("values.schema.json"))).expect("valid JSON");
    let readme = read(&chart::dir().join("README.md"));
    let mut paths = Vec::new();
    leaf_paths(&values, "", &mut paths);
    for path in &paths {
        // The README documents the value itself or (for free-form Kubernetes objects such as
        // resources or podSecurityContext) its parent.
        let parts: Vec<&str> = path.split('.').collect();
        let documented = (1..=parts.len())
            .map(|n| format!("`{}`", parts[..n].join(".")))
            .any(|p| readme.contains(&format!("| {p} |")));
        assert!(documented, "chart README does not list `{path}`");
        assert_typed(&schema, path);
    }
    let top: BTreeSet<&String> = values.as_object().unwrap().keys().collect();
    let typed: BTreeSet<&String> = schema["properties"].as_object().unwrap().keys().collect();
    assert_eq!(
        top, typed,
        "values.yaml and values.schema.json list the same values"
    );
    for name in [
        "crds.enabled",
        "crds.keep",
        "serviceMonitor.enabled",
        "prometheusRule.enabled",
        "grafanaDashboard.enabled",
        "replicaCount",
        "watchNamespaces",
        "image.repository",
        "resources",
    ] {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "README lacks {name}"
        );
    }
}

/// Numeric parts of a version (`1.89.0` -> [1, 89, 0]).
fn version(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap()).collect()
}

/// Asserts the builder image (`rust:1.95-bookworm`) is new enough for Cargo.toml's rust-version.
fn assert_builder_is_new_enough(builder: &str) {
    let rust_version = (read(&repo().join("Cargo.toml")).lines())
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap();
    let builder = (builder.trim_start_matches("rust:").split('-').next()).unwrap();
    assert!(
        version(builder) >= version(&rust_version),
        "{builder} < {rust_version}"
    );
}

/// The default of the Dockerfile's `ARG name=...`.
fn arg_default<'a>(dockerfile: &'a str, name: &str) -> &'a str {
    let prefix = format!("ARG {name}=");
    (dockerfile.lines().find_map(|l| l.strip_prefix(&prefix)))
        .unwrap_or_else(|| panic!("the Dockerfile has no {prefix}"))
}

#[tokio::test]
async fn dockerfile_builds_the_binary_the_chart_runs_as_the_chart_user() {
    let dockerfile = read(&repo().join("Dockerfile"));
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    let expected = [
        "FROM ${RUST_IMAGE} AS build",
        "FROM ${RUNTIME_IMAGE} AS runtime",
        "FROM runtime AS prebuilt",
        "FROM runtime AS image",
    ];
    assert_eq!(
        stages, expected,
        "build, runtime, prebuilt, image (default)"
    );
    let builder = arg_default(&dockerfile, "RUST_IMAGE");
    assert!(builder.starts_with("rust:"), "{builder}");
    let runtime = arg_default(&dockerfile, "RUNTIME_IMAGE");
    assert!(
        runtime.contains("distroless") && runtime.contains(":nonroot"),
        "{runtime}"
    );
    // What ships is the `dist` profile (fat LTO) with jemalloc, however the image is built;
    // `release` stays quick for the README's first command (no jemalloc C build).
    let build = "cargo build --profile dist --locked --features jemalloc --bin canary";
    let script = read(&repo().join("scripts/build-image.sh"));
    assert!(dockerfile.contains(build) && script.contains(build));
    let manifest = read(&repo().join("Cargo.toml"));
    for profile in [
        "[profile.dist]\ninherits = \"release\"\nlto = \"fat\"\ncodegen-units = 1\n",
        "[profile.bench]\nlto = \"fat\"\ncodegen-units = 1\n",
        "[profile.release]\ndebug = \"line-tables-only\"\nlto = \"thin\"\n",
    ] {
        assert!(manifest.contains(profile), "Cargo.toml lacks {profile}");
    }
    assert!(
        manifest.contains("tikv-jemallocator = { version = \"0.6\", optional = true }"),
        "jemalloc stays out of the default build"
    );
    assert!(dockerfile.contains("USER 65532:65532"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/canary\"]"));
    assert!(dockerfile.contains("CMD [\"operator\"]"));
    assert_builder_is_new_enough(builder);

    let objects = render(&[]).await;
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["runAsGroup"], 65532);
    assert_eq!(container(&objects)["command"], json!(["/canary"]));
    let ignored = read(&repo().join(".dockerignore"));
    for path in ["target", ".tools", ".git"] {
        let listed = ignored.lines().any(|l| l.trim_start_matches('/') == path);
        assert!(listed, "{path}");
    }
}
