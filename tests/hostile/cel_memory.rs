//! Memory a CEL expression copies while it runs: the `cel` crate deep-copies every value a
//! list literal or `map` takes in, so `size([body, body, ...])` over a 1 MiB body peaked at
//! 826 MB in one debug `canary check` before each copy was charged to the body budget. Through
//! the real binary, such expressions now stop with `BodyBudgetExceeded` long before their
//! timeout, peak RSS follows the budget, and a check beside them still passes.

use std::{process::Stdio, time::Duration};

use canary_test_harness::{
    procfs::wait_with_peak,
    targets::{Reply, TestServer, Transport},
};
use serde_json::{Value, json};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
/// The budget the test runs with (through the environment).
const BUDGET_MIB: f64 = 64.0;
/// What `canary check` holds besides the budget: 36-38 MiB measured in a debug build.
const OWN_MIB: f64 = 48.0;

/// A JSON body of about 1 MiB: 20,000 small objects.
fn body() -> Vec<u8> {
    let items: Vec<Value> = (0..20_000)
        .map(|i| json!({"name": format!("item-{i}"), "status": "UP", "n": i}))
        .collect();
    serde_json::to_vec(&json!({"status": "UP", "items": items})).unwrap()
}

/// One HealthCheck document.
fn check(name: &str, url: &str, cel: &str) -> String {
    let doc = json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
        "metadata": {"name": name},
        "spec": {"interval": "5m", "timeout": "50s", "http": {"url": url,
                 "expect": {"regexBodyLimit": "4Mi", "cel": cel}}},
    });
    doc.to_string()
}

/// Runs `canary check` on one spec: its reason and message, and the process's peak RSS.
async fn run_alone(spec: String) -> (String, String, f64) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copies.yaml");
    std::fs::write(&file, spec).unwrap();
    let child = tokio::process::Command::new(CANARY)
        .args(["check", "-o", "json", "-f"])
        .arg(&file)
        .env("CANARY_BODY_BUFFER_BUDGET", format!("{BUDGET_MIB}Mi"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (out, peak) = wait_with_peak(child, Duration::from_secs(120), "canary check").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let list: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let last = &list["items"][0]["status"]["lastResult"];
    let text = |field: &str| last[field].as_str().unwrap_or("?").to_owned();
    (text("reason"), text("message"), peak)
}

#[tokio::test]
async fn values_an_expression_copies_stop_at_the_budget_before_the_timeout() {
    if !cfg!(feature = "jemalloc") {
        panic!(
            "the CEL meter reads the shipped allocator's counters: run with `--features jemalloc` (scripts/test does)"
        );
    }
    let body = body();
    let server = TestServer::start(Transport::Plain, move |_| Reply::Full {
        status: 200,
        headers: vec![],
        body: body.clone(),
    })
    .await;
    let url = format!("http://127.0.0.1:{}/", server.port());
    let copies = vec!["body"; 300].join(", ");
    let copying = [
        check("list", &url, &format!("size([{copies}]) > 0")),
        check("map", &url, "body.items.map(x, body).size() > 0"),
        check(
            "nested",
            &url,
            "body.items.map(x, [x, body.items]).size() > 0",
        ),
    ];
    // One process each: alone, nothing but the expression's own copies can spend the budget.
    for spec in copying {
        let (reason, message, peak) = run_alone(spec).await;
        eprintln!("peak RSS {peak:.0} MiB: {message}");
        // A reason other than Timeout says the meter stopped the copies.
        assert_eq!(reason, "BodyBudgetExceeded", "{message}");
        assert!(
            message.contains("values the expression copied"),
            "{message}"
        );
        // At most the budget plus one copy of a value already held (the body's values, ~20 MiB
        // here) before it is stopped; freed copies may stay resident for a while.
        assert!(
            peak < OWN_MIB + 2.0 * BUDGET_MIB,
            "peak RSS {peak:.0} MiB with a {BUDGET_MIB} MiB budget: {message}"
        );
    }
    let filter = "body.status == 'UP' && body.items.filter(x, x.status == 'UP').size() == 20000";
    let (reason, message, _) = run_alone(check("fine", &url, filter)).await;
    assert_eq!(reason, "Succeeded", "{message}");
}
