//! The overview's and the list API's window onto the fleet. One pass over the runners keeps
//! the key, group and state of the checks that pass the filter; only the checks of the page
//! asked for are then copied out and rendered, so a page costs about the same at 100 or 30,000
//! checks and no response grows with the fleet.

use std::collections::{BTreeMap, HashMap};

use super::model::{Check, Source};
use crate::{api::CheckKey, runner::CheckInfo};

/// Cards on one overview page.
pub const PAGE_SIZE: usize = 100;
/// Longest search text kept (characters); the rest is ignored.
pub const MAX_SEARCH: usize = 100;

/// Which checks a page shows: `?q=` words and `?failing=1`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub failing_only: bool,
    /// The search text as typed (cut at [`MAX_SEARCH`] characters).
    pub text: String,
    /// Its words, lower-cased: each must occur in the namespace, the name or a label
    /// (`key=value`).
    words: Vec<String>,
}

impl Filter {
    /// From the query string (`failing` other than `0`, `q`).
    pub fn parse(query: &[(String, String)]) -> Self {
        let mut filter = Self::default();
        for (name, value) in query {
            match name.as_str() {
                "failing" => filter.failing_only = value != "0",
                "q" => filter.text = value.trim().chars().take(MAX_SEARCH).collect(),
                _ => {}
            }
        }
        filter.words = (filter.text.split_whitespace())
            .map(str::to_lowercase)
            .collect();
        filter
    }

    /// Whether the check passes.
    pub fn admits(&self, key: &CheckKey, info: &CheckInfo, failing: bool) -> bool {
        if self.failing_only && !failing {
            return false;
        }
        self.words.iter().all(|word| {
            let found = |text: &str| text.to_lowercase().contains(word.as_str());
            found(&key.namespace)
                || found(&key.name)
                || (info.labels.iter()).any(|(k, v)| found(&format!("{k}={v}")))
        })
    }

    /// The query string of this filter at `page` (1-based; page 1 is left out).
    pub fn href(&self, page: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if !self.text.is_empty() {
            query.append_pair("q", &self.text);
        }
        if self.failing_only {
            query.append_pair("failing", "1");
        }
        if page > 1 {
            query.append_pair("page", &page.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            "/".into()
        } else {
            format!("/?{query}")
        }
    }

    /// The same filter with "failing only" flipped.
    pub fn toggled(&self) -> Self {
        Self {
            failing_only: !self.failing_only,
            ..self.clone()
        }
    }
}

/// The page number asked for (`?page=`, 1-based): 1 when absent or not a number.
pub fn page_number(query: &[(String, String)]) -> usize {
    (query.iter().find(|(k, _)| k == "page"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// One page of the overview and counts over every check.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Every visible check.
    pub total: usize,
    /// Visible checks that need attention.
    pub failing: usize,
    /// Checks that pass the filter.
    pub matched: usize,
    /// This page (1-based, clamped to the last one) and how many there are.
    pub page: usize,
    pub pages: usize,
    /// The checks of this page, by group, namespace and name.
    pub checks: Vec<Check>,
    /// Matched checks per group (over all pages).
    pub groups: BTreeMap<String, usize>,
    /// The earliest start of any visible check's history (Unix seconds).
    pub since: Option<i64>,
    /// Some visible check's history is kept in status too (see [`crate::runner::History`]).
    pub stored: bool,
    /// With `--prometheus-url`: whether it answered for this page (see [`Check::prometheus`]).
    pub prometheus: Option<super::model::PromNote>,
}

/// A check that passed the filter, before it is copied out.
struct Row {
    group: String,
    key: CheckKey,
}

/// Rows `start..start + PAGE_SIZE` in order (by group, then key), without sorting the rest:
/// two selections and a sort of one page, so a page of 30,000 checks does not sort them all.
fn page_window(rows: &mut [Row], start: usize) -> &mut [Row] {
    let order = |a: &Row, b: &Row| (&a.group, &a.key).cmp(&(&b.group, &b.key));
    if start >= rows.len() {
        return &mut [];
    }
    if start > 0 {
        rows.select_nth_unstable_by(start, order);
    }
    let rest = &mut rows[start..];
    if rest.len() > PAGE_SIZE {
        rest.select_nth_unstable_by(PAGE_SIZE, order);
    }
    let end = rest.len().min(PAGE_SIZE);
    let page = &mut rest[..end];
    page.sort_unstable_by(order);
    page
}

impl Source {
    /// Page `page` (1-based, clamped) of the checks `filter` admits, by group then key.
    pub fn overview(&self, filter: &Filter, page: usize, now: i64) -> Listing {
        let mut listing = Listing::default();
        let mut rows = Vec::new();
        self.scheduler.visit(|spec, view| {
            if spec.info.hidden {
                return;
            }
            let failing = view.state.needs_attention();
            listing.total += 1;
            listing.failing += usize::from(failing);
            let since = view.history.since;
            listing.since = Some(listing.since.map_or(since, |s: i64| s.min(since)));
            listing.stored |= view.history.stored_in_status();
            if filter.admits(&spec.key, &spec.info, failing) {
                let group = spec.info.group(&spec.key).to_string();
                rows.push(Row {
                    group,
                    key: spec.key.clone(),
                });
            }
        });
        for check in self.located_all() {
            let failing = check.state().needs_attention();
            listing.total += 1;
            listing.failing += usize::from(failing);
            if filter.admits(&check.key, &check.info, failing) {
                let group = check.info.group(&check.key).to_string();
                let key = check.key.clone();
                rows.push(Row { group, key });
            }
        }
        let mut groups: HashMap<&str, usize> = HashMap::new();
        for row in &rows {
            *groups.entry(&row.group).or_default() += 1;
        }
        listing.groups = (groups.into_iter())
            .map(|(group, n)| (group.to_string(), n))
            .collect();
        listing.matched = rows.len();
        listing.pages = rows.len().div_ceil(PAGE_SIZE).max(1);
        listing.page = page.clamp(1, listing.pages);
        let start = (listing.page - 1) * PAGE_SIZE;
        listing.checks = (page_window(&mut rows, start).iter())
            .filter_map(|row| self.check(&row.key, now))
            .collect();
        listing
    }

    /// Up to `limit` visible checks after `after` (namespace, name), by key; with the number
    /// of visible checks and whether more follow.
    pub fn list(
        &self,
        after: Option<&(String, String)>,
        limit: usize,
        now: i64,
    ) -> (Vec<Check>, usize, bool) {
        let mut keys = Vec::new();
        self.scheduler.visit(|spec, _| {
            if !spec.info.hidden {
                keys.push(spec.key.clone());
            }
        });
        keys.extend(self.located_all().iter().map(|c| c.key.clone()));
        keys.sort_unstable();
        let start = after.map_or(0, |(namespace, name)| {
            keys.partition_point(|k| {
                (k.namespace.as_str(), k.name.as_str()) <= (namespace.as_str(), name.as_str())
            })
        });
        let end = keys.len().min(start + limit);
        let checks = keys[start..end]
            .iter()
            .filter_map(|key| self.check(key, now))
            .collect();
        (checks, keys.len(), end < keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        (pairs.iter())
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn key(namespace: &str, name: &str) -> CheckKey {
        CheckKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    proptest::proptest! {
        /// Each page's window holds exactly the rows a full sort puts on that page.
        #[test]
        fn a_page_window_is_that_page_of_the_full_order(
            names in proptest::collection::vec((0u8..4, 0u16..500), 0..450),
            page in 0usize..6,
        ) {
            let row = |&(group, name): &(u8, u16)| Row {
                group: format!("g{group}"),
                key: key("ns", &format!("c{name}")),
            };
            let mut sorted: Vec<Row> = names.iter().map(row).collect();
            sorted.sort_by(|a, b| (&a.group, &a.key).cmp(&(&b.group, &b.key)));
            let mut rows: Vec<Row> = names.iter().map(row).collect();
            let window = page_window(&mut rows, page * PAGE_SIZE);
            let expected: Vec<(&String, &CheckKey)> = (sorted.iter().skip(page * PAGE_SIZE))
                .take(PAGE_SIZE)
                .map(|r| (&r.group, &r.key))
                .collect();
            let got: Vec<(&String, &CheckKey)> = window.iter().map(|r| (&r.group, &r.key)).collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn every_word_must_match_a_namespace_name_or_label() {
        let mut info = CheckInfo::default();
        info.labels.insert("team".into(), "Payments".into());
        let filter = Filter::parse(&query(&[("q", " shop team=pay ")]));
        assert_eq!(filter.text, "shop team=pay");
        assert!(filter.admits(&key("shop", "api"), &info, false));
        assert!(!filter.admits(&key("infra", "api"), &info, false));
        let by_name = Filter::parse(&query(&[("q", "API")]));
        assert!(by_name.admits(&key("shop", "api-v2"), &CheckInfo::default(), false));
        let failing = Filter::parse(&query(&[("failing", "1")]));
        assert!(!failing.admits(&key("shop", "api"), &info, false));
        assert!(failing.admits(&key("shop", "api"), &info, true));
    }

    #[test]
    fn links_keep_the_filter_and_encode_it() {
        let filter = Filter::parse(&query(&[("q", "a&b c"), ("failing", "1")]));
        assert_eq!(filter.href(1), "/?q=a%26b+c&failing=1");
        assert_eq!(filter.href(3), "/?q=a%26b+c&failing=1&page=3");
        assert_eq!(filter.toggled().href(1), "/?q=a%26b+c");
        assert_eq!(Filter::default().href(1), "/");
    }

    #[test]
    fn search_text_is_cut_and_pages_are_whole_numbers() {
        let long = "x".repeat(MAX_SEARCH * 3);
        assert_eq!(
            Filter::parse(&query(&[("q", &long)])).text.len(),
            MAX_SEARCH
        );
        assert_eq!(page_number(&query(&[("page", "3")])), 3);
        for bad in ["0", "-1", "x", ""] {
            assert_eq!(page_number(&query(&[("page", bad)])), 1, "{bad}");
        }
    }
}
