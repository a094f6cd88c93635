//! The hourly buckets in one compact, versioned string (`status.history`), so a restarted
//! runner, or the replica that gains a check, resumes 30 days of uptime from the object.
//!
//! Text: `1.` then unpadded URL-safe base64 of varints: `since` (Unix seconds), then one
//! record per bucket, oldest first, whose first varint is a tag (kind in the low 2 bits,
//! argument above):
//! - kind 0, a full bucket: gap (hours after the previous bucket, minus one) in the tag, then
//!   runs, failures, unmeasured runs and the average latency (ms, zigzag delta to the previous);
//! - kind 1, the previous counts again: gap in the tag, then the latency delta;
//! - kind 2, the previous bucket repeated in the next `argument` hours.
//!
//! Averages are whole milliseconds (the sum is restored as average x measured). A string longer
//! than [`CAP`] is re-encoded with the hours older than 7 days merged into days, then with the
//! oldest buckets dropped, so the 24h and 7d windows stay exact. Decoding trusts nothing: a
//! forged or truncated string is an error, never a panic or an unbounded allocation.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{Bucket, HOURS};

/// Longest `status.history` written, in bytes.
pub(super) const CAP: usize = 3072;
/// The version prefix of the text.
const PREFIX: &str = "1.";
/// Hours kept exact when the cap forces merging older ones into days.
const EXACT_HOURS: u32 = 7 * 24;

/// Why a stored history was ignored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum CodecError {
    #[error("longer than {CAP} bytes")]
    TooLong,
    #[error("unknown version (expected prefix {PREFIX:?})")]
    Version,
    #[error("not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("truncated")]
    Truncated,
    #[error("a number out of range")]
    Range,
    #[error("a bucket with no runs or counts that do not add up")]
    Counts,
    #[error("unknown record kind {0}")]
    Kind(u64),
    #[error("more than {HOURS} buckets")]
    TooMany,
}

/// What a stored history holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stored {
    /// Unix seconds since which the history has data.
    pub(super) since: i64,
    /// Hours with runs, oldest first, strictly increasing.
    pub(super) buckets: Vec<Bucket>,
}

/// Encodes `since` and `buckets` (oldest first), within [`CAP`].
pub(super) fn encode(since: i64, buckets: &[Bucket]) -> String {
    let text = encode_raw(since, buckets);
    if text.len() <= CAP {
        return text;
    }
    let mut merged = merge_old_days(buckets);
    loop {
        let text = encode_raw(since, &merged);
        if text.len() <= CAP || merged.is_empty() {
            return text;
        }
        // Still too long (a flapping check at a 1s interval): the oldest tenth goes.
        let drop = merged.len().div_ceil(10);
        merged.drain(..drop);
    }
}

/// Encodes without the cap.
fn encode_raw(since: i64, buckets: &[Bucket]) -> String {
    let mut bytes = Vec::with_capacity(buckets.len() * 2 + 8);
    put(&mut bytes, u64::try_from(since.max(0)).unwrap_or(0));
    let mut previous: Option<Bucket> = None;
    let mut repeats = 0u64;
    for bucket in buckets {
        let gap = previous.map_or(u64::from(bucket.hour), |p| {
            u64::from(bucket.hour.saturating_sub(p.hour).saturating_sub(1))
        });
        let average = average_ms(bucket);
        if let Some(p) = previous.filter(|p| gap == 0 && same(p, bucket)) {
            repeats += 1;
            previous = Some(Bucket {
                hour: bucket.hour,
                ..p
            });
            continue;
        }
        flush_repeats(&mut bytes, &mut repeats);
        let delta = zigzag(i64::from(average) - previous.map_or(0, |p| i64::from(average_ms(&p))));
        if previous.is_some_and(|p| same_counts(&p, bucket)) {
            put(&mut bytes, gap << 2 | 1);
        } else {
            put(&mut bytes, gap << 2);
            put(&mut bytes, u64::from(bucket.runs));
            put(
                &mut bytes,
                u64::from(bucket.runs - bucket.successes.min(bucket.runs)),
            );
            put(
                &mut bytes,
                u64::from(bucket.runs - bucket.measured.min(bucket.runs)),
            );
        }
        put(&mut bytes, delta);
        previous = Some(*bucket);
    }
    flush_repeats(&mut bytes, &mut repeats);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn flush_repeats(bytes: &mut Vec<u8>, repeats: &mut u64) {
    if *repeats > 0 {
        put(bytes, *repeats << 2 | 2);
        *repeats = 0;
    }
}

/// Decodes a stored history; see the module's format.
pub(super) fn decode(text: &str) -> Result<Stored, CodecError> {
    if text.len() > CAP {
        return Err(CodecError::TooLong);
    }
    let body = text.strip_prefix(PREFIX).ok_or(CodecError::Version)?;
    let bytes = URL_SAFE_NO_PAD.decode(body)?;
    let mut input = bytes.as_slice();
    let since = i64::try_from(take(&mut input)?).map_err(|_| CodecError::Range)?;
    let mut buckets: Vec<Bucket> = Vec::new();
    while !input.is_empty() {
        let tag = take(&mut input)?;
        let (kind, argument) = (tag & 3, tag >> 2);
        let previous = buckets.last().copied();
        match (kind, previous) {
            (2, Some(p)) => {
                for _ in 0..argument.min(HOURS as u64 + 1) {
                    let last = buckets.last().copied().unwrap_or(p);
                    let hour = next_hour(Some(last), 0)?;
                    push(&mut buckets, Bucket { hour, ..last })?;
                }
            }
            (0, _) => {
                let runs = small(take(&mut input)?)?;
                let failures = small(take(&mut input)?)?;
                let unmeasured = small(take(&mut input)?)?;
                let (Some(successes), Some(measured)) =
                    (runs.checked_sub(failures), runs.checked_sub(unmeasured))
                else {
                    return Err(CodecError::Counts);
                };
                let average = latency(previous, take(&mut input)?)?;
                let mut bucket = Bucket {
                    hour: next_hour(previous, argument)?,
                    runs,
                    successes,
                    measured,
                    latency_ms: 0,
                };
                bucket.latency_ms = average.saturating_mul(u32::from(measured));
                push(&mut buckets, bucket)?;
            }
            (1, Some(p)) => {
                let average = latency(previous, take(&mut input)?)?;
                let hour = next_hour(previous, argument)?;
                let latency_ms = average.saturating_mul(u32::from(p.measured));
                push(
                    &mut buckets,
                    Bucket {
                        hour,
                        latency_ms,
                        ..p
                    },
                )?;
            }
            _ => return Err(CodecError::Kind(kind)),
        }
    }
    Ok(Stored { since, buckets })
}

/// Appends a bucket, refusing empty ones and more than 30 days of them.
fn push(buckets: &mut Vec<Bucket>, bucket: Bucket) -> Result<(), CodecError> {
    if bucket.runs == 0 {
        return Err(CodecError::Counts);
    }
    if buckets.len() > HOURS {
        return Err(CodecError::TooMany);
    }
    buckets.push(bucket);
    Ok(())
}

/// The hour `gap + 1` after the previous bucket (the first bucket's gap is its hour).
fn next_hour(previous: Option<Bucket>, gap: u64) -> Result<u32, CodecError> {
    let hour = match previous {
        Some(p) => u64::from(p.hour) + gap + 1,
        None => gap,
    };
    u32::try_from(hour).map_err(|_| CodecError::Range)
}

/// The average latency a zigzag delta gives after the previous bucket's.
fn latency(previous: Option<Bucket>, delta: u64) -> Result<u32, CodecError> {
    let base = previous.map_or(0, |p| i64::from(average_ms(&p)));
    let average = base.checked_add(unzigzag(delta)).ok_or(CodecError::Range)?;
    u32::try_from(average).map_err(|_| CodecError::Range)
}

fn small(value: u64) -> Result<u16, CodecError> {
    u16::try_from(value).map_err(|_| CodecError::Range)
}

/// The bucket's average latency in whole milliseconds (0 when nothing measured one).
fn average_ms(bucket: &Bucket) -> u32 {
    let measured = u32::from(bucket.measured);
    if measured == 0 {
        return 0;
    }
    (bucket.latency_ms + measured / 2) / measured
}

fn same_counts(a: &Bucket, b: &Bucket) -> bool {
    (a.runs, a.successes, a.measured) == (b.runs, b.successes, b.measured)
}

fn same(a: &Bucket, b: &Bucket) -> bool {
    same_counts(a, b) && average_ms(a) == average_ms(b)
}

/// Hours more than 7 days before the newest merged into one bucket per UTC day (at the day's
/// first hour), saturating the 16-bit counts.
fn merge_old_days(buckets: &[Bucket]) -> Vec<Bucket> {
    let newest = buckets.last().map_or(0, |b| b.hour);
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for bucket in buckets {
        let old = newest - bucket.hour >= EXACT_HOURS;
        let day_start = bucket.hour - bucket.hour % 24;
        match merged.last_mut() {
            Some(last) if old && last.hour == day_start => {
                last.runs = last.runs.saturating_add(bucket.runs);
                last.successes = last.successes.saturating_add(bucket.successes);
                last.measured = last.measured.saturating_add(bucket.measured);
                last.latency_ms = last.latency_ms.saturating_add(bucket.latency_ms);
            }
            _ if old => merged.push(Bucket {
                hour: day_start,
                ..*bucket
            }),
            _ => merged.push(*bucket),
        }
    }
    merged
}

/// Appends a LEB128 varint.
fn put(bytes: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        bytes.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

/// Takes a LEB128 varint of at most 10 bytes.
fn take(input: &mut &[u8]) -> Result<u64, CodecError> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(CodecError::Truncated)?;
        *input = rest;
        let part = u64::from(byte & 0x7f);
        if shift == 63 && part > 1 {
            return Err(CodecError::Range);
        }
        value |= part << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(CodecError::Range)
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
