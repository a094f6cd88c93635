//! The Helm chart (`charts/canary-operator`), checked with the real tools a user meets: helm 4
//! lint, template, install, upgrade and uninstall (against the local API server),
//! kubernetes-validate (Kubernetes 1.35 schemas), promtool for the alerts, and the `canary`
//! binary run as the chart's Deployment runs it. Tools come from `scripts/test`; a missing tool
//! fails the test.

mod admission;
mod alerts;
mod deployed;
mod enforced;
mod flags;
mod install;
mod prometheus;
mod rbac;
mod render;
mod selftest;
mod standalone;
mod values;

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
