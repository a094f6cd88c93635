//! gRPC health probes against a reference server (tonic with tonic-health): serving states,
//! unknown services, a server without the health service, a slow handler and the deadline,
//! TLS and mutual TLS, and plaintext/TLS mismatches both ways.

use std::time::Duration;

use canary_operator::{api::Reason, probe::Outcome};
use canary_test_harness::{
    refs::{MapRefs, probe_once, spec},
    targets::{
        Ca, days,
        grpc::{GrpcServer, GrpcTls, Offer},
        h2::H2Server,
    },
};
use serde_json::{Value, json};

fn assert_reason(outcome: &Outcome, reason: Reason) {
    assert_eq!(outcome.reason, reason, "message: {}", outcome.message);
}

/// Probes `server` with `grpc` settings (target filled in), a 3s timeout and `extra` spec.
async fn probe_grpc(server: &GrpcServer, grpc: Value, extra: Value, refs: &MapRefs) -> Outcome {
    let mut grpc = grpc;
    grpc["target"] = json!(format!("localhost:{}", server.port()));
    let mut spec_json = json!({"timeout": "3s", "grpc": grpc});
    if let Value::Object(extra) = extra {
        spec_json.as_object_mut().unwrap().extend(extra);
    }
    probe_once(&spec(spec_json), refs).await
}

async fn plain(grpc: Value, server: &GrpcServer) -> Outcome {
    probe_grpc(server, grpc, json!({}), &MapRefs::default()).await
}

#[tokio::test]
async fn serving_not_serving_and_unknown_services() {
    let server = GrpcServer::start(Offer::Health, None).await;
    let whole = plain(json!({}), &server).await;
    assert_reason(&whole, Reason::Succeeded);
    let facts = whole.grpc().cloned().expect("gRPC facts");
    assert_eq!(
        (facts.status_code, facts.serving_status),
        (Some(0), Some(1))
    );
    assert!(whole.message.contains("SERVING"), "{}", whole.message);
    assert!(whole.phases.connect.is_some() && whole.phases.first_byte.is_some());
    assert!(whole.tls().is_none(), "no TLS facts in cleartext");

    assert_reason(
        &plain(json!({"service": "payments"}), &server).await,
        Reason::Succeeded,
    );
    let billing = plain(json!({"service": "billing"}), &server).await;
    assert_reason(&billing, Reason::NotServing);
    assert!(
        billing.message.contains("NOT_SERVING") && billing.message.contains("billing"),
        "{}",
        billing.message
    );
    assert_eq!(billing.grpc().unwrap().serving_status, Some(2));
    let drained = json!({"service": "billing", "expect": {"servingStatus": ["NOT_SERVING"]}});
    assert_reason(&plain(drained, &server).await, Reason::Succeeded);

    let unknown = plain(json!({"service": "shipping"}), &server).await;
    assert_reason(&unknown, Reason::ServiceUnknown);
    assert!(
        unknown.message.contains("\"shipping\"") && unknown.message.contains("NOT_FOUND"),
        "{}",
        unknown.message
    );
    let facts = unknown.grpc().unwrap();
    assert_eq!((facts.status_code, facts.serving_status), (Some(5), None));
}

#[tokio::test]
async fn a_server_without_the_health_service_is_named_so() {
    let server = GrpcServer::start(Offer::NoHealth, None).await;
    let outcome = plain(json!({}), &server).await;
    assert_reason(&outcome, Reason::HealthServiceMissing);
    assert!(
        outcome
            .message
            .contains("does not implement grpc.health.v1"),
        "{}",
        outcome.message
    );
    assert_eq!(outcome.grpc().unwrap().status_code, Some(12));
}

#[tokio::test]
async fn a_slow_handler_meets_the_deadline_sent_as_grpc_timeout() {
    let server = GrpcServer::start(Offer::Slow(Duration::from_secs(5)), None).await;
    let started = std::time::Instant::now();
    let outcome = probe_grpc(
        &server,
        json!({}),
        json!({"timeout": "400ms"}),
        &MapRefs::default(),
    )
    .await;
    // The server honours grpc-timeout (DEADLINE_EXCEEDED) or the probe's own deadline fires:
    // either way a Timeout, well before the handler's 5 seconds.
    assert_reason(&outcome, Reason::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let quick = GrpcServer::start(Offer::Slow(Duration::from_millis(50)), None).await;
    assert_reason(&plain(json!({}), &quick).await, Reason::Succeeded);
}

/// A server certificate for localhost and a client CA, trusted through ConfigMap `ca`.
struct Pki {
    ca: Ca,
    server: GrpcTls,
}

fn pki(client_ca: bool) -> Pki {
    let ca = Ca::root("gRPC Test CA");
    let leaf = ca.leaf(&["localhost"], days(-1), days(90));
    let server = GrpcTls {
        cert_pem: leaf.pem.clone(),
        key_pem: leaf.key_pem.clone(),
        client_ca_pem: client_ca.then(|| ca.pem.clone()),
    };
    Pki { ca, server }
}

impl Pki {
    fn refs(&self) -> MapRefs {
        MapRefs::default().config_map("ca", "ca.crt", self.ca.pem.clone())
    }

    fn policy(&self, extra: Value) -> Value {
        let mut policy = json!({"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}});
        if let Value::Object(extra) = extra {
            policy.as_object_mut().unwrap().extend(extra);
        }
        json!({"tlsPolicy": policy})
    }
}

#[tokio::test]
async fn tls_reports_certificate_facts_and_mutual_tls_needs_the_client_certificate() {
    let tls = pki(false);
    let server = GrpcServer::start(Offer::Health, Some(tls.server.clone())).await;
    let outcome = probe_grpc(
        &server,
        json!({"tls": true, "service": "payments"}),
        tls.policy(json!({})),
        &tls.refs(),
    )
    .await;
    assert_reason(&outcome, Reason::Succeeded);
    let facts = outcome.tls().expect("TLS facts");
    assert!(facts.verified && facts.version.is_some());
    assert!(outcome.phases.tls.is_some());

    let mtls = pki(true);
    let server = GrpcServer::start(Offer::Health, Some(mtls.server.clone())).await;
    let without = probe_grpc(
        &server,
        json!({"tls": true}),
        mtls.policy(json!({})),
        &mtls.refs(),
    )
    .await;
    assert_reason(&without, Reason::TLSHandshakeFailed);
    let client = mtls.ca.client("canary-probe");
    let refs = mtls
        .refs()
        .secret("probe-mtls", "tls.crt", client.pem.clone())
        .secret("probe-mtls", "tls.key", client.key_pem.clone());
    let policy = mtls.policy(json!({"clientCertificate": {"secretName": "probe-mtls"}}));
    let with = probe_grpc(&server, json!({"tls": true}), policy, &refs).await;
    assert_reason(&with, Reason::Succeeded);
}

#[tokio::test]
async fn an_expired_certificate_is_reported_with_its_facts_and_no_call() {
    let ca = Ca::root("gRPC Expired CA");
    let leaf = ca.leaf(&["localhost"], days(-30), days(-1));
    let server_tls = GrpcTls {
        cert_pem: leaf.pem.clone(),
        key_pem: leaf.key_pem.clone(),
        client_ca_pem: None,
    };
    let server = GrpcServer::start(Offer::Health, Some(server_tls)).await;
    let refs = MapRefs::default().config_map("ca", "ca.crt", ca.pem.clone());
    let policy =
        json!({"tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}}});
    let outcome = probe_grpc(&server, json!({"tls": true}), policy, &refs).await;
    assert_reason(&outcome, Reason::CertificateExpired);
    let facts = outcome.tls().expect("facts of the expired certificate");
    assert!(
        !facts.verified && facts.version.is_none(),
        "no completed handshake: {facts:?}"
    );
    assert!(outcome.grpc().is_none());
}

#[tokio::test]
async fn plaintext_and_tls_mismatches_are_named_both_ways() {
    let tls = pki(false);
    let tls_server = GrpcServer::start(Offer::Health, Some(tls.server.clone())).await;
    let plaintext_to_tls = plain(json!({}), &tls_server).await;
    assert_reason(&plaintext_to_tls, Reason::ProtocolMismatch);
    assert!(
        plaintext_to_tls
            .message
            .contains("plaintext client talking to a TLS server"),
        "{}",
        plaintext_to_tls.message
    );
    assert!(
        plaintext_to_tls.message.contains("tls: true"),
        "{}",
        plaintext_to_tls.message
    );

    let plain_server = GrpcServer::start(Offer::Health, None).await;
    let tls_to_plaintext = probe_grpc(
        &plain_server,
        json!({"tls": true}),
        tls.policy(json!({})),
        &tls.refs(),
    )
    .await;
    assert_reason(&tls_to_plaintext, Reason::ProtocolMismatch);
    assert!(
        tls_to_plaintext
            .message
            .contains("TLS client talking to a plaintext server"),
        "{}",
        tls_to_plaintext.message
    );
    assert!(
        tls_to_plaintext.tls().is_none(),
        "no TLS facts without a handshake"
    );
}

#[tokio::test]
async fn the_call_carries_deadline_authority_and_metadata_and_a_non_grpc_answer_is_named() {
    let server = H2Server::start(None, 200, "not gRPC").await;
    let refs = MapRefs::default().secret("token", "value", "Bearer s3cret\n");
    let spec = spec(json!({"timeout": "3s", "grpc": {
        "target": format!("127.0.0.1:{}", server.port()),
        "authority": "payments.shop.svc:50051",
        "service": "payments",
        "metadata": [{"name": "x-probe", "value": "canary"},
                     {"name": "authorization", "valueFrom": {"secretKeyRef": {"name": "token", "key": "value"}}}],
    }}));
    let outcome = probe_once(&spec, &refs).await;
    assert_reason(&outcome, Reason::ProtocolMismatch);
    assert!(
        outcome.message.contains("without a gRPC status"),
        "{}",
        outcome.message
    );
    let request = &server.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/grpc.health.v1.Health/Check");
    assert_eq!(
        request.authority.as_deref(),
        Some("payments.shop.svc:50051")
    );
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    assert_eq!(header("content-type"), "application/grpc");
    assert_eq!(header("te"), "trailers");
    assert_eq!(
        (header("x-probe"), header("authorization")),
        ("canary", "Bearer s3cret")
    );
    let timeout: u64 = header("grpc-timeout")
        .strip_suffix('m')
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (2000..=3000).contains(&timeout),
        "grpc-timeout {timeout}m is the time left of 3s"
    );
}

#[tokio::test]
async fn a_denied_target_is_never_dialled() {
    let server = GrpcServer::start(Offer::Health, None).await;
    let spec = spec(json!({"timeout": "3s", "grpc": {"target": server.addr.to_string()}}));
    let check = canary_test_harness::refs::build(&spec, &MapRefs::default());
    let deny = canary_operator::probe::ProbeContext::denying(vec!["127.0.0.0/8".parse().unwrap()]);
    let outcome = canary_operator::probe::run(&check, &deny).await;
    assert_reason(&outcome, Reason::TargetDenied);
    assert!(outcome.grpc().is_none() && outcome.phases.first_byte.is_none());
}
