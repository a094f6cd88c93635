//! `--prometheus-url`: the page's uptime windows read from Prometheus (Canary's own
//! `canary_check_runs_total` and duration histogram, as long as its retention keeps them)
//! instead of the runners' hourly history. The checks of a page are asked in one batch
//! ([`query`]) before the page renders, the answers kept `--prometheus-cache-ttl`
//! ([`FRESH_FOR`] by default); a Prometheus that does not answer within [`TIMEOUT`], answers an
//! error or more than [`MAX_BODY`] is not asked again for [`RETRY_AFTER`] (or the TTL if
//! shorter), and the page shows the runners' history meanwhile, saying so.

mod client;
pub mod query;
mod range;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use client::Client;
use query::{Counts, QueryError};

use super::{
    chart::Point,
    listing::Listing,
    model::{Check, Detail, PromNote, Span},
};
use crate::{api::CheckKey, lock, runner::history::Window};

/// Answers are used this long: the page refreshes every 10 s, Prometheus scrapes every 15-60 s.
pub const FRESH_FOR: Duration = Duration::from_secs(30);
/// A failed Prometheus is asked again after this (meanwhile the page falls back at once).
pub const RETRY_AFTER: Duration = Duration::from_secs(10);
/// All queries of one batch must be answered within this.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// A request waits at most this for its answers (its own batch, or others' before it): then
/// the page renders without them.
pub const WAIT: Duration = Duration::from_secs(4);
/// The largest answer read (a batch of 100 checks is about 50 KiB).
pub const MAX_BODY: usize = 2 << 20;
/// Checks per batch: a page of the overview.
pub const BATCH: usize = 100;
/// Answers kept at most; beyond it the stale ones go.
const CACHED: usize = 20_000;
/// Charts kept at most.
const CHARTS: usize = 1_000;

/// `--prometheus-url` and its companions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromConfig {
    pub url: url::Url,
    /// A bearer token, re-read for every batch (so a rotated token is used).
    pub token_file: Option<PathBuf>,
    /// Extra trust anchors (PEM) besides the system's.
    pub ca_file: Option<PathBuf>,
    /// `--location`: only this Canary's series.
    pub location: Option<String>,
    /// Answers are used this long ([`FRESH_FOR`] by default).
    pub cache_ttl: Duration,
    /// `--ui-redact`: the page names neither the URL nor why Prometheus did not answer.
    pub redact: bool,
}

/// Why the client cannot start or a batch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromError {
    #[error("--prometheus-url {0}: must be http or https with a host")]
    Url(String),
    #[error("--prometheus-ca-file {path}: {error}")]
    Ca { path: String, error: String },
    #[error("reading --prometheus-bearer-token-file {path}: {error}")]
    Token { path: String, error: String },
    #[error("{0}")]
    Http(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// What Prometheus says of one check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fetched {
    /// Over 24h, 7d, 30d ([`Span::ALL`] order).
    pub uptime: [Window; 3],
    /// Unix seconds of the first hour with a run within 30 days, when any.
    pub since: Option<i64>,
}

#[derive(Default)]
struct Cache {
    answers: HashMap<CheckKey, (Instant, Fetched)>,
    /// Latency charts (asked for check pages only).
    charts: HashMap<CheckKey, (Instant, Vec<Point>)>,
    failure: Option<(Instant, String)>,
}

/// The page's Prometheus.
pub struct Prometheus {
    client: Client,
    location: Option<String>,
    fresh_for: Duration,
    redact: bool,
    cache: Mutex<Cache>,
    /// One batch at a time: a crowd asking the same page costs one batch.
    asking: tokio::sync::Mutex<()>,
}

impl Prometheus {
    /// Checks the URL and reads the CA file now, so a mistake fails start-up.
    pub fn new(config: PromConfig) -> Result<Arc<Self>, PromError> {
        Ok(Arc::new(Self {
            client: Client::new(&config)?,
            location: config.location,
            fresh_for: config.cache_ttl,
            redact: config.redact,
            cache: Mutex::default(),
            asking: tokio::sync::Mutex::new(()),
        }))
    }

    /// The URL as the page shows it (no userinfo, query or fragment).
    pub fn url(&self) -> &str {
        self.client.shown()
    }

    /// Asks Prometheus about those of `keys` without a fresh answer, in batches of [`BATCH`],
    /// unless it failed less than [`RETRY_AFTER`] ago; with `chart`, also the latency chart of
    /// the one check of `keys`.
    pub async fn prefetch(&self, keys: &[CheckKey], chart: bool) {
        let asked = async {
            self.prefetch_windows(keys).await;
            if let ([key], true) = (keys, chart) {
                self.prefetch_chart(key).await;
            }
        };
        if tokio::time::timeout(WAIT, asked).await.is_err() {
            tracing::debug!(
                url = self.url(),
                "Prometheus's answers not in time for a page"
            );
        }
    }

    async fn prefetch_windows(&self, keys: &[CheckKey]) {
        let _turn = self.asking.lock().await;
        let missing: Vec<CheckKey> = {
            let cache = lock(&self.cache);
            let retry_after = RETRY_AFTER.min(self.fresh_for);
            if (cache.failure.as_ref()).is_some_and(|(at, _)| at.elapsed() < retry_after) {
                return;
            }
            let fresh =
                |key| (cache.answers.get(key)).is_some_and(|(at, _)| at.elapsed() < self.fresh_for);
            keys.iter().filter(|key| !fresh(key)).cloned().collect()
        };
        for batch in missing.chunks(BATCH) {
            let answer = tokio::time::timeout(TIMEOUT, self.batch(batch)).await;
            let answer = answer.unwrap_or(Err(PromError::Timeout(TIMEOUT)));
            let mut cache = lock(&self.cache);
            match answer {
                Ok(fetched) => {
                    cache.failure = None;
                    if cache.answers.len() + fetched.len() > CACHED {
                        let fresh_for = self.fresh_for;
                        cache.answers.retain(|_, (at, _)| at.elapsed() < fresh_for);
                        if cache.answers.len() + fetched.len() > CACHED {
                            cache.answers.clear();
                        }
                    }
                    let now = Instant::now();
                    (cache.answers).extend(fetched.into_iter().map(|(k, f)| (k, (now, f))));
                }
                Err(error) => {
                    tracing::debug!(%error, url = self.url(), "Prometheus did not answer");
                    cache.failure = Some((Instant::now(), error.to_string()));
                    return;
                }
            }
        }
    }

    /// The chart of `key` unless fresh, when its windows are (Prometheus answers); a chart
    /// that fails leaves the page with the runners' results.
    async fn prefetch_chart(&self, key: &CheckKey) {
        let _turn = self.asking.lock().await;
        let Ok(fetched) = self.lookup(key) else {
            return;
        };
        let fresh = (lock(&self.cache).charts.get(key))
            .is_some_and(|(at, _)| at.elapsed() < self.fresh_for);
        if fresh {
            return;
        }
        let now = jiff::Timestamp::now().as_second();
        let range = range::range(now, fetched.since.unwrap_or(now));
        let selector = query::selector(std::slice::from_ref(key), self.location.as_deref());
        let expr = range::chart_query(&selector, range.2);
        let answer = tokio::time::timeout(TIMEOUT, async {
            let body = self.client.query_range(&expr, range).await?;
            Ok::<_, PromError>(range::parse(&body)?)
        });
        match answer.await.unwrap_or(Err(PromError::Timeout(TIMEOUT))) {
            Ok(points) => {
                let mut cache = lock(&self.cache);
                if cache.charts.len() >= CHARTS {
                    let fresh_for = self.fresh_for;
                    cache.charts.retain(|_, (at, _)| at.elapsed() < fresh_for);
                    if cache.charts.len() >= CHARTS {
                        cache.charts.clear();
                    }
                }
                cache.charts.insert(key.clone(), (Instant::now(), points));
            }
            Err(error) => {
                tracing::debug!(%error, url = self.url(), "no latency chart from Prometheus")
            }
        }
    }

    /// The fresh answer about `key`, or why there is none.
    pub fn lookup(&self, key: &CheckKey) -> Result<Fetched, String> {
        let cache = lock(&self.cache);
        if let Some((at, fetched)) = cache.answers.get(key)
            && at.elapsed() < self.fresh_for
        {
            return Ok(*fetched);
        }
        match &cache.failure {
            Some((_, error)) => Err(error.clone()),
            None => Err(format!("no answer within {WAIT:?}")),
        }
    }

    /// The windows and the since of every check of `batch` (each answered, with or without
    /// series: a check Prometheus has no runs of has empty windows).
    async fn batch(&self, batch: &[CheckKey]) -> Result<HashMap<CheckKey, Fetched>, PromError> {
        let selector = query::selector(batch, self.location.as_deref());
        // Series per check: runs by result and reason, latency sum and count, since.
        let max_series = batch.len() * 64;
        let ask = |expr: String| {
            let client = &self.client;
            async move {
                let body = client.query(&expr).await?;
                Ok::<_, PromError>(query::parse(&body, batch, max_series)?)
            }
        };
        let (day, week, month, since) = tokio::try_join!(
            ask(query::window_query(&selector, Span::Day.label())),
            ask(query::window_query(&selector, Span::Week.label())),
            ask(query::window_query(&selector, Span::Month.label())),
            ask(query::since_query(&selector, Span::Month.label())),
        )?;
        let of =
            |counts: &HashMap<CheckKey, Counts>, key| counts.get(key).copied().unwrap_or_default();
        Ok((batch.iter())
            .map(|key| {
                let fetched = Fetched {
                    uptime: [&day, &week, &month].map(|counts| of(counts, key).window()),
                    since: of(&since, key).since.map(|s| s as i64),
                };
                (key.clone(), fetched)
            })
            .collect())
    }
}

impl Prometheus {
    /// `check` with Prometheus's windows and since, when it answered (at `now`, Unix seconds:
    /// a check it holds no runs of is new to it); otherwise noted as a fallback.
    pub fn overlay(&self, check: &mut Check, now: i64) {
        let error = match self.lookup(&check.key) {
            Ok(fetched) => {
                check.uptime = fetched.uptime;
                check.since = fetched.since.unwrap_or(now);
                None
            }
            Err(error) => Some(error),
        };
        check.prometheus = Some(self.note(error));
    }

    /// What the page says of Prometheus (hidden with `--ui-redact`).
    fn note(&self, error: Option<String>) -> PromNote {
        const HIDDEN: &str = "(hidden by --ui-redact)";
        match self.redact {
            true => PromNote {
                url: HIDDEN.into(),
                error: error.map(|_| HIDDEN.into()),
            },
            false => PromNote {
                url: self.url().to_string(),
                error,
            },
        }
    }

    /// `detail` overlaid, with Prometheus's latency chart when it answered.
    pub fn overlay_detail(&self, detail: &mut Detail, now: i64) {
        self.overlay(&mut detail.check, now);
        if (detail.check.prometheus.as_ref()).is_some_and(|note| note.error.is_none()) {
            let cache = lock(&self.cache);
            let chart = cache.charts.get(&detail.check.key);
            detail.chart = (chart.filter(|(at, _)| at.elapsed() < self.fresh_for))
                .map(|(_, points)| points.clone());
        }
    }

    /// Every check of `listing` overlaid; the listing's since is then its checks'.
    pub fn overlay_listing(&self, listing: &mut Listing, now: i64) {
        for check in &mut listing.checks {
            self.overlay(check, now);
        }
        let note = (listing.checks.iter())
            .find_map(|c| c.prometheus.clone().filter(|n| n.error.is_some()));
        listing.prometheus = Some(note.unwrap_or_else(|| self.note(None)));
        let answered = (listing.checks.iter())
            .filter(|c| c.prometheus.as_ref().is_some_and(|n| n.error.is_none()));
        if let Some(since) = answered.map(|c| c.since).min() {
            listing.since = Some(since);
        }
    }
}

#[cfg(test)]
mod tests;
