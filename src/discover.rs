//! `canary discover`: the HealthChecks CheckDiscoveries would generate from manifests in files
//! (e.g. `helm template` output), printed as YAML documents or a table with every skip, or
//! handed to the `canary check` engine (`--run`).

use std::{io::Write, path::PathBuf};

use kube::{ResourceExt, api::ObjectMeta};

use crate::{
    api::{CheckDiscovery, CheckDiscoverySpec, DiscoverySkip, HealthCheck, validate},
    check::{self, CheckError},
    discovery::{self, DiscoveryError, Settings, input},
    files::{DirReferences, Loaded},
    probe::{Outcome, ProbeContext, ProbePolicy},
};

/// The name of the discovery used when the files hold none.
pub const DEFAULT_DISCOVERY: &str = "default";

/// Output formats of `canary discover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Checks, then skips, as tables.
    Table,
    /// One YAML document per HealthCheck (skips on stderr).
    Yaml,
}

/// Why `canary discover` failed (all are invalid input, exit code 2, but `Check`).
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error(transparent)]
    Input(#[from] input::InputError),
    #[error("CheckDiscovery {discovery}: {source}")]
    Discovery {
        discovery: String,
        #[source]
        source: DiscoveryError,
    },
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error("no HealthCheck generated: nothing to run")]
    NothingToRun,
}

/// What one discovery generated.
#[derive(Debug, Clone)]
pub struct Generated {
    /// `namespace/name` of the CheckDiscovery.
    pub discovery: String,
    pub result: discovery::Discovered,
}

/// Reads `paths` and derives the checks of every CheckDiscovery in them; without one, of a
/// default (every source, `optIn: All`) in each namespace that has source objects.
pub fn generate(paths: &[PathBuf], settings: &Settings) -> Result<Vec<Generated>, DiscoverError> {
    let read = input::read(paths)?;
    let discoveries = match read.discoveries.is_empty() {
        true => defaults(&read.inputs),
        false => read.discoveries,
    };
    (discoveries.iter())
        .map(|d| {
            let name = format!(
                "{}/{}",
                d.namespace().unwrap_or_else(|| "default".into()),
                d.name_any()
            );
            discovery::derive(d, &read.inputs, settings)
                .map(|result| Generated {
                    discovery: name.clone(),
                    result,
                })
                .map_err(|source| DiscoverError::Discovery {
                    discovery: name,
                    source,
                })
        })
        .collect()
}

/// A default discovery per namespace holding source objects, in name order.
fn defaults(inputs: &discovery::Inputs) -> Vec<CheckDiscovery> {
    let ns = |meta: &ObjectMeta| meta.namespace.clone().unwrap_or_else(|| "default".into());
    let mut namespaces: Vec<String> = (inputs.ingresses.iter().map(|o| ns(&o.metadata)))
        .chain(inputs.http_routes.iter().map(|o| ns(&o.metadata)))
        .chain(inputs.grpc_routes.iter().map(|o| ns(&o.metadata)))
        .chain(inputs.services.iter().map(|o| ns(&o.metadata)))
        .collect();
    namespaces.sort();
    namespaces.dedup();
    (namespaces.into_iter())
        .map(|namespace| {
            let mut d = CheckDiscovery::new(DEFAULT_DISCOVERY, CheckDiscoverySpec::everything());
            d.metadata.namespace = Some(namespace);
            d
        })
        .collect()
}

/// Every generated check, in discovery then name order.
pub fn checks(generated: &[Generated]) -> Vec<&HealthCheck> {
    generated.iter().flat_map(|g| &g.result.checks).collect()
}

/// One YAML document per HealthCheck, as it would be applied.
pub fn write_yaml(out: &mut dyn Write, generated: &[Generated]) -> std::io::Result<()> {
    for check in checks(generated) {
        let yaml = serde_saphyr::to_string(check).map_err(std::io::Error::other)?;
        write!(out, "---\n{yaml}")?;
    }
    Ok(())
}

/// The checks as a table: namespace, name, kind, target, source.
pub fn write_checks(out: &mut dyn Write, generated: &[Generated]) -> std::io::Result<()> {
    let mut rows = vec![
        ["NAMESPACE", "NAME", "KIND", "TARGET", "SOURCE"]
            .map(String::from)
            .to_vec(),
    ];
    for check in checks(generated) {
        let (kind, target) = validate(&check.spec)
            .map_or(("?", String::new()), |v| (v.probe.name(), v.probe.target()));
        let labels = check.labels();
        let source = format!(
            "{}/{}",
            labels
                .get(discovery::SOURCE_KIND_LABEL)
                .cloned()
                .unwrap_or_default(),
            (check.annotations().get(discovery::SOURCE_NAME_ANNOTATION))
                .or(labels.get(discovery::SOURCE_NAME_LABEL))
                .cloned()
                .unwrap_or_default()
        );
        let namespace = check.namespace().unwrap_or_default();
        rows.push(vec![
            namespace,
            check.name_any(),
            kind.into(),
            target,
            source,
        ]);
    }
    write_rows(out, &rows)
}

/// The skips as a table, and what `maxChecks` left out.
pub fn write_skips(out: &mut dyn Write, generated: &[Generated]) -> std::io::Result<()> {
    let mut rows = vec![
        ["NAMESPACE", "SOURCE", "HOST", "PATH", "REASON", "MESSAGE"]
            .map(String::from)
            .to_vec(),
    ];
    for g in generated {
        let namespace = g.discovery.split('/').next().unwrap_or_default();
        rows.extend(g.result.skips.iter().map(|s| skip_row(namespace, s)));
    }
    if rows.len() > 1 {
        writeln!(out, "SKIPPED")?;
        write_rows(out, &rows)?;
    }
    for g in generated.iter().filter(|g| g.result.truncated > 0) {
        writeln!(
            out,
            "TRUNCATED: {} checks of {} left out by maxChecks",
            g.result.truncated, g.discovery
        )?;
    }
    Ok(())
}

fn skip_row(namespace: &str, skip: &DiscoverySkip) -> Vec<String> {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let message = if skip.message.is_empty() {
        "-".into()
    } else {
        skip.message.clone()
    };
    vec![
        namespace.into(),
        skip.source.clone(),
        dash(&skip.host),
        dash(&skip.path),
        skip.reason.as_str().into(),
        message,
    ]
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn write_rows(out: &mut dyn Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            match c + 1 == columns {
                true => line.push_str(cell),
                false => line.push_str(&format!("{cell:<width$}  ", width = widths[c])),
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Runs the generated checks once with the `canary check` engine.
pub fn run(
    generated: &[Generated],
    references: &DirReferences,
    policy: &ProbePolicy,
) -> Result<Vec<(HealthCheck, Outcome)>, DiscoverError> {
    let loaded: Vec<Loaded> = (generated.iter())
        .flat_map(|g| {
            g.result
                .checks
                .iter()
                .enumerate()
                .map(move |(i, c)| (g, i, c))
        })
        .map(|(g, i, check)| Loaded {
            resource: check.clone(),
            path: PathBuf::from(format!("CheckDiscovery {}", g.discovery)),
            document: i + 1,
        })
        .collect();
    if loaded.is_empty() {
        return Err(DiscoverError::NothingToRun);
    }
    let probes = check::build_all(&loaded, references)
        .map_err(|e| CheckError::Invalid(e.join("\nerror: ")))?;
    let runtime = tokio::runtime::Runtime::new().map_err(CheckError::Runtime)?;
    let ctx = ProbeContext::with_policy(policy);
    Ok(runtime.block_on(check::run_once(&loaded, probes, ctx)))
}
