//! What Canary's test suites and benchmarks share, written once: the tools they drive
//! ([`tools`]), waiting with a deadline ([`wait`]), a tiny HTTP client ([`http`]), the local API
//! server with the CRD applied ([`cluster`], [`watch`]), the operator as the chart deploys it
//! ([`operator`]), loopback targets with generated certificates ([`targets`]), the chart
//! ([`chart`]) and its RBAC ([`rbac`]), metrics and their names ([`metrics`], [`prom`]),
//! in-memory references for the probe engine ([`refs`]), `/proc` readers ([`procfs`]), a bound
//! on how many heavy scenarios run at once ([`slots`]) and the container image ([`image`]).
//!
//! Anything a test needs that is missing fails the test with the setup command to run
//! (`scripts/test`); nothing is skipped.

pub mod chart;
pub mod cluster;
pub mod http;
pub mod image;
pub mod metrics;
pub mod operator;
pub mod procfs;
pub mod prom;
pub mod rbac;
pub mod refs;
pub mod slots;
pub mod targets;
pub mod tools;
pub mod wait;
pub mod watch;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the harness lives in tests/harness of the repository")
}

/// Reads a file, failing the test with its path.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Which of `wanted` `text` does not contain (for one assertion naming everything missing).
pub fn missing<'a>(text: &str, wanted: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    wanted.into_iter().filter(|w| !text.contains(w)).collect()
}

/// A setting from the environment (benchmark sizes such as `CHECKS`), or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    (std::env::var(name).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
