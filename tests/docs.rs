//! The README tells the truth about the closed sets: every reason and every metric family
//! Canary exposes is documented, so a new one cannot ship unexplained.

use canary_operator::api::Reason;
use canary_test_harness::{metrics, read, repo};

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
