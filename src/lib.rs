//! Canary: a Kubernetes operator for HTTP, TCP and TLS health checks that can prove it is
//! itself alive. Data flows `api` -> `probe` -> outcome -> `status`; `check` runs specs from
//! files and `report` prints them.

pub mod admin;
pub mod api;
pub mod check;
pub mod cli;
pub mod controller;
pub mod engine;
pub mod metrics;
pub mod probe;
pub mod report;
pub mod runner;
pub mod standalone;
pub mod status;
