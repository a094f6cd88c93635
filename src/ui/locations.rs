//! How the page shows a check with `spec.locations`: each location's state on the card, a
//! table of them on the detail page, and `degraded` beside the state.

use maud::{Markup, html};

use super::{model::Check, page::time};
use crate::api::LocationStatus;

/// A location's state, in the page's state names (and `stale`).
fn state(location: &LocationStatus) -> &'static str {
    match (location.stale, location.ready.as_str()) {
        (true, _) => "stale",
        (false, "True") => "ready",
        (false, "False") => "failing",
        _ => "pending",
    }
}

/// What a location says in a word: `ok`, its failing reason, `stale` or `pending`.
fn said(location: &LocationStatus) -> &str {
    match state(location) {
        "ready" => "ok",
        "failing" => location.reason.as_deref().unwrap_or("failing"),
        other => other,
    }
}

/// `degraded` beside the state, when some locations fail but fewer than `minFailing`.
pub(super) fn degraded(check: &Check) -> Markup {
    html! {
        @if check.degraded {
            span.state.degraded title="some locations fail, fewer than minFailing" { "degraded" }
        }
    }
}

/// The card's line of locations.
pub(super) fn strip(check: &Check) -> Markup {
    html! {
        @if !check.locations.is_empty() {
            ul.locations aria-label="locations" {
                @for location in &check.locations {
                    li data-state=(state(location)) { (location.name) " " span.dim { (said(location)) } }
                }
            }
        }
    }
}

/// The detail page's table of locations.
pub(super) fn section(check: &Check) -> Markup {
    html! {
        @if !check.locations.is_empty() {
            section {
                h2 { "Locations" }
                table.locations {
                    thead { tr { th { "location" } th { "state" } th { "reason" } th { "last run (its clock)" } } }
                    tbody {
                        @for location in &check.locations {
                            tr data-state=(state(location)) {
                                td { (location.name) }
                                td { (state(location)) }
                                td { (location.reason.as_deref().unwrap_or("")) }
                                td { @if let Some(at) = &location.last_run_time { (time(at.0.as_second())) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
