//! API errors rendered as `kind: Status` objects with kube-apiserver's codes, reasons and messages.

use serde_json::{Value, json};

/// One invalid field, as in kube-apiserver's `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.http.url`.
    pub field: String,
    /// Error type as kube prints it, e.g. `Required value`.
    pub kind: String,
    /// Body after the field path, e.g. `Unsupported value: "ftp": supported values: "HTTP"`.
    pub message: String,
}

impl FieldError {
    /// A `Required value` error.
    pub fn required(field: &str) -> Self {
        Self::new(field, "Required value", "Required value".to_string())
    }

    /// An error of type `kind` whose body is `message`.
    pub fn new(field: &str, kind: &str, message: String) -> Self {
        Self {
            field: field.to_string(),
            kind: kind.to_string(),
            message,
        }
    }

    /// An `Invalid value` error naming the bad value and a detail.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        let body = format!("Invalid value: {}: {detail}", go_value(value));
        Self::new(field, "Invalid value", body)
    }

    /// The `reason` kube puts into `details.causes[].reason`.
    pub fn cause_reason(&self) -> &'static str {
        match self.kind.as_str() {
            "Required value" => "FieldValueRequired",
            "Unsupported value" => "FieldValueNotSupported",
            "Too long" => "FieldValueTooLong",
            "Too many" => "FieldValueTooMany",
            "Duplicate value" => "FieldValueDuplicate",
            "Forbidden" => "FieldValueForbidden",
            _ => "FieldValueInvalid",
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Renders a value the way Go's `%v`/`%q` does in field errors.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".to_string(),
        Value::Array(_) => "\"array\"".to_string(),
        other => other.to_string(),
    }
}

/// An error answered to the client as a `Status` object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason, e.g. `NotFound`.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details` of the Status, if any.
    pub details: Option<Value>,
}

/// Identifies a resource in error messages: `configmaps`, `healthchecks.canary.dev`.
pub fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        Self {
            code,
            reason,
            message,
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 NotFound for an object.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let msg = format!("{} \"{name}\" not found", qualified(group, plural));
        Self::new(404, "NotFound", msg)
            .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 404 for a path that serves nothing.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let msg = format!("{} \"{name}\" already exists", qualified(group, plural));
        Self::new(409, "AlreadyExists", msg)
            .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 409 Conflict on a stale resourceVersion or failed precondition.
    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let msg = format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            qualified(group, plural)
        );
        Self::new(409, "Conflict", msg)
            .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 409 Conflict from server-side apply, listing (manager, apiVersion, field) conflicts.
    pub fn apply_conflict(conflicts: &[(String, String, String)]) -> Self {
        let n = conflicts.len();
        let plural = if n == 1 { "conflict" } else { "conflicts" };
        let list: Vec<String> = conflicts
            .iter()
            .map(|(m, v, f)| format!("conflict with \"{m}\" using {v}: {f}"))
            .collect();
        let msg = format!("Apply failed with {n} {plural}: {}", list.join("\n"));
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, v, f)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {v}"), "field": f})
            })
            .collect();
        Self::new(409, "Conflict", msg).with_details(json!({"causes": causes}))
    }

    /// 422 Invalid listing field errors like kube-apiserver.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let body = match errors {
            [one] => one.to_string(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.cause_reason(), "message": e.message, "field": e.field}))
            .collect();
        let msg = format!("{qualified_kind} \"{name}\" is invalid: {body}");
        let mut details = json!({"name": name, "group": group, "kind": kind, "causes": causes});
        if let Some(map) = details.as_object_mut() {
            // Go's `omitempty`.
            map.retain(|_, v| v != "");
        }
        Self::new(422, "Invalid", msg).with_details(details)
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into())
    }

    /// 500 for an error kube does not turn into a `Status` (`ErrorToAPIStatus`'s default
    /// branch): no reason, the error's text as the message.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "", message.into())
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
        )
    }

    /// 410 Gone with reason Expired (too old resourceVersion).
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".into())
    }

    /// 403 Forbidden as kube's authorization filter words it: `secrets "x" is forbidden: User
    /// "u" cannot get resource "secrets" in API group "" in the namespace "a"` (`: <reason>`
    /// appended when the authorizer gave one), details naming the object.
    pub fn forbidden(
        user: &crate::rbac::UserInfo,
        attrs: &crate::rbac::Attributes,
        reason: &str,
    ) -> Self {
        let who = &user.name;
        let verb = &attrs.verb;
        let what = if attrs.resource_request {
            let resource = match attrs.subresource.as_str() {
                "" => attrs.resource.clone(),
                sub => format!("{}/{sub}", attrs.resource),
            };
            let group = &attrs.api_group;
            let scope = match attrs.namespace.as_str() {
                "" => "at the cluster scope".to_string(),
                ns => format!("in the namespace \"{ns}\""),
            };
            format!(
                "User \"{who}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
            )
        } else {
            format!("User \"{who}\" cannot {verb} path \"{}\"", attrs.path)
        };
        let why = match reason {
            "" => what,
            reason => format!("{what}: {reason}"),
        };
        let resource = qualified(&attrs.api_group, &attrs.resource);
        let message = match (attrs.resource.as_str(), attrs.name.as_str()) {
            ("", _) => format!("forbidden: {why}"),
            (_, "") => format!("{resource} is forbidden: {why}"),
            (_, name) => format!("{resource} \"{name}\" is forbidden: {why}"),
        };
        let mut details = serde_json::Map::new();
        for (key, value) in [
            ("name", &attrs.name),
            ("group", &attrs.api_group),
            ("kind", &attrs.resource),
        ] {
            if !value.is_empty() {
                details.insert(key.into(), json!(value));
            }
        }
        Self::new(403, "Forbidden", message).with_details(Value::Object(details))
    }

    /// 500 InternalError.
    pub fn internal_error(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message.into())
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json ({content_type})"
            ),
        )
    }

    /// An error injected by a fault rule, with a reason matching its code.
    pub fn injected(code: u16) -> Self {
        let reason = match code {
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        Self::new(code, reason, format!("injected fault: {code}"))
            .with_details(json!({"retryAfterSeconds": 1}))
    }

    /// The `Status` object sent to the client.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if self.reason.is_empty() {
            // StatusReasonUnknown is "" and omitted.
            status.as_object_mut().map(|s| s.remove("reason"));
        }
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_message_matches_kube() {
        let err = ApiError::invalid(
            "canary.dev",
            "HealthCheck",
            "x",
            &[FieldError::required("spec.http.url")],
        );
        assert_eq!(
            err.message,
            "HealthCheck.canary.dev \"x\" is invalid: spec.http.url: Required value"
        );
        assert_eq!(
            err.to_status()["details"]["causes"][0]["reason"],
            "FieldValueRequired"
        );
    }

    #[test]
    fn not_found_names_qualified_resource() {
        let err = ApiError::not_found("canary.dev", "healthchecks", "x");
        assert_eq!(err.message, "healthchecks.canary.dev \"x\" not found");
        assert_eq!(err.to_status()["code"], 404);
    }
}
