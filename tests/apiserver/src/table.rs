//! `meta.k8s.io/v1` Table output for kubectl.

use crate::state::Target;
use serde_json::Value;

/// Converts an object or list into a Table.
pub fn to_table(_t: &Target, v: &Value) -> Value {
    v.clone()
}
