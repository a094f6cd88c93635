//! What the page and the API may show of a check's spec and details.

use serde_json::json;

use super::*;
use crate::runner::history::Window;

fn spec(value: serde_json::Value) -> HealthCheckSpec {
    serde_json::from_value(value).unwrap()
}

/// The finding (issue 23, 7): inline header values and gRPC metadata reached the page and the
/// JSON spec; Secret-sourced ones never did.
#[test]
fn inline_header_and_metadata_values_are_shown_as_set() {
    let reference = json!({"secretKeyRef": {"name": "api-probe", "key": "token"}});
    let http = spec(json!({"http": {
        "url": "https://user:pw@api.example/healthz?token=q",
        "headers": [
            {"name": "Authorization", "value": "Bearer s3cret"},
            {"name": "X-From-Secret", "valueFrom": reference},
        ],
    }}));
    let grpc = spec(json!({"grpc": {
        "target": "api:50051",
        "metadata": [{"name": "x-api-key", "value": "m3tadata"}],
    }}));
    let (http, grpc) = (shown(&http), shown(&grpc));
    let text = format!("{}{}", json!(http), json!(grpc));
    for secret in ["s3cret", "m3tadata", "pw@", "token=q"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let headers = &http.http.as_ref().unwrap().headers;
    assert_eq!(headers[0].value.as_deref(), Some(SET));
    assert_eq!(
        (headers[1].value.as_deref(), headers[1].value_from.is_some()),
        (None, true)
    );
    let metadata = &grpc.grpc.as_ref().unwrap().metadata;
    assert_eq!(metadata[0].value.as_deref(), Some(SET));
    assert_eq!(headers[0].name, "Authorization", "names stay");
}

fn detail() -> Detail {
    let window = Window {
        runs: 0,
        successes: 0,
        uptime: None,
        average_latency_ms: None,
    };
    let last_result = json!({
        "success": false, "reason": "UnexpectedStatus", "message": "grpc said no",
        "duration": "0.010s", "grpc": {"statusCode": 14, "status": "UNAVAILABLE"},
    });
    let tls = json!({"serialNumber": "0a:1b", "subject": "CN=api", "verified": true});
    Detail {
        check: Check {
            key: CheckKey {
                namespace: "shop".into(),
                name: "api".into(),
            },
            group: "shop".into(),
            kind: "grpc",
            target: None,
            state: CheckState::Failing,
            reason: None,
            message: None,
            message_reason: None,
            last_run: None,
            results: Vec::new(),
            uptime: [window; 3],
            tls_not_after: None,
            since: 0,
            stored: false,
            prometheus: None,
            locations: Vec::new(),
            degraded: false,
        },
        transitions: Vec::new(),
        hours: Vec::new(),
        last_result: Some(serde_json::from_value(last_result).unwrap()),
        tls: Some(serde_json::from_value(tls).unwrap()),
        spec: Some(spec(json!({"grpc": {"target": "api:50051"}}))),
        probed_by: Some("canary-7f9c-r2".into()),
        last_ping: Some((
            "2026-01-01T00:00:00Z".parse().unwrap(),
            serde_json::from_value(
                json!({"result": "fail", "exitCode": 3, "message": "dump of db.internal failed", "runId": "job-42"}),
            )
            .unwrap(),
        )),
        chart: None,
    }
}

/// The finding (issue 23, 9): `--ui-redact` left the certificate serial, `probedBy` and the
/// gRPC status name on the page and in the API.
#[test]
fn redaction_hides_the_serial_probed_by_and_the_grpc_status() {
    let shown = json!(super::super::api::detail(&detail()));
    for kept in [
        "0a:1b",
        "canary-7f9c-r2",
        "UNAVAILABLE",
        "db.internal",
        "job-42",
    ] {
        assert!(shown.to_string().contains(kept), "unredacted shows {kept}");
    }
    let hidden = redacted(detail());
    let text = super::super::api::detail(&hidden).to_string();
    for leak in [
        "0a:1b",
        "canary-7f9c-r2",
        "UNAVAILABLE",
        "CN=api",
        "grpc said no",
        "db.internal",
        "job-42",
    ] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    let ctx = super::super::PageContext {
        now: 0,
        standby: false,
        redacted: true,
        forwarding: false,
        peers: Vec::new(),
    };
    let page = super::super::page::detail(&hidden, &ctx).into_string();
    for leak in [
        "canary-7f9c-r2",
        "UNAVAILABLE",
        "0a:1b",
        "db.internal",
        "job-42",
    ] {
        assert!(!page.contains(leak), "{leak} on the page");
    }
    assert!(
        page.contains("Last ping") && page.contains("exit code"),
        "{page}"
    );
}

fn status(ready: &str, reason: &str, message: &str, last: serde_json::Value) -> HealthCheckStatus {
    serde_json::from_value(json!({
        "conditions": [{
            "type": "Ready", "status": ready, "reason": reason, "message": message,
            "lastTransitionTime": "2026-12-01T00:00:00Z",
        }],
        "lastResult": last,
    }))
    .unwrap()
}

/// Issue 24: a pending card hid the real reason behind "Pending:", and a check in a
/// maintenance window showed its last failure as if it counted.
#[test]
fn a_card_says_the_reason_its_message_belongs_to() {
    let denied = json!({
        "success": false, "reason": "TargetDenied", "duration": "0.000s",
        "message": "169.254.169.254 is in 169.254.0.0/16, which the operator's deny list forbids",
    });
    let pending = status("Unknown", "Pending", "waiting for 3 failures", denied);
    let (reason, message) = said(&pending, CheckState::Pending);
    assert_eq!(reason, Some(Reason::TargetDenied));
    assert!(message.unwrap().contains("deny list"));
    let refused = json!({
        "success": false, "reason": "ConnectionRefused", "duration": "0.001s",
        "message": "connect to 127.0.0.1:9 refused",
    });
    let window =
        "in a maintenance window, failing (ConnectionRefused): connect to 127.0.0.1:9 refused";
    let maintenance = status("Unknown", "Maintenance", window, refused);
    let (reason, message) = said(&maintenance, CheckState::Maintenance);
    assert_eq!(
        (reason, message.as_deref()),
        (Some(Reason::Maintenance), Some(window))
    );
    let never = status(
        "Unknown",
        "Pending",
        "not probed yet",
        serde_json::Value::Null,
    );
    let (reason, message) = said(&never, CheckState::Pending);
    assert_eq!(
        (reason, message.as_deref()),
        (Some(Reason::Pending), Some("not probed yet"))
    );
}
