use serde_json::json;

use crate::api::{ProbeKind, Reference, ReferenceKind, ValidOAuth2, validate};

fn spec(grant: serde_json::Value) -> crate::api::HealthCheckSpec {
    serde_json::from_value(json!({"http": {
        "url": "https://api.example/health",
        "auth": {"oauth2ClientCredentials": grant},
    }}))
    .unwrap()
}

fn grant() -> serde_json::Value {
    json!({
        "tokenURL": "https://idp.example/token",
        "clientID": "probe",
        "clientSecretRef": {"name": "idp", "key": "secret"},
        "scopes": ["read:health"],
        "extraParams": {"resource": "urn:api"},
    })
}

fn valid(grant: serde_json::Value) -> ValidOAuth2 {
    let valid = validate(&spec(grant)).unwrap_or_else(|e| panic!("{e:?}"));
    let ProbeKind::Http(http) = valid.probe else {
        panic!("an http probe")
    };
    *http.auth.expect("auth")
}

fn fields(grant: serde_json::Value) -> Vec<String> {
    let errors = validate(&spec(grant)).expect_err("invalid");
    errors.into_iter().map(|e| e.to_string()).collect()
}

#[test]
fn a_grant_validates_with_basic_auth_by_default() {
    let grant = valid(grant());
    assert_eq!(grant.auth_style, crate::api::AuthStyle::Basic);
    assert_eq!(grant.token_url.as_str(), "https://idp.example/token");
    assert_eq!(
        grant.extra_params,
        vec![("resource".into(), "urn:api".into())]
    );
}

#[test]
fn the_client_secret_and_id_references_are_read_by_the_operator() {
    let mut with_ref = grant();
    with_ref["clientID"] = serde_json::Value::Null;
    with_ref["clientIDRef"] = json!({"name": "idp-id", "key": "id"});
    let valid = validate(&spec(with_ref)).unwrap();
    let secret = |name: &str| Reference {
        kind: ReferenceKind::Secret,
        name: name.into(),
    };
    assert_eq!(valid.references(), vec![secret("idp"), secret("idp-id")]);
}

#[test]
fn every_problem_names_its_field() {
    let bad = json!({
        "tokenURL": "ftp://idp.example/token",
        "clientID": "probe",
        "clientIDRef": {"name": "idp", "key": "id"},
        "clientSecretRef": {"name": "Bad_Name", "key": "a/b"},
        "scopes": ["two words", ""],
        "audience": "",
        "extraParams": {"grant_type": "password", "x": "a\nb"},
    });
    let errors = fields(bad);
    let f = "spec.http.auth.oauth2ClientCredentials";
    for expected in [
        format!("{f}.tokenURL: scheme"),
        format!("{f}: exactly one of clientID or clientIDRef"),
        format!("{f}.clientSecretRef.name:"),
        format!("{f}.clientSecretRef.key:"),
        format!("{f}.scopes[0]:"),
        format!("{f}.scopes[1]:"),
        format!("{f}.audience: must not be empty"),
        format!("{f}.extraParams[grant_type]: \"grant_type\" is written by Canary"),
        format!("{f}.extraParams[x]: must not contain control characters"),
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(&expected)),
            "{expected} missing from {errors:#?}"
        );
    }
}

#[test]
fn credentials_in_the_token_url_and_an_authorization_header_are_refused() {
    let mut grant = grant();
    grant["tokenURL"] = json!("https://id:pw@idp.example/token");
    let errors = fields(grant);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("tokenURL: credentials in the URL")),
        "{errors:?}"
    );
    let mut both: crate::api::HealthCheckSpec = spec(self::grant());
    both.http.as_mut().unwrap().headers = vec![crate::api::HttpHeader {
        name: "authorization".into(),
        value: Some("Bearer x".into()),
        value_from: None,
    }];
    let errors: Vec<String> = (validate(&both).unwrap_err().iter())
        .map(ToString::to_string)
        .collect();
    assert!(
        errors.iter().any(|e| e
            .starts_with("spec.http.headers[0].name: Authorization is written by spec.http.auth")),
        "{errors:?}"
    );
}

#[test]
fn an_empty_auth_block_is_refused() {
    let spec: crate::api::HealthCheckSpec = serde_json::from_value(json!({"http": {
        "url": "https://api.example/health", "auth": {},
    }}))
    .unwrap();
    let errors = validate(&spec).unwrap_err();
    assert_eq!(errors[0].field, "spec.http.auth");
}
