//! Command line: subcommands and their flags, with environment fallbacks.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

use crate::report::Format;

/// Canary: health checks for HTTP, TCP and TLS endpoints, from a Kubernetes operator or files.
#[derive(Debug, Parser)]
#[command(name = "canary", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, global = true, env = "CANARY_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// Log output formats (levels come from `RUST_LOG`, default `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run HealthChecks from YAML files once and report (exit 0 all pass, 1 any fails, 2 invalid input).
    Check(CheckArgs),
    /// Print the HealthCheck CustomResourceDefinition as YAML.
    Crd,
}

/// Flags of `canary check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// HealthCheck YAML files or directories (multi-document files allowed).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Output: a table, or the HealthChecks with the status the operator would write.
    #[arg(short, long, default_value = "table")]
    pub output: Format,
    #[command(flatten)]
    pub references: ReferenceArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Where referenced Secrets and ConfigMaps are read from outside a cluster.
#[derive(Debug, Args, Clone)]
pub struct ReferenceArgs {
    /// Folder holding Secrets as DIR/<name>/<key> (the layout of a mounted Secret volume).
    #[arg(long, env = "CANARY_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Folder holding ConfigMaps as DIR/<name>/<key>.
    #[arg(long = "configmaps-dir", env = "CANARY_CONFIGMAPS_DIR")]
    pub config_maps_dir: Option<PathBuf>,
}

/// Operator-wide probing policy.
#[derive(Debug, Args, Clone)]
pub struct PolicyArgs {
    /// Networks probes may never connect to (checked on every resolved address and redirect hop).
    #[arg(
        long = "deny-cidrs",
        env = "CANARY_DENY_CIDRS",
        value_delimiter = ',',
        default_value = "169.254.0.0/16"
    )]
    pub deny_cidrs: Vec<IpNet>,
}
