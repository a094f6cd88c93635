//! The client against a hand-rolled server on loopback: the token is re-read, and hostile
//! answers (huge, slow, not JSON, errors) fall back with a reason instead of stalling the page.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::mpsc,
};

use super::*;

fn key(name: &str) -> CheckKey {
    CheckKey {
        namespace: "shop".into(),
        name: name.into(),
    }
}

/// A server answering every request with `answer` (after `delay`), sending each request's
/// head to the channel.
async fn server(answer: Vec<u8>, delay: Duration) -> (url::Url, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/prefix/", listener.local_addr().unwrap());
    let (heads, received) = mpsc::unbounded_channel();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (heads, answer) = (heads.clone(), answer.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let _ = heads.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                tokio::time::sleep(delay).await;
                let _ = stream.write_all(&answer).await;
            });
        }
    });
    (url.parse().unwrap(), received)
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn prometheus(url: url::Url, token_file: Option<PathBuf>) -> Arc<Prometheus> {
    let config = PromConfig {
        url,
        token_file,
        ca_file: None,
        location: None,
        cache_ttl: FRESH_FOR,
        redact: false,
    };
    Prometheus::new(config).unwrap()
}

#[tokio::test]
async fn a_batch_posts_below_the_urls_path_with_the_token_read_each_time() {
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"namespace":"shop","name":"api","result":"success"},"value":[1,"3"]},
        {"metric":{"namespace":"shop","name":"api","result":"failure"},"value":[1,"1"]}]}}"#;
    let (url, mut heads) = server(ok(body), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first\n").unwrap();
    let prometheus = prometheus(url, Some(token.clone()));
    prometheus.prefetch(&[key("api")], false).await;
    let fetched = prometheus.lookup(&key("api")).unwrap();
    assert_eq!(fetched.uptime[0].uptime, Some(0.75));
    for _ in 0..4 {
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("POST /prefix/api/v1/query "), "{head}");
        assert!(
            head.to_lowercase()
                .contains("authorization: bearer first\r\n"),
            "{head}"
        );
    }
    std::fs::write(&token, "second").unwrap();
    prometheus.prefetch(&[key("db")], false).await;
    let head = heads.recv().await.unwrap();
    assert!(
        head.to_lowercase()
            .contains("authorization: bearer second\r\n"),
        "{head}"
    );
    let empty = prometheus.lookup(&key("db")).unwrap();
    assert_eq!((empty.uptime[0].runs, empty.uptime[0].uptime), (0, None));
}

/// A page of 100 cards is one batch of four queries, then cached; 150 checks are two batches.
#[tokio::test]
async fn a_page_of_checks_costs_four_queries_per_batch_and_none_while_fresh() {
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    let (url, mut heads) = server(ok(body), Duration::ZERO).await;
    let prometheus = prometheus(url, None);
    let keys: Vec<CheckKey> = (0..150).map(|i| key(&format!("check-{i}"))).collect();
    prometheus.prefetch(&keys[..100], false).await;
    prometheus.prefetch(&keys[..100], false).await;
    let mut asked = 0;
    while heads.try_recv().is_ok() {
        asked += 1;
    }
    assert_eq!(asked, 4, "one batch, then cached");
    prometheus.prefetch(&keys, false).await;
    let mut asked = 0;
    while heads.try_recv().is_ok() {
        asked += 1;
    }
    assert_eq!(asked, 4, "only the 50 not asked yet: one more batch");
    assert!(keys.iter().all(|k| prometheus.lookup(k).is_ok()));
}

async fn failure(answer: Vec<u8>, delay: Duration) -> String {
    let (url, _heads) = server(answer, delay).await;
    let prometheus = prometheus(url, None);
    let started = std::time::Instant::now();
    prometheus.prefetch(&[key("api")], false).await;
    assert!(started.elapsed() < TIMEOUT + Duration::from_secs(1));
    prometheus.lookup(&key("api")).unwrap_err()
}

#[tokio::test]
async fn huge_slow_broken_and_failed_answers_are_reasons_to_fall_back() {
    let huge = format!(
        "{{\"status\":\"success\",\"x\":\"{}\"}}",
        "x".repeat(MAX_BODY)
    );
    let error = failure(ok(&huge), Duration::ZERO).await;
    assert!(error.contains("reading the answer"), "{error}");
    let error = failure(ok("{}"), TIMEOUT * 2).await;
    assert!(error.contains("no answer within"), "{error}");
    let error = failure(ok("<html>"), Duration::ZERO).await;
    assert!(error.contains("not JSON"), "{error}");
    let bad_gateway = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 3\r\n\r\nbad".to_vec();
    let error = failure(bad_gateway, Duration::ZERO).await;
    assert_eq!(error, "HTTP 502 Bad Gateway");
    let refused = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
    let error = failure(ok(refused), Duration::ZERO).await;
    assert!(error.contains("parse error"), "{error}");
}

#[test]
fn urls_and_files_are_checked_at_start() {
    let config = |url: &str, ca_file: Option<PathBuf>| PromConfig {
        url: url.parse().unwrap(),
        token_file: None,
        ca_file,
        location: None,
        cache_ttl: FRESH_FOR,
        redact: false,
    };
    assert!(matches!(
        Prometheus::new(config("ftp://p", None)),
        Err(PromError::Url(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let missing = Some(dir.path().join("ca.crt"));
    assert!(matches!(
        Prometheus::new(config("https://p", missing)),
        Err(PromError::Ca { .. })
    ));
    let shown = Prometheus::new(config("http://u:secret@p:9090/x?y=1", None)).unwrap();
    assert_eq!(shown.url(), "http://p:9090/x");
}

/// With `--ui-redact` the page names neither Prometheus's address nor its error.
#[tokio::test]
async fn redacted_pages_hide_the_url_and_the_error() {
    // A loopback port nothing listens on: refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let config = PromConfig {
        url: url.parse().unwrap(),
        token_file: None,
        ca_file: None,
        location: None,
        cache_ttl: FRESH_FOR,
        redact: true,
    };
    let prometheus = Prometheus::new(config).unwrap();
    prometheus.prefetch(&[key("api")], false).await;
    let error = prometheus.lookup(&key("api")).unwrap_err();
    assert!(error.contains("connecting to"), "{error}");
    let note = prometheus.note(Some(error));
    assert_eq!(note.url, "(hidden by --ui-redact)");
    assert_eq!(note.error.as_deref(), Some("(hidden by --ui-redact)"));
}

/// An https Prometheus is trusted through `--prometheus-ca-file`, and not without it.
#[tokio::test]
async fn https_trusts_the_ca_file_besides_the_systems() {
    use canary_test_harness::targets::{Reply, TestServer, Transport, localhost_tls};
    let (ca, tls) = localhost_tls("Prometheus CA");
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    let server = TestServer::start(Transport::Tls(tls), move |_| Reply::ok(body)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let config = |ca_file: Option<PathBuf>| PromConfig {
        url: format!("https://localhost:{}/", server.port())
            .parse()
            .unwrap(),
        token_file: None,
        ca_file,
        location: None,
        cache_ttl: FRESH_FOR,
        redact: false,
    };
    let trusted = Prometheus::new(config(Some(ca_file))).unwrap();
    trusted.prefetch(&[key("api")], false).await;
    assert!(trusted.lookup(&key("api")).is_ok());
    let untrusted = Prometheus::new(config(None)).unwrap();
    untrusted.prefetch(&[key("api")], false).await;
    let error = untrusted.lookup(&key("api")).unwrap_err();
    assert!(error.contains("TLS with https://localhost"), "{error}");
}
