//! The page's JSON API and badges as scripts and READMEs use them: shapes, content types,
//! pagination, uptime that agrees with `/metrics`, headers, hidden checks and redaction.

use canary_test_harness::http;
use serde_json::Value;

use crate::{Fixture, INLINE_TOKEN, SEC, VISIBLE, get, json, standalone, ui, wait_results};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_is_paginated_sorted_and_leaves_hidden_checks_out() {
    let fixture = Fixture::start().await;
    let canary = standalone(&fixture, &[]).await;
    wait_results(&canary, 1).await;

    let all = json(&canary, "/api/v1/checks").await;
    assert_eq!(all["total"], 4, "hidden check left out: {all}");
    assert!(all["continue"].is_null(), "one page holds all: {all}");
    let names: Vec<String> = (all["items"].as_array().unwrap().iter())
        .map(|c| {
            format!(
                "{}/{}",
                c["namespace"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            )
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by namespace and name");
    assert_eq!(names.len(), VISIBLE.len());

    // Pages of 3 and 1, following the continue token.
    let first = json(&canary, "/api/v1/checks?limit=3").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    let token = first["continue"].as_str().expect("a continue token");
    let second = json(&canary, &format!("/api/v1/checks?limit=3&continue={token}")).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["continue"].is_null());
    assert_eq!(second["items"][0]["name"], all["items"][3]["name"]);

    for bad in ["limit=0", "limit=9999", "limit=x", "continue=nonsense"] {
        let answer = get(&canary, &format!("/api/v1/checks?{bad}"), 400).await;
        assert!(
            answer.json()["error"].as_str().is_some(),
            "{bad}: {}",
            answer.body
        );
    }
    for hidden in [
        "/api/v1/checks/infra/secret-admin",
        "/checks/infra/secret-admin",
        "/badges/infra/secret-admin/health.svg",
    ] {
        get(&canary, hidden, 404).await;
    }
    let overview = get(&canary, "/", 200).await;
    assert!(
        !overview.body.contains("secret-admin"),
        "hidden check on the overview"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_carries_its_history_and_uptime_agrees_with_the_metrics() {
    let fixture = Fixture::start().await;
    let canary = standalone(&fixture, &[]).await;
    wait_results(&canary, 4).await;

    let cart = json(&canary, "/api/v1/checks/shop/cart").await;
    assert_eq!(cart["group"], "storefront");
    assert_eq!(cart["kind"], "http");
    let target = cart["target"].as_str().unwrap();
    assert!(
        target.ends_with("/cart"),
        "query (a token) left out: {target}"
    );
    let results = cart["results"].as_array().unwrap();
    let successes: Vec<bool> = results
        .iter()
        .map(|r| r["success"].as_bool().unwrap())
        .collect();
    assert!(
        successes.windows(2).all(|w| w[0] != w[1]),
        "the target alternates, so do the results: {successes:?}"
    );
    for result in results {
        assert!(result["time"].as_str().unwrap().ends_with('Z'), "{result}");
        assert!(result["latencyMs"].is_u64(), "{result}");
        let reason = result["reason"].as_str().unwrap();
        assert!(
            ["Succeeded", "UnexpectedStatus"].contains(&reason),
            "{reason}"
        );
    }
    let transitions = cart["transitions"].as_array().unwrap();
    assert!(
        transitions.len() >= 3,
        "every flip is a transition: {transitions:?}"
    );
    assert!(cart["hours"].as_array().is_some_and(|h| !h.is_empty()));
    assert!(
        cart["spec"]["http"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/cart")
    );
    // Issue 23, 7: an inline header value was shown in the spec and on the page.
    let header = &cart["spec"]["http"]["headers"][0];
    assert_eq!(header["name"], "X-Probe-Token");
    assert_eq!(header["value"], "<set>", "{header}");
    let page = get(&canary, "/checks/shop/cart", 200).await;
    assert!(
        page.body.contains("X-Probe-Token"),
        "the spec is on the page"
    );
    assert!(!page.body.contains(INLINE_TOKEN), "{}", page.body);
    assert!(
        cart["lastResult"]["phases"].is_object(),
        "{}",
        cart["lastResult"]
    );

    // The page and /metrics count the same runs: the metric read between two reads of the page
    // lies between them.
    let runs = |uptime: &Value| uptime["runs"].as_u64().unwrap() as f64;
    let successes = |uptime: &Value| uptime["successes"].as_u64().unwrap() as f64;
    let before = json(&canary, "/api/v1/checks/shop/cart/uptime?window=24h").await;
    let labels = [("namespace", "shop"), ("name", "cart")];
    let metric_runs = canary.metric_sum("canary_check_runs_total", &labels).await;
    let ok = [
        ("namespace", "shop"),
        ("name", "cart"),
        ("reason", "Succeeded"),
    ];
    let metric_ok = canary.metric_sum("canary_check_runs_total", &ok).await;
    let after = json(&canary, "/api/v1/checks/shop/cart/uptime?window=24h").await;
    let before = (runs(&before), successes(&before));
    let after = (runs(&after), successes(&after));
    assert!(
        (before.0..=after.0).contains(&metric_runs),
        "{before:?} {metric_runs} {after:?}"
    );
    assert!(
        (before.1..=after.1).contains(&metric_ok),
        "{before:?} {metric_ok} {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uptime_endpoint_answers_each_window_and_rejects_others() {
    let fixture = Fixture::start().await;
    let canary = standalone(&fixture, &[]).await;
    wait_results(&canary, 2).await;
    for window in ["24h", "7d", "30d"] {
        let path = format!("/api/v1/checks/shop/payments/uptime?window={window}");
        let uptime = json(&canary, &path).await;
        assert_eq!(uptime["window"], window);
        assert_eq!(uptime["uptime"], 0.0, "always 500: {uptime}");
        assert!(uptime["runs"].as_u64().unwrap() >= 2);
        assert!(uptime["historySince"].as_str().unwrap().ends_with('Z'));
        let search = json(&canary, &path.replace("payments", "search")).await;
        assert_eq!(search["uptime"], 1.0, "always 200: {search}");
    }
    get(
        &canary,
        "/api/v1/checks/shop/payments/uptime?window=1y",
        400,
    )
    .await;
    get(&canary, "/api/v1/checks/shop/nothing/uptime", 404).await;
}

/// The badge at `path`, parsed as XML: (its two texts, the message's background colour).
async fn badge(
    canary: &canary_test_harness::operator::Operator,
    path: &str,
) -> (Vec<String>, String) {
    let response = get(canary, path, 200).await;
    assert_eq!(
        response.header("content-type"),
        Some("image/svg+xml"),
        "{path}"
    );
    assert_eq!(response.header("cache-control"), Some("no-cache"), "{path}");
    let doc = roxmltree::Document::parse(&response.body)
        .unwrap_or_else(|e| panic!("{path} is not XML ({e}): {}", response.body));
    let texts = (doc.descendants())
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().to_string())
        .collect();
    let rects: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .collect();
    let colour = rects
        .get(2)
        .and_then(|r| r.attribute("fill"))
        .unwrap_or_default();
    (texts, colour.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badges_are_svg_with_the_state_and_colour_of_their_check() {
    let fixture = Fixture::start().await;
    let canary = standalone(&fixture, &[]).await;
    wait_results(&canary, 4).await;
    let cases = [
        ("search/health.svg", "health", "up", "#4c1"),
        ("payments/health.svg", "health", "down", "#e05d44"),
        ("search/uptime-24h.svg", "uptime 24h", "100%", "#4c1"),
        ("payments/uptime-30d.svg", "uptime 30d", "0.00%", "#e05d44"),
    ];
    for (file, label, message, colour) in cases {
        let (texts, fill) = badge(&canary, &format!("/badges/shop/{file}")).await;
        assert_eq!(texts, [label, message], "{file}");
        assert_eq!(fill, colour, "{file}");
    }
    let (texts, fill) = badge(&canary, "/badges/shop/search/response-time-7d.svg").await;
    assert_eq!(texts[0], "response time 7d");
    assert!(texts[1].ends_with(" ms"), "{texts:?}");
    assert_eq!(fill, "#4c1", "loopback answers in well under 250 ms");
    get(&canary, "/badges/shop/search/uptime-1y.svg", 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_is_uncached_and_locked_down_and_the_page_is_read_only() {
    let fixture = Fixture::start().await;
    let canary = standalone(&fixture, &[]).await;
    let cases = [
        ("/", "text/html; charset=utf-8"),
        ("/checks/shop/cart", "text/html; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
        ("/api/v1/checks", "application/json"),
    ];
    for (path, content_type) in cases {
        let response = get(&canary, path, 200).await;
        assert_eq!(
            response.header("content-type"),
            Some(content_type),
            "{path}"
        );
        assert_eq!(response.header("cache-control"), Some("no-cache"), "{path}");
        let csp = response
            .header("content-security-policy")
            .unwrap_or_default();
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    }
    let page = get(&canary, "/", 200).await.body;
    assert!(
        page.contains(r#"<meta name="viewport""#),
        "phones get a viewport"
    );
    assert!(
        !page.contains("style=") && !page.contains("<script>"),
        "no inline style or script"
    );
    for method in ["POST", "PUT", "DELETE"] {
        let answer = http::send(ui(&canary), method, "/api/v1/checks", &[])
            .await
            .unwrap();
        assert_eq!(answer.status, 405, "{method}");
    }
    get(&canary, "/nothing/here", 404).await;
    let gzip = [("Accept-Encoding", "gzip, br")];
    let zipped = http::request(ui(&canary), "/assets/app.css", &gzip)
        .await
        .unwrap();
    assert_eq!(
        zipped.header("content-encoding"),
        Some("gzip"),
        "{}",
        zipped.head
    );
    assert_eq!(zipped.header("vary"), Some("accept-encoding"));
    let refused = [("Accept-Encoding", "gzip;q=0")];
    let plain = http::request(ui(&canary), "/assets/app.css", &refused)
        .await
        .unwrap();
    assert_eq!(plain.header("content-encoding"), None, "{}", plain.head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_hides_targets_messages_and_specs_everywhere() {
    let fixture = Fixture::start().await;
    let canary = standalone(&fixture, &["--ui-redact"]).await;
    wait_results(&canary, 2).await;
    let payments = json(&canary, "/api/v1/checks/shop/payments").await;
    assert!(payments["target"].is_null(), "{payments}");
    assert!(payments["message"].is_null(), "{payments}");
    assert!(payments["spec"].is_null(), "{payments}");
    assert_eq!(payments["lastResult"]["message"], "");
    assert!(
        (payments["transitions"].as_array().unwrap())
            .iter()
            .all(|t| t["message"] == ""),
        "{payments}"
    );
    assert_eq!(payments["state"], "failing", "the state still shows");
    for path in [
        "/",
        "/checks/shop/payments",
        "/checks/shop/cart",
        "/api/v1/checks",
    ] {
        let body = get(&canary, path, 200).await.body;
        for secret in [
            "127.0.0.1",
            "s3cret",
            "/pay\"",
            "is not one of the expected",
        ] {
            assert!(!body.contains(secret), "{path} shows {secret:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_address_turns_the_page_off() {
    let fixture = Fixture::start().await;
    let canary = canary_test_harness::operator::Launch::standalone(crate::CANARY, fixture.dir())
        .ui_off()
        .process()
        .await;
    canary.wait_ready(10 * SEC).await;
    assert_eq!(canary.ui, None, "the log says ui=off: {}", canary.tail(5));
    assert!(canary.logged(r#""ui":"off""#), "{}", canary.tail(5));
}
