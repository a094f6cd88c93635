//! The real binary never shows the token or the client secret: standalone mode's logs (at
//! debug level), metrics, status page (HTML and JSON) and `canary check -o json`'s status,
//! with one check passing on a token and one whose token endpoint echoes the secret back.

use std::{process::Command, time::Duration};

use canary_test_harness::{http, operator::Launch, targets::Reply, wait::eventually};
use serde_json::json;

use crate::idp::{Api, Idp, SECRET, TOKEN_PREFIX, check};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");

/// Writes the checks and the Secret `idp` (as a mounted Secret volume lays it out).
fn files(checks: &[(&str, serde_json::Value)]) -> (tempfile::TempDir, tempfile::TempDir) {
    let (dir, secrets) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let docs: Vec<String> = (checks.iter())
        .map(|(name, spec)| {
            let doc = json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
                "metadata": {"namespace": "shop", "name": name}, "spec": spec});
            serde_json::to_string(&doc).unwrap()
        })
        .collect();
    std::fs::write(dir.path().join("checks.yaml"), docs.join("\n---\n")).unwrap();
    std::fs::create_dir(secrets.path().join("idp")).unwrap();
    std::fs::write(secrets.path().join("idp/secret"), SECRET).unwrap();
    (dir, secrets)
}

fn assert_hidden(text: &str, what: &str) {
    for needle in [SECRET, TOKEN_PREFIX, "czNjcjN0"] {
        assert!(!text.contains(needle), "{what} shows {needle:?}: {text}");
    }
}

#[tokio::test]
async fn the_token_and_secret_appear_in_no_log_metric_page_or_status() {
    let (idp, api) = (Idp::start(json!(3600)).await, Api::start().await);
    let (echoing, _) = (Idp::start(json!(3600)).await, ());
    let echo = format!(r#"{{"error":"invalid_client","error_description":"got {SECRET}"}}"#);
    echoing.refuse(Reply::status(401, &echo));
    let checks = [
        ("api", check(&api, &idp, "Basic")),
        ("refused", check(&api, &echoing, "Post")),
    ];
    let (dir, secrets) = files(&checks);
    let secrets_dir = secrets.path().display().to_string();
    let canary = Launch::standalone(CANARY, dir.path())
        .args(&["--secrets-dir", &secrets_dir, "--log-level", "debug"])
        .process()
        .await;
    canary.wait_runs("shop", "api", Some("success"), 3.0).await;
    canary.wait_runs("shop", "refused", None, 3.0).await;
    assert_eq!(idp.issued(), 1, "standalone caches the token across runs");
    let ui = canary.ui.expect("the status page is on");
    let record = eventually(
        Duration::from_secs(10),
        "the refused check's record",
        Duration::from_millis(100),
        async || {
            let response = http::get(ui, "/api/v1/checks/shop/refused").await?;
            match response.body.contains("AuthFailed") {
                true => Ok(response.body),
                false => Err(response.body),
            }
        },
    )
    .await;
    assert!(record.contains("answered 401: invalid_client"), "{record}");
    let mut shown = vec![("the refused check's JSON", record)];
    for path in [
        "/",
        "/checks/shop/api",
        "/checks/shop/refused",
        "/api/v1/checks/shop/api",
    ] {
        shown.push((path, http::get(ui, path).await.unwrap().body));
    }
    shown.push(("the metrics", canary.scrape().await.expect("a scrape")));
    let logs = canary.logs().join("\n");
    assert!(
        logs.contains("AuthFailed"),
        "the failure is logged: {}",
        canary.tail(20)
    );
    shown.push(("the logs", logs));
    for (what, text) in &shown {
        assert_hidden(text, what);
    }
    let output = Command::new(CANARY)
        .args([
            "check",
            "-o",
            "json",
            "--log-level",
            "debug",
            "--secrets-dir",
            &secrets_dir,
            "-f",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let result = |i: usize| list["items"][i]["status"]["lastResult"].clone();
    assert!(
        result(0)["phases"]["auth"].is_string(),
        "the auth phase is in status: {stdout}"
    );
    assert_eq!(result(1)["reason"], "AuthFailed", "{stdout}");
    assert_hidden(&stdout, "canary check's status");
    assert_hidden(
        &String::from_utf8_lossy(&output.stderr),
        "canary check's logs",
    );
}
