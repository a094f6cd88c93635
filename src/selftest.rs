//! `canary selftest`: checks an installed Canary from inside the cluster (the chart's
//! `helm test` Pod runs it as the operator's ServiceAccount): the operator's `/readyz` answers
//! 200 and the API server serves the HealthCheck API, listed where the operator watches
//! (`--namespaces`, as its namespaced RBAC allows). Each is retried within `--timeout` (an
//! operator still starting is not a failed install). Exit 0 when both hold, 1 with the reason
//! otherwise.

use std::time::Duration;

use tokio::time::Instant;

use crate::{
    admin::client::get,
    api::{HealthCheck, fmt_go},
    controller::{ControllerError, api_error::describe, client},
};

/// Deadline of each attempt.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Default `--timeout`: how long both checks together are retried (an operator still starting,
/// a Service whose endpoints lag behind a rollout).
pub const DEADLINE: Duration = Duration::from_secs(60);
/// The first pause between attempts, doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const MAX_PAUSE: Duration = Duration::from_secs(5);
/// `/readyz` answers a line or two; more is not shown.
const READYZ_BODY: usize = 64 << 10;

/// Why the self-test failed.
#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    #[error("{url}: {why}")]
    Readyz { url: String, why: String },
    #[error("the API server does not serve healthchecks.canary.dev: {0}")]
    Api(String),
    #[error(transparent)]
    Client(#[from] ControllerError),
}

/// Runs both checks against the operator whose `/readyz` is at `readyz_url`, listing in
/// `namespaces` (all namespaces when empty), each retried until it passes or `deadline` (from
/// the start) has passed.
pub async fn run(
    readyz_url: &str,
    namespaces: &[String],
    deadline: Duration,
) -> Result<(), SelftestError> {
    let deadline = Instant::now() + deadline;
    retried(deadline, || readyz(readyz_url)).await?;
    println!("ok: {readyz_url} answers 200");
    let client = client().await?;
    if namespaces.is_empty() {
        retried(deadline, || {
            list(kube::Api::all(client.clone()), "all namespaces")
        })
        .await?;
    } else {
        for namespace in namespaces {
            let api = kube::Api::namespaced(client.clone(), namespace);
            let scope = format!("namespace {namespace}");
            retried(deadline, || list(api.clone(), &scope)).await?;
        }
    }
    Ok(())
}

/// `attempt` until it passes, pausing longer each time, as long as the next try starts before
/// `deadline`; the last error otherwise.
async fn retried<F>(deadline: Instant, mut attempt: impl FnMut() -> F) -> Result<(), SelftestError>
where
    F: Future<Output = Result<(), SelftestError>>,
{
    let mut pause = FIRST_PAUSE;
    loop {
        let error = match attempt().await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        if Instant::now() + pause >= deadline {
            return Err(error);
        }
        println!("retrying in {}: {error}", fmt_go(pause));
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Lists one HealthCheck through `api` (all namespaces or one, as the operator's RBAC allows).
async fn list(api: kube::Api<HealthCheck>, scope: &str) -> Result<(), SelftestError> {
    let params = kube::api::ListParams::default().limit(1);
    match tokio::time::timeout(TIMEOUT, api.list(&params)).await {
        Ok(Ok(_)) => {
            println!("ok: the API server serves healthchecks.canary.dev/v1alpha1 ({scope})");
            Ok(())
        }
        Ok(Err(e)) => Err(SelftestError::Api(format!(
            "listing in {scope}: {}",
            describe(&e)
        ))),
        Err(_) => Err(SelftestError::Api(format!("listing in {scope}: timed out"))),
    }
}

/// GET `url` (plain HTTP, as the admin endpoints serve it): Ok on 200.
async fn readyz(url: &str) -> Result<(), SelftestError> {
    let fail = |why: String| SelftestError::Readyz {
        url: url.into(),
        why,
    };
    let uri: http::Uri = url.parse().map_err(|e| fail(format!("not a URL: {e}")))?;
    let host = uri
        .host()
        .ok_or_else(|| fail("no host".into()))?
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    let exchange = async {
        let get = get((host.as_str(), port), &host, uri.path(), &[], READYZ_BODY);
        let response = get.await.map_err(fail)?;
        match response.status().as_u16() {
            200 => Ok(()),
            code => Err(fail(format!(
                "answered {code}: {}",
                String::from_utf8_lossy(response.body()).trim()
            ))),
        }
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| fail("timed out".into()))?
}
