//! The status page of `canary standalone`, as a real process over loopback: its JSON API,
//! badges, redaction and hidden checks ([`api`]), the page in a real Chromium at desktop
//! and phone widths ([`browser`]), and its bounds under hostile clients ([`abuse`]). The
//! operator's page is tested in `tests/e2e/status_page.rs`.

mod abuse;
mod api;
mod browser;
mod names;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use canary_test_harness::{
    http,
    operator::{Launch, Operator},
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::Value;

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
const SEC: Duration = Duration::from_secs(1);

/// Loopback targets and the checks of them, written to a folder `canary standalone` reads.
struct Fixture {
    _targets: Vec<TestServer>,
    dir: tempfile::TempDir,
}

/// The visible checks: (namespace, name, group, what the target does).
const VISIBLE: [(&str, &str, &str, &str); 4] = [
    ("shop", "cart", "storefront", "alternates 200/500"),
    ("shop", "search", "storefront", "always 200"),
    ("shop", "payments", "shop", "always 500"),
    ("infra", "db-proxy", "infra", "TCP, always accepts"),
];

impl Fixture {
    async fn start() -> Self {
        let flips = Arc::new(AtomicUsize::new(0));
        let flaky = TestServer::start(Transport::Plain, move |_| {
            match flips.fetch_add(1, Ordering::SeqCst) % 2 {
                0 => Reply::ok("ok"),
                _ => Reply::status(500, "flaky backend: upstream said no"),
            }
        })
        .await;
        let up = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
        let down =
            TestServer::start(Transport::Plain, |_| Reply::status(500, "payments down")).await;
        let docs = [
            http_doc(
                "shop",
                "cart",
                "storefront",
                &flaky.url("/cart?token=s3cret"),
                "",
            ),
            http_doc("shop", "search", "storefront", &up.url("/search"), ""),
            http_doc("shop", "payments", "", &down.url("/pay"), ""),
            tcp_doc("infra", "db-proxy", up.port(), ""),
            tcp_doc(
                "infra",
                "secret-admin",
                up.port(),
                "canary.dev/status-page: hidden",
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("checks.yaml"), docs.join("---\n")).unwrap();
        Self {
            _targets: vec![flaky, up, down],
            dir,
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn metadata(namespace: &str, name: &str, group: &str, annotation: &str) -> String {
    let mut meta = format!("metadata:\n  namespace: {namespace}\n  name: {name}\n");
    if !group.is_empty() {
        meta.push_str(&format!("  labels: {{canary.dev/group: {group}}}\n"));
    }
    if !annotation.is_empty() {
        meta.push_str(&format!("  annotations: {{{annotation}}}\n"));
    }
    meta
}

fn http_doc(namespace: &str, name: &str, group: &str, url: &str, annotation: &str) -> String {
    format!(
        "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\n{}spec:\n  interval: 1s\n  timeout: 800ms\n  http: {{url: '{url}'}}\n",
        metadata(namespace, name, group, annotation)
    )
}

fn tcp_doc(namespace: &str, name: &str, port: u16, annotation: &str) -> String {
    format!(
        "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\n{}spec:\n  interval: 1s\n  timeout: 800ms\n  tcp: {{host: 127.0.0.1, port: {port}}}\n",
        metadata(namespace, name, "", annotation)
    )
}

/// `canary standalone` on `fixture` with `extra` flags, ready, its page on a loopback port.
async fn standalone(fixture: &Fixture, extra: &[&str]) -> Operator {
    let canary = Launch::standalone(CANARY, fixture.dir())
        .args(extra)
        .process()
        .await;
    canary.wait_ready(10 * SEC).await;
    canary
}

/// The page's address; fails when the page is off.
fn ui(canary: &Operator) -> std::net::SocketAddr {
    canary
        .ui
        .expect("the status page is on and its address was logged")
}

/// `GET path` on the page, which must answer `status`.
async fn get(canary: &Operator, path: &str, status: u16) -> http::Response {
    let response =
        (http::get(ui(canary), path).await).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(response.status, status, "GET {path}: {}", response.body);
    response
}

/// `GET path` as JSON.
async fn json(canary: &Operator, path: &str) -> Value {
    let response = get(canary, path, 200).await;
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{path}"
    );
    response.json()
}

/// Waits until every visible check has at least `runs` results in its history.
async fn wait_results(canary: &Operator, runs: usize) {
    for (namespace, name, _, _) in VISIBLE {
        let path = format!("/api/v1/checks/{namespace}/{name}");
        let what = format!("{runs} results of {namespace}/{name}");
        eventually(30 * SEC, &what, Duration::from_millis(200), async || {
            let check = json(canary, &path).await;
            let results = check["results"].as_array().map_or(0, Vec::len);
            if results >= runs {
                Ok(())
            } else {
                Err(format!("{results}"))
            }
        })
        .await;
    }
}
