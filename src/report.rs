//! Human and machine output of `canary check`: a table, or the HealthChecks themselves with
//! the status the operator would write, as a JSON or YAML `List` (the shape of `kubectl get`).

use std::io::Write;

use crate::{api::HealthCheck, probe::Outcome, readiness::seconds};

/// Output formats of `canary check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("encoding YAML: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
}

/// Writes the results in `format`.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    results: &[(HealthCheck, Outcome)],
) -> Result<(), ReportError> {
    match format {
        Format::Table => write_table(out, results)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &List::of(results))?;
            writeln!(out)?;
        }
        Format::Yaml => write!(out, "{}", serde_saphyr::to_string(&List::of(results))?)?,
    }
    Ok(())
}

/// The HealthChecks as `kubectl get -o json|yaml` prints several objects: a `v1` `List`, so
/// `jq '.items[]'` and `kubectl apply -f` read it as they read kubectl's.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct List<'a> {
    api_version: &'static str,
    kind: &'static str,
    items: Vec<&'a HealthCheck>,
    metadata: ListMeta,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    resource_version: &'static str,
}

impl<'a> List<'a> {
    fn of(results: &'a [(HealthCheck, Outcome)]) -> Self {
        Self {
            api_version: "v1",
            kind: "List",
            items: results.iter().map(|(resource, _)| resource).collect(),
            metadata: ListMeta {
                resource_version: "",
            },
        }
    }
}

fn write_table(out: &mut dyn Write, results: &[(HealthCheck, Outcome)]) -> std::io::Result<()> {
    let header = [
        "NAMESPACE",
        "NAME",
        "RESULT",
        "REASON",
        "LATENCY",
        "STATUS",
        "CERT-EXPIRES",
        "MESSAGE",
    ];
    let rows: Vec<[String; 8]> = results.iter().map(|(r, o)| row(r, o)).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        text
    };
    writeln!(out, "{}", line(&header))?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(())
}

/// What the target answered, whatever its kind (see [`crate::probe::KindFacts::answer`]).
fn answer_status(outcome: &Outcome) -> String {
    outcome.facts.kind.answer().unwrap_or_else(|| "-".into())
}

fn row(resource: &HealthCheck, outcome: &Outcome) -> [String; 8] {
    let cert = (outcome.facts.tls.as_ref())
        .and_then(|t| t.leaf())
        .map(|leaf| leaf.not_after.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "-".into());
    [
        resource.metadata.namespace.clone().unwrap_or_default(),
        resource.metadata.name.clone().unwrap_or_default(),
        if outcome.success() { "PASS" } else { "FAIL" }.into(),
        outcome.reason.as_str().into(),
        seconds(outcome.duration),
        answer_status(outcome),
        cert,
        outcome.message.clone(),
    ]
}
