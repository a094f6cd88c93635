//! The `HealthCheck` API (`canary.dev/v1alpha1`): spec and status types, the closed set of
//! reasons, and semantic validation. Knows nothing of the API server.

mod parse;
mod reason;
mod references;
mod spec;
mod status;
pub mod validate;

pub use reason::Reason;
pub use references::{Reference, ReferenceKind, references};
pub use spec::*;
pub use status::*;

use kube::CustomResourceExt;

/// The CRD as YAML, exactly as committed in `crds/`.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(&HealthCheck::crd())
}
