//! The deny list cannot be walked around: every encoding of a denied address (IPv4-mapped
//! and -compatible IPv6, NAT64 `64:ff9b::/96` and 6to4 `2002::/16` addresses, the unspecified
//! addresses, decimal/octal/hex IPv4 in URLs), reached
//! directly, through a redirect, or through a DNS name, for every probe kind.

use std::net::SocketAddr;

use canary_operator::{
    api::Reason,
    probe::{self, Outcome, ProbeContext},
};
use serde_json::{Value, json};

use canary_test_harness::{
    refs::{self, MapRefs, spec},
    targets::server::{Reply, TestServer, Transport},
};

/// Loopback denied on top of the defaults, as an operator locking Canary down would.
fn strict() -> ProbeContext {
    let mut ctx = ProbeContext::default();
    ctx.deny.push("127.0.0.0/8".parse().unwrap());
    ctx.deny.push("::1/128".parse().unwrap());
    ctx
}

/// A server reachable over IPv4 and IPv6 (dual stack), counting connections.
async fn dual_stack() -> TestServer {
    let any: SocketAddr = "[::]:0".parse().unwrap();
    TestServer::start_on(any, Transport::Plain, |_| Reply::ok("reached")).await
}

async fn run(spec_json: Value, ctx: &ProbeContext) -> Outcome {
    let spec = spec(spec_json);
    let probe = refs::build(&spec, &MapRefs::default());
    probe::run(&probe, ctx).await
}

fn assert_denied(outcome: &Outcome, what: &str) {
    assert_eq!(
        outcome.reason,
        Reason::TargetDenied,
        "{what}: {}",
        outcome.message
    );
}

#[tokio::test]
async fn every_encoding_of_a_denied_address_is_denied_for_http() {
    let server = dual_stack().await;
    let port = server.port();
    for host in [
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "127.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "0x7f000001",
        "[::1]",
        "[64:ff9b::7f00:1]",
        "[64:ff9b::127.0.0.1]",
        "[2002:7f00:1::1]",
    ] {
        let url = format!("http://{host}:{port}/");
        let outcome = run(json!({"timeout": "2s", "http": {"url": url}}), &strict()).await;
        assert_denied(&outcome, &url);
    }
    assert_eq!(server.accepted(), 0, "no denied address was ever dialled");
}

#[tokio::test]
async fn unspecified_addresses_are_denied_by_default() {
    let server = dual_stack().await;
    let port = server.port();
    let defaults = ProbeContext::default();
    for url in [
        format!("http://0.0.0.0:{port}/"),
        format!("http://[::]:{port}/"),
        format!("http://0:{port}/"),
        format!("http://[::ffff:0.0.0.0]:{port}/"),
    ] {
        let outcome = run(json!({"timeout": "2s", "http": {"url": url}}), &defaults).await;
        assert_denied(&outcome, &url);
    }
    assert_eq!(server.accepted(), 0);
}

#[tokio::test]
async fn tcp_and_tls_probes_canonicalise_too() {
    let server = dual_stack().await;
    let port = server.port();
    for host in [
        "::ffff:127.0.0.1",
        "[::ffff:127.0.0.1]",
        "::127.0.0.1",
        "2130706433",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
    ] {
        for kind in ["tcp", "tls"] {
            let outcome = run(
                json!({"timeout": "2s", kind: {"host": host, "port": port}}),
                &strict(),
            )
            .await;
            assert_denied(&outcome, &format!("{kind} {host}"));
        }
    }
    for host in ["0.0.0.0", "::"] {
        let outcome = run(
            json!({"timeout": "2s", "tcp": {"host": host, "port": port}}),
            &ProbeContext::default(),
        )
        .await;
        assert_denied(&outcome, host);
    }
    assert_eq!(server.accepted(), 0);
}

#[tokio::test]
async fn a_redirect_to_any_encoding_of_a_denied_address_is_denied() {
    let target = dual_stack().await;
    let port = target.port();
    let locations: Vec<String> = [
        "[::ffff:127.0.0.1]",
        "[::127.0.0.1]",
        "0.0.0.0",
        "[::]",
        "2130706433",
        "0x7f.1",
    ]
    .iter()
    .map(|host| format!("http://{host}:{port}/"))
    .collect();
    let redirects = locations.clone();
    let redirector =
        TestServer::start_on("127.0.0.2:0".parse().unwrap(), Transport::Plain, move |r| {
            let i: usize = r.path.trim_start_matches('/').parse().unwrap_or(0);
            Reply::redirect(302, &redirects[i])
        })
        .await;
    // Loopback 127.0.0.2 hosts the redirector; only 127.0.0.1 (and its encodings) is denied.
    let mut ctx = ProbeContext::default();
    ctx.deny.push("127.0.0.1/32".parse().unwrap());
    for (i, location) in locations.iter().enumerate() {
        let url = format!("http://127.0.0.2:{}/{i}", redirector.port());
        let outcome = run(json!({"timeout": "2s", "http": {"url": url}}), &ctx).await;
        assert_denied(&outcome, location);
    }
    assert_eq!(redirector.requests().len(), locations.len());
    assert_eq!(target.accepted(), 0);
}

#[test]
fn a_dns_name_resolving_to_any_encoding_is_denied() {
    // Names resolve through a private /etc/hosts (a mount namespace), so the real resolver is
    // used and no traffic leaves loopback.
    let dir = tempfile::tempdir().unwrap();
    let hosts = "::ffff:127.0.0.1 mapped.canary.test\n::127.0.0.1 compat.canary.test\n\
                 0.0.0.0 zero.canary.test\n:: unspecified.canary.test\n127.0.0.1 plain.canary.test\n\
                 64:ff9b::7f00:1 nat64.canary.test\n2002:7f00:1::1 sixtofour.canary.test\n";
    let hosts_file = dir.path().join("hosts");
    std::fs::write(&hosts_file, hosts).unwrap();
    let mut documents = String::new();
    for name in [
        "mapped",
        "compat",
        "zero",
        "unspecified",
        "plain",
        "nat64",
        "sixtofour",
    ] {
        documents.push_str(&format!(
            "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: {name}}}\n\
             spec:\n  timeout: 2s\n  tcp: {{host: {name}.canary.test, port: 9}}\n---\n"
        ));
    }
    let file = dir.path().join("checks.yaml");
    std::fs::write(&file, documents).unwrap();
    let script = format!(
        "mount --bind {} /etc/hosts && exec {} check -f {} -o json --deny-cidrs 127.0.0.0/8,0.0.0.0/8,::/128",
        hosts_file.display(),
        env!("CARGO_BIN_EXE_canary"),
        file.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux; scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let list: Value = serde_json::from_str(&stdout).unwrap_or_else(|_| {
        panic!(
            "needs root and util-linux unshare (scripts/test installs it): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    for result in list["items"].as_array().expect("a List of HealthChecks") {
        let name = result["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let reason = result["status"]["lastResult"]["reason"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(
            reason, "TargetDenied",
            "{name}: {}",
            result["status"]["lastResult"]["message"]
        );
    }
}
