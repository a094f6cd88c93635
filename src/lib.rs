//! Canary: a Kubernetes operator for HTTP, TCP and TLS health checks that can prove it is
//! itself alive. Data flows `api` (validate) -> `probe` (build, run) -> outcome ->
//! `readiness` (next status, transition) -> sinks (metrics, status writer, Events); `runner`
//! schedules, `controller` and `standalone` are the spec sources, `files` reads YAML,
//! `check` runs specs once and `report` prints them.

pub mod admin;
pub mod api;
pub mod check;
pub mod cli;
pub mod controller;
pub mod engine;
pub mod files;
pub mod metrics;
pub mod probe;
pub mod readiness;
pub mod report;
pub mod runner;
pub mod standalone;
