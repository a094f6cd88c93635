//! Logs go to stderr through a bounded, lossy queue drained by one writer thread. A stderr that
//! nobody drains (a stalled log pipeline, a full pipe) then costs log lines, never the runtime's
//! threads: without it, the first `write` that blocks wedges a worker, and soon probing,
//! `/healthz` and the shutdown on SIGTERM with it. Lines dropped are counted in
//! `canary_log_lines_dropped_total`.
//!
//! Nothing else writes to stderr directly: panics are logged through the queue by the hook of
//! [`set_panic_hook`], the final error line of `main` goes through it with [`write_line`], and
//! before the queue exists (a usage error, a panic while parsing flags) a line is written from a
//! helper thread that the caller waits for at most [`STDERR_DEADLINE`]. A stuck stderr therefore
//! delays exit by about 1.1 s at most: flushing the queue at exit (dropping the [`WorkerGuard`])
//! waits 100 ms to hand over and 1 s for the writer thread, then gives up, and the lines still
//! queued are lost (the 1 s of a write before the queue exists is the other case: they never
//! add up). The process's exit then ends the thread blocked in `write`.

use std::{
    io::{IsTerminal, Write},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use prometheus::{
    IntCounter,
    core::{Collector, Desc},
    proto::MetricFamily,
};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};

/// How long [`write_line`] waits for stderr before the log queue exists.
pub const STDERR_DEADLINE: Duration = Duration::from_secs(1);

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The dropped-line count of the process's log queue, once logging is set up.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();
/// The log queue, for lines that are not log events (the final error line).
static QUEUE: OnceLock<NonBlocking> = OnceLock::new();

/// Installs the global subscriber with `queued` lines between the loggers and stderr; hold the
/// guard until exit (dropping it flushes the queue,
/// waiting about a second at most when stderr is stuck).
pub fn init(format: LogFormat, level: &str, queued: u32) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(queued as usize)
        .thread_name("canary-log")
        .finish(std::io::stderr());
    let _ = DROPPED.set(writer.error_counter());
    let _ = QUEUE.set(writer.clone());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours())
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    guard
}

/// Colours only for a person at a terminal: a file or a log pipeline gets plain text, and
/// `NO_COLOR` (no-color.org) turns them off everywhere.
fn colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the panic hook: a panic is logged (once [`init`] ran) or written like
/// [`write_line`], never written to stderr directly. Call it first thing in `main`.
pub fn set_panic_hook() {
    std::panic::set_hook(Box::new(log_panic));
}

/// The panic as an ERROR event (with a backtrace when `RUST_BACKTRACE` asks for one), or as a
/// line before logging is set up.
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = (payload.downcast_ref::<&str>().copied())
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("<unnamed>");
    let location = info.location().map(ToString::to_string).unwrap_or_default();
    let backtrace = std::backtrace::Backtrace::capture();
    let captured = backtrace.status() == std::backtrace::BacktraceStatus::Captured;
    if QUEUE.get().is_none() {
        let mut line = format!("thread '{thread}' panicked at {location}: {message}\n");
        if captured {
            line.push_str(&format!("{backtrace}\n"));
        }
        let _ = write_bounded(line, STDERR_DEADLINE);
        return;
    }
    if captured {
        tracing::error!(thread, %location, %backtrace, "panicked: {message}");
    } else {
        tracing::error!(thread, %location, "panicked: {message}");
    }
}

/// Writes `line` (ending in a newline) to stderr without blocking the caller for long: into the
/// log queue once [`init`] ran (dropped and counted if the queue is full), else from a helper
/// thread, waiting at most [`STDERR_DEADLINE`] for it.
pub fn write_line(line: &str) {
    match QUEUE.get() {
        Some(queue) => {
            let _ = queue.clone().write_all(line.as_bytes());
        }
        None => {
            let _ = write_bounded(line.to_string(), STDERR_DEADLINE);
        }
    }
}

/// Writes `text` to stderr from a helper thread; false when it did not finish by `deadline`
/// (the thread stays blocked on the pipe; process exit ends it).
fn write_bounded(text: String, deadline: Duration) -> bool {
    let (done, finished) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("canary-stderr".into())
        .spawn(move || {
            let written = std::io::stderr().lock().write_all(text.as_bytes());
            let _ = done.send(written.is_ok());
        });
    spawned.is_ok() && finished.recv_timeout(deadline).unwrap_or(false)
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
