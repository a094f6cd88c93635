//! The page says only what was measured and leaves no empty rows (issue 24, item 8).

use serde_json::json;

use super::*;
use crate::{
    api::CheckKey,
    runner::history::{RunEntry, Window},
};

fn ctx() -> PageContext {
    PageContext {
        now: 1_800_000_000,
        standby: false,
        redacted: false,
        forwarding: false,
        peers: Vec::new(),
    }
}

/// A check whose every run was refused or denied, never connected, never recorded a run time.
fn never_connected(state: CheckState, reason: Reason, message: &str) -> Detail {
    let window = Window {
        runs: 2,
        successes: 0,
        uptime: Some(0.0),
        average_latency_ms: None,
    };
    let entry = |at, reason| RunEntry {
        at,
        success: false,
        reason,
        latency_ms: 0,
    };
    let last = json!({
        "success": false, "reason": "TargetDenied", "duration": "0.000s",
        "message": "169.254.169.254 is denied",
    });
    Detail {
        check: Check {
            key: CheckKey {
                namespace: "shop".into(),
                name: "metadata".into(),
            },
            group: "shop".into(),
            kind: "http",
            target: Some("http://169.254.169.254/".into()),
            state,
            reason: Some(Reason::Pending),
            message: Some(message.into()),
            message_reason: Some(reason),
            last_run: None,
            results: vec![
                entry(1_799_999_990, Reason::ConnectionRefused),
                entry(1_799_999_995, Reason::TargetDenied),
            ],
            uptime: [window; 3],
            tls_not_after: None,
            since: 1_799_999_000,
            stored: true,
            prometheus: None,
            locations: Vec::new(),
            degraded: false,
        },
        transitions: Vec::new(),
        hours: Vec::new(),
        last_result: Some(serde_json::from_value(last).unwrap()),
        tls: None,
        spec: None,
        probed_by: None,
        last_ping: None,
        chart: None,
    }
}

#[test]
fn never_connected_checks_show_no_zero_latency_no_zero_duration_and_no_empty_rows() {
    let detail = never_connected(CheckState::Pending, Reason::TargetDenied, "denied");
    let page = super::detail(&detail, &ctx()).into_string();
    for untrue in [
        " 0 ms",
        ">0 ms",
        "0.000s",
        "<dd></dd>",
        ">when<",
        ">duration<",
    ] {
        assert!(!page.contains(untrue), "{untrue} on the page: {page}");
    }
    assert!(page.contains("No latency measured"), "{page}");
    let card = card(&detail.check, &ctx()).into_string();
    assert!(!card.contains(" 0 ms") && !card.contains(">0 ms"), "{card}");
    assert!(
        card.contains("<strong>TargetDenied</strong>: denied"),
        "{card}"
    );
    assert!(!card.contains("Pending"), "{card}");
}

#[test]
fn a_maintenance_card_says_maintenance_and_its_message_is_not_red() {
    let message = "in a maintenance window, failing (ConnectionRefused): refused";
    let detail = never_connected(CheckState::Maintenance, Reason::Maintenance, message);
    let card = card(&detail.check, &ctx()).into_string();
    assert!(card.contains(r#"data-state="maintenance""#), "{card}");
    assert!(
        card.contains("<strong>Maintenance</strong>: in a maintenance window"),
        "{card}"
    );
    let css = include_str!("assets/app.css");
    assert!(
        css.contains(r#".card[data-state="maintenance"] .message"#),
        "not in --fail red"
    );
}

/// Issue 28: the page says where its history comes from and since when, in every case.
#[test]
fn the_history_note_names_prometheus_or_why_not_and_the_runners_history() {
    use crate::ui::{model::PromNote, overview::history_note};
    let note = |prometheus: Option<PromNote>, stored| {
        history_note(1_800_000_000, stored, prometheus.as_ref()).into_string()
    };
    let url = "http://prom:9090/".to_string();
    let answered = note(
        Some(PromNote {
            url: url.clone(),
            error: None,
        }),
        true,
    );
    assert!(answered.contains("History since 2027-01-15"), "{answered}");
    assert!(
        answered.contains("from Prometheus at http://prom:9090/"),
        "{answered}"
    );
    let error = Some("connecting to http://prom:9090/: refused".to_string());
    let fallback = note(Some(PromNote { url, error }), true);
    assert!(
        fallback.contains("Prometheus at http://prom:9090/ did not answer: connecting to"),
        "{fallback}"
    );
    assert!(
        fallback.contains("; showing history stored in status since 2027-01-15"),
        "{fallback}"
    );
    let memory = note(None, false);
    assert!(
        memory.contains("(kept in memory; a restart starts it again)"),
        "{memory}"
    );
}
