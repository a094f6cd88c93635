//! HTTP probes against real loopback servers: statuses, redirects, bodies, methods, headers,
//! refused connections, the deny list, and a peer silent or slow at each phase.

use std::time::Duration;

use canary_operator::{
    api::Reason,
    probe::{self, Outcome, ProbeContext},
};
use canary_test_harness::{
    refs::{MapRefs, build, probe_once, spec},
    targets::{
        Blackhole, Recorded, Reply, Tarpit, TestServer, Transport, closed_port, h2::H2Server,
        localhost_tls,
    },
};
use serde_json::json;

async fn plain(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> TestServer {
    TestServer::start(Transport::Plain, handler).await
}

async fn get(server: &TestServer, path: &str, http: serde_json::Value) -> Outcome {
    let mut http = http;
    http["url"] = json!(format!("http://127.0.0.1:{}{path}", server.port()));
    probe_once(
        &spec(json!({"timeout": "5s", "http": http})),
        &MapRefs::default(),
    )
    .await
}

fn assert_reason(outcome: &Outcome, reason: Reason) {
    assert_eq!(outcome.reason, reason, "message: {}", outcome.message);
}

#[tokio::test]
async fn status_codes_and_classes() {
    let server = plain(|r| match r.path.as_str() {
        "/204" => Reply::status(204, ""),
        "/500" => Reply::status(500, "boom"),
        _ => Reply::redirect(302, "/204"),
    })
    .await;
    assert_reason(&get(&server, "/204", json!({})).await, Reason::Succeeded);
    let failed = get(&server, "/500", json!({})).await;
    assert_reason(&failed, Reason::UnexpectedStatus);
    assert_eq!(failed.http_status(), Some(500));
    assert!(failed.message.contains("500") && failed.message.contains("2xx"));
    assert_reason(
        &get(&server, "/500", json!({"expect": {"status": [500]}})).await,
        Reason::Succeeded,
    );
    let no_follow = json!({"followRedirects": false, "expect": {"status": [200, "3xx"]}});
    let outcome = get(&server, "/302", no_follow).await;
    assert_reason(&outcome, Reason::Succeeded);
    assert_eq!(outcome.http_status(), Some(302));
}

#[tokio::test]
async fn redirect_chain_is_followed_and_a_loop_is_cut_at_ten_hops() {
    let server = plain(|r| match r.path.as_str() {
        "/a" => Reply::redirect(301, "/b"),
        "/b" => Reply::redirect(307, "/c?x=1"),
        "/c?x=1" => Reply::ok("arrived"),
        _ => Reply::redirect(302, "/loop"),
    })
    .await;
    let outcome = get(
        &server,
        "/a",
        json!({"expect": {"bodyContains": "arrived"}}),
    )
    .await;
    assert_reason(&outcome, Reason::Succeeded);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/a", "/b", "/c?x=1"]);
    let looped = get(&server, "/loop", json!({})).await;
    assert_reason(&looped, Reason::TooManyRedirects);
    assert_eq!(
        server.requests().len(),
        3 + 11,
        "the first request plus ten redirects"
    );
}

#[tokio::test]
async fn body_expectations() {
    let server = plain(|_| Reply::ok(r#"{"status": "ok", "db": "up"}"#)).await;
    let cases = [
        (json!({"bodyContains": "\"db\": \"up\""}), Reason::Succeeded),
        (json!({"bodyContains": "down"}), Reason::BodyMismatch),
        (json!({"bodyNotContains": "error"}), Reason::Succeeded),
        (json!({"bodyNotContains": "ok"}), Reason::BodyMismatch),
        (
            json!({"bodyRegex": r#""status":\s*"(ok|pass)""#}),
            Reason::Succeeded,
        ),
        (json!({"bodyRegex": "^nope"}), Reason::BodyMismatch),
    ];
    for (expect, reason) in cases {
        let outcome = get(&server, "/", json!({"expect": expect.clone()})).await;
        assert_eq!(outcome.reason, reason, "{expect}: {}", outcome.message);
    }
}

#[tokio::test]
async fn body_is_read_only_up_to_max_body_bytes() {
    let server = plain(|_| Reply::Full {
        status: 200,
        headers: vec![],
        body: b"0123456789needle".to_vec(),
    })
    .await;
    let cut = get(
        &server,
        "/",
        json!({"maxBodyBytes": 10, "expect": {"bodyContains": "needle"}}),
    )
    .await;
    assert_reason(&cut, Reason::BodyMismatch);
    let whole = get(
        &server,
        "/",
        json!({"maxBodyBytes": "1Ki", "expect": {"bodyContains": "needle"}}),
    )
    .await;
    assert_reason(&whole, Reason::Succeeded);
}

#[tokio::test]
async fn head_and_post_with_body_and_headers_reach_the_server() {
    let server = plain(|_| Reply::ok("ok")).await;
    assert_reason(
        &get(&server, "/head", json!({"method": "HEAD"})).await,
        Reason::Succeeded,
    );
    let post = json!({
        "method": "POST",
        "body": "{\"ping\": true}",
        "headers": [
            {"name": "X-Probe", "value": "canary"},
            {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "probe", "key": "token"}}},
        ],
    });
    let refs = MapRefs::default().secret("probe", "token", "Bearer s3cret\n");
    let url = format!("http://127.0.0.1:{}/post", server.port());
    let mut http = post;
    http["url"] = json!(url);
    let outcome = probe_once(&spec(json!({"http": http})), &refs).await;
    assert_reason(&outcome, Reason::Succeeded);
    let requests = server.requests();
    assert_eq!(requests[0].method, "HEAD");
    let post = &requests[1];
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", "/post")
    );
    assert_eq!(post.body, b"{\"ping\": true}");
    assert_eq!(post.header("x-probe"), Some("canary"));
    assert_eq!(
        post.header("authorization"),
        Some("Bearer s3cret"),
        "the Secret's trailing newline is trimmed"
    );
    assert_eq!(
        post.header("host"),
        Some(format!("127.0.0.1:{}", server.port()).as_str())
    );
    assert!(post.header("user-agent").unwrap().starts_with("canary/"));
}

#[tokio::test]
async fn max_duration_turns_a_slow_answer_into_slow() {
    let server = plain(|_| Reply::ok("ok")).await;
    let outcome = get(&server, "/", json!({"expect": {"maxDuration": "0ms"}})).await;
    assert_reason(&outcome, Reason::Slow);
}

#[tokio::test]
async fn connection_refused() {
    let port = closed_port().await;
    let spec = spec(json!({"http": {"url": format!("http://127.0.0.1:{port}/")}}));
    let outcome = probe_once(&spec, &MapRefs::default()).await;
    assert_reason(&outcome, Reason::ConnectionRefused);
    let tcp = spec_tcp(port);
    assert_reason(
        &probe_once(&tcp, &MapRefs::default()).await,
        Reason::ConnectionRefused,
    );
}

fn spec_tcp(port: u16) -> canary_operator::api::HealthCheckSpec {
    spec(json!({"tcp": {"host": "127.0.0.1", "port": port}}))
}

#[tokio::test]
async fn tcp_probe_connects() {
    let server = plain(|_| Reply::ok("")).await;
    let outcome = probe_once(&spec_tcp(server.port()), &MapRefs::default()).await;
    assert_reason(&outcome, Reason::Succeeded);
    assert!(outcome.phases.connect.is_some());
}

#[tokio::test]
async fn deny_list_blocks_direct_and_redirected_targets() {
    let server = plain(|r| match r.path.as_str() {
        "/to-metadata" => Reply::redirect(302, "http://169.254.169.254/latest/meta-data/"),
        _ => Reply::redirect(302, "http://127.0.0.2:1/"),
    })
    .await;
    let direct = probe_once(
        &spec(json!({"http": {"url": "http://169.254.169.254/"}})),
        &MapRefs::default(),
    )
    .await;
    assert_reason(&direct, Reason::TargetDenied);
    let via_redirect = get(&server, "/to-metadata", json!({})).await;
    assert_reason(&via_redirect, Reason::TargetDenied);
    let check = build(
        &spec(json!({"http": {"url": format!("http://127.0.0.1:{}/x", server.port())}})),
        &MapRefs::default(),
    );
    let strict = ProbeContext::denying(vec!["127.0.0.2/32".parse().unwrap()]);
    let outcome = probe::run(&check, &strict).await;
    assert_reason(&outcome, Reason::TargetDenied);
    assert!(outcome.message.contains("127.0.0.2"));
}

/// Runs `spec` with a 500 ms timeout and checks it ends as Timeout in time, naming `phase`.
async fn assert_times_out(url: String, phase: &str, tls_policy: serde_json::Value) {
    let spec = spec(
        json!({"timeout": "500ms", "interval": "10s", "http": {"url": url}, "tlsPolicy": tls_policy}),
    );
    let started = tokio::time::Instant::now();
    let outcome = probe_once(&spec, &MapRefs::default()).await;
    let elapsed = started.elapsed();
    assert_reason(&outcome, Reason::Timeout);
    assert!(
        outcome.message.contains(phase),
        "{phase} not named in {}",
        outcome.message
    );
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(600),
        "timeout overran: {elapsed:?}"
    );
}

#[tokio::test]
async fn server_that_never_accepts_times_out_connecting() {
    let hole = Blackhole::start().await;
    let url = format!("http://127.0.0.1:{}/", hole.port());
    assert_times_out(url, "TCP connect", json!({})).await;
}

#[tokio::test]
async fn server_that_never_answers_tls_times_out_in_the_handshake() {
    let pit = Tarpit::start().await;
    let url = format!("https://127.0.0.1:{}/", pit.port());
    assert_times_out(url, "TLS handshake", json!({"verify": false})).await;
    assert_eq!(pit.accepted(), 1, "the connection was made");
}

#[tokio::test]
async fn server_that_never_sends_headers_times_out_waiting_for_them() {
    let server = plain(|_| Reply::Silent).await;
    assert_times_out(server.url("/"), "wait for response headers", json!({})).await;
}

/// Headers, then a byte every 50 ms: the body never completes within 500 ms.
fn trickle(_: &Recorded) -> Reply {
    Reply::Trickle {
        every: Duration::from_millis(50),
    }
}

#[tokio::test]
async fn server_that_trickles_the_body_times_out_in_transfer() {
    let server = plain(trickle).await;
    assert_times_out(server.url("/"), "body transfer", json!({})).await;
}

#[tokio::test]
async fn https_trickle_also_times_out_in_transfer() {
    let (_ca, config) = localhost_tls("Slow CA");
    let server = TestServer::start(Transport::Tls(config), trickle).await;
    let url = format!("https://localhost:{}/", server.port());
    assert_times_out(url, "body transfer", json!({"verify": false})).await;
}

/// An HTTP/2 probe of `url`.
async fn get_h2(url: String, extra: serde_json::Value) -> Outcome {
    let mut spec_json = json!({"timeout": "3s", "http": {"url": url, "version": "2"}});
    if let serde_json::Value::Object(extra) = extra {
        spec_json.as_object_mut().unwrap().extend(extra);
    }
    let refs = MapRefs::default();
    probe_once(&spec(spec_json), &refs).await
}

#[tokio::test]
async fn http2_with_prior_knowledge_in_cleartext() {
    let server = H2Server::start(None, 200, "ok over h2").await;
    let url = format!("http://127.0.0.1:{}/healthz?x=1", server.port());
    let outcome = get_h2(url, json!({})).await;
    assert_reason(&outcome, Reason::Succeeded);
    assert_eq!(outcome.http_status(), Some(200));
    assert!(
        outcome.message.contains("over HTTP/2"),
        "{}",
        outcome.message
    );
    assert!(outcome.phases.first_byte.is_some() && outcome.phases.transfer.is_some());
    let request = &server.requests()[0];
    assert_eq!(request.version, http::Version::HTTP_2);
    assert_eq!(request.path, "/healthz");
    assert_eq!(
        request.authority,
        Some(format!("127.0.0.1:{}", server.port()))
    );
    assert!(request.headers.get("connection").is_none() && request.headers.get("host").is_none());
    let body = json!({"http": {"url": format!("http://127.0.0.1:{}/", server.port()), "version": "2",
                      "expect": {"bodyContains": "over h2", "status": [200]}}});
    assert_reason(
        &probe_once(&spec(body), &MapRefs::default()).await,
        Reason::Succeeded,
    );
}

#[tokio::test]
async fn http2_over_tls_negotiates_h2_with_alpn() {
    let (ca, config) = localhost_tls("H2 CA");
    let server = H2Server::start(Some(config.clone()), 204, "").await;
    let refs = MapRefs::default().config_map("ca", "ca.crt", ca.pem.clone());
    let policy =
        json!({"tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}}});
    let spec_json = json!({"timeout": "3s", "http": {"url": format!("https://localhost:{}/", server.port()), "version": "2"},
                           "tlsPolicy": policy["tlsPolicy"]});
    let outcome = probe_once(&spec(spec_json), &refs).await;
    assert_reason(&outcome, Reason::Succeeded);
    assert_eq!(outcome.http_status(), Some(204));
    assert!(outcome.tls().unwrap().verified);
    assert_eq!(server.requests()[0].version, http::Version::HTTP_2);

    // An HTTP/1.1-only TLS server selects no ALPN protocol: HTTP/2 was not agreed.
    let http1 = TestServer::start(Transport::Tls(config), |_| Reply::ok("ok")).await;
    let spec_json = json!({"timeout": "3s", "http": {"url": format!("https://localhost:{}/", http1.port()), "version": "2"},
                           "tlsPolicy": policy["tlsPolicy"]});
    let outcome = probe_once(&spec(spec_json), &refs).await;
    assert_reason(&outcome, Reason::ProtocolMismatch);
    assert!(outcome.message.contains("ALPN"), "{}", outcome.message);
    assert!(http1.requests().is_empty());
}

#[tokio::test]
async fn http_versions_and_tls_that_do_not_match_the_server_are_named() {
    let h2_only = H2Server::start(None, 200, "ok").await;
    let http1 =
        json!({"timeout": "3s", "http": {"url": format!("http://127.0.0.1:{}/", h2_only.port())}});
    let http1_to_h2 = probe_once(&spec(http1), &MapRefs::default()).await;
    assert_reason(&http1_to_h2, Reason::ProtocolMismatch);
    assert!(
        http1_to_h2.message.contains("HTTP/2 frames"),
        "{}",
        http1_to_h2.message
    );

    let (_ca, config) = localhost_tls("Mismatch CA");
    let tls_server = TestServer::start(Transport::Tls(config), |_| Reply::ok("ok")).await;
    let h2_to_tls = get_h2(
        format!("http://127.0.0.1:{}/", tls_server.port()),
        json!({}),
    )
    .await;
    assert_reason(&h2_to_tls, Reason::ProtocolMismatch);
    assert!(
        h2_to_tls.message.contains("https://"),
        "{}",
        h2_to_tls.message
    );
    let http1_to_tls = get(&tls_server, "/", json!({})).await;
    assert_reason(&http1_to_tls, Reason::ProtocolMismatch);
}

#[tokio::test]
async fn http2_to_a_silent_peer_times_out_waiting_for_headers() {
    let tarpit = Tarpit::start().await;
    let outcome = get_h2(
        format!("http://127.0.0.1:{}/", tarpit.port()),
        json!({"timeout": "300ms"}),
    )
    .await;
    assert_reason(&outcome, Reason::Timeout);
    assert!(
        outcome.message.contains("response headers"),
        "{}",
        outcome.message
    );
}
