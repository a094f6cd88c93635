//! The overview, one page of it: the checks of the page as cards, grouped, under the counts of
//! every check, a search box and links to the other pages.

use maud::{Markup, html};

use super::{
    listing::{Filter, Listing, MAX_SEARCH, PAGE_SIZE},
    model::{Check, PromNote},
    page::{PageContext, card, layout, time},
};

/// One page of the overview: its checks as cards, grouped by `canary.dev/group` or namespace,
/// with the counts of every check, a search box and links to the other pages.
pub fn overview(listing: &Listing, filter: &Filter, ctx: &PageContext) -> Markup {
    let mut groups: Vec<(&str, Vec<&Check>)> = Vec::new();
    for check in &listing.checks {
        match groups.last_mut() {
            Some((group, members)) if *group == check.group => members.push(check),
            _ => groups.push((&check.group, vec![check])),
        }
    }
    let filtered = filter.failing_only || !filter.text.is_empty();
    let body = html! {
        nav #summary.summary data-live {
            span.count { (listing.total) " checks" }
            span.count.failing[listing.failing > 0] { (listing.failing) " failing" }
            a.filter.on[filter.failing_only] href=(filter.toggled().href(1)) data-filter
                aria-pressed=(if filter.failing_only { "true" } else { "false" }) { "Failing only" }
        }
        form #search.search method="get" action="/" role="search" {
            input type="search" name="q" value=(filter.text) maxlength=(MAX_SEARCH)
                placeholder="namespace, name or label" aria-label="Search checks";
            @if filter.failing_only { input type="hidden" name="failing" value="1"; }
            button type="submit" { "Search" }
        }
        main #content data-live data-refresh-seconds="10" {
            @if groups.is_empty() {
                p.empty {
                    @if filtered { "No check matches." } @else { "No checks." }
                }
            }
            @for (group, members) in &groups {
                section.group {
                    h2 { (group) span.dim { " · " (listing.groups.get(*group).copied().unwrap_or(members.len())) } }
                    div.cards {
                        @for check in members { (card(check, ctx)) }
                    }
                }
            }
            (pager(listing, filter))
            @if let Some(since) = listing.since {
                (history_note(since, listing.stored, listing.prometheus.as_ref()))
            }
        }
    };
    layout("Canary status", ctx, body)
}

/// Where the uptime windows come from and since when: Prometheus, or the runners' history
/// (with why Prometheus is not used when it is set).
pub fn history_note(since: i64, stored: bool, prometheus: Option<&PromNote>) -> Markup {
    html! {
        @match prometheus {
            Some(PromNote { url, error: None }) => p.since {
                "History since " (time(since)) " from Prometheus at " (url)
                " (Canary's own metrics, as long as its retention keeps them)."
            },
            Some(PromNote { url, error: Some(error) }) => p.since.fallback {
                "Prometheus at " (url) " did not answer: " (error) "; showing history "
                (if stored { "stored in status" } else { "kept in memory" }) " since " (time(since))
                " " (history_source(stored))
            },
            None => p.since { "History since " (time(since)) " " (history_source(stored)) },
        }
    }
}

/// Where the runners' history is kept, as the page says it.
pub fn history_source(stored: bool) -> &'static str {
    if stored {
        "(stored hourly in each HealthCheck's status: restarts and shard moves resume it)."
    } else {
        "(kept in memory; a restart starts it again)."
    }
}

/// "Checks 101-200 of 1,234" with links to the previous and next pages, when there are several.
fn pager(listing: &Listing, filter: &Filter) -> Markup {
    let first = (listing.page - 1) * PAGE_SIZE + 1;
    let last = first + listing.checks.len().saturating_sub(1);
    html! {
        @if listing.pages > 1 {
            nav.pager aria-label="Pages" {
                @if listing.page > 1 {
                    a rel="prev" href=(filter.href(listing.page - 1)) data-filter { "← previous" }
                }
                span.dim { "checks " (first) "–" (last) " of " (listing.matched)
                    " · page " (listing.page) " of " (listing.pages) }
                @if listing.page < listing.pages {
                    a rel="next" href=(filter.href(listing.page + 1)) data-filter { "next →" }
                }
            }
        }
    }
}
