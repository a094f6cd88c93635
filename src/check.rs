//! `canary check`: run HealthChecks loaded from files once, concurrently, and return each
//! with the status the operator would write after this run.

use std::{path::PathBuf, sync::Arc};

use futures::{StreamExt, stream};

use crate::{
    api::{HealthCheck, HealthCheckStatus, validate},
    files::{self, DirReferences, Loaded},
    probe::{self, Outcome, Probe, ProbeContext, ProbePolicy, ReferenceSource},
    readiness::{StatusInputs, next_status},
};

/// What `canary check` runs.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// HealthCheck YAML files or directories (multi-document files allowed).
    pub files: Vec<PathBuf>,
    /// Where referenced Secrets and ConfigMaps are read from.
    pub references: DirReferences,
    /// The deny list and the body buffer budget.
    pub policy: ProbePolicy,
}

/// Why `canary check` could not run its checks.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Files, specs or references are invalid (exit code 2).
    #[error("{0}")]
    Invalid(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Loads, builds and runs every check of `config` once.
pub fn run(config: &CheckConfig) -> Result<Vec<(HealthCheck, Outcome)>, CheckError> {
    let loaded = files::load(&config.files).map_err(|e| CheckError::Invalid(e.to_string()))?;
    if loaded.is_empty() {
        return Err(CheckError::Invalid(
            "no HealthCheck found in the given files".into(),
        ));
    }
    let checks = build_all(&loaded, &config.references)
        .map_err(|e| CheckError::Invalid(e.join("\nerror: ")))?;
    let runtime = tokio::runtime::Runtime::new().map_err(CheckError::Runtime)?;
    let ctx = ProbeContext::with_policy(&config.policy);
    Ok(runtime.block_on(run_once(&loaded, checks, ctx)))
}

/// Probes run at once by `canary check`.
const CHECK_CONCURRENCY: usize = 64;

/// Builds every loaded HealthCheck into a runnable check, or names what is wrong.
pub fn build_all(loaded: &[Loaded], refs: &dyn ReferenceSource) -> Result<Vec<Probe>, Vec<String>> {
    let mut checks = Vec::new();
    let mut errors = Vec::new();
    for item in loaded {
        let built = validate(&item.resource.spec)
            .map_err(probe::BuildError::Invalid)
            .and_then(|valid| probe::build(&valid, refs));
        match built {
            Ok(check) => checks.push(check),
            Err(e) => {
                let field = match &e {
                    probe::BuildError::Invalid(fields) => fields.first().map(|f| f.field.as_str()),
                    probe::BuildError::Reference { field, .. } => Some(field.as_str()),
                };
                let origin = field.map_or_else(|| item.origin(), |f| item.origin_of(f));
                errors.push(format!("{origin}: {} ({e})", item.key()))
            }
        }
    }
    if errors.is_empty() {
        Ok(checks)
    } else {
        Err(errors)
    }
}

/// Runs each check once, concurrently, and returns the HealthChecks with the status the
/// operator would write after this run.
pub async fn run_once(
    loaded: &[Loaded],
    checks: Vec<Probe>,
    ctx: ProbeContext,
) -> Vec<(HealthCheck, Outcome)> {
    let ctx = Arc::new(ctx);
    let probed_by = probe::default_identity();
    // `status.target` as the operator writes it: the URL without credentials or query,
    // `host:port`, or the DNS query.
    let targets: Vec<String> = (loaded.iter())
        .map(|item| {
            validate(&item.resource.spec).map_or_else(|_| String::new(), |v| v.probe.target())
        })
        .collect();
    let outcomes: Vec<Outcome> = stream::iter(checks)
        .map(|check| {
            let ctx = ctx.clone();
            async move { probe::run(&check, &ctx).await }
        })
        .buffered(CHECK_CONCURRENCY)
        .collect()
        .await;
    (loaded.iter().zip(outcomes))
        .zip(targets)
        .map(|((item, outcome), target)| {
            let mut resource = item.resource.clone();
            // One run decides Ready on its own: thresholds need history a single run lacks.
            let inputs = StatusInputs {
                generation: resource.metadata.generation,
                failure_threshold: 1,
                success_threshold: 1,
                ..StatusInputs::default()
            };
            let mut status = next_status(&HealthCheckStatus::default(), &outcome, inputs).status;
            // What the operator adds to every status it writes (runner::task::report).
            status.target = Some(target).filter(|t| !t.is_empty());
            status.probed_by = Some(probed_by.clone());
            resource.status = Some(status);
            (resource, outcome)
        })
        .collect()
}
