//! Local Kubernetes API server for tests: in-memory, plain HTTP, faithful enough for the real
//! kubectl, helm and kube-rs. See `README.md` for usage and known divergences from kube-apiserver.

mod apply;
mod audit;
mod authn;
mod bootstrap;
mod builtins;
mod crd;
mod defaults;
mod delete;
mod discovery;
mod error;
mod events;
mod faults;
mod gateway_api;
mod http;
mod jsonpath;
mod kubeconfig;
mod list_watch;
mod meta;
mod objects;
mod patch;
mod proto;
pub mod rbac;
mod registry;
mod review;
mod routes;
pub mod schema;
pub mod selectors;
mod server;
mod state;
mod store;
mod strategic;
mod table;
mod tls;

pub use audit::AuditRecord;
pub use error::FieldError;
pub use gateway_api::gateway_api_crds;
pub use server::{Options, Server, ServerError, start, write_kubeconfig};
