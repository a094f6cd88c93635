//! Logs go to stderr through a bounded, lossy queue drained by one writer thread. A stderr that
//! nobody drains (a stalled log pipeline, a full pipe) then costs log lines, never the runtime's
//! threads: without it, the first `write` that blocks wedges a worker, and soon probing,
//! `/healthz` and the shutdown on SIGTERM with it. Lines dropped are counted in
//! `canary_log_lines_dropped_total`.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering},
};

use prometheus::{
    IntCounter,
    core::{Collector, Desc},
    proto::MetricFamily,
};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

use crate::cli::LogFormat;

/// The dropped-line count of the process's log queue, once logging is set up.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Installs the global subscriber with `queued` lines between the loggers and stderr; hold the
/// guard until exit (dropping it flushes the queue, waiting about a second at most when stderr
/// is stuck).
pub fn init(format: LogFormat, level: &str, queued: u32) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(queued as usize)
        .thread_name("canary-log")
        .finish(std::io::stderr());
    let _ = DROPPED.set(writer.error_counter());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    guard
}

/// Log lines dropped so far because the queue was full (0 before [`init`]).
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

/// `canary_log_lines_dropped_total`, read from the log queue at each scrape.
#[derive(Clone)]
pub struct DroppedLines {
    counter: IntCounter,
    seen: std::sync::Arc<AtomicU64>,
}

impl DroppedLines {
    pub fn new() -> prometheus::Result<Self> {
        let counter = IntCounter::new(
            "canary_log_lines_dropped_total",
            "Log lines dropped because stderr did not keep up (the log queue was full).",
        )?;
        Ok(Self {
            counter,
            seen: Default::default(),
        })
    }
}

impl Collector for DroppedLines {
    fn desc(&self) -> Vec<&Desc> {
        self.counter.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let now = dropped_lines();
        let before = self.seen.fetch_max(now, Ordering::Relaxed);
        self.counter.inc_by(now.saturating_sub(before));
        self.counter.collect()
    }
}
