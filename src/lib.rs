//! Canary: a Kubernetes operator for HTTP, TCP, TLS, DNS and gRPC health checks that can prove it is
//! itself alive. Data flows `api` (validate) -> `probe` (build, run) -> outcome ->
//! `readiness` (next status, transition) -> sinks (metrics, status writer, Events); `runner`
//! schedules, `controller` and `standalone` are the spec sources, `files` reads YAML,
//! `check` runs specs once and `report` prints them; `discovery` derives HealthChecks from
//! Ingresses, Gateway API routes and Services, which `discover` prints or runs.

pub mod admin;
pub mod api;
pub mod check;
pub mod cli;
pub mod controller;
pub mod discover;
pub mod discovery;
pub mod engine;
pub mod files;
pub mod heartbeat;
pub mod logging;
pub mod metrics;
pub mod probe;
pub mod readiness;
pub mod report;
pub mod runner;
pub mod selftest;
pub mod standalone;
pub mod supervisor;
pub mod ui;

/// The library's own tests run on the shipped allocator: what reads jemalloc's counters
/// (`probe::heap`, the CEL meter) is tested as it runs in the binary.
#[cfg(all(test, feature = "jemalloc"))]
#[global_allocator]
static TEST_ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Locks a std mutex, recovering the data after a panic elsewhere: every guarded value here
/// stays consistent between statements, so a poisoned lock holds usable data.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
