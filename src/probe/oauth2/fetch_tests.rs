use std::sync::Arc;

use super::*;
use crate::{
    api::{ClientId, Reference, ReferenceKind, TlsVersion, ValidOAuth2, ValidTlsPolicy, ValueRef},
    probe::tls::Trust,
};

const SECRET: &str = "s3cr:et+/ =x";

fn client(style: AuthStyle) -> OAuth2Client {
    let grant = ValidOAuth2 {
        token_url: url::Url::parse("https://idp.example/oauth/token?tenant=a").unwrap(),
        client_id: ClientId::Literal("probe id".into()),
        client_secret: ValueRef {
            object: Reference {
                kind: ReferenceKind::Secret,
                name: "idp".into(),
            },
            key: "secret".into(),
        },
        scopes: vec!["read:health".into(), "openid".into()],
        audience: Some("https://api.example".into()),
        extra_params: vec![("resource".into(), "urn:api".into())],
        auth_style: style,
    };
    struct Refs;
    impl crate::probe::ReferenceSource for Refs {
        fn read(&self, _: &ValueRef) -> Result<Vec<u8>, crate::probe::ReferenceError> {
            Ok(format!("{SECRET}\n").into_bytes())
        }
    }
    let policy = ValidTlsPolicy {
        verify: true,
        server_name: None,
        min_remaining_validity: Duration::ZERO,
        min_remaining_lifetime_percent: 0,
        min_version: TlsVersion::V1_2,
        ca_bundle: None,
        expected_dns_names: Vec::new(),
        expected_issuer: None,
        pins: Vec::new(),
        client_certificate: None,
        expect_served_certificate: None,
    };
    OAuth2Client::build(&grant, &policy, Trust::system(), &Refs).unwrap()
}

fn form(request: &Request<Full<Bytes>>) -> Vec<(String, String)> {
    let body = futures::executor::block_on(request.body().clone().collect())
        .unwrap()
        .to_bytes();
    form_urlencoded::parse(&body).into_owned().collect()
}

#[test]
fn basic_style_sends_form_encoded_credentials_in_the_header_only() {
    let client = client(AuthStyle::Basic);
    let url = client.grant.token_url.clone();
    let request = request(&client, &url, "canary/test").unwrap();
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.uri(), "/oauth/token?tenant=a");
    let auth = request.headers()[header::AUTHORIZATION].clone();
    assert!(auth.is_sensitive());
    let encoded = auth.to_str().unwrap().strip_prefix("Basic ").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "probe+id:s3cr%3Aet%2B%2F+%3Dx"
    );
    let fields = form(&request);
    let expected: Vec<(String, String)> = [
        ("grant_type", "client_credentials"),
        ("scope", "read:health openid"),
        ("audience", "https://api.example"),
        ("resource", "urn:api"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(fields, expected);
    assert_eq!(
        request.headers()[header::CONTENT_TYPE],
        "application/x-www-form-urlencoded"
    );
}

#[test]
fn post_style_sends_the_credentials_in_the_form() {
    let client = client(AuthStyle::Post);
    let url = client.grant.token_url.clone();
    let request = request(&client, &url, "canary/test").unwrap();
    assert!(request.headers().get(header::AUTHORIZATION).is_none());
    let fields = form(&request);
    assert!(fields.contains(&("client_id".into(), "probe id".into())));
    assert!(fields.contains(&("client_secret".into(), SECRET.into())));
}

fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status: StatusCode::from_u16(status).unwrap(),
        location: None,
        body: body.as_bytes().to_vec(),
    }
}

fn judged(status: u16, body: &str) -> Result<Token, Failure> {
    let client = client(AuthStyle::Basic);
    let url = client.grant.token_url.clone();
    judge(&client, &url, &answer(status, body))
}

#[test]
fn a_bearer_token_is_taken_with_its_lifetime() {
    let token = judged(
        200,
        r#"{"access_token":"tok","token_type":"bearer","expires_in":"3600"}"#,
    )
    .unwrap_or_else(|f| panic!("{}", f.message));
    assert_eq!(token.authorization, "Bearer tok");
    assert!(token.authorization.is_sensitive());
    assert_eq!(token.lifetime, Some(Duration::from_secs(3600)));
    let untimed =
        judged(200, r#"{"access_token":"tok"}"#).unwrap_or_else(|f| panic!("{}", f.message));
    assert_eq!(untimed.lifetime, None);
}

#[test]
fn errors_name_the_status_and_error_without_echoing_credentials() {
    let basic = basic("probe id", SECRET);
    let echoed = basic.to_str().unwrap().trim_start_matches("Basic ");
    let body = format!(
        r#"{{"error":"invalid_client","error_description":"bad secret {SECRET} in {echoed}"}}"#
    );
    let failure = judged(401, &body).err().unwrap();
    assert_eq!(failure.reason, Reason::AuthFailed);
    let message = &failure.message;
    assert!(
        message.starts_with(
            "token endpoint https://idp.example/oauth/token: answered 401: invalid_client"
        ),
        "{message}"
    );
    assert!(
        !message.contains(SECRET) && !message.contains(echoed),
        "{message}"
    );
    assert!(
        !message.contains("tenant=a"),
        "the query is not shown: {message}"
    );
    let long = judged(
        400,
        &format!(
            r#"{{"error":"x","error_description":"{}"}}"#,
            "d".repeat(5000)
        ),
    )
    .err()
    .unwrap();
    assert!(long.message.len() < 400, "{}", long.message);
}

#[test]
fn other_token_types_and_bad_bodies_fail_without_showing_the_token() {
    for (body, words) in [
        (
            r#"{"access_token":"tok123","token_type":"mac"}"#,
            "\"mac\", not Bearer",
        ),
        (r#"{"token_type":"bearer"}"#, "without an access_token"),
        ("<html>", "not a JSON token response"),
        (
            r#"{"access_token":"tok123\n"}"#,
            "characters a header cannot carry",
        ),
    ] {
        let failure = judged(200, body).err().unwrap();
        assert_eq!(failure.reason, Reason::AuthFailed);
        assert!(failure.message.contains(words), "{}", failure.message);
        assert!(!failure.message.contains("tok123"), "{}", failure.message);
    }
}

#[test]
fn only_307_and_308_to_the_same_origin_are_followed() {
    let first = url::Url::parse("https://idp.example/token").unwrap();
    let next = |status: u16, location: &str| {
        next_hop(
            &first,
            StatusCode::from_u16(status).unwrap(),
            location,
            &first,
        )
    };
    assert_eq!(
        next(307, "/v2/token").unwrap().as_str(),
        "https://idp.example/v2/token"
    );
    assert!(next(308, "https://idp.example/t").is_ok());
    let other = next(307, "https://evil.example/token").err().unwrap();
    assert!(
        other.message.contains("another origin"),
        "{}",
        other.message
    );
    let get = next(302, "/v2/token").err().unwrap();
    assert!(get.message.contains("into a GET"), "{}", get.message);
}

#[test]
fn lifetimes_parse_numbers_and_numeric_strings() {
    use serde_json::json;
    assert_eq!(lifetime(&json!(60)), Some(Duration::from_secs(60)));
    assert_eq!(lifetime(&json!(1.5)), Some(Duration::from_millis(1500)));
    assert_eq!(lifetime(&json!(" 10 ")), Some(Duration::from_secs(10)));
    assert_eq!(lifetime(&json!(-1)), None);
    assert_eq!(lifetime(&json!("soon")), None);
    let _ = Arc::new(());
}
