//! The server-rendered pages: the overview ([`overview`], in its own file) and one page per
//! check. Complete without JavaScript; `app.js` only refreshes the parts marked `data-live` and
//! applies the filter in place. No inline styles or scripts, so the CSP can be strict.

use maud::{DOCTYPE, Markup, PreEscaped, html};

pub use super::overview::overview;
use super::{
    badge, chart,
    model::{Check, Detail, Span},
};
use crate::{
    api::{LastPing, LastResult, Reason, TlsFacts},
    runner::{
        CheckState,
        history::{RunEntry, TransitionEntry},
    },
};

/// Results shown in a card's bar.
pub const BAR_RESULTS: usize = 50;
/// Certificates expiring sooner are marked.
const EXPIRY_WARNING_DAYS: i64 = 14;

/// What every page knows besides its checks.
#[derive(Debug, Clone)]
pub struct PageContext {
    /// Unix seconds.
    pub now: i64,
    /// This replica does not probe (leader election): it shows no checks.
    pub standby: bool,
    pub redacted: bool,
    /// `--ui-forward`: other replicas' check pages are forwarded to them.
    pub forwarding: bool,
    /// The other replicas of the ring (`--sharding shards`): each probes its share.
    pub peers: Vec<String>,
}

/// `2026-11-29 18:00:05 UTC`.
pub fn time(at: i64) -> String {
    jiff::Timestamp::from_second(at)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// A result as a tooltip: time, latency (when measured), reason.
pub fn title_of(result: &RunEntry) -> String {
    match result.latency() {
        Some(ms) => format!("{} · {ms} ms · {}", time(result.at), result.reason),
        None => format!("{} · {}", time(result.at), result.reason),
    }
}

pub(super) fn layout(title: &str, ctx: &PageContext, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) }
                link rel="icon" href="/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { (PreEscaped(super::assets::LOGO)) "Canary" }
                    @if ctx.redacted { span.note { "targets and messages hidden" } }
                }
                @if ctx.standby {
                    p.banner.standby {
                        "This replica is on standby (leader election): only the leader probes, "
                        "so it has no checks to show. Open the page on the leader's pod."
                    }
                }
                @if !ctx.peers.is_empty() {
                    p.banner.shards {
                        "Replicas share the checks: this page lists the ones this replica probes. "
                        @if ctx.redacted {
                            "Also probing: " (ctx.peers.len()) " other replica(s). "
                        } @else {
                            "Also probing: " (ctx.peers.join(", ")) ". "
                        }
                        @if ctx.forwarding {
                            "A check's page, API record and badges work through any replica "
                            "(they are forwarded to the one probing it)."
                        } @else {
                            "A check's page, API record and badges are served by the replica "
                            "probing it."
                        }
                    }
                }
                p.banner.stale hidden { "Refreshing failed; showing the last data." }
                (body)
                footer {
                    "Canary " (env!("CARGO_PKG_VERSION")) " · rendered " (time(ctx.now))
                }
            }
        }
    }
}

pub(super) fn card(check: &Check, ctx: &PageContext) -> Markup {
    let href = super::paths::check_path("/checks", &check.key);
    let shown = &check.results[check.results.len().saturating_sub(BAR_RESULTS)..];
    let day = check.window(Span::Day);
    html! {
        article.card data-state=(check.state.name()) {
            div.head {
                h3 { a href=(href) { (check.key.name) } }
                (super::locations::degraded(check))
                span class={ "state " (check.state.name()) } { (check.state.name()) }
            }
            p.target {
                span.kind { (check.kind) }
                @if let Some(target) = &check.target { " " (target) }
            }
            (super::locations::strip(check))
            (bar(shown))
            dl.stats {
                @for span in Span::ALL {
                    div { dt { (span.label()) } dd { (uptime_text(check.window(span).uptime)) } }
                }
                div { dt { "latency" } dd { (latency_text(day.average_latency_ms)) } }
                @if let Some(expiry) = check.tls_not_after {
                    (expiry_stat(expiry, ctx.now))
                }
            }
            @if check.state != CheckState::Ready {
                @if let Some(message) = &check.message {
                    p.message {
                        @if let Some(reason) = check.message_reason { strong { (reason.as_str()) } ": " }
                        (message)
                    }
                }
            }
        }
    }
}

fn bar(results: &[RunEntry]) -> Markup {
    html! {
        div.bar role="img" aria-label=(format!("last {} results", results.len())) {
            @for _ in results.len()..BAR_RESULTS { span.tick.none {} }
            @for result in results {
                span class=(if result.success { "tick ok" } else { "tick fail" }) title=(title_of(result)) {}
            }
        }
    }
}

fn expiry_stat(expiry: jiff::Timestamp, now: i64) -> Markup {
    let days = (expiry.as_second() - now).div_euclid(86_400);
    let class = match days {
        d if d < 0 => "expired",
        d if d < EXPIRY_WARNING_DAYS => "expiring",
        _ => "",
    };
    let text = if days < 0 {
        "expired".to_string()
    } else {
        format!("{days} d")
    };
    html! {
        div title=(format!("certificate expires {}", time(expiry.as_second()))) {
            dt { "cert" } dd class=(class) { (text) }
        }
    }
}

fn uptime_text(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "–".into(), badge::percent)
}

fn latency_text(ms: Option<f64>) -> String {
    ms.map_or_else(|| "–".into(), |ms| format!("{} ms", ms.round()))
}

/// One check: stats, latency chart, last result, certificate, transitions, badges, spec.
pub fn detail(detail: &Detail, ctx: &PageContext) -> Markup {
    let check = &detail.check;
    let key = &check.key;
    let title = format!("{}/{} · Canary", key.namespace, key.name);
    let body = html! {
        main #content data-live data-refresh-seconds="10" {
            p.crumbs { a href="/" { "All checks" } " / " (check.group) }
            div.head {
                h1 { (key.name) span.dim { " in " (key.namespace) } }
                (super::locations::degraded(check))
                span class={ "state " (check.state.name()) } { (check.state.name()) }
            }
            p.target {
                span.kind { (check.kind) }
                @if let Some(target) = &check.target { " " (target) }
            }
            dl.stats {
                @for span in Span::ALL {
                    div { dt { "uptime " (span.label()) } dd { (uptime_text(check.window(span).uptime)) } }
                }
                @for span in [Span::Day, Span::Week] {
                    div { dt { "latency " (span.label()) } dd { (latency_text(check.window(span).average_latency_ms)) } }
                }
            }
            (super::locations::section(check))
            (super::overview::history_note(check.since, check.stored, check.prometheus.as_ref()))
            section {
                h2 { "Latency" }
                @match &detail.chart {
                    Some(points) => {
                        p.dim { "Average per step over the last 24 hours, from Prometheus." }
                        (chart::latency(points))
                    }
                    None => (chart::latency(&chart::points(&check.results))),
                }
            }
            @if let Some(result) = &detail.last_result { (last_result(result, check, detail.probed_by.as_deref())) }
            @if let Some((at, ping)) = &detail.last_ping { (last_ping(*at, ping)) }
            @if let Some(tls) = &detail.tls { (certificate(tls)) }
            (transitions(&detail.transitions))
            (badges(check))
            @if let Some(yaml) = detail.spec.as_ref().and_then(|s| serde_saphyr::to_string(s).ok()) {
                section { h2 { "Spec" } pre.spec { code { (yaml) } } }
            }
            p.api {
                a href=(super::paths::check_path("/api/v1/checks", key)) { "This check as JSON" }
            }
        }
    };
    layout(&title, ctx, body)
}

/// A heartbeat check's last ping (recorded by the replica that received it).
fn last_ping(at: jiff::Timestamp, ping: &LastPing) -> Markup {
    html! {
        section {
            h2 { "Last ping" }
            dl.facts {
                dt { "when" } dd { (time(at.as_second())) }
                dt { "result" } dd { (ping.result.as_str()) }
                @if let Some(code) = ping.exit_code { dt { "exit code" } dd { (code) } }
                @if let Some(run_id) = &ping.run_id { dt { "run id" } dd { (run_id) } }
                @if !ping.message.is_empty() { dt { "message" } dd { pre { (ping.message) } } }
            }
        }
    }
}

fn last_result(result: &LastResult, check: &Check, probed_by: Option<&str>) -> Markup {
    let phases = result.phases.clone().unwrap_or_default();
    let rows = [
        ("auth", phases.auth),
        ("DNS", phases.dns),
        ("connect", phases.connect),
        ("TLS", phases.tls),
        ("first byte", phases.first_byte),
        ("transfer", phases.transfer),
        ("request", phases.request),
    ];
    html! {
        section {
            h2 { "Last result" }
            dl.facts {
                @if let Some(at) = check.last_run { dt { "when" } dd { (time(at)) } }
                @if let Some(by) = probed_by { dt { "probed by" } dd { (by) } }
                dt { "reason" } dd { (result.reason.as_str()) }
                @if !result.message.is_empty() { dt { "message" } dd { (result.message) } }
                @if let Some(code) = result.http_status { dt { "HTTP status" } dd { (code) } }
                @if let Some(dns) = &result.dns {
                    @if !dns.server.is_empty() { dt { "DNS server" } dd { (dns.server) " (" (dns.transport) ")" } }
                    dt { "response code" } dd { (dns.rcode) }
                    @if !dns.flags.is_empty() { dt { "flags" } dd { (dns.flags.join(" ")) } }
                    dt { "answers" } dd { (dns.answer_count) }
                    @for answer in &dns.answers { dt { "" } dd { code { (answer) } } }
                    @if let Some(ttl) = dns.min_ttl { dt { "min TTL" } dd { (ttl) "s" } }
                }
                @if let Some(grpc) = &result.grpc {
                    @if let Some(status) = &grpc.status { dt { "gRPC status" } dd { (status) } }
                    @if let Some(serving) = &grpc.serving_status { dt { "serving" } dd { (serving) } }
                }
                @if let Some(duration) = measured_duration(result) { dt { "duration" } dd { (duration) } }
                @for (phase, took) in rows {
                    @if let Some(took) = took { dt { (phase) } dd { (took) } }
                }
            }
        }
    }
}

/// The probe's duration, unless it ran nothing on the network (a denied address, a spec that
/// cannot run) or took no measurable time: "0.000s" is not a duration anyone measured.
fn measured_duration(result: &LastResult) -> Option<&str> {
    let ran = !matches!(
        result.reason,
        Reason::TargetDenied
            | Reason::Pending
            | Reason::Reconciling
            | Reason::Suspended
            | Reason::InvalidSpec
            | Reason::ReferenceNotFound
            | Reason::ReferenceForbidden
    );
    let seconds = (result.duration.trim_end_matches('s').parse::<f64>()).unwrap_or(0.0);
    (ran && seconds > 0.0).then_some(result.duration.as_str())
}

fn certificate(tls: &TlsFacts) -> Markup {
    let at = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref()
            .map(|t| time(t.0.as_second()))
            .unwrap_or_default()
    };
    html! {
        section {
            h2 { "Certificate" }
            dl.facts {
                dt { "verified" } dd { (if tls.verified { "yes" } else { "no" }) }
                @if let Some(subject) = &tls.subject { dt { "subject" } dd { (subject) } }
                @if let Some(issuer) = &tls.issuer { dt { "issuer" } dd { (issuer) } }
                @if !tls.dns_names.is_empty() { dt { "DNS names" } dd { (tls.dns_names.join(", ")) } }
                @if tls.not_before.is_some() { dt { "valid from" } dd { (at(&tls.not_before)) } }
                @if tls.not_after.is_some() { dt { "expires" } dd { (at(&tls.not_after)) } }
                @if tls.chain_earliest_not_after.is_some() {
                    dt { "chain expires" } dd { (at(&tls.chain_earliest_not_after)) }
                }
                @if let Some(version) = &tls.version { dt { "protocol" } dd { (version) } }
                @if let Some(suite) = &tls.cipher_suite { dt { "cipher suite" } dd { (suite) } }
            }
        }
    }
}

fn transitions(entries: &[TransitionEntry]) -> Markup {
    let state = |s: Option<crate::api::ReadyStatus>| s.map_or("–", |s| s.as_str());
    html! {
        section {
            h2 { "Transitions" }
            @if entries.is_empty() {
                p.empty { "None since the history started." }
            } @else {
                table.transitions {
                    thead { tr { th { "when" } th { "Ready" } th { "reason" } th { "message" } } }
                    tbody {
                        @for t in entries.iter().rev() {
                            tr {
                                td { (time(t.at)) }
                                td { (state(t.from)) " → " (t.to.as_str()) }
                                td { (t.reason.as_str()) }
                                td { (t.message) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn badges(check: &Check) -> Markup {
    let base = super::paths::check_path("/badges", &check.key);
    let files = [
        "health.svg",
        "uptime-24h.svg",
        "uptime-7d.svg",
        "uptime-30d.svg",
        "response-time-24h.svg",
    ];
    html! {
        section.badges {
            h2 { "Badges" }
            p {
                @for file in files {
                    img src=(format!("{base}/{file}")) alt=(file.trim_end_matches(".svg")) height="20";
                    " "
                }
            }
            pre { code { "![health](https://CANARY_HOST" (base) "/health.svg)" } }
        }
    }
}

/// A check's page served by the replica probing it, not this one (forwarding off, or the
/// owner did not answer).
pub fn unavailable(title: &str, message: &str, ctx: &PageContext) -> Markup {
    let body = html! {
        main #content {
            h1 { (title) }
            p { (message) " " a href="/" { "All checks" } }
        }
    };
    layout(&format!("{title} · Canary"), ctx, body)
}

/// A page for a check that does not exist (or is hidden).
pub fn not_found(ctx: &PageContext) -> Markup {
    let body = html! {
        main #content {
            h1 { "No such check" }
            p { "It does not exist, is hidden from this page, or is not probed by this replica. " a href="/" { "All checks" } }
        }
    };
    layout("Not found · Canary", ctx, body)
}

#[cfg(test)]
#[path = "page_tests.rs"]
mod tests;
