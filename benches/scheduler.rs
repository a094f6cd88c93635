//! Scheduler benchmark on loopback plain-HTTP targets (so the scheduler, not TLS, is measured):
//! 10,000 checks at a 10 s interval for 60 s (scheduler lag p50/p99/max, CPU, RSS, open FDs
//! before and after), then 100,000 idle checks at a 1 h interval (registration time, RSS per
//! check). Run: `cargo bench --bench scheduler` (bench profile: fat LTO, as shipped; prints its figures).
//! `CHECKS`, `SECONDS` and `IDLE` override the sizes.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use canary_operator::{
    api::{ReadyStatus, Reason},
    probe::{self, Outcome, ProbeContext},
    readiness::Transition,
    runner::{
        CheckKey, CheckProber, History, Plan, RunReport, RunnerSpec, Schedule, Scheduler,
        SchedulerConfig, Sink,
    },
};
use canary_test_harness::{
    env_or,
    procfs::{cpu, memory_mib, open_fds},
    refs::{MapRefs, spec},
    targets::{Reply, TestServer, Transport},
};
use serde_json::json;

#[derive(Default)]
struct Lags {
    samples: Mutex<Vec<Duration>>,
    failures: Mutex<usize>,
}

impl Sink for Lags {
    fn on_run(&self, report: &RunReport<'_>) {
        self.samples.lock().unwrap().push(report.lag);
        if report.outcome.reason != Reason::Succeeded {
            *self.failures.lock().unwrap() += 1;
        }
    }

    fn on_remove(&self, _: &CheckKey) {}
}

fn runner(i: usize, url: &str, interval: &str, ctx: &Arc<ProbeContext>) -> RunnerSpec {
    let spec = spec(json!({"interval": interval, "timeout": "5s", "http": {"url": url}}));
    let valid = canary_operator::api::validate(&spec).unwrap();
    let probe = probe::build(&valid, &MapRefs::default()).unwrap();
    let key = CheckKey {
        namespace: "bench".into(),
        name: format!("check-{i}"),
    };
    let plan = Plan::Run(Arc::new(CheckProber {
        probe,
        ctx: ctx.clone(),
    }));
    RunnerSpec {
        generation: Some(1),
        revision: 1,
        ..RunnerSpec::new(key, Schedule::of(&valid), plan)
    }
}

/// Heap and inline bytes of one check's history once it is full.
fn full_history_bytes() -> usize {
    let mut history = History::new(0);
    for i in 0..200 {
        let reason = if i % 2 == 0 {
            Reason::Succeeded
        } else {
            Reason::Timeout
        };
        let mut outcome = Outcome::not_run(reason, "");
        outcome.started_at = jiff::Timestamp::from_second(i * 3600).unwrap();
        history.record(&outcome);
        let to = if i % 2 == 0 {
            ReadyStatus::True
        } else {
            ReadyStatus::False
        };
        let message = "status 500 is not one of the expected 2xx".to_string();
        let transition = Transition {
            from: None,
            to,
            reason,
            message,
        };
        history.transition(i * 3600, &transition);
    }
    history.heap_bytes() + std::mem::size_of::<History>()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let checks = env_or("CHECKS", 10_000);
    let seconds = env_or("SECONDS", 60);
    let idle = env_or("IDLE", 100_000);
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // Targets on their own runtime thread, so serving them does not run on the scheduler's workers.
    let targets = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = targets.block_on(TestServer::start(Transport::Plain, |_| Reply::ok("ok")));
    let url = format!("http://127.0.0.1:{}/healthz", server.port());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ctx = Arc::new(ProbeContext::default());
        let lags = Arc::new(Lags::default());
        let config = SchedulerConfig { max_concurrent: 256, ..SchedulerConfig::default() };
        let scheduler = Scheduler::new(config, vec![lags.clone()]);
        let (fds0, rss0) = (open_fds(), memory_mib("self", "VmRSS"));
        let started = Instant::now();
        for i in 0..checks {
            scheduler.upsert(runner(i, &url, "10s", &ctx));
        }
        println!("registered {checks} checks at a 10s interval in {:.2}s", started.elapsed().as_secs_f64());
        let (cpu0, t0) = (cpu("self").as_secs_f64(), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (cpu, wall) = (cpu("self").as_secs_f64() - cpu0, t0.elapsed().as_secs_f64());
        let rss = memory_mib("self", "VmRSS");
        scheduler.clear();
        let mut samples = lags.samples.lock().unwrap().clone();
        samples.sort();
        let failures = *lags.failures.lock().unwrap();
        println!(
            "{} runs in {wall:.0}s ({:.0} probes/s), {failures} failed",
            samples.len(),
            samples.len() as f64 / wall
        );
        println!(
            "scheduler lag: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&samples, 0.50).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
            samples.last().unwrap().as_secs_f64() * 1e3
        );
        println!("CPU {:.0}% of one core (probes + loopback target), RSS {rss:.1} MiB (start {rss0:.1} MiB)", cpu / wall * 100.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!("open FDs: start {fds0}, end {}", open_fds());

        let scheduler = Scheduler::new(SchedulerConfig::default(), vec![]);
        let rss_before = memory_mib("self", "VmRSS");
        let started = Instant::now();
        for i in 0..idle {
            scheduler.upsert(runner(i, &url, "1h", &ctx));
        }
        let took = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let per_check = (memory_mib("self", "VmRSS") - rss_before) * 1024.0 * 1024.0 / idle as f64;
        println!("registered {idle} idle checks (1h interval) in {took:.2}s; RSS {:.0} bytes per check", per_check);
        println!(
            "status page history at full (100 results, 50 transitions, 30 days of hours): {:.0} bytes per check more (`--bench status_page` measures it in RSS)",
            full_history_bytes()
        );
    });
}
