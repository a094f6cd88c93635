//! Probe throughput against local servers in the same process: probes per second and CPU per
//! probe (client and server together) for each kind: HTTPS (concurrency 1, 8 and 64), HTTP/2
//! in cleartext, DNS over UDP and over TCP, and gRPC (concurrency 1 and 64), then peak RSS.
//! Run: `cargo bench --bench probe_throughput` (bench profile: fat LTO, as shipped; prints its figures).

use std::{sync::Arc, time::Instant};

use canary_operator::{
    api::Reason,
    probe::{self, Probe, ProbeContext},
};
use canary_test_harness::{
    env_or,
    procfs::{cpu, memory_mib},
    refs::{MapRefs, build, spec},
    targets::{
        Reply, TestServer, Transport,
        dns::{DnsReply, DnsServer, answer, record},
        grpc::{GrpcServer, Offer},
        h2::H2Server,
        localhost_tls,
    },
};
use futures::{StreamExt, stream};
use hickory_proto::rr::{RData, rdata};
use serde_json::json;

/// Runs `probes` probes of `check`, `concurrency` at a time, and prints the figures.
async fn measure(kind: &str, check: &Arc<Probe>, probes: usize, concurrency: usize) {
    let ctx = Arc::new(ProbeContext::default());
    let (cpu0, t0) = (cpu("self").as_secs_f64(), Instant::now());
    let ok = stream::iter(0..probes)
        .map(|_| {
            let (check, ctx) = (check.clone(), ctx.clone());
            async move { probe::run(&check, &ctx).await.reason == Reason::Succeeded }
        })
        .buffer_unordered(concurrency)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    let (elapsed, cpu) = (t0.elapsed().as_secs_f64(), cpu("self").as_secs_f64() - cpu0);
    assert_eq!(ok, probes, "every {kind} probe must succeed");
    println!(
        "{kind:<13} concurrency {concurrency:>2}: {:>7.0} probes/s, {:.3} CPU-ms per probe (client+server)",
        probes as f64 / elapsed,
        cpu / probes as f64 * 1000.0,
    );
}

fn main() {
    let probes: usize = env_or("PROBES", 3000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("cores: {}", std::thread::available_parallelism().map_or(0, |n| n.get()));
        println!("probes per run: {probes} (servers in the same process)");
        let (ca, config) = localhost_tls("Bench CA");
        let https = TestServer::start(Transport::Tls(config), |_| Reply::ok("{\"status\":\"ok\"}")).await;
        let refs = MapRefs::default().config_map("ca", "ca.crt", ca.pem.clone());
        let check = Arc::new(build(&spec(json!({
            "http": {"url": format!("https://localhost:{}/healthz", https.port()), "expect": {"bodyContains": "ok"}},
            "tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}},
        })), &refs));
        for concurrency in [1, 8, 64] {
            measure("HTTPS", &check, probes, concurrency).await;
        }

        let h2 = H2Server::start(None, 200, "{\"status\":\"ok\"}").await;
        let dns = DnsServer::start(|q, _| {
            DnsReply::Message(answer(q, vec![record(q, 30, RData::A(rdata::A([192, 0, 2, 1].into())))]))
        })
        .await;
        let grpc = GrpcServer::start(Offer::Health, None).await;
        let none = MapRefs::default();
        let kinds = [
            ("HTTP/2 (h2c)", json!({"http": {"url": format!("http://127.0.0.1:{}/healthz", h2.port()), "version": "2", "expect": {"bodyContains": "ok"}}})),
            ("DNS over UDP", json!({"dns": {"server": dns.addr.to_string(), "query": {"name": "api.example"}, "expect": {"answers": {"minCount": 1}}}})),
            ("DNS over TCP", json!({"dns": {"server": dns.addr.to_string(), "transport": "tcp", "query": {"name": "api.example"}, "expect": {"answers": {"minCount": 1}}}})),
            ("gRPC", json!({"grpc": {"target": grpc.addr.to_string(), "service": "payments"}})),
        ];
        for (kind, spec_json) in kinds {
            let check = Arc::new(build(&spec(spec_json), &none));
            for concurrency in [1, 64] {
                measure(kind, &check, probes, concurrency).await;
            }
        }
        println!("peak RSS {:.1} MiB", memory_mib("self", "VmHWM"));
    });
}
