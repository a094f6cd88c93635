//! Fault injection rules: failing or hanging the next requests, and added latency.

use std::time::Duration;

/// What an injected fault does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this HTTP status and a matching `Status` object.
    Fail(u16),
    /// Never answer (until the client gives up or the server stops).
    Hang,
}

#[derive(Debug, Clone)]
struct Rule {
    remaining: u32,
    path_contains: Option<String>,
    action: FaultAction,
}

/// Active fault rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<Rule>,
    /// Delay added before every answer.
    pub latency: Duration,
}

impl Faults {
    /// The next `count` requests (whose path contains `path_contains`, if given) get `action`.
    pub fn add(&mut self, count: u32, path_contains: Option<String>, action: FaultAction) {
        self.rules.push(Rule {
            remaining: count,
            path_contains,
            action,
        });
    }

    /// Removes all rules and latency.
    pub fn clear(&mut self) {
        self.rules.clear();
        self.latency = Duration::ZERO;
    }

    /// The fault for a request to `path`, consuming one use of the first matching rule.
    pub fn take(&mut self, path: &str) -> Option<FaultAction> {
        let rule = self.rules.iter_mut().find(|r| {
            r.remaining > 0 && r.path_contains.as_deref().is_none_or(|p| path.contains(p))
        })?;
        rule.remaining -= 1;
        let action = rule.action;
        self.rules.retain(|r| r.remaining > 0);
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_paths_and_run_out() {
        let mut f = Faults::default();
        f.add(1, Some("configmaps".into()), FaultAction::Fail(503));
        assert_eq!(f.take("/api/v1/pods"), None);
        assert_eq!(
            f.take("/api/v1/namespaces/a/configmaps"),
            Some(FaultAction::Fail(503))
        );
        assert_eq!(f.take("/api/v1/namespaces/a/configmaps"), None);
    }
}
