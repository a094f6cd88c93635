//! A check whose namespace and name need percent-encoding (standalone accepts any name): the
//! page links to it encoded, and its page, JSON record, uptime and badges answer at those
//! paths. Before, the links were written raw and every per-check route answered 404.

use canary_test_harness::{
    http,
    operator::Launch,
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};

use super::{CANARY, SEC};

/// `team a` / `disk 90%/é`, encoded as the page must write it.
const ENCODED: &str = "team%20a/disk%2090%25%2F%C3%A9";

#[tokio::test]
async fn names_that_need_encoding_work_on_every_route() {
    let up = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let doc = format!(
        "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{namespace: 'team a', name: 'disk 90%/é'}}\n\
         spec:\n  interval: 1s\n  timeout: 800ms\n  http: {{url: '{}'}}\n",
        up.url("/")
    );
    std::fs::write(dir.path().join("checks.yaml"), doc).unwrap();
    let canary = Launch::standalone(CANARY, dir.path()).process().await;
    canary.wait_ready(10 * SEC).await;
    let ui = canary.ui.expect("the status page is on");
    let record = format!("/api/v1/checks/{ENCODED}");
    eventually(20 * SEC, "a result of the check", SEC / 5, async || {
        let response = http::get(ui, &record).await?;
        match response.status {
            200 if response.body.contains("\"results\":[{") => Ok(()),
            status => Err(format!("{status}: {}", response.body)),
        }
    })
    .await;
    let overview = http::get(ui, "/").await.unwrap();
    assert!(
        overview
            .body
            .contains(&format!("href=\"/checks/{ENCODED}\"")),
        "the overview links to the check encoded"
    );
    for path in [
        format!("/checks/{ENCODED}"),
        format!("/api/v1/checks/{ENCODED}/uptime"),
        format!("/badges/{ENCODED}/health.svg"),
    ] {
        let response = http::get(ui, &path).await.unwrap();
        assert_eq!(response.status, 200, "GET {path}: {}", response.body);
    }
    let page = http::get(ui, &format!("/checks/{ENCODED}")).await.unwrap();
    assert!(
        page.body.contains(&format!("/badges/{ENCODED}/health.svg")),
        "the check's page links its badges encoded"
    );
}
