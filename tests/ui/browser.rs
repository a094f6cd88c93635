//! The status page in a real browser: Debian's Chromium driven by playwright-core
//! (`browser.cjs`, installed by `scripts/install-browser-test-tools.sh` from `scripts/test`),
//! at a desktop and a phone width, with and without JavaScript, light and dark. Screenshots
//! land in `target/ui-screenshots/`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use canary_test_harness::{repo, tools::tool};
use serde_json::Value;

use crate::{Fixture, standalone, ui, wait_results};

/// Results each check has before the browser looks (enough for both colours in the bar).
const RESULTS: usize = 6;
const BAR: u64 = 50;

/// playwright-core as the setup script installs it; fails naming the setup command.
fn playwright() -> PathBuf {
    let modules = repo().join(".tools/browser/node_modules");
    let package = modules.join("playwright-core/package.json");
    assert!(
        package.is_file(),
        "playwright-core is not installed in {}: run scripts/test (or \
         scripts/install-browser-test-tools.sh)",
        modules.display()
    );
    modules
}

/// Runs `browser.cjs` against `url`: what it saw, as JSON.
async fn drive(url: &str, screenshots: &std::path::Path) -> Value {
    let script = repo().join("tests/ui/browser.cjs");
    let child = tokio::process::Command::new(tool("node"))
        .arg(&script)
        .env("NODE_PATH", playwright())
        .env("CANARY_URL", url)
        .env("CHROMIUM", tool("chromium"))
        .env("SCREENSHOTS", screenshots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("the browser run ends within 3 minutes")
        .expect("node ran");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser.cjs failed: {stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("report not JSON ({e}): {stderr}"))
}

fn rgb(colour: &Value) -> (u32, u32, u32) {
    let text = colour
        .as_str()
        .unwrap_or_else(|| panic!("no colour: {colour}"));
    let parts: Vec<u32> = (text
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(','))
    .map(|p| {
        p.trim()
            .parse()
            .unwrap_or_else(|_| panic!("not rgb(): {text}"))
    })
    .collect();
    (parts[0], parts[1], parts[2])
}

fn card<'a>(cards: &'a Value, name: &str) -> &'a Value {
    (cards.as_array().unwrap().iter())
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no card {name}: {cards}"))
}

/// Cards, bars and their colours, as the fixture makes them.
fn assert_overview(width: &str, overview: &Value) {
    let cards = &overview["cards"];
    assert_eq!(
        cards.as_array().unwrap().len(),
        4,
        "{width}: one card per visible check"
    );
    assert_eq!(
        overview["groups"],
        serde_json::json!(["infra", "shop", "storefront"]),
        "{width}"
    );
    assert!(
        overview["overflow"].as_i64().unwrap() <= 0,
        "{width}: no sideways scrolling"
    );
    for c in cards.as_array().unwrap() {
        assert_eq!(c["ticks"], BAR, "{width}: a full bar: {c}");
    }
    let cart = card(cards, "cart");
    assert!(
        cart["ok"].as_u64().unwrap() >= 2 && cart["fail"].as_u64().unwrap() >= 2,
        "{cart}"
    );
    let (ok, fail) = (rgb(&cart["okColour"]), rgb(&cart["failColour"]));
    assert!(
        ok.1 > ok.0 && ok.1 > ok.2,
        "{width}: passing is green: {ok:?}"
    );
    assert!(
        fail.0 > fail.1 && fail.0 > fail.2,
        "{width}: failing is red: {fail:?}"
    );
    let title = cart["title"].as_str().unwrap();
    assert!(
        title.contains(" UTC · ") && title.contains(" ms · "),
        "hover text: {title}"
    );
    assert_eq!(card(cards, "search")["fail"], 0, "{width}");
    assert_eq!(card(cards, "payments")["ok"], 0, "{width}");
    assert_eq!(card(cards, "payments")["state"], "failing", "{width}");
    assert_eq!(card(cards, "db-proxy")["state"], "ready", "{width}");
}

fn assert_interactions(width: &str, facts: &Value) {
    let refresh = &facts["refresh"];
    assert_eq!(
        refresh["kept"], true,
        "{width}: refreshed without a reload: {refresh}"
    );
    let filtered = &facts["failingOnly"];
    assert_eq!(
        filtered["kept"], true,
        "{width}: filtered in place: {filtered}"
    );
    let names: Vec<&str> = (filtered["cards"].as_array().unwrap().iter())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"payments"), "{width}: {names:?}");
    assert!(
        !names.contains(&"search") && !names.contains(&"db-proxy"),
        "{width}: {names:?}"
    );
    assert_eq!(filtered["cardsAfterClearing"], 4, "{width}");

    let detail = &facts["detail"];
    assert_eq!(detail["title"], "shop/cart · Canary");
    let points = detail["points"].as_u64().unwrap();
    assert!(
        points >= RESULTS as u64,
        "{width}: one point per result: {detail}"
    );
    assert!(detail["failedPoints"].as_u64().unwrap() >= 2, "{detail}");
    assert!(detail["transitions"].as_u64().unwrap() >= 2, "{detail}");
    // Issue 24: at 375 px the transitions lost their message (its column was hidden).
    let messages = detail["transitionMessages"].as_array().unwrap();
    assert!(
        messages
            .iter()
            .any(|m| !m["text"].as_str().unwrap().is_empty()),
        "{width}: some transition has a message: {messages:?}"
    );
    for message in messages {
        assert_eq!(message["shown"], true, "{width}: message shown: {message}");
        assert_eq!(
            message["inside"], true,
            "{width}: within the screen: {message}"
        );
        assert_eq!(message["clipped"], false, "{width}: not cut: {message}");
    }
    assert!(
        detail["spec"].as_str().unwrap().contains("interval: 1s"),
        "{detail}"
    );
    let badges = detail["badges"].as_array().unwrap();
    assert_eq!(badges.len(), 5, "{detail}");
    for badge in badges {
        assert!(
            badge["width"].as_u64().unwrap() > 0,
            "{width}: badge did not load: {badge}"
        );
    }
    assert!(
        detail["overflow"].as_i64().unwrap() <= 0,
        "{width}: detail fits: {detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_works_in_chromium_at_desktop_and_phone_widths() {
    let fixture = Fixture::start().await;
    let canary = standalone(&fixture, &[]).await;
    wait_results(&canary, RESULTS).await;
    let screenshots = repo().join("target/ui-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let url = format!("http://{}", ui(&canary));
    let report = drive(&url, &screenshots).await;

    for width in ["desktop", "phone"] {
        assert_overview(width, &report[width]["overview"]);
        assert_interactions(width, &report[width]);
    }
    let no_script = &report["noScript"];
    assert_eq!(
        no_script["cards"], 4,
        "server-rendered without JavaScript: {no_script}"
    );
    let states = no_script["failingStates"].as_array().unwrap();
    assert!(
        !states.is_empty()
            && states
                .iter()
                .all(|s| ["failing", "invalid", "blocked"].contains(&s.as_str().unwrap()))
    );
    assert_ne!(
        report["light"], report["dark"],
        "dark mode follows the system setting"
    );
    assert_eq!(
        report["console"],
        serde_json::json!([]),
        "no console errors or warnings"
    );
    let requests = report["requests"].as_array().unwrap();
    assert!(requests.len() > 10, "{requests:?}");
    for request in requests {
        assert!(
            request.as_str().unwrap().starts_with(&url),
            "a request outside Canary's loopback address: {request}"
        );
    }
    for shot in [
        "overview-desktop",
        "overview-phone",
        "detail-desktop",
        "detail-phone",
    ] {
        let png = std::fs::read(screenshots.join(format!("{shot}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{shot}.png"
        );
    }
}
