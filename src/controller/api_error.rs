//! Kubernetes API errors as one line a person reads. kube's `Display` of an API server's answer
//! appends the whole `Status` in Rust debug form (`Status { status: Some(Failure), code: 404,
//! ... }`); logs, `/readyz` and error messages use [`describe`] instead, and a HealthCheck API
//! that is not served says how to install it.

use kube::{core::Status, runtime::watcher};

/// What to do when the API server does not serve the HealthCheck API.
pub const INSTALL_CRD: &str = "the HealthCheck CRD (healthchecks.canary.dev) is not installed: \
     run `kubectl apply -f crds/`, or install the chart with crds.enabled=true";

/// `error` as one line: an API server's answer as its code, reason and message.
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status_line(status),
        other => other.to_string(),
    }
}

/// `404 NotFound: the server could not find the requested resource`.
pub fn status_line(status: &Status) -> String {
    let message = match status.message.as_str() {
        "" => "(no message)",
        message => message,
    };
    match status.reason.as_str() {
        "" => format!("{} {message}", status.code),
        reason => format!("{} {reason}: {message}", status.code),
    }
}

/// A failed watch as one line, naming the step that failed; a HealthCheck API that is not
/// served (404 on the list or the watch) says how to install the CRD.
pub fn describe_watch(error: &watcher::Error) -> String {
    let (step, answer) = match error {
        watcher::Error::InitialListFailed(e) => ("listing HealthChecks", describe(e)),
        watcher::Error::WatchStartFailed(e) => ("starting the watch", describe(e)),
        watcher::Error::WatchError(status) => ("the watch", status_line(status)),
        watcher::Error::WatchFailed(e) => ("the watch stream", describe(e)),
        watcher::Error::NoResourceVersion => return error.to_string(),
    };
    match api_code(error) {
        Some(404) => format!("{INSTALL_CRD} ({step}: {answer})"),
        _ => format!("{step}: {answer}"),
    }
}

/// The API server's status code in a watch error, if it answered.
pub(crate) fn api_code(error: &watcher::Error) -> Option<u16> {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.code),
        watcher::Error::WatchError(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> Box<Status> {
        Box::new(Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Status::default()
        })
    }

    #[test]
    fn an_api_answer_reads_as_code_reason_and_message_never_as_a_debug_struct() {
        let error = kube::Error::Api(status(403, "Forbidden", "no list for you"));
        assert_eq!(describe(&error), "403 Forbidden: no list for you");
        assert!(error.to_string().contains("Status {"), "kube's own Display");
        let bare = kube::Error::Api(status(500, "", ""));
        assert_eq!(describe(&bare), "500 (no message)");
    }

    #[test]
    fn a_missing_crd_says_how_to_install_it() {
        let missing = status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
        let error = watcher::Error::InitialListFailed(kube::Error::Api(missing));
        let line = describe_watch(&error);
        assert!(line.contains("kubectl apply -f crds/"), "{line}");
        assert!(line.contains("crds.enabled=true"), "{line}");
        assert!(line.ends_with("(listing HealthChecks: 404 NotFound: the server could not find the requested resource)"), "{line}");
        assert!(!line.contains("Status {"), "{line}");
        let gone = watcher::Error::WatchError(status(410, "Expired", "too old"));
        assert_eq!(describe_watch(&gone), "the watch: 410 Expired: too old");
    }
}
