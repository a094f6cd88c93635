//! A hostile `grpc-message` through the real binary: JSON logs carry one `message` key (before,
//! the failing-transition event carried the target's words as a second one, and parsers kept
//! the target's), text logs carry no forged line, and the `canary check` table no escapes.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use canary_test_harness::{
    operator::Launch,
    targets::grpc::{GrpcServer, Offer},
    wait::eventually,
};
use serde::{
    Deserialize, Deserializer,
    de::{IgnoredAny, MapAccess, Visitor},
};

use crate::words::{FORGED, assert_data};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");

/// A folder with one gRPC check of `server`, probed every second.
fn checks(server: &GrpcServer) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let doc = format!(
        "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{namespace: shop, name: api}}\n\
         spec:\n  interval: 1s\n  timeout: 800ms\n  grpc: {{target: '127.0.0.1:{}'}}\n",
        server.port()
    );
    std::fs::write(dir.path().join("checks.yaml"), doc).unwrap();
    dir
}

/// The keys of a JSON object in the order written, duplicates kept (a map would keep one).
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Collect;
        impl<'de> Visitor<'de> for Collect {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        deserializer.deserialize_map(Collect)
    }
}

#[derive(Deserialize)]
struct Line {
    fields: Keys,
}

#[tokio::test]
async fn json_logs_carry_one_message_key() {
    let server = GrpcServer::start(Offer::Fails(14, FORGED.into()), None).await;
    let dir = checks(&server);
    let canary = Launch::standalone(CANARY, dir.path()).process().await;
    let failing = eventually(
        Duration::from_secs(20),
        "a check-is-failing line",
        Duration::from_millis(100),
        async || {
            (canary.logs().into_iter())
                .find(|l| l.contains("check is failing"))
                .ok_or_else(|| canary.tail(5))
        },
    )
    .await;
    for line in canary.logs() {
        assert!(
            serde_json::from_str::<serde_json::Value>(&line).is_ok(),
            "not a JSON line: {line:?}"
        );
    }
    let keys = serde_json::from_str::<Line>(&failing).unwrap().fields.0;
    let messages = keys.iter().filter(|k| *k == "message").count();
    assert_eq!(messages, 1, "keys {keys:?} in {failing}");
    let event: serde_json::Value = serde_json::from_str(&failing).unwrap();
    assert_eq!(event["fields"]["message"], "check is failing");
    let detail = event["fields"]["detail"].as_str().unwrap_or_default();
    assert_data(detail, "the detail");
    assert!(detail.contains("down\\n2030"), "{detail}");
}

#[tokio::test]
async fn text_logs_carry_no_forged_line() {
    let server = GrpcServer::start(Offer::Fails(14, FORGED.into()), None).await;
    let dir = checks(&server);
    let mut child = Command::new(CANARY)
        .args(["standalone", "-f"])
        .arg(dir.path())
        .args(["--log-format", "text", "--ui-bind-address", ""])
        .args(["--metrics-bind-address", "127.0.0.1:0"])
        .args(["--health-probe-bind-address", "127.0.0.1:0"])
        // Canary's own colours off, so any ESC in a line would be the target's.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut reader = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let done = line.contains("check is failing");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    // A silent process is ended after the deadline, which ends the reader.
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    let lines = tokio::select! {
        lines = &mut reader => lines.unwrap(),
        () = deadline => {
            let _ = child.kill();
            reader.await.unwrap()
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l.contains("check is failing")),
        "no failing line: {lines:?}"
    );
    for line in &lines {
        assert!(!line.starts_with("2030-01-01"), "a forged line: {line:?}");
        assert!(!line.contains(['\u{1b}', '\r']), "raw controls: {line:?}");
    }
}

#[tokio::test]
async fn the_check_table_shows_escapes_not_control_characters() {
    let server = GrpcServer::start(Offer::Fails(14, FORGED.into()), None).await;
    let dir = checks(&server);
    let out = tokio::process::Command::new(CANARY)
        .args(["check", "-f"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        2,
        "a header and one row: {stdout:?}"
    );
    assert!(!stdout.contains(['\u{1b}', '\r', '\u{202E}']), "{stdout:?}");
    assert!(stdout.contains("\\u{1b}[2J"), "{stdout}");
}
