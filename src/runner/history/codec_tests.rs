//! The stored history's encoding: round trips, the cap, hostile input.

use proptest::prelude::*;

use super::*;

/// An hour (2027-01-15 08:00 UTC) in hours since the epoch.
const H0: u32 = 500_000;

fn bucket(hour: u32, runs: u16, successes: u16, measured: u16, average: u32) -> Bucket {
    Bucket {
        hour,
        runs,
        successes,
        measured,
        latency_ms: average * u32::from(measured),
    }
}

/// 30 days of a check every 10s: 360 runs an hour, latency wandering around 50 ms, a bad hour
/// each day.
fn month() -> Vec<Bucket> {
    (0..HOURS as u32)
        .map(|h| {
            let successes = if h % 24 == 3 { 300 } else { 360 };
            bucket(H0 + h, 360, successes, 360, 45 + (h * 7) % 11)
        })
        .collect()
}

#[test]
fn a_month_at_ten_seconds_round_trips_exactly_within_the_cap() {
    let buckets = month();
    let text = encode(1_800_000_000, &buckets);
    eprintln!("a month at 10s: {} bytes", text.len());
    assert!(text.len() <= CAP, "{} bytes", text.len());
    let stored = decode(&text).unwrap();
    assert_eq!(stored.since, 1_800_000_000);
    assert_eq!(stored.buckets, buckets);
}

#[test]
fn a_steady_check_takes_a_few_bytes() {
    let buckets: Vec<_> = (0..HOURS as u32)
        .map(|h| bucket(H0 + h, 360, 360, 360, 12))
        .collect();
    let text = encode(1_800_000_000, &buckets);
    assert!(text.len() < 32, "{text}");
    assert_eq!(decode(&text).unwrap().buckets, buckets);
}

#[test]
fn gaps_and_counts_that_change_round_trip() {
    let buckets = vec![
        bucket(H0, 3, 1, 0, 0),
        bucket(H0 + 1, 3, 1, 0, 0),
        bucket(H0 + 5, 60, 60, 60, 900),
        bucket(H0 + 6, 60, 60, 60, 20),
        bucket(H0 + 7, 60, 60, 60, 20),
        bucket(H0 + 700, 1, 0, 1, 65_000),
    ];
    assert_eq!(decode(&encode(7, &buckets)).unwrap().buckets, buckets);
    assert_eq!(decode(&encode(7, &[])).unwrap().buckets, vec![]);
}

#[test]
fn over_the_cap_old_hours_merge_into_days_and_the_last_week_stays_exact() {
    // Flapping at a 1s interval: every hour different.
    let buckets: Vec<_> = (0..HOURS as u32)
        .map(|h| {
            let runs = 3000 + (h * 37 % 600) as u16;
            bucket(
                H0 + h,
                runs,
                runs - (h % 97) as u16,
                runs - 1,
                100 + h * 13 % 4000,
            )
        })
        .collect();
    eprintln!(
        "flapping at 1s, unmerged: {} bytes",
        encode_raw(1, &buckets).len()
    );
    let text = encode(1, &buckets);
    assert!(text.len() <= CAP, "{} bytes", text.len());
    let stored = decode(&text).unwrap();
    let week = &buckets[buckets.len() - EXACT_HOURS as usize..];
    assert!(stored.buckets.ends_with(week), "the last 7 days exact");
    let sum = |b: &[Bucket]| b.iter().map(|b| u64::from(b.runs)).sum::<u64>();
    assert!(sum(&stored.buckets) <= sum(&buckets));
}

#[test]
fn forged_and_truncated_strings_are_errors() {
    let text = encode(5, &month());
    assert_eq!(decode("2.AAAA"), Err(CodecError::Version));
    assert!(matches!(decode("1.!!"), Err(CodecError::Base64(_))));
    assert_eq!(decode(&"1.".repeat(CAP)), Err(CodecError::TooLong));
    // A bucket with more failures than runs; no runs; an unknown kind; a repeat first.
    for bytes in [
        vec![0, 0, 2, 3, 0, 0],
        vec![0, 0, 0, 0, 0, 0],
        vec![0, 3],
        vec![0, 6],
        vec![
            0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ],
    ] {
        let forged = format!("1.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert!(decode(&forged).is_err(), "{forged}");
    }
    // An hour past u32, and a repeat of 2^40 hours.
    let mut far = vec![0];
    put(&mut far, u64::from(u32::MAX) << 3);
    far.extend([1, 0, 0, 0]);
    let mut many = vec![0, 0, 1, 0, 0, 0];
    put(&mut many, (1 << 40) << 2 | 2);
    for bytes in [far, many] {
        assert!(decode(&format!("1.{}", URL_SAFE_NO_PAD.encode(bytes))).is_err());
    }
    for cut in 3..text.len() {
        let _ = decode(&text[..cut]);
    }
}

proptest! {
    #[test]
    fn any_text_decodes_or_fails_without_panicking(text in "1\\.[A-Za-z0-9_-]{0,400}") {
        if let Ok(stored) = decode(&text) {
            prop_assert!(stored.buckets.len() <= HOURS + 1);
            prop_assert!(stored.buckets.windows(2).all(|w| w[0].hour < w[1].hour));
        }
    }

    #[test]
    fn any_history_round_trips(
        raw in proptest::collection::vec((0u32..3, 1u16..4000, 0u16..4000, 0u16..4000, 0u32..60_000), 0..200)
    ) {
        let mut hour = H0;
        let buckets: Vec<_> = raw.iter().map(|&(gap, runs, s, m, avg)| {
            hour += gap + 1;
            bucket(hour, runs, s % (runs + 1), m % (runs + 1), avg)
        }).collect();
        let text = encode(9, &buckets);
        prop_assert!(text.len() <= CAP);
        let stored = decode(&text).unwrap();
        if text.len() < CAP / 2 {
            prop_assert_eq!(stored.buckets, buckets);
        }
    }
}
