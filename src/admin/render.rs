//! `/metrics` rendered off the accept path: on a blocking thread paced to a quarter of one
//! core ([`super::pace`]), and only when a check's series changed since the last render or it
//! is older than a quarter second (scrapers in between share one buffer, so a hundred clients
//! that never read cost one copy); refused with 500 if it would exceed a size bound. A scrape
//! never shows a stale probe result or a removed series.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;

use super::pace::Pace;
use crate::metrics::Metrics;

/// Largest exposition served; beyond it `/metrics` fails loudly instead of growing memory.
pub const MAX_EXPOSITION_BYTES: usize = 64 * 1024 * 1024;

/// A render is reused for at most this long (process and operator counters move on their own).
const FRESH_FOR: Duration = Duration::from_millis(250);
/// Share of one core that rendering the exposition may take.
const RENDER_SHARE: f64 = 0.25;
/// How long a scrape waits for its turn to render (Prometheus' default scrape timeout is 10 s).
const RENDER_WAIT: Duration = Duration::from_secs(5);

/// The last rendered exposition, shared by concurrent scrapes.
pub struct MetricsCache {
    metrics: Arc<Metrics>,
    pace: Arc<Pace>,
    /// When and at which metrics version the last render was made, and what it was.
    last: tokio::sync::Mutex<Option<(Instant, u64, Bytes)>>,
}

impl MetricsCache {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            pace: Pace::new(RENDER_SHARE),
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The exposition, rendered anew when a value changed since the last render.
    pub async fn render(&self) -> Result<Bytes, String> {
        let mut last = self.last.lock().await;
        let version = self.metrics.version();
        if let Some((at, seen, text)) = last.as_ref()
            && *seen == version
            && at.elapsed() < FRESH_FOR
        {
            return Ok(text.clone());
        }
        let metrics = self.metrics.clone();
        let rendered = (self.pace.run(RENDER_WAIT, move || metrics.render()).await)
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if rendered.len() > MAX_EXPOSITION_BYTES {
            return Err(format!(
                "the exposition is {} bytes, above the {MAX_EXPOSITION_BYTES}-byte bound",
                rendered.len()
            ));
        }
        let text = Bytes::from(rendered);
        *last = Some((Instant::now(), version, text.clone()));
        Ok(text)
    }
}
