//! Response bodies read with a cap and checked as they stream: `bodyContains` and
//! `bodyNotContains` match chunk by chunk (a match may straddle chunks) with no copy of the
//! body; only `bodyRegex` buffers, and at most `regexBodyLimit` bytes. Matching is on bytes,
//! so a body that is not UTF-8 costs nothing extra.

use memchr::memmem::Finder;

use crate::api::HttpExpectations;

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
}

/// Feeds a body to every expectation that reads it.
pub struct BodyCheck<'a> {
    expect: &'a HttpExpectations,
    contains: Option<StreamFinder>,
    not_contains: Option<StreamFinder>,
    /// The first `regex_body_limit` bytes, only when `bodyRegex` is set.
    regex_buffer: Option<Vec<u8>>,
}

impl<'a> BodyCheck<'a> {
    pub fn new(expect: &'a HttpExpectations) -> Self {
        Self {
            expect,
            contains: expect.body_contains.as_deref().map(StreamFinder::new),
            not_contains: expect.body_not_contains.as_deref().map(StreamFinder::new),
            regex_buffer: expect.body_regex.as_ref().map(|_| Vec::new()),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        for finder in [&mut self.contains, &mut self.not_contains]
            .into_iter()
            .flatten()
        {
            finder.feed(chunk);
        }
        if let Some(buffer) = &mut self.regex_buffer {
            let limit = usize::try_from(self.expect.regex_body_limit).unwrap_or(usize::MAX);
            let take = chunk.len().min(limit.saturating_sub(buffer.len()));
            let needed = buffer.len() + take;
            if needed > buffer.capacity() {
                // Grow by doubling, but never past the limit.
                let target = limit.min(needed.max(buffer.capacity() * 2));
                buffer.reserve_exact(target - buffer.len());
            }
            buffer.extend_from_slice(&chunk[..take]);
        }
    }

    pub fn verdict(self) -> BodyVerdict {
        let regex = match (&self.expect.body_regex, &self.regex_buffer) {
            (Some(regex), Some(buffer)) => regex.is_match(buffer),
            _ => true,
        };
        BodyVerdict {
            contains: self.contains.as_ref().is_none_or(StreamFinder::found),
            contains_forbidden: self.not_contains.as_ref().is_some_and(StreamFinder::found),
            regex,
        }
    }
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
        let mut check = BodyCheck::new(&expect);
        check.feed(b"aaaaa");
        check.feed(b"aaaaab");
        assert_eq!(check.regex_buffer.as_ref().unwrap().len(), 8);
        assert!(check.verdict().regex, "the b past the limit is not seen");
    }
}
