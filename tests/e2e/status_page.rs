//! The status page of `canary operator`: the checks it probes, with their history, and the
//! `canary.dev/status-page: hidden` annotation followed as it is set and removed.

use std::time::Duration;

use canary_test_harness::{
    cluster::http_check,
    http,
    operator::Operator,
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::{Value, json};

use crate::{SEC, Scenario};

const NS: &str = "status-page";

/// The names of the checks on the page's list.
async fn listed(operator: &Operator) -> Result<Vec<String>, String> {
    let ui = operator.ui.ok_or("the page is off")?;
    let list = http::get(ui, "/api/v1/checks").await?;
    let items = list.json()["items"].as_array().cloned().unwrap_or_default();
    Ok(items
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect())
}

/// Waits until the page lists exactly `names`.
async fn wait_listed(operator: &Operator, names: &[&str]) {
    let what = format!("the page lists {names:?}");
    eventually(
        15 * SEC,
        &what,
        Duration::from_millis(200),
        async || match listed(operator).await? {
            got if got == names => Ok(()),
            got => Err(format!("{got:?}")),
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_operators_checks_and_follows_the_hidden_annotation() {
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let mut admin = http_check(NS, "admin", &target.url("/admin"), json!({}));
    admin["metadata"]["annotations"] = json!({"canary.dev/status-page": "hidden"});
    let web = http_check(NS, "web", &target.url("/"), json!({}));
    let s = Scenario::start(NS, &[], &[web, admin]).await;
    s.watch.ready_as("web", "True", "Succeeded").await;
    wait_listed(&s.operator, &["web"]).await;

    let ui = s.operator.ui.unwrap();
    let web: Value = http::get(ui, &format!("/api/v1/checks/{NS}/web"))
        .await
        .unwrap()
        .json();
    assert_eq!(web["state"], "ready", "{web}");
    assert!(!web["results"].as_array().unwrap().is_empty(), "{web}");
    let badge = http::get(ui, &format!("/badges/{NS}/web/health.svg"))
        .await
        .unwrap();
    assert!(badge.body.contains(">up<"), "{}", badge.body);

    let kubectl = &s.cluster.kubectl;
    let hide = [
        "annotate",
        "healthchecks.canary.dev/web",
        "-n",
        NS,
        "canary.dev/status-page=hidden",
    ];
    kubectl.ok(&hide).await;
    let show = [
        "annotate",
        "healthchecks.canary.dev/admin",
        "-n",
        NS,
        "canary.dev/status-page-",
    ];
    kubectl.ok(&show).await;
    wait_listed(&s.operator, &["admin"]).await;
    let gone = http::get(ui, &format!("/checks/{NS}/web")).await.unwrap();
    assert_eq!(gone.status, 404, "a hidden check's page is gone too");
}
