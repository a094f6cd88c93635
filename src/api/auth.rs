//! `spec.http.auth`: how an HTTP probe gets its credentials before it runs. One way so far,
//! `oauth2ClientCredentials` (RFC 6749 section 4.4): the spec types, their validated form and
//! the validation that names the failing field. Fetching and caching tokens is the probe's
//! job (`probe::oauth2`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    http::HttpHeader,
    parse::{check_data_key, check_object_name, parse_url_at},
    spec::KeyRef,
    valid::{Reference, ReferenceKind, ValueRef},
    validate::Errors,
};

/// Most `scopes` and most `extraParams`.
pub const MAX_SCOPES: usize = 32;
pub const MAX_EXTRA_PARAMS: usize = 16;
/// Longest scope, audience, client ID or extra parameter (name or value), in bytes.
const MAX_PARAM: usize = 1024;
/// Form fields Canary writes itself: an extra parameter may not replace them.
const RESERVED: [&str; 5] = [
    "grant_type",
    "scope",
    "audience",
    "client_id",
    "client_secret",
];

/// Credentials an HTTP probe obtains before each request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.oauth2ClientCredentials)",
    "message": "spec.http.auth must set oauth2ClientCredentials"
}]))]
pub struct HttpAuth {
    /// An OAuth2 access token from the client-credentials grant, sent as `Authorization: Bearer`.
    #[serde(
        rename = "oauth2ClientCredentials",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub oauth2_client_credentials: Option<OAuth2ClientCredentials>,
}

/// The OAuth2 client-credentials grant (RFC 6749 section 4.4).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.clientID) != has(self.clientIDRef)",
    "message": "exactly one of clientID or clientIDRef must be set"
}]))]
pub struct OAuth2ClientCredentials {
    /// The token endpoint: an absolute http:// or https:// URL.
    #[serde(rename = "tokenURL")]
    #[schemars(regex(pattern = r"^https?://[^\s/$.?#].[^\s]*$"), length(max = 2048))]
    pub token_url: String,
    /// The client identifier, inline.
    #[serde(rename = "clientID", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub client_id: Option<String>,
    /// The client identifier, from a key of a Secret in the HealthCheck's namespace.
    #[serde(
        rename = "clientIDRef",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_id_ref: Option<KeyRef>,
    /// The client secret: a key of a Secret in the HealthCheck's namespace.
    pub client_secret_ref: KeyRef,
    /// Scopes asked for, sent space-separated in `scope`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(regex(pattern = r"^[!#-\[\]-~]+$"), length(max = 1024))
    )]
    pub scopes: Vec<String>,
    /// Sent as the `audience` form field (Auth0, Okta and others name the API so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub audience: Option<String>,
    /// More form fields (e.g. `resource`); may not replace the ones Canary writes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "extra_params_schema")]
    pub extra_params: BTreeMap<String, String>,
    /// How the client authenticates: `Basic` (HTTP Basic, `client_secret_basic`) or `Post`
    /// (`client_id` and `client_secret` in the form body, `client_secret_post`).
    #[serde(default)]
    pub auth_style: AuthStyle,
}

/// `extraParams`: at most 16 short values, none replacing a field Canary writes.
fn extra_params_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": MAX_EXTRA_PARAMS,
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": MAX_PARAM},
        "x-kubernetes-validations": [{
            "rule": "!['grant_type', 'scope', 'audience', 'client_id', 'client_secret'].exists(k, k in self)",
            "message": "extraParams may not set grant_type, scope, audience, client_id or client_secret"
        }]
    })
}

/// How the client credentials reach the token endpoint.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum AuthStyle {
    /// HTTP Basic with the form-urlencoded ID and secret (RFC 6749 section 2.3.1).
    #[default]
    Basic,
    /// `client_id` and `client_secret` as form fields.
    Post,
}

/// A validated client-credentials grant; the client ID and secret are still references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidOAuth2 {
    pub token_url: url::Url,
    pub client_id: ClientId,
    pub client_secret: ValueRef,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    /// Sorted by name.
    pub extra_params: Vec<(String, String)>,
    pub auth_style: AuthStyle,
}

/// Where the client ID comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientId {
    Literal(String),
    From(ValueRef),
}

impl ValidOAuth2 {
    /// The Secrets this grant reads.
    pub fn references(&self) -> impl Iterator<Item = Reference> + '_ {
        let id = match &self.client_id {
            ClientId::From(source) => Some(source.object.clone()),
            ClientId::Literal(_) => None,
        };
        id.into_iter()
            .chain(std::iter::once(self.client_secret.object.clone()))
    }
}

/// Validates `spec.http.auth`: `Some(None)` when absent, `None` when invalid (errors pushed).
pub(super) fn validate_auth(
    auth: Option<&HttpAuth>,
    headers: &[HttpHeader],
    errors: &mut Errors,
) -> Option<Option<ValidOAuth2>> {
    let Some(grant) = auth.and_then(|a| a.oauth2_client_credentials.as_ref()) else {
        if auth.is_some() {
            errors.push(
                "spec.http.auth",
                "must set oauth2ClientCredentials (the only kind of auth so far)",
            );
            return None;
        }
        return Some(None);
    };
    refuse_authorization_header(headers, errors);
    validate_grant(grant, errors).map(Some)
}

/// With `auth`, Canary writes `Authorization` itself: a header of that name would clash.
fn refuse_authorization_header(headers: &[HttpHeader], errors: &mut Errors) {
    for (i, header) in headers.iter().enumerate() {
        if header.name.eq_ignore_ascii_case("authorization") {
            errors.push(
                format!("spec.http.headers[{i}].name"),
                "Authorization is written by spec.http.auth; remove this header or the auth block",
            );
        }
    }
}

fn validate_grant(grant: &OAuth2ClientCredentials, errors: &mut Errors) -> Option<ValidOAuth2> {
    let field = "spec.http.auth.oauth2ClientCredentials";
    errors.at_most(
        &format!("{field}.tokenURL"),
        grant.token_url.len(),
        2048,
        "characters",
    );
    let token_url = errors.take(parse_url_at(&format!("{field}.tokenURL"), &grant.token_url));
    let client_id = match (&grant.client_id, &grant.client_id_ref) {
        (Some(id), None) => {
            param(errors, &format!("{field}.clientID"), id).then(|| ClientId::Literal(id.clone()))
        }
        (None, Some(key)) => {
            secret_key(errors, &format!("{field}.clientIDRef"), key).map(ClientId::From)
        }
        _ => {
            errors.push(field, "exactly one of clientID or clientIDRef must be set");
            None
        }
    };
    let client_secret = secret_key(
        errors,
        &format!("{field}.clientSecretRef"),
        &grant.client_secret_ref,
    );
    let scopes = validate_scopes(field, &grant.scopes, errors);
    let audience_ok =
        (grant.audience.as_ref()).is_none_or(|a| param(errors, &format!("{field}.audience"), a));
    let extra_params = validate_extra(field, &grant.extra_params, errors);
    audience_ok.then_some(())?;
    Some(ValidOAuth2 {
        token_url: token_url?,
        client_id: client_id?,
        client_secret: client_secret?,
        scopes: scopes?,
        audience: grant.audience.clone(),
        extra_params: extra_params?,
        auth_style: grant.auth_style,
    })
}

/// A form value: not empty, not too long, no control characters.
fn param(errors: &mut Errors, field: &str, value: &str) -> bool {
    let message = if value.is_empty() {
        "must not be empty".to_string()
    } else if value.len() > MAX_PARAM {
        format!("{} bytes exceed the limit of {MAX_PARAM}", value.len())
    } else if value.chars().any(char::is_control) {
        "must not contain control characters".to_string()
    } else {
        return true;
    };
    errors.push(field, message);
    false
}

fn secret_key(errors: &mut Errors, field: &str, key: &KeyRef) -> Option<ValueRef> {
    let name = errors.take(check_object_name(&format!("{field}.name"), &key.name));
    let data_key = errors.take(check_data_key(&format!("{field}.key"), &key.key));
    name.and(data_key).map(|()| ValueRef {
        object: Reference {
            kind: ReferenceKind::Secret,
            name: key.name.clone(),
        },
        key: key.key.clone(),
    })
}

/// Scopes as RFC 6749 section 3.3 defines a scope token: printable ASCII without space, `"`
/// or `\`.
fn validate_scopes(field: &str, scopes: &[String], errors: &mut Errors) -> Option<Vec<String>> {
    errors.at_most(
        &format!("{field}.scopes"),
        scopes.len(),
        MAX_SCOPES,
        "scopes",
    );
    let mut ok = true;
    for (i, scope) in scopes.iter().enumerate() {
        let token = |b: u8| b == b'!' || (b'#'..=b'[').contains(&b) || (b']'..=b'~').contains(&b);
        if scope.is_empty() || scope.len() > MAX_PARAM || !scope.bytes().all(token) {
            errors.push(
                format!("{field}.scopes[{i}]"),
                format!(
                    "{:?} is not a scope token (printable ASCII without spaces, '\"' or '\\', at most {MAX_PARAM} bytes)",
                    super::text::display_text(scope, 64)
                ),
            );
            ok = false;
        }
    }
    ok.then(|| scopes.to_vec())
}

fn validate_extra(
    field: &str,
    extra: &BTreeMap<String, String>,
    errors: &mut Errors,
) -> Option<Vec<(String, String)>> {
    let field = format!("{field}.extraParams");
    errors.at_most(&field, extra.len(), MAX_EXTRA_PARAMS, "parameters");
    let mut ok = extra.len() <= MAX_EXTRA_PARAMS;
    for (name, value) in extra {
        let at = format!("{field}[{name}]");
        if RESERVED.contains(&name.as_str()) {
            errors.push(
                &at,
                format!("{name:?} is written by Canary and cannot be set here"),
            );
            ok = false;
            continue;
        }
        ok &= param(errors, &at, name) && param(errors, &at, value);
    }
    ok.then(|| {
        (extra.iter())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
