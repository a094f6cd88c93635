//! Section `render`: 1,000 checks (`CHECKS`) at full history in this process (every check run
//! 110 times at a 1 s interval on a paused clock, alternating success and failure so results
//! and transitions are full), then the memory each check costs and how long the pages take.

use std::{
    sync::Arc,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use canary_operator::{
    api::Reason,
    probe::Outcome,
    runner::{CheckInfo, CheckKey, Plan, Prober, RunnerSpec, Schedule, Scheduler, SchedulerConfig},
    ui::{
        PageContext,
        listing::{Filter, PAGE_SIZE},
        model::Source,
        page::{detail, overview},
    },
};
use canary_test_harness::{env_or, procfs::memory_mib};
use futures::future::BoxFuture;

/// Runs kept per check at full history, and then some.
const RUNS: u64 = 110;

/// Succeeds on every other run, in 20 to 60 ms (as far as the page can tell).
#[derive(Default)]
struct Alternating(AtomicU64);

impl Prober for Alternating {
    fn probe(&self) -> BoxFuture<'_, Outcome> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            let reason = if n.is_multiple_of(2) {
                Reason::Succeeded
            } else {
                Reason::UnexpectedStatus
            };
            let mut outcome = Outcome::not_run(reason, "status 500 is not one of the expected 2xx");
            outcome.duration = Duration::from_millis(20 + n % 40);
            outcome
        })
    }
}

fn runner(i: usize) -> RunnerSpec {
    let key = CheckKey {
        namespace: format!("team-{}", i % 20),
        name: format!("service-{i}"),
    };
    let plan = Plan::Run(Arc::new(Alternating::default()));
    let mut spec = RunnerSpec::new(
        key,
        Schedule::every(Duration::from_secs(1), Duration::from_millis(800)),
        plan,
    );
    spec.info = Arc::new(CheckInfo {
        kind: "http",
        target: format!(
            "https://service-{i}.team-{}.svc.cluster.local:8443/healthz",
            i % 20
        ),
        ..CheckInfo::default()
    });
    spec
}

/// Mean and slowest of `renders` calls of `render`, in ms, and the size it returned.
fn time(renders: usize, render: impl Fn() -> usize) -> (f64, f64, usize) {
    let mut took = Vec::with_capacity(renders);
    let mut size = 0;
    for _ in 0..renders {
        let start = Instant::now();
        size = render();
        took.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let mean = took.iter().sum::<f64>() / renders as f64;
    (mean, took.iter().copied().fold(0.0, f64::max), size)
}

/// Runs the section.
pub fn run() {
    let checks = env_or("CHECKS", 1000);
    let renders = env_or("RENDERS", 20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let scheduler = runtime.block_on(async {
        let config = SchedulerConfig {
            max_concurrent: checks,
            ..SchedulerConfig::default()
        };
        let scheduler = Scheduler::new(config, Vec::new());
        let rss0 = memory_mib("self", "VmRSS");
        for i in 0..checks {
            scheduler.upsert(runner(i));
        }
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(RUNS + 5)).await;
        let mut heap = 0;
        let mut results = 0;
        scheduler.visit(|_, view| {
            heap += view.history.heap_bytes() + std::mem::size_of_val(view.history);
            results += view.history.results().count();
        });
        let rss = memory_mib("self", "VmRSS");
        println!(
            "{checks} checks, {RUNS}+ runs each on a paused clock in {:.1}s; {} results kept ({} per check)",
            started.elapsed().as_secs_f64(),
            results,
            results / checks
        );
        println!(
            "history: {:.1} KiB per check (heap, full history); RSS {:.1} KiB per check (runner and history), {rss:.1} MiB in all",
            heap as f64 / checks as f64 / 1024.0,
            (rss - rss0) * 1024.0 / checks as f64,
        );
        scheduler
    });
    let source = Source {
        scheduler,
        redact: false,
        located: None,
    };
    let now = jiff::Timestamp::now().as_second();
    let ctx = PageContext {
        now,
        standby: false,
        redacted: false,
        forwarding: false,
        peers: Vec::new(),
    };
    let query = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        (pairs.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let all = Filter::default();
    let failing = Filter::parse(&query(&[("failing", "1")]));
    let search = Filter::parse(&query(&[("q", "team-7")]));
    let page = |filter: &Filter, n: usize| {
        overview(&source.overview(filter, n, now), filter, &ctx).into_string()
    };
    let (mean, max, size) = time(renders, || page(&all, 1).len());
    println!(
        "overview of {checks} checks, page 1 ({PAGE_SIZE} cards): {mean:.1} ms mean, {max:.1} ms slowest ({:.0} KiB of HTML)",
        size as f64 / 1024.0
    );
    let html = page(&all, 1);
    let (mean, max, size) = time(renders, || {
        canary_operator::ui::gzip(html.as_bytes()).map_or(0, |z| z.len())
    });
    println!(
        "gzip of that page: {mean:.1} ms mean, {max:.1} ms slowest ({:.0} KiB sent)",
        size as f64 / 1024.0
    );
    let last = checks.div_ceil(PAGE_SIZE);
    for (what, filter, n) in [
        ("last page", &all, last),
        ("failing only, page 1", &failing, 1),
        ("search \"team-7\", page 1", &search, 1),
    ] {
        let (mean, max, size) = time(renders, || page(filter, n).len());
        println!(
            "overview, {what}: {mean:.1} ms mean, {max:.1} ms slowest ({:.0} KiB)",
            size as f64 / 1024.0
        );
    }
    let key = CheckKey {
        namespace: "team-7".into(),
        name: "service-7".into(),
    };
    let (mean, max, size) = time(renders, || {
        detail(&source.detail(&key, now).unwrap(), &ctx)
            .into_string()
            .len()
    });
    println!(
        "one check's page: {mean:.2} ms mean, {max:.2} ms slowest ({:.0} KiB)",
        size as f64 / 1024.0
    );
}
