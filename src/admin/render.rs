//! `/metrics` rendered off the accept path: on a blocking thread paced to a quarter of one
//! core ([`super::pace`]), and only when a check's series changed since the last render or it
//! is older than a quarter second (scrapers in between share one buffer, so a hundred clients
//! that never read cost one copy); refused with 500 if it would exceed a size bound. A scrape
//! never shows a stale probe result or a removed series. The buffer is freed when the last
//! response that sends it is done: kept between scrapes, the 25 MB exposition of 10,000 checks
//! stayed in memory for good.

use std::{
    sync::{Arc, Weak},
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
    last: tokio::sync::Mutex<Last>,
}

/// When and at which metrics version the last render was made, its text while a response still
/// sends it, and its length (the next render's buffer is sized from it: grown by doubling, it
/// took up to twice the text).
#[derive(Default)]
struct Last {
    made: Option<(Instant, u64)>,
    text: Weak<Vec<u8>>,
    len: usize,
}

/// A response body holding a shared exposition.
struct Held(Arc<Vec<u8>>);

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl MetricsCache {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            pace: Pace::new(RENDER_SHARE),
            last: tokio::sync::Mutex::default(),
        }
    }

    /// The exposition, rendered anew when a value changed since the last render.
    pub async fn render(&self) -> Result<Bytes, String> {
        let mut last = self.last.lock().await;
        let version = self.metrics.version();
        if let Some((at, seen)) = last.made
            && seen == version
            && at.elapsed() < FRESH_FOR
            && let Some(text) = last.text.upgrade()
        {
            return Ok(Bytes::from_owner(Held(text)));
        }
        let metrics = self.metrics.clone();
        let capacity = (last.len + last.len / 8).min(MAX_EXPOSITION_BYTES);
        let rendered = (self
            .pace
            .run(RENDER_WAIT, move || metrics.render_into(capacity))
            .await)
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if rendered.len() > MAX_EXPOSITION_BYTES {
            return Err(format!(
                "the exposition is {} bytes, above the {MAX_EXPOSITION_BYTES}-byte bound",
                rendered.len()
            ));
        }
        let text = Arc::new(rendered);
        *last = Last {
            made: Some((Instant::now(), version)),
            text: Arc::downgrade(&text),
            len: text.len(),
        };
        Ok(Bytes::from_owner(Held(text)))
    }
}
