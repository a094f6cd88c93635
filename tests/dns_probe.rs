//! DNS probes against a scripted responder on loopback (UDP, TCP and DNS over TLS): response
//! codes, truncation, slow and forged replies, malformed packets, the AD bit, and answers of
//! every shape compared as `dig +short` prints them.

use std::{net::Ipv4Addr, str::FromStr, time::Duration};

use canary_operator::{
    api::Reason,
    probe::{self, Outcome, ProbeContext},
};
use canary_test_harness::{
    refs::{MapRefs, build, probe_once, spec},
    targets::{
        Ca, closed_port, days,
        dns::{DnsReply, DnsServer, Via, answer, rcode, record, record_for},
        tls13,
    },
};
use hickory_proto::{
    op::{Message, OpCode, Query, ResponseCode},
    rr::{Name, RData, RecordType, rdata},
};
use serde_json::{Value, json};

fn a(ip: [u8; 4]) -> RData {
    RData::A(rdata::A(Ipv4Addr::from(ip)))
}

fn name(text: &str) -> Name {
    Name::from_str(text).unwrap()
}

/// Probes `server` with `dns` settings (server filled in) and a 2s timeout.
async fn probe_dns(server: &DnsServer, dns: Value) -> Outcome {
    probe_with(server, dns, json!({})).await
}

async fn probe_with(server: &DnsServer, dns: Value, extra: Value) -> Outcome {
    let mut dns = dns;
    dns["server"] = json!(server.addr.to_string());
    let mut spec_json = json!({"timeout": "2s", "dns": dns});
    if let Value::Object(extra) = extra {
        spec_json.as_object_mut().unwrap().extend(extra);
    }
    probe_once(&spec(spec_json), &MapRefs::default()).await
}

fn assert_reason(outcome: &Outcome, reason: Reason) {
    assert_eq!(outcome.reason, reason, "message: {}", outcome.message);
}

/// Answers every A query with three addresses (TTLs 300, 60, 120).
async fn three_a() -> DnsServer {
    DnsServer::start(|q, _| {
        DnsReply::Message(answer(
            q,
            vec![
                record(q, 300, a([192, 0, 2, 1])),
                record(q, 60, a([192, 0, 2, 2])),
                record(q, 120, a([192, 0, 2, 3])),
            ],
        ))
    })
    .await
}

#[tokio::test]
async fn noerror_with_several_a_records_passes_and_reports_its_facts() {
    let server = three_a().await;
    let outcome = probe_dns(
        &server,
        json!({"query": {"name": "api.example"}, "expect": {"answers": {
            "minCount": 3, "containsAll": ["192.0.2.2"],
            "equals": ["192.0.2.3", "192.0.2.1", "192.0.2.2"],
            "noneOf": ["10.0.0.1"], "matchRegex": "^192\\.0\\.2\\.[0-9]+$"}}}),
    )
    .await;
    assert_reason(&outcome, Reason::Succeeded);
    let dns = outcome.dns().expect("DNS facts");
    assert_eq!(dns.server, server.addr.to_string());
    assert_eq!((dns.transport, dns.rcode_name.as_str()), ("udp", "NOERROR"));
    assert_eq!(dns.answers, ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    assert_eq!(
        (dns.answer_count, dns.min_ttl, dns.truncated),
        (3, Some(60), false)
    );
    assert!(dns.flags.contains(&"qr") && dns.flags.contains(&"rd") && dns.flags.contains(&"ra"));
    let phases = outcome.phases;
    assert!(
        phases.connect.is_some() && phases.request.is_some(),
        "{phases:?}"
    );
    assert!(
        phases.tls.is_none() && phases.first_byte.is_none(),
        "{phases:?}"
    );
    let (via, query) = &server.queries()[0];
    assert_eq!(*via, Via::Udp);
    let question = &query.queries[0];
    assert_eq!(
        (question.name.to_ascii().as_str(), question.query_type),
        ("api.example.", RecordType::A)
    );
    assert!(query.metadata.recursion_desired, "RD is set by default");
    assert!(query.edns.is_some(), "EDNS(0) is offered");
}

#[tokio::test]
async fn answer_expectations_that_fail_name_what_was_answered() {
    let server = three_a().await;
    let cases = [
        json!({"maxCount": 2}),
        json!({"containsAll": ["192.0.2.9"]}),
        json!({"containsAny": ["10.0.0.1", "10.0.0.2"]}),
        json!({"equals": ["192.0.2.1", "192.0.2.2"]}),
        json!({"noneOf": ["192.0.2.3"]}),
        json!({"matchRegex": "^192\\.0\\.2\\.[12]$"}),
    ];
    for answers in cases {
        let outcome = probe_dns(
            &server,
            json!({"query": {"name": "api.example"}, "expect": {"answers": answers}}),
        )
        .await;
        assert_reason(&outcome, Reason::BodyMismatch);
        assert!(
            outcome.message.contains("192.0.2."),
            "{answers}: {}",
            outcome.message
        );
        assert_eq!(
            outcome.dns().unwrap().answer_count,
            3,
            "facts are kept on failure"
        );
    }
}

#[tokio::test]
async fn nxdomain_and_servfail_are_unexpected_unless_listed() {
    let server = DnsServer::start(|q, _| {
        let code = if q.queries[0].name.to_ascii().starts_with("gone.") {
            ResponseCode::NXDomain
        } else {
            ResponseCode::ServFail
        };
        DnsReply::Message(rcode(q, code))
    })
    .await;
    let gone = probe_dns(&server, json!({"query": {"name": "gone.example"}})).await;
    assert_reason(&gone, Reason::UnexpectedStatus);
    assert!(
        gone.message.contains("NXDOMAIN") && gone.message.contains("NOERROR"),
        "{}",
        gone.message
    );
    assert_eq!(gone.dns().unwrap().rcode, 3);
    let failing = probe_dns(&server, json!({"query": {"name": "x.example"}})).await;
    assert_reason(&failing, Reason::UnexpectedStatus);
    assert!(failing.message.contains("SERVFAIL"), "{}", failing.message);
    let listed = json!({"query": {"name": "gone.example"}, "expect": {"rcodes": ["NXDOMAIN"]}});
    assert_reason(&probe_dns(&server, listed).await, Reason::Succeeded);
}

#[tokio::test]
async fn a_truncated_udp_answer_is_asked_again_over_tcp() {
    let server = DnsServer::start(|q, via| {
        let mut reply = answer(q, vec![record(q, 30, a([192, 0, 2, 7]))]);
        if via == Via::Udp {
            reply.answers.clear();
            reply.metadata.truncation = true;
        }
        DnsReply::Message(reply)
    })
    .await;
    let outcome = probe_dns(
        &server,
        json!({"query": {"name": "big.example"}, "expect": {"answers": {"equals": ["192.0.2.7"]}}}),
    )
    .await;
    assert_reason(&outcome, Reason::Succeeded);
    let dns = outcome.dns().unwrap();
    assert!(dns.truncated);
    assert_eq!(dns.transport, "tcp");
    let vias: Vec<Via> = server.queries().iter().map(|(via, _)| *via).collect();
    assert_eq!(vias, [Via::Udp, Via::Tcp]);
}

#[tokio::test]
async fn tcp_transport_and_a_slow_reply_times_out_in_the_request_phase() {
    let server = DnsServer::start(|q, _| {
        let reply = DnsReply::Message(answer(q, vec![record(q, 30, a([192, 0, 2, 1]))]));
        match q.queries[0].name.to_ascii().as_str() {
            "slow.example." => DnsReply::Late(Duration::from_secs(5), Box::new(reply)),
            _ => reply,
        }
    })
    .await;
    let tcp = probe_dns(
        &server,
        json!({"transport": "tcp", "query": {"name": "a.example"}}),
    )
    .await;
    assert_reason(&tcp, Reason::Succeeded);
    assert_eq!(tcp.dns().unwrap().transport, "tcp");
    for transport in ["udp", "tcp"] {
        let slow = probe_with(
            &server,
            json!({"transport": transport, "query": {"name": "slow.example"}}),
            json!({"timeout": "300ms"}),
        )
        .await;
        assert_reason(&slow, Reason::Timeout);
        assert!(
            slow.message.contains("DNS query and answer"),
            "{}",
            slow.message
        );
        assert!(slow.phases.request.is_some(), "{:?}", slow.phases);
    }
}

#[tokio::test]
async fn forged_and_malformed_replies_are_protocol_mismatches() {
    let server = DnsServer::start(|q, _| {
        let good = answer(q, vec![record(q, 30, a([192, 0, 2, 1]))]);
        match q.queries[0].name.to_ascii().as_str() {
            "wrong-id.example." => {
                let mut forged = good;
                forged.metadata.id = q.metadata.id.wrapping_add(1);
                DnsReply::Message(forged)
            }
            "wrong-question.example." => {
                let mut forged = Message::response(q.metadata.id, OpCode::Query);
                forged.add_query(Query::query(name("other.example."), RecordType::A));
                DnsReply::Message(forged)
            }
            "truncated-bytes.example." => {
                let bytes = good.to_vec().unwrap();
                DnsReply::Raw(bytes[..bytes.len() - 3].to_vec())
            }
            _ => DnsReply::Raw(vec![0xde, 0xad]),
        }
    })
    .await;
    // Over TCP the stream is the query's own: a reply to another query breaks the protocol.
    // Over UDP it may be a late reply to an earlier query on a reused port, or a forgery: it
    // is ignored and the probe waits on for its answer (RFC 5452), saying so if none comes.
    for (query, words, udp) in [
        ("wrong-id.example", "ID", Reason::Timeout),
        (
            "wrong-question.example",
            "another question",
            Reason::Timeout,
        ),
        (
            "truncated-bytes.example",
            "not a valid DNS message",
            Reason::ProtocolMismatch,
        ),
        (
            "garbage.example",
            "not a valid DNS message",
            Reason::ProtocolMismatch,
        ),
    ] {
        for (transport, reason) in [("tcp", Reason::ProtocolMismatch), ("udp", udp)] {
            let dns = json!({"transport": transport, "query": {"name": query}});
            let outcome = probe_with(&server, dns, json!({"timeout": "300ms"})).await;
            assert_reason(&outcome, reason);
            assert!(
                outcome.message.contains(words),
                "{query}: {}",
                outcome.message
            );
            assert!(
                outcome.dns().is_none(),
                "no facts from a reply that was rejected"
            );
        }
    }
}

#[tokio::test]
async fn the_ad_bit_is_checked_when_asked() {
    let server = DnsServer::start(|q, _| {
        let mut reply = answer(q, vec![record(q, 30, a([192, 0, 2, 1]))]);
        reply.metadata.authentic_data = q.queries[0].name.to_ascii().starts_with("signed.");
        DnsReply::Message(reply)
    })
    .await;
    let query =
        |n: &str, ad: bool| json!({"query": {"name": n}, "expect": {"authenticatedData": ad}});
    let signed = probe_dns(&server, query("signed.example", true)).await;
    assert_reason(&signed, Reason::Succeeded);
    assert!(signed.dns().unwrap().flags.contains(&"ad"));
    let unsigned = probe_dns(&server, query("plain.example", true)).await;
    assert_reason(&unsigned, Reason::UnexpectedStatus);
    assert!(unsigned.message.contains("AD bit"), "{}", unsigned.message);
    assert_reason(
        &probe_dns(&server, query("plain.example", false)).await,
        Reason::Succeeded,
    );
    let (_, sent) = &server.queries()[0];
    assert!(
        sent.metadata.authentic_data,
        "the query asks for AD as dig does"
    );
}

#[tokio::test]
async fn a_cname_in_front_of_the_a_records_does_not_break_matching() {
    let server = DnsServer::start(|q, _| {
        let target = name("edge.cdn.example.");
        let cname = RData::CNAME(rdata::CNAME(target.clone()));
        DnsReply::Message(answer(
            q,
            vec![
                record(q, 30, cname),
                record_for(&target, 20, a([198, 51, 100, 1])),
                record_for(&target, 20, a([198, 51, 100, 2])),
            ],
        ))
    })
    .await;
    let outcome = probe_dns(
        &server,
        json!({"query": {"name": "www.example"}, "expect": {"answers": {
            "equals": ["198.51.100.1", "198.51.100.2"], "matchRegex": "^198\\.51\\.100\\.", "maxCount": 2}}}),
    )
    .await;
    assert_reason(&outcome, Reason::Succeeded);
    assert_eq!(outcome.dns().unwrap().min_ttl, Some(20));
    let cname = probe_dns(
        &server,
        json!({"query": {"name": "www.example", "type": "CNAME"},
               "expect": {"answers": {"equals": ["EDGE.cdn.example"]}}}),
    )
    .await;
    assert_reason(&cname, Reason::Succeeded);
    assert_eq!(cname.dns().unwrap().answers, ["edge.cdn.example."]);
}

#[tokio::test]
async fn txt_srv_and_ptr_answers_compare_as_dig_prints_them() {
    let server = DnsServer::start(|q, _| {
        let question = &q.queries[0];
        let data = match question.query_type {
            RecordType::TXT => RData::TXT(rdata::TXT::new(vec![r#"v=spf1 "quoted" -all"#.into()])),
            RecordType::SRV => RData::SRV(rdata::SRV::new(10, 5, 5060, name("Sip.Example."))),
            _ => RData::PTR(rdata::PTR(name("host.example."))),
        };
        DnsReply::Message(answer(q, vec![record(q, 60, data)]))
    })
    .await;
    let txt = probe_dns(
        &server,
        json!({"query": {"name": "example", "type": "TXT"}, "expect": {"answers": {
            "containsAll": [r#""v=spf1 \"quoted\" -all""#, r#"v=spf1 "quoted" -all"#],
            "matchRegex": "spf1"}}}),
    )
    .await;
    assert_reason(&txt, Reason::Succeeded);
    assert_eq!(txt.dns().unwrap().answers, [r#""v=spf1 \"quoted\" -all""#]);
    let srv = probe_dns(
        &server,
        json!({"query": {"name": "_sip._udp.example", "type": "SRV"},
               "expect": {"answers": {"equals": ["10 5 5060 sip.example"]}}}),
    )
    .await;
    assert_reason(&srv, Reason::Succeeded);
    let ptr = probe_dns(
        &server,
        json!({"query": {"name": "192.0.2.10", "type": "PTR"},
               "expect": {"answers": {"equals": ["host.example."]}}}),
    )
    .await;
    assert_reason(&ptr, Reason::Succeeded);
    let asked: Vec<String> = (server.queries().iter())
        .map(|(_, q)| q.queries[0].name.to_ascii())
        .collect();
    assert!(
        asked.contains(&"10.2.0.192.in-addr.arpa.".to_string()),
        "{asked:?}"
    );
}

/// A DoT server presenting a leaf for `names`, valid from `from` to `to` days from now.
async fn dot(names: &[&str], from: i64, to: i64) -> (Ca, DnsServer) {
    let ca = Ca::root("DoT Test CA");
    let leaf = ca.leaf(names, days(from), days(to));
    let server = DnsServer::start_tls(tls13(&leaf), |q, _| {
        DnsReply::Message(answer(q, vec![record(q, 30, a([192, 0, 2, 53]))]))
    })
    .await;
    (ca, server)
}

async fn probe_dot(ca: &Ca, server: &DnsServer, server_name: &str) -> Outcome {
    let refs = MapRefs::default().config_map("ca", "ca.crt", ca.pem.clone());
    let spec = spec(json!({
        "timeout": "3s",
        "dns": {"server": format!("localhost:{}", server.port()), "transport": "tls",
                "query": {"name": "dot.example"}},
        "tlsPolicy": {"serverName": server_name,
                      "caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}},
    }));
    probe_once(&spec, &refs).await
}

#[tokio::test]
async fn dns_over_tls_verifies_the_certificate_and_reports_its_facts() {
    let (ca, server) = dot(&["dns.test"], -1, 90).await;
    let outcome = probe_dot(&ca, &server, "dns.test").await;
    assert_reason(&outcome, Reason::Succeeded);
    assert_eq!(outcome.dns().unwrap().transport, "tls");
    assert!(outcome.phases.tls.is_some() && outcome.phases.request.is_some());
    let tls = outcome.tls().expect("TLS facts");
    assert!(tls.verified);
    assert_eq!(tls.leaf().unwrap().dns_names, ["dns.test"]);
    assert_eq!(server.queries()[0].0, Via::Tls);

    let wrong_name = probe_dot(&ca, &server, "other.test").await;
    assert_reason(&wrong_name, Reason::CertificateHostnameMismatch);
    assert_eq!(
        wrong_name.tls().unwrap().leaf().unwrap().dns_names,
        ["dns.test"]
    );

    let (ca, expired) = dot(&["dns.test"], -30, -1).await;
    let outcome = probe_dot(&ca, &expired, "dns.test").await;
    assert_reason(&outcome, Reason::CertificateExpired);
    let facts = outcome.tls().expect("facts of the expired certificate");
    assert!(!facts.verified && facts.leaf().unwrap().not_after < jiff::Timestamp::now());
    assert!(
        expired.queries().is_empty(),
        "no query over an unverified session"
    );
}

#[tokio::test]
async fn plaintext_and_tls_mismatches_are_named_both_ways() {
    let (_ca, tls_server) = dot(&["dns.test"], -1, 90).await;
    let plain_to_tls = probe_once(
        &spec(
            json!({"timeout": "2s", "dns": {"server": tls_server.addr.to_string(),
              "transport": "tcp", "query": {"name": "x.example"}}}),
        ),
        &MapRefs::default(),
    )
    .await;
    assert_reason(&plain_to_tls, Reason::ProtocolMismatch);
    assert!(
        plain_to_tls.message.contains("TLS"),
        "{}",
        plain_to_tls.message
    );
    let plain = three_a().await;
    let tls_to_plain = probe_once(
        &spec(
            json!({"timeout": "500ms", "dns": {"server": plain.addr.to_string(),
              "transport": "tls", "query": {"name": "x.example"}},
              "tlsPolicy": {"verify": false}}),
        ),
        &MapRefs::default(),
    )
    .await;
    // A plain DNS server reads the ClientHello as a length prefix and waits for the rest.
    assert_reason(&tls_to_plain, Reason::Timeout);
    assert!(
        tls_to_plain.message.contains("TLS handshake"),
        "{}",
        tls_to_plain.message
    );
    assert!(
        tls_to_plain.tls().is_none_or(|t| t.version.is_none()),
        "no completed handshake"
    );
}

#[tokio::test]
async fn refused_and_denied_servers() {
    let refused = probe_once(
        &spec(
            json!({"timeout": "2s", "dns": {"server": format!("127.0.0.1:{}", closed_port().await),
              "query": {"name": "x.example"}}}),
        ),
        &MapRefs::default(),
    )
    .await;
    assert_reason(&refused, Reason::ConnectionRefused);
    let server = three_a().await;
    let check = build(
        &spec(
            json!({"timeout": "2s", "dns": {"server": server.addr.to_string(),
              "query": {"name": "x.example"}}}),
        ),
        &MapRefs::default(),
    );
    let deny = ProbeContext::denying(vec!["127.0.0.0/8".parse().unwrap()]);
    let denied = probe::run(&check, &deny).await;
    assert_reason(&denied, Reason::TargetDenied);
    assert!(
        server.queries().is_empty(),
        "nothing was sent to a denied server"
    );
}
