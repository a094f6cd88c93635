//! Locations: one check probed from several clusters or zones and judged by quorum. A
//! HealthCheck with `spec.locations` lives in a hub cluster; the spokes whose `--location` it
//! lists probe it and each writes one [`CheckReport`] back into the hub; the hub's owner of the
//! check aggregates the reports into its status. Such a check is never probed as a local one.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::FieldError;

/// Most locations one check may name.
pub const MAX_LOCATIONS: usize = 16;
/// Longest location name (a DNS label, so it fits in a CheckReport's name and a label value).
pub const MAX_LOCATION_CHARS: usize = 63;
/// Condition set when some locations fail but fewer than `minFailing`.
pub const DEGRADED: &str = "Degraded";

/// Where a check is probed from, and how many failing locations make it fail.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.names.all(n, self.names.exists_one(m, m == n))",
        "message": "spec.locations.names must not repeat a location"
    },
    {
        "rule": "!has(self.minFailing) || self.minFailing <= size(self.names)",
        "message": "spec.locations.minFailing must not exceed the number of locations"
    }
]))]
pub struct Locations {
    /// The `--location` names of the Canary deployments that probe this check (DNS labels).
    #[schemars(
        length(min = 1, max = 16),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub names: Vec<String>,
    /// Failing locations that make the check fail (default: a majority of `names`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub min_failing: Option<i32>,
}

/// Locations, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidLocations {
    /// In the order written, unique.
    pub names: Vec<String>,
    /// At least 1, at most `names.len()`.
    pub min_failing: usize,
}

impl Locations {
    /// Checks every rule the schema states, naming the field of each error.
    pub fn validate(&self) -> Result<ValidLocations, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut error = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.into(),
                message,
            })
        };
        if self.names.is_empty() || self.names.len() > MAX_LOCATIONS {
            error(
                "spec.locations.names",
                format!(
                    "must name 1 to {MAX_LOCATIONS} locations, not {}",
                    self.names.len()
                ),
            );
        }
        for (i, name) in self.names.iter().enumerate() {
            if !is_location_name(name) {
                error(
                    &format!("spec.locations.names[{i}]"),
                    format!(
                        "{name:?} is not a location name (a DNS label: a-z, 0-9 and '-', at most {MAX_LOCATION_CHARS} characters)"
                    ),
                );
            } else if self.names[..i].contains(name) {
                error(
                    &format!("spec.locations.names[{i}]"),
                    format!("{name:?} is named twice"),
                );
            }
        }
        let min_failing = match self.min_failing {
            None => self.names.len() / 2 + 1,
            Some(n) if n >= 1 && (n as usize) <= self.names.len() => n as usize,
            Some(n) => {
                error(
                    "spec.locations.minFailing",
                    format!(
                        "{n} must be between 1 and the number of locations ({})",
                        self.names.len()
                    ),
                );
                0
            }
        };
        if errors.is_empty() {
            Ok(ValidLocations {
                names: self.names.clone(),
                min_failing,
            })
        } else {
            Err(errors)
        }
    }
}

/// Whether `name` can be a location: a DNS label.
pub fn is_location_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LOCATION_CHARS
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// One location's verdict, as the hub aggregated it into the HealthCheck's status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocationStatus {
    /// The location, as named in `spec.locations.names`.
    pub name: String,
    /// `True`, `False` or `Unknown` (no report yet, or stale).
    pub ready: String,
    /// The reason of the location's last report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the location last ran the check, as its report says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<Time>,
    /// The hub saw no change of this location's report for max(3 intervals, 2 heartbeats).
    #[serde(default)]
    pub stale: bool,
}

/// One location's result for one check, written into the hub by a spoke of that location.
/// Named `<check>.<location>`, owned by the HealthCheck (so deleting the check collects it).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "canary.dev",
    version = "v1alpha1",
    kind = "CheckReport",
    plural = "checkreports",
    shortname = "chr",
    category = "canary",
    namespaced,
    status = "CheckReportStatus",
    derive = "PartialEq",
    doc = "CheckReport is one location's result for one HealthCheck with spec.locations, written by a spoke into the hub.",
    printcolumn = r#"{"name": "Check", "type": "string", "jsonPath": ".spec.check"}"#,
    printcolumn = r#"{"name": "Location", "type": "string", "jsonPath": ".spec.location"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.ready"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.reason"}"#,
    printcolumn = r#"{"name": "Last-Run", "type": "date", "jsonPath": ".status.lastRunTime"}"#,
    printcolumn = r#"{"name": "Probed-By", "type": "string", "priority": 1, "jsonPath": ".status.probedBy"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CheckReportSpec {
    /// The HealthCheck's name, in the report's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub check: String,
    /// The location that probed it (the spoke's `--location`).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub location: String,
    /// How often the spoke rewrites the report when nothing changed (seconds); the hub calls
    /// the location stale after max(3 intervals, 2 x this) without a change.
    #[schemars(range(min = 1, max = 86400))]
    pub heartbeat_seconds: i64,
}

/// The location's verdict, with the check's own thresholds applied by the spoke.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckReportStatus {
    /// `True`, `False` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// A reason of the closed set (`kubectl explain healthcheck.status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<Time>,
    /// Duration of the last probe (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default)]
    pub consecutive_failures: i64,
    /// The spoke replica that probed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probed_by: Option<String>,
}

/// The name of the report of `check` from `location`.
pub fn report_name(check: &str, location: &str) -> String {
    format!("{check}.{location}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locations(names: &[&str], min_failing: Option<i32>) -> Locations {
        Locations {
            names: names.iter().map(|n| n.to_string()).collect(),
            min_failing,
        }
    }

    #[test]
    fn the_default_quorum_is_a_majority() {
        let majority = |n: &[&str]| locations(n, None).validate().map(|v| v.min_failing);
        assert_eq!(majority(&["a"]), Ok(1));
        assert_eq!(majority(&["a", "b"]), Ok(2));
        assert_eq!(majority(&["a", "b", "c"]), Ok(2));
        assert_eq!(majority(&["a", "b", "c", "d"]), Ok(3));
    }

    #[test]
    fn bad_locations_name_their_field() {
        let fields = |l: Locations| -> Vec<String> {
            l.validate()
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(locations(&[], None)), ["spec.locations.names"]);
        assert_eq!(
            fields(locations(&["a", "a"], None)),
            ["spec.locations.names[1]"]
        );
        assert_eq!(
            fields(locations(&["EU"], None)),
            ["spec.locations.names[0]"]
        );
        assert_eq!(
            fields(locations(&["a", "b"], Some(3))),
            ["spec.locations.minFailing"]
        );
        assert_eq!(
            fields(locations(&["a"], Some(0))),
            ["spec.locations.minFailing"]
        );
    }

    #[test]
    fn location_names_are_dns_labels() {
        assert!(is_location_name("eu-west-1"));
        for bad in ["", "-a", "a-", "a.b", "A", &"a".repeat(64)] {
            assert!(!is_location_name(bad), "{bad:?}");
        }
    }
}
