//! Response bodies read with a cap and checked as they stream: `bodyContains` and
//! `bodyNotContains` match chunk by chunk (a match may straddle chunks) with no copy of the
//! body; only `bodyRegex` and `json` buffer, and at most `regexBodyLimit` bytes, reserved from
//! the operator's body budget before the buffer grows (the parsed JSON tree is charged to the
//! same reservation). Matching is on bytes, so a body that is not
//! UTF-8 costs nothing extra.

use memchr::memmem::Finder;

use super::json::{self, JsonError};
use super::{
    Failure,
    budget::{BodyBudget, Reservation},
};
use crate::api::{HttpExpectations, Reason};

/// A substring search over a stream of chunks, holding at most `needle.len() - 1` bytes.
pub struct StreamFinder {
    finder: Finder<'static>,
    /// The last bytes seen, for matches that straddle two chunks.
    tail: Vec<u8>,
    found: bool,
}

impl StreamFinder {
    pub fn new(needle: &str) -> Self {
        Self {
            finder: Finder::new(needle.as_bytes()).into_owned(),
            tail: Vec::new(),
            found: needle.is_empty(),
        }
    }

    /// Whether the needle has appeared in what was fed so far.
    pub fn found(&self) -> bool {
        self.found
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.found || chunk.is_empty() {
            return;
        }
        let keep = self.finder.needle().len().saturating_sub(1);
        if self.finder.find(chunk).is_some() {
            self.found = true;
            return;
        }
        if keep == 0 {
            return;
        }
        // A match across the boundary starts in the tail and ends in the chunk's first bytes.
        let head = &chunk[..chunk.len().min(keep)];
        let mut seam = Vec::with_capacity(self.tail.len() + head.len());
        seam.extend_from_slice(&self.tail);
        seam.extend_from_slice(head);
        if self.finder.find(&seam).is_some() {
            self.found = true;
            return;
        }
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            let drop = (self.tail.len() + chunk.len()).saturating_sub(keep);
            self.tail.drain(..drop.min(self.tail.len()));
            self.tail.extend_from_slice(chunk);
        }
    }
}

/// What a body showed the expectations that read it.
#[derive(Default)]
pub struct BodyVerdict {
    /// `bodyContains` was found (true when not asked).
    pub contains: bool,
    /// `bodyNotContains` was found.
    pub contains_forbidden: bool,
    /// `bodyRegex` matched (true when not asked).
    pub regex: bool,
    /// Why `json` failed: a mismatch, a body that is not JSON or not whole, or the budget.
    pub json: Option<Failure>,
    /// For `cel`: the whole buffered body and the budget it holds, or why it is not whole.
    pub cel: Option<Result<(Vec<u8>, Reservation), Failure>>,
}

/// Feeds a body to every expectation that reads it.
pub struct BodyCheck<'a> {
    expect: &'a HttpExpectations,
    contains: Option<StreamFinder>,
    not_contains: Option<StreamFinder>,
    /// The first `regex_body_limit` bytes, only when `bodyRegex` or `json` is set.
    regex_buffer: Option<Vec<u8>>,
    /// The body went on past `regex_body_limit`.
    overflow: bool,
    /// The budget's bytes the regex buffer may fill.
    reservation: Reservation,
}

impl<'a> BodyCheck<'a> {
    pub fn new(expect: &'a HttpExpectations, budget: &BodyBudget) -> Self {
        Self {
            expect,
            contains: expect.body_contains.as_deref().map(StreamFinder::new),
            not_contains: expect.body_not_contains.as_deref().map(StreamFinder::new),
            regex_buffer: expect.buffers_body().then(Vec::new),
            overflow: false,
            reservation: budget.reserve(),
        }
    }

    /// Feeds the next chunk; fails with `BodyBudgetExceeded` when the regex buffer must grow
    /// and the budget has no room.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        for finder in [&mut self.contains, &mut self.not_contains]
            .into_iter()
            .flatten()
        {
            finder.feed(chunk);
        }
        if let Some(buffer) = &mut self.regex_buffer {
            let limit = usize::try_from(self.expect.regex_body_limit).unwrap_or(usize::MAX);
            let take = chunk.len().min(limit.saturating_sub(buffer.len()));
            self.overflow |= take < chunk.len();
            if take == 0 {
                return Ok(());
            }
            if buffer.capacity() == 0 {
                // One allocation of the limit (4Mi at most), never moved: its pages are
                // touched only as bytes arrive, so memory follows what the reservation counts,
                // and no doubling leaves a freed copy behind in the allocator.
                buffer.reserve_exact(limit);
            }
            let needed = buffer.len() + take;
            let held = usize::try_from(self.reservation.bytes()).unwrap_or(usize::MAX);
            if needed > held {
                // Reserve ahead by doubling, never past the limit.
                let target = limit.min(needed.max(held.saturating_mul(2)));
                if !self.reservation.grow((target - held) as u64) {
                    return Err(over_budget(&self.reservation, target, self.what()));
                }
            }
            buffer.extend_from_slice(&chunk[..take]);
        }
        Ok(())
    }

    /// What the body showed; `cut` when reading stopped at `maxBodyBytes` with more to come.
    pub fn verdict(mut self, cut: bool) -> BodyVerdict {
        let regex = match (&self.expect.body_regex, &self.regex_buffer) {
            (Some(regex), Some(buffer)) => regex.is_match(buffer),
            _ => true,
        };
        let json = self.judge_json(cut).err();
        let cel = self.expect.cel.is_some().then(|| self.cel_body(cut));
        BodyVerdict {
            contains: self.contains.as_ref().is_none_or(StreamFinder::found),
            contains_forbidden: self.not_contains.as_ref().is_some_and(StreamFinder::found),
            regex,
            json,
            cel,
        }
    }

    /// The whole body and its reservation, handed to the CEL evaluator.
    fn cel_body(&mut self, cut: bool) -> Result<(Vec<u8>, Reservation), Failure> {
        let buffer = self.regex_buffer.take().unwrap_or_default();
        self.whole(cut, "cel needs", buffer.len())?;
        let empty = self.reservation.budget().reserve();
        Ok((buffer, std::mem::replace(&mut self.reservation, empty)))
    }

    /// Fails unless the buffer holds the whole body: not past `regexBodyLimit`, not cut.
    fn whole(&self, cut: bool, who: &str, len: usize) -> Result<(), Failure> {
        let mismatch = |message: String| Failure::new(Reason::BodyMismatch, message);
        if self.overflow {
            return Err(mismatch(format!(
                "the body is larger than regexBodyLimit ({} bytes): {who} the whole body (raise regexBodyLimit, at most 4Mi)",
                self.expect.regex_body_limit
            )));
        }
        if cut {
            return Err(mismatch(format!(
                "the body was cut at maxBodyBytes ({len} bytes): {who} the whole body (raise maxBodyBytes)"
            )));
        }
        Ok(())
    }

    /// Parses the buffered body and judges the `json` assertions; only a whole body is parsed.
    fn judge_json(&mut self, cut: bool) -> Result<(), Failure> {
        let (checks, Some(buffer)) = (&self.expect.json, self.regex_buffer.as_deref()) else {
            return Ok(());
        };
        if checks.is_empty() {
            return Ok(());
        }
        let mismatch = |message: String| Failure::new(Reason::BodyMismatch, message);
        self.whole(cut, "json assertions need", buffer.len())?;
        let before = self.reservation.bytes();
        let tree = json::parse(buffer, &mut self.reservation).map_err(|e| match e {
            JsonError::Budget(wanted) => over_budget(&self.reservation, wanted as usize, "json"),
            JsonError::Parse(_) => mismatch(format!(
                "{e} ({} bytes, starting {})",
                buffer.len(),
                json::shown(&serde_json::Value::String(
                    String::from_utf8_lossy(&buffer[..buffer.len().min(40)]).into_owned()
                ))
            )),
        })?;
        let verdict = json::judge(checks, &tree);
        drop(tree);
        self.reservation.release_to(before);
        verdict.map_or(Ok(()), |message| Err(mismatch(message)))
    }
}

impl BodyCheck<'_> {
    /// Which expectation the buffer is for, for messages.
    fn what(&self) -> &'static str {
        if self.expect.body_regex.is_some() {
            "bodyRegex"
        } else {
            "json"
        }
    }
}

/// The failure of a probe whose body buffer (or parsed JSON) found the budget spent.
pub(super) fn over_budget(reservation: &Reservation, wanted: usize, what: &str) -> Failure {
    let budget = reservation.budget();
    Failure::new(
        Reason::BodyBudgetExceeded,
        format!(
            "{what} needed {} of buffer, but probes already hold {} of the operator's {} body buffer budget (--body-buffer-budget): the body was not checked",
            mib(wanted as u64),
            mib(budget.held()),
            mib(budget.limit())
        ),
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found_in_chunks(needle: &str, chunks: &[&[u8]]) -> bool {
        let mut finder = StreamFinder::new(needle);
        for chunk in chunks {
            finder.feed(chunk);
        }
        finder.found()
    }

    #[test]
    fn matches_straddling_chunks_are_found() {
        assert!(found_in_chunks("healthy", &[b"all is heal", b"thy here"]));
        assert!(found_in_chunks(
            "healthy",
            &[b"h", b"e", b"a", b"l", b"t", b"h", b"y"]
        ));
        assert!(found_in_chunks("abc", &[b"xxab", b"", b"c"]));
        assert!(found_in_chunks("", &[b"anything"]));
        assert!(!found_in_chunks("healthy", &[b"heal", b"th", b"Y"]));
        assert!(!found_in_chunks("abc", &[b"ab", b"xc", b"bc"]));
    }

    #[test]
    fn the_tail_never_outgrows_the_needle() {
        let mut finder = StreamFinder::new("needle");
        for _ in 0..10_000 {
            finder.feed(&[0xFF; 4096]);
            assert!(finder.tail.len() < 6);
        }
        assert!(!finder.found());
    }

    #[test]
    fn regex_sees_at_most_its_limit() {
        let expect = HttpExpectations {
            body_regex: Some(regex::bytes::Regex::new("^a+$").unwrap()),
            regex_body_limit: 8,
            ..HttpExpectations::default()
        };
        let budget = BodyBudget::default();
        let mut check = BodyCheck::new(&expect, &budget);
        check.feed(b"aaaaa").unwrap();
        check.feed(b"aaaaab").unwrap();
        assert_eq!(check.regex_buffer.as_ref().unwrap().len(), 8);
        assert!(
            check.verdict(false).regex,
            "the b past the limit is not seen"
        );
    }

    #[test]
    fn regex_buffers_share_one_budget_and_return_it() {
        let expect = HttpExpectations {
            body_regex: Some(regex::bytes::Regex::new("ok").unwrap()),
            regex_body_limit: 4 << 20,
            ..HttpExpectations::default()
        };
        let budget = BodyBudget::new(6 << 20);
        let chunk = vec![b'x'; 64 << 10];
        let mut first = BodyCheck::new(&expect, &budget);
        let mut second = BodyCheck::new(&expect, &budget);
        for _ in 0..64 {
            first.feed(&chunk).unwrap();
        }
        assert_eq!(budget.held(), 4 << 20);
        let failure = (0..64).find_map(|_| second.feed(&chunk).err()).unwrap();
        assert_eq!(failure.reason, Reason::BodyBudgetExceeded);
        assert!(
            failure.message.contains("--body-buffer-budget"),
            "{}",
            failure.message
        );
        assert!(budget.held() <= budget.limit());
        drop((first, second));
        assert_eq!(budget.held(), 0);
    }
}
