//! Flags of `canary discover` and `canary crd`.

use std::path::PathBuf;

use clap::{ArgAction, Args};

use super::{PolicyArgs, ReferenceArgs};
use crate::{api::CRD_NAMES, discover::Format, discovery::DEFAULT_CLUSTER_DOMAIN};

/// Flags of `canary discover`.
#[derive(Debug, Args)]
#[command(next_display_order = None)]
pub struct DiscoverArgs {
    /// Treat every route as accepted by its parent Gateways (offline, route status is
    /// unknown); false: only parents with `Accepted=True` in the route's status.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub assume_accepted: bool,
    /// Completes Service names: `<name>.<namespace>.svc.<cluster domain>`.
    #[arg(long, env = "CANARY_CLUSTER_DOMAIN", default_value = DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// Manifests (files or folders): Ingress, IngressClass, Service, Namespace, Gateway,
    /// HTTPRoute, GRPCRoute and CheckDiscovery documents; other kinds are ignored.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Output: a table of checks and skips, or one YAML document per HealthCheck (skips on
    /// stderr). With --run: the `canary check` report (table, or the checks with status).
    #[arg(short, long, default_value = "table")]
    pub output: Format,
    /// Run the generated checks once, as `canary check` does (exit 0 all pass, 1 any fails,
    /// 2 invalid input).
    #[arg(long)]
    pub run: bool,
    #[command(flatten)]
    pub references: ReferenceArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Flags of `canary crd`.
#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Which CRD: each is committed as crds/NAME.yaml.
    #[arg(default_value = CRD_NAMES[0], value_parser = clap::builder::PossibleValuesParser::new(CRD_NAMES))]
    pub name: String,
}
