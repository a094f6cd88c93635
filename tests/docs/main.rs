//! The documents tell the truth: every reason and metric family Canary exposes is documented
//! (so a new one cannot ship unexplained), every flag, chart value, metric and Lease they name
//! exists ([`names`]), and the facts they state hold ([`facts`]).

mod facts;
mod help;
mod names;

use canary_operator::api::Reason;
use canary_test_harness::{metrics, read, repo};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");

/// What a user reads: the READMEs and docs/, as (path, text).
fn docs() -> Vec<(String, String)> {
    let mut paths = vec![
        "README.md".to_string(),
        "examples/README.md".into(),
        "charts/canary-operator/README.md".into(),
    ];
    let mut pages: Vec<String> = (std::fs::read_dir(repo().join("docs")).expect("docs/"))
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    pages.sort();
    paths.extend(pages);
    (paths.into_iter())
        .map(|path| {
            let text = read(&repo().join(&path));
            (path, text)
        })
        .collect()
}

#[test]
fn readme_lists_every_reason_and_metric_family() {
    let readme = read(&repo().join("README.md"));
    let reasons: Vec<&str> = (Reason::ALL.iter())
        .map(|r| r.as_str())
        .filter(|r| !readme.contains(&format!("`{r}`")))
        .collect();
    assert!(reasons.is_empty(), "README lacks reasons {reasons:?}");
    let families: Vec<String> = (metrics::names().into_iter())
        .filter(|name| name.starts_with("canary_") && !readme.contains(&format!("`{name}")))
        .collect();
    assert!(
        families.is_empty(),
        "README lacks metric families {families:?}"
    );
}
