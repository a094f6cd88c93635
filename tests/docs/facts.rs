//! Facts the documents state that the code, the CRD or the chart decide: the columns `kubectl
//! get` shows, the dashboard's rows, the Kubernetes version the chart needs, the ports the
//! Service and the security page name, the TLS provider, what standalone serves, and the
//! spokes' admission policy.

use canary_test_harness::{chart, read, repo};
use regex::Regex;
use serde_json::Value;

use crate::{CANARY, docs};

#[test]
fn the_readme_names_every_column_kubectl_shows() {
    let crd: Value =
        serde_saphyr::from_str(&read(&repo().join("crds/healthchecks.canary.dev.yaml"))).unwrap();
    let readme = read(&repo().join("README.md"));
    let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap();
    let missing: Vec<String> = (columns.iter())
        .map(|c| c["name"].as_str().unwrap().to_uppercase())
        .filter(|name| !readme.contains(&format!("`{name}`")))
        .collect();
    assert!(missing.is_empty(), "README lacks the columns {missing:?}");
}

#[test]
fn the_monitoring_page_names_every_row_of_the_dashboard() {
    let dashboard: Value =
        serde_json::from_str(&read(&chart::dir().join("files/dashboard.json"))).unwrap();
    let page = read(&repo().join("docs/monitoring.md"));
    let rows: Vec<&str> = (dashboard["panels"].as_array().unwrap().iter())
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert!(rows.len() >= 4, "{rows:?}");
    let missing: Vec<&&str> = (rows.iter())
        .filter(|row| !page.contains(&format!("**{row}**")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/monitoring.md lacks the dashboard rows {missing:?}"
    );
}

#[test]
fn the_docs_require_the_kubernetes_version_the_chart_declares() {
    let chart_yaml: Value =
        serde_saphyr::from_str(&read(&chart::dir().join("Chart.yaml"))).unwrap();
    let declared = chart_yaml["kubeVersion"].as_str().unwrap();
    let minimum = Regex::new(r">=\s*(\d+\.\d+)").unwrap();
    let minimum = &minimum.captures(declared).expect("a minimum version")[1];
    // "Requires Kubernetes 1.30 or later", "needs Kubernetes 1.30", "Kubernetes 1.30 or later".
    let stated = Regex::new(
        r"(?i)(?:requires?|needs?) Kubernetes (\d+\.\d+)|Kubernetes (\d+\.\d+)(?: or later| or newer|\+ is required)",
    )
    .unwrap();
    let mut found = Vec::new();
    for (path, text) in docs() {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for version in stated.captures_iter(&text) {
            let version = version.get(1).or(version.get(2)).map_or("", |m| m.as_str());
            found.push((path.clone(), version.to_string()));
        }
    }
    assert!(
        !found.is_empty(),
        "no document states the Kubernetes version"
    );
    let wrong: Vec<_> = found.iter().filter(|(_, v)| v != minimum).collect();
    assert!(wrong.is_empty(), "Chart.yaml says {declared}: {wrong:?}");
}

#[tokio::test]
async fn the_docs_say_which_ports_the_service_exposes_as_the_chart_renders_it() {
    let objects = chart::render(&[]).await;
    let service = chart::one(&objects, "Service");
    let exposed: Vec<u64> = (service["spec"]["ports"].as_array().unwrap().iter())
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(exposed, [8080, 8081, 8082], "metrics, health and the page");
    // The values that set a port say whether the Service carries it, and truly.
    let readme = read(&chart::dir().join("README.md"));
    for (value, port) in [
        ("metrics.port", 8080),
        ("healthProbePort", 8081),
        ("ui.port", 8082),
    ] {
        let row = (readme.lines())
            .find(|l| l.starts_with(&format!("| `{value}` |")))
            .unwrap_or_else(|| panic!("no row for {value}"));
        assert!(exposed.contains(&port), "{value}");
        assert!(
            row.contains("on the Service") && !row.contains("not exposed"),
            "{value} is on the Service: {row}"
        );
    }
    // values.yaml's comments say the same as the chart README's rows.
    let values = read(&chart::dir().join("values.yaml"));
    let health = (values
        .split("\n\n")
        .find(|block| block.contains("\nhealthProbePort:")))
    .expect("healthProbePort in values.yaml");
    assert!(
        health.contains("on the") && health.contains("Service") && !health.contains("not exposed"),
        "values.yaml: {health}"
    );
    // Whoever reaches a port can read what it serves: the security page names them all.
    let security = read(&repo().join("docs/security.md"));
    let container = chart::container(&objects);
    for port in container["ports"].as_array().unwrap() {
        let number = port["containerPort"].as_u64().unwrap().to_string();
        assert!(
            security.contains(&number),
            "docs/security.md omits port {number}"
        );
    }
}

#[test]
fn the_readme_names_the_tls_provider_cargo_builds() {
    let manifest = read(&repo().join("Cargo.toml"));
    let rustls = (manifest.lines())
        .find(|l| l.starts_with("rustls = "))
        .expect("rustls");
    let (built, other) = match rustls.contains("aws_lc_rs") {
        true => ("aws-lc-rs", "ring"),
        false => ("ring", "aws-lc-rs"),
    };
    let readme = read(&repo().join("README.md"));
    assert!(
        readme.contains(&format!("rustls ({built} provider)")),
        "README names {built}"
    );
    assert!(
        !readme.contains(&format!("rustls ({other}")),
        "README names {other}"
    );
}

#[test]
fn standalone_help_names_everything_standalone_serves() {
    let out = std::process::Command::new(CANARY)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let line = (help.lines())
        .find(|l| l.trim_start().starts_with("standalone"))
        .expect("standalone in --help");
    for served in ["/metrics", "/healthz", "/readyz", "status page"] {
        assert!(line.contains(served), "`canary --help` standalone: {line}");
    }
}

#[test]
fn the_readme_opens_with_the_two_commands_and_how_long_the_first_build_takes() {
    let readme = read(&repo().join("README.md"));
    let (head, _) = (readme.split_once("\n## ")).expect("a section after the introduction");
    let (_, block) = head.split_once("```sh\n").expect("a first code block");
    let mut commands = block
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim());
    assert!(
        (commands.next()).is_some_and(|c| c.starts_with("cargo run --release -- standalone")),
        "the first command runs Canary: {block}"
    );
    assert_eq!(
        commands.next(),
        Some("scripts/test"),
        "then the tests: {block}"
    );
    let first_build = Regex::new(r"first build [^.]*?takes about \d+ minutes on 2 cores").unwrap();
    assert!(
        first_build.is_match(&head.split_whitespace().collect::<Vec<_>>().join(" ")),
        "the README says how long the first build takes"
    );
    assert!(
        !head.contains("_MINUTES"),
        "a placeholder left in the README"
    );
}
