//! The story's scenario as a soak test: thousands of HTTPS probes of large bodies, HEAD probes,
//! and concurrent probes timing out mid-body must leave the descriptor count where it was and
//! peak memory bounded; so must thousands of DNS (UDP and TCP), gRPC and HTTP/2 probes,
//! half of them timing out. One test in its own binary, so no other test moves the counts.

use std::{sync::Arc, time::Duration};

use canary_operator::{
    api::Reason,
    probe::{self, Probe, ProbeContext},
};
use canary_test_harness::{
    procfs::{memory_mib, settle_fds},
    refs::{self, MapRefs, spec},
    targets::{
        Reply, Tarpit, TestServer, Transport,
        dns::{DnsReply, DnsServer, answer, record},
        grpc::{GrpcServer, Offer},
        h2::H2Server,
        localhost_tls,
    },
};
use futures::{StreamExt, stream};
use hickory_proto::rr::{RData, rdata};
use serde_json::json;

const PROBES: usize = 2_000;
const MIB: usize = 1024 * 1024;

/// The servers and what the probes need to trust them.
struct Targets {
    /// Answers `/50mib` with 50 MiB, anything else with 5 MiB of zeros.
    big: TestServer,
    /// Sends headers, then a byte every 20 ms.
    slow: TestServer,
    refs: MapRefs,
}

async fn targets() -> Targets {
    let (ca, config) = localhost_tls("Soak CA");
    let big = TestServer::start(Transport::Tls(config.clone()), |r| {
        let len = if r.path == "/50mib" {
            50 * MIB
        } else {
            5 * MIB
        };
        Reply::Zeros { status: 200, len }
    })
    .await;
    let slow = TestServer::start(Transport::Tls(config), |_| Reply::Trickle {
        every: Duration::from_millis(20),
    })
    .await;
    let refs = MapRefs::default().config_map("ca", "ca.crt", ca.pem.clone());
    Targets { big, slow, refs }
}

impl Targets {
    /// An HTTPS probe of `server` at `path` with `http` settings and `timeout`.
    fn probe(
        &self,
        server: &TestServer,
        path: &str,
        http: serde_json::Value,
        timeout: &str,
    ) -> Probe {
        let mut http = http;
        http["url"] = json!(format!("https://localhost:{}{path}", server.port()));
        let spec = spec(json!({
            "timeout": timeout,
            "http": http,
            "tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}},
        }));
        refs::build(&spec, &self.refs)
    }
}

/// Peak resident set size of this process so far, in bytes.
fn peak_rss() -> usize {
    (memory_mib("self", "VmHWM") * MIB as f64) as usize
}

async fn assert_fds_back_to(baseline: usize, phase: &str) {
    let now = settle_fds(baseline, Duration::from_secs(10)).await;
    assert_eq!(
        now, baseline,
        "{phase}: open descriptors {now} != {baseline} before"
    );
}

/// Runs `check` `PROBES` times in a row, each expected to succeed.
async fn succeed_in_a_row(check: &Probe, ctx: &ProbeContext, what: &str) {
    for i in 0..PROBES {
        let outcome = probe::run(check, ctx).await;
        assert_eq!(
            outcome.reason,
            Reason::Succeeded,
            "{what} {i}: {}",
            outcome.message
        );
    }
}

/// `PROBES` probes, 64 at a time, alternating `get` and `trickle`: the reasons.
async fn concurrently(get: Probe, trickle: Probe, ctx: ProbeContext) -> Vec<Reason> {
    alternate(get, trickle, ctx).await
}

/// Targets of the newer kinds: a DNS responder (slow for `slow.example`), gRPC servers (one
/// answering at once, one after 2 s), an HTTP/2 server and a peer that never answers.
struct Others {
    dns: DnsServer,
    grpc: GrpcServer,
    slow_grpc: GrpcServer,
    h2: H2Server,
    tarpit: Tarpit,
}

async fn others() -> Others {
    let dns = DnsServer::start(|q, _| {
        let reply = answer(
            q,
            vec![record(q, 30, RData::A(rdata::A([192, 0, 2, 1].into())))],
        );
        if q.queries[0].name.to_ascii().starts_with("slow.") {
            DnsReply::Late(
                Duration::from_millis(500),
                Box::new(DnsReply::Message(reply)),
            )
        } else {
            DnsReply::Message(reply)
        }
    })
    .await;
    Others {
        dns,
        grpc: GrpcServer::start(Offer::Health, None).await,
        slow_grpc: GrpcServer::start(Offer::Slow(Duration::from_secs(2)), None).await,
        h2: H2Server::start(None, 200, "ok").await,
        tarpit: Tarpit::start().await,
    }
}

impl Others {
    fn dns(&self, transport: &str, name: &str, timeout: &str) -> Probe {
        let dns = json!({"server": self.dns.addr.to_string(), "transport": transport,
                         "query": {"name": name}, "expect": {"answers": {"minCount": 1}}});
        refs::build(
            &spec(json!({"timeout": timeout, "dns": dns})),
            &MapRefs::default(),
        )
    }

    fn grpc(&self, server: &GrpcServer, timeout: &str) -> Probe {
        let grpc = json!({"target": server.addr.to_string(), "service": "payments"});
        refs::build(
            &spec(json!({"timeout": timeout, "grpc": grpc})),
            &MapRefs::default(),
        )
    }

    fn h2(&self, port: u16, timeout: &str) -> Probe {
        let http = json!({"url": format!("http://127.0.0.1:{port}/"), "version": "2"});
        refs::build(
            &spec(json!({"timeout": timeout, "http": http})),
            &MapRefs::default(),
        )
    }
}

/// Each newer kind: `PROBES` in a row that succeed, then `PROBES` 64 at a time of which
/// half time out; descriptors back to `baseline` after each.
async fn newer_kinds(others: &Others, ctx: &ProbeContext, baseline: usize) {
    let kinds = [
        (
            "DNS over UDP",
            others.dns("udp", "a.example", "5s"),
            others.dns("udp", "slow.example", "100ms"),
        ),
        (
            "DNS over TCP",
            others.dns("tcp", "a.example", "5s"),
            others.dns("tcp", "slow.example", "100ms"),
        ),
        (
            "gRPC",
            others.grpc(&others.grpc, "5s"),
            others.grpc(&others.slow_grpc, "200ms"),
        ),
        (
            "HTTP/2",
            others.h2(others.h2.port(), "5s"),
            others.h2(others.tarpit.port(), "200ms"),
        ),
    ];
    for (what, ok, slow) in kinds {
        succeed_in_a_row(&ok, ctx, what).await;
        assert_fds_back_to(baseline, &format!("sequential {what}")).await;
        let reasons = alternate(ok, slow, ctx.clone()).await;
        let mut counts = std::collections::BTreeMap::new();
        for reason in &reasons {
            *counts.entry(reason.as_str()).or_insert(0) += 1;
        }
        let timeouts = counts.get("Timeout").copied().unwrap_or(0);
        let succeeded = counts.get("Succeeded").copied().unwrap_or(0);
        assert_eq!(
            (timeouts, succeeded),
            (PROBES / 2, PROBES / 2),
            "{what}: {counts:?}"
        );
        assert_fds_back_to(baseline, &format!("concurrent {what}, half timing out")).await;
    }
}

/// `PROBES` probes, 64 at a time, alternating `first` and `second`: the reasons.
async fn alternate(first: Probe, second: Probe, ctx: ProbeContext) -> Vec<Reason> {
    let (get, trickle) = (first, second);
    let (get, trickle, ctx) = (Arc::new(get), Arc::new(trickle), Arc::new(ctx));
    stream::iter(0..PROBES)
        .map(|i| {
            let check = if i % 2 == 0 {
                get.clone()
            } else {
                trickle.clone()
            };
            let ctx = ctx.clone();
            async move { probe::run(&check, &ctx).await.reason }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_probes_leak_no_descriptors_and_hold_no_large_bodies() {
    let targets = targets().await;
    let ctx = ProbeContext::default();
    let get = targets.probe(&targets.big, "/5mib", json!({}), "10s");
    let head = targets.probe(&targets.big, "/5mib", json!({"method": "HEAD"}), "10s");
    let trickle = targets.probe(&targets.slow, "/", json!({}), "300ms");
    let others = others().await;

    // Warm up lazily initialised state (system roots, runtime threads, the servers' tasks)
    // before the baseline.
    assert_eq!(probe::run(&get, &ctx).await.reason, Reason::Succeeded);
    for warm in [
        others.dns("udp", "a.example", "5s"),
        others.dns("tcp", "a.example", "5s"),
    ] {
        assert_eq!(probe::run(&warm, &ctx).await.reason, Reason::Succeeded);
    }
    let grpc = others.grpc(&others.grpc, "5s");
    assert_eq!(probe::run(&grpc, &ctx).await.reason, Reason::Succeeded);
    let h2 = others.h2(others.h2.port(), "5s");
    assert_eq!(probe::run(&h2, &ctx).await.reason, Reason::Succeeded);
    let baseline = settle_fds(0, Duration::from_millis(200)).await;
    let rss_before = peak_rss();

    succeed_in_a_row(&get, &ctx, "GET").await;
    assert_fds_back_to(baseline, "sequential GET of 5 MiB").await;
    succeed_in_a_row(&head, &ctx, "HEAD").await;
    assert_fds_back_to(baseline, "sequential HEAD").await;

    let reasons = concurrently(get, trickle, ProbeContext::default()).await;
    let timeouts = reasons.iter().filter(|r| **r == Reason::Timeout).count();
    assert_eq!(
        timeouts,
        PROBES / 2,
        "half the probes time out mid-body: {reasons:?}"
    );
    assert_fds_back_to(baseline, "concurrent probes, half timing out").await;

    let huge = json!({"maxBodyBytes": "64Mi"});
    let huge = targets.probe(&targets.big, "/50mib", huge, "20s");
    assert_eq!(probe::run(&huge, &ctx).await.reason, Reason::Succeeded);
    let searched = json!({"expect": {"bodyNotContains": "error"}});
    let searched = targets.probe(&targets.big, "/50mib", searched, "20s");
    assert_eq!(probe::run(&searched, &ctx).await.reason, Reason::Succeeded);
    assert_fds_back_to(baseline, "50 MiB bodies").await;

    newer_kinds(&others, &ctx, baseline).await;

    let growth = peak_rss().saturating_sub(rss_before);
    assert!(
        growth < 40 * MIB,
        "peak RSS grew by {} MiB: a large body was held in memory",
        growth / MIB
    );
}
