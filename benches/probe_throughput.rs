//! HTTPS probe throughput against a local rustls server with a small body: probes per second,
//! CPU-seconds per 1,000 probes at concurrency 1, 8 and 64, and peak RSS.
//! Run: `cargo bench --bench probe_throughput` (release build; prints its figures).

use std::{sync::Arc, time::Instant};

use canary_operator::{
    api::Reason,
    probe::{self, ProbeContext},
};
use canary_test_harness::{
    env_or,
    procfs::{cpu, memory_mib},
    refs::{MapRefs, build, spec},
    targets::{Reply, TestServer, Transport, localhost_tls},
};
use futures::{StreamExt, stream};
use serde_json::json;

fn main() {
    let probes: usize = env_or("PROBES", 3000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (ca, config) = localhost_tls("Bench CA");
        let server = TestServer::start(Transport::Tls(config), |_| Reply::ok("{\"status\":\"ok\"}")).await;
        let refs = MapRefs::default().config_map("ca", "ca.crt", ca.pem.clone());
        let spec = spec(json!({
            "http": {"url": format!("https://localhost:{}/healthz", server.port()), "expect": {"bodyContains": "ok"}},
            "tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}},
        }));
        let check = Arc::new(build(&spec, &refs));
        let ctx = Arc::new(ProbeContext::default());
        println!("cores: {}", std::thread::available_parallelism().map_or(0, |n| n.get()));
        println!("probes per run: {probes} (server in the same process)");
        for concurrency in [1, 8, 64] {
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
            assert_eq!(ok, probes, "every probe must succeed");
            println!(
                "concurrency {concurrency:>2}: {:>7.0} probes/s, {:.3} CPU-s per 1000 probes (client+server), peak RSS {:.1} MiB",
                probes as f64 / elapsed,
                cpu / probes as f64 * 1000.0,
                memory_mib("self", "VmHWM")
            );
        }
    });
}
