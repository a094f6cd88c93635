//! The story's scenario as a soak test: thousands of HTTPS probes of large bodies, HEAD probes,
//! and concurrent probes timing out mid-body must leave the descriptor count where it was and
//! peak memory bounded. One test in its own binary, so no other test moves the counts.

mod support;

use std::{sync::Arc, time::Duration};

use canary_operator::{
    api::Reason,
    probe::{self, Probe, ProbeContext},
};
use futures::{StreamExt, stream};
use serde_json::json;
use support::{
    MapRefs,
    server::{Reply, TestServer, Transport},
    settle_fds, spec,
};

const PROBES: usize = 2_000;
const MIB: usize = 1024 * 1024;

fn build(url: String, http: serde_json::Value, timeout: &str, refs: &MapRefs) -> Probe {
    let mut http = http;
    http["url"] = json!(url);
    let spec = spec(json!({
        "timeout": timeout,
        "http": http,
        "tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}},
    }));
    support::build(&spec, refs)
}

/// Peak resident set size of this process so far, in bytes.
fn peak_rss() -> usize {
    (support::memory_mib("self", "VmHWM") * MIB as f64) as usize
}

async fn assert_fds_back_to(baseline: usize, phase: &str) {
    let now = settle_fds(baseline, Duration::from_secs(10)).await;
    assert_eq!(
        now, baseline,
        "{phase}: open descriptors {now} != {baseline} before"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_probes_leak_no_descriptors_and_hold_no_large_bodies() {
    let (ca, config) = support::localhost_tls("Soak CA");
    let big = TestServer::start(Transport::Tls(config.clone()), |r| match r.path.as_str() {
        "/50mib" => Reply::Zeros {
            status: 200,
            len: 50 * MIB,
        },
        _ => Reply::Zeros {
            status: 200,
            len: 5 * MIB,
        },
    })
    .await;
    let slow = TestServer::start(Transport::Tls(config), |_| Reply::Trickle {
        every: Duration::from_millis(20),
    })
    .await;
    let refs = MapRefs::default().config_map("ca", "ca.crt", ca.pem.clone());
    let ctx = ProbeContext::default();
    let get = build(
        format!("https://localhost:{}/5mib", big.port()),
        json!({}),
        "10s",
        &refs,
    );
    let head = build(
        format!("https://localhost:{}/5mib", big.port()),
        json!({"method": "HEAD"}),
        "10s",
        &refs,
    );
    let trickle = build(
        format!("https://localhost:{}/", slow.port()),
        json!({}),
        "300ms",
        &refs,
    );

    // Warm up lazily initialised state (system roots, runtime threads) before the baseline.
    assert_eq!(probe::run(&get, &ctx).await.reason, Reason::Succeeded);
    let baseline = settle_fds(0, Duration::from_millis(200)).await;
    let rss_before = peak_rss();

    for i in 0..PROBES {
        let outcome = probe::run(&get, &ctx).await;
        assert_eq!(
            outcome.reason,
            Reason::Succeeded,
            "GET {i}: {}",
            outcome.message
        );
    }
    assert_fds_back_to(baseline, "sequential GET of 5 MiB").await;

    for i in 0..PROBES {
        let outcome = probe::run(&head, &ctx).await;
        assert_eq!(
            outcome.reason,
            Reason::Succeeded,
            "HEAD {i}: {}",
            outcome.message
        );
    }
    assert_fds_back_to(baseline, "sequential HEAD").await;

    let (get, trickle, ctx) = (Arc::new(get), Arc::new(trickle), Arc::new(ctx));
    let reasons: Vec<Reason> = stream::iter(0..PROBES)
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
        .await;
    let timeouts = reasons.iter().filter(|r| **r == Reason::Timeout).count();
    assert_eq!(
        timeouts,
        PROBES / 2,
        "half the probes time out mid-body: {reasons:?}"
    );
    assert_fds_back_to(baseline, "concurrent probes, half timing out").await;

    let huge = build(
        format!("https://localhost:{}/50mib", big.port()),
        json!({"maxBodyBytes": "64Mi"}),
        "20s",
        &refs,
    );
    assert_eq!(probe::run(&huge, &ctx).await.reason, Reason::Succeeded);
    let searched = build(
        format!("https://localhost:{}/50mib", big.port()),
        json!({"expect": {"bodyNotContains": "error"}}),
        "20s",
        &refs,
    );
    assert_eq!(probe::run(&searched, &ctx).await.reason, Reason::Succeeded);
    assert_fds_back_to(baseline, "50 MiB bodies").await;

    let growth = peak_rss().saturating_sub(rss_before);
    assert!(
        growth < 40 * MIB,
        "peak RSS grew by {} MiB: a large body was held in memory",
        growth / MIB
    );
}
