//! The detail page's latency chart, rendered on the server as SVG (no script, no library):
//! one point per kept result (or per step of Prometheus's range query, with
//! `--prometheus-url`), failures marked, the axis scaled to the slowest point.

use maud::{Markup, html};

use super::page::{time, title_of};
use crate::runner::history::RunEntry;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 180;
/// Room for the axis labels.
const LEFT: u32 = 56;
const BOTTOM: u32 = 20;
const TOP: u32 = 10;

/// One point of the chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// Unix seconds.
    pub at: i64,
    /// `None`: nothing measured (the run ended before the target answered).
    pub ms: Option<u32>,
    pub success: bool,
    /// Its tooltip.
    pub title: String,
}

/// The kept results as points.
pub fn points(results: &[RunEntry]) -> Vec<Point> {
    (results.iter())
        .map(|r| Point {
            at: r.at,
            ms: r.latency(),
            success: r.success,
            title: title_of(r),
        })
        .collect()
}

/// The chart of `results` (oldest first); a note when there are none.
pub fn latency(results: &[Point]) -> Markup {
    if results.is_empty() {
        return html! { p.empty { "No results yet." } };
    }
    if results.iter().all(|r| r.ms.is_none()) {
        return html! {
            p.empty { "No latency measured: the kept runs ended before the target answered." }
        };
    }
    let ceiling = nice_ceiling(results.iter().filter_map(|r| r.ms).max().unwrap_or(0));
    let plot_w = f64::from(WIDTH - LEFT - 8);
    let plot_h = f64::from(HEIGHT - TOP - BOTTOM);
    let step = plot_w / (results.len().max(2) - 1) as f64;
    let point = |i: usize, ms: u32| {
        let x = f64::from(LEFT) + step * i as f64;
        let y = f64::from(TOP) + plot_h * (1.0 - f64::from(ms) / f64::from(ceiling));
        (x, y)
    };
    // Runs that measured no latency (refused, denied, timed out) are marked on the baseline,
    // hollow, and left out of the line: they were not 0 ms.
    let line: Vec<String> = (results.iter().enumerate())
        .filter_map(|(i, r)| {
            let (x, y) = point(i, r.ms?);
            Some(format!("{x:.1},{y:.1}"))
        })
        .collect();
    let (first, last) = (results[0].at, results[results.len() - 1].at);
    let view_box = format!("0 0 {WIDTH} {HEIGHT}");
    let axis_y = HEIGHT - BOTTOM;
    html! {
        svg.chart viewBox=(view_box) role="img" aria-label="Latency of the last results" {
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(axis_y) {}
            line.axis x1=(LEFT) y1=(axis_y) x2=(WIDTH - 8) y2=(axis_y) {}
            line.grid x1=(LEFT) y1=(TOP) x2=(WIDTH - 8) y2=(TOP) {}
            text.label x=(LEFT - 6) y=(TOP + 4) text-anchor="end" { (ceiling) " ms" }
            text.label x=(LEFT - 6) y=(axis_y) text-anchor="end" { "0" }
            text.label x=(LEFT) y=(HEIGHT - 4) { (time(first)) }
            text.label x=(WIDTH - 8) y=(HEIGHT - 4) text-anchor="end" { (time(last)) }
            polyline.latency points=(line.join(" ")) {}
            @for (i, result) in results.iter().enumerate() {
                @let (x, y) = point(i, result.ms.unwrap_or(0));
                @let class = match (result.success, result.ms.is_some()) {
                    (true, _) => "point ok",
                    (false, true) => "point fail",
                    (false, false) => "point fail unmeasured",
                };
                circle class=(class)
                    cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="3" {
                    title { (result.title) }
                }
            }
        }
    }
}

/// The smallest of 1, 2, 5 times a power of ten at or above `ms` (at least 10 ms).
fn nice_ceiling(ms: u32) -> u32 {
    let mut power = 10u32;
    loop {
        for factor in [1, 2, 5] {
            let candidate = power.saturating_mul(factor);
            if candidate >= ms || candidate == u32::MAX {
                return candidate;
            }
        }
        power = power.saturating_mul(10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_ends_at_a_round_value_above_the_slowest_run() {
        assert_eq!(nice_ceiling(0), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(180), 200);
        assert_eq!(nice_ceiling(201), 500);
        assert_eq!(nice_ceiling(5001), 10_000);
        assert_eq!(nice_ceiling(u32::MAX), u32::MAX);
    }

    /// Issue 24: a refused run was drawn at 0 ms on the line.
    #[test]
    fn runs_that_measured_nothing_are_marked_on_the_baseline_and_left_off_the_line() {
        use crate::api::Reason;
        let entry = |at, success, reason, latency_ms| RunEntry {
            at,
            success,
            reason,
            latency_ms,
        };
        let results = [
            entry(1, true, Reason::Succeeded, 40),
            entry(2, false, Reason::ConnectionRefused, 0),
            entry(3, false, Reason::UnexpectedStatus, 60),
        ];
        let svg = latency(&points(&results)).into_string();
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        assert_eq!(svg.matches("point fail unmeasured").count(), 1, "{svg}");
        let line = svg
            .split(r#"points=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(
            line.split(' ').count(),
            2,
            "the line joins measured runs: {line}"
        );
        assert!(
            svg.contains("· ConnectionRefused<"),
            "no latency in its tooltip: {svg}"
        );
        let none = latency(&points(&results[1..2])).into_string();
        assert!(none.contains("No latency measured"), "{none}");
    }
}
