//! README badges in the flat style users know from shields.io: health, uptime over a window
//! and average response time. Colour thresholds are documented in `docs/status-page.md`.

use maud::{Markup, html};

use super::model::{Check, Span};
use crate::runner::CheckState;

/// Colours, shields.io's names.
const BRIGHT_GREEN: &str = "#4c1";
const GREEN: &str = "#97ca00";
const YELLOW: &str = "#dfb317";
const ORANGE: &str = "#fe7d37";
const RED: &str = "#e05d44";
const BLUE: &str = "#007ec6";
const GREY: &str = "#9f9f9f";

/// Which badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Health,
    Uptime(Span),
    ResponseTime(Span),
}

impl Kind {
    /// From the file name in `/badges/{ns}/{name}/{file}`.
    pub fn parse(file: &str) -> Option<Self> {
        let stem = file.strip_suffix(".svg")?;
        if stem == "health" {
            return Some(Kind::Health);
        }
        if let Some(window) = stem.strip_prefix("uptime-") {
            return Span::parse(window).map(Kind::Uptime);
        }
        let window = stem.strip_prefix("response-time-")?;
        Span::parse(window)
            .filter(|s| *s != Span::Month)
            .map(Kind::ResponseTime)
    }
}

/// The badge of `kind` for `check`.
pub fn render(kind: Kind, check: &Check) -> String {
    let (label, message, colour) = match kind {
        Kind::Health => health(check.state),
        Kind::Uptime(span) => {
            let (message, colour) = uptime(check.window(span).uptime);
            (format!("uptime {}", span.label()), message, colour)
        }
        Kind::ResponseTime(span) => {
            let (message, colour) = response_time(check.window(span).average_latency_ms);
            (format!("response time {}", span.label()), message, colour)
        }
    };
    svg(&label, &message, colour).into_string()
}

fn health(state: CheckState) -> (String, String, &'static str) {
    // Shields-style words for the badge; the state's own name where there is none.
    let (message, colour) = match state {
        CheckState::Ready => ("up", BRIGHT_GREEN),
        CheckState::Failing => ("down", RED),
        CheckState::Invalid | CheckState::Blocked => (state.name(), RED),
        CheckState::Maintenance => ("maintenance", BLUE),
        CheckState::Pending => ("pending", GREY),
        CheckState::Suspended => ("suspended", GREY),
    };
    ("health".into(), message.into(), colour)
}

/// Uptime as a percentage (never rounded up to 100%) and its colour.
pub fn uptime(ratio: Option<f64>) -> (String, &'static str) {
    let Some(ratio) = ratio else {
        return ("no data".into(), GREY);
    };
    let colour = match ratio {
        r if r >= 0.999 => BRIGHT_GREEN,
        r if r >= 0.99 => GREEN,
        r if r >= 0.95 => YELLOW,
        r if r >= 0.90 => ORANGE,
        _ => RED,
    };
    (percent(ratio), colour)
}

/// `100%`, `99.95%`: two decimals, truncated so anything short of all is below 100%.
pub fn percent(ratio: f64) -> String {
    if ratio >= 1.0 {
        return "100%".into();
    }
    let hundredths = (ratio * 10_000.0).floor() / 100.0;
    format!("{hundredths:.2}%")
}

fn response_time(average_ms: Option<f64>) -> (String, &'static str) {
    let Some(ms) = average_ms else {
        return ("no data".into(), GREY);
    };
    let colour = match ms {
        ms if ms < 250.0 => BRIGHT_GREEN,
        ms if ms < 500.0 => GREEN,
        ms if ms < 1000.0 => YELLOW,
        ms if ms < 2000.0 => ORANGE,
        _ => RED,
    };
    (format!("{} ms", ms.round()), colour)
}

/// Width of `text` in Verdana 11px, near enough for a badge (no font metrics at hand).
fn text_width(text: &str) -> u32 {
    let narrow = |c: char| matches!(c, 'i' | 'l' | 'j' | 't' | 'f' | 'r' | '.' | ' ' | '%' | '1');
    (text.chars())
        .map(|c| if narrow(c) { 4 } else { 7 })
        .sum::<u32>()
        + 10
}

fn svg(label: &str, message: &str, colour: &str) -> Markup {
    let (left, right) = (text_width(label), text_width(message));
    let width = left + right;
    let title = format!("{label}: {message}");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height="20" role="img" aria-label=(title) {
            title { (title) }
            linearGradient id="s" x2="0" y2="100%" {
                stop offset="0" stop-color="#bbb" stop-opacity=".1" {}
                stop offset="1" stop-opacity=".1" {}
            }
            clipPath id="r" { rect width=(width) height="20" rx="3" fill="#fff" {} }
            g clip-path="url(#r)" {
                rect width=(left) height="20" fill="#555" {}
                rect x=(left) width=(right) height="20" fill=(colour) {}
                rect width=(width) height="20" fill="url(#s)" {}
            }
            g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11" {
                text x=(left / 2) y="14" { (label) }
                text x=(left + right / 2) y="14" { (message) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badge_names_parse_and_unknown_ones_do_not() {
        assert_eq!(Kind::parse("health.svg"), Some(Kind::Health));
        assert_eq!(Kind::parse("uptime-7d.svg"), Some(Kind::Uptime(Span::Week)));
        assert_eq!(
            Kind::parse("response-time-24h.svg"),
            Some(Kind::ResponseTime(Span::Day))
        );
        for bad in [
            "uptime-1y.svg",
            "response-time-30d.svg",
            "health.png",
            "../x.svg",
        ] {
            assert_eq!(Kind::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn uptime_is_never_rounded_up_to_all() {
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.99999), "99.99%");
        assert_eq!(percent(0.5), "50.00%");
        assert_eq!(uptime(Some(0.9995)).1, BRIGHT_GREEN);
        assert_eq!(uptime(Some(0.995)).1, GREEN);
        assert_eq!(uptime(Some(0.96)).1, YELLOW);
        assert_eq!(uptime(Some(0.91)).1, ORANGE);
        assert_eq!(uptime(Some(0.5)).1, RED);
        assert_eq!(uptime(None), ("no data".to_string(), GREY));
    }
}
