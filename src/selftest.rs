//! `canary selftest`: checks an installed Canary from inside the cluster (the chart's
//! `helm test` Pod runs it as the operator's ServiceAccount): the operator's `/readyz` answers
//! 200 and the API server serves the HealthCheck API, listed where the operator watches
//! (`--namespaces`, as its namespaced RBAC allows). Exit 0 when both hold, 1 with the reason
//! otherwise.

use std::time::Duration;

use crate::{
    admin::client::get,
    api::HealthCheck,
    controller::{ControllerError, client},
};

/// Deadline of each check.
const TIMEOUT: Duration = Duration::from_secs(10);
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
/// `namespaces` (all namespaces when empty).
pub async fn run(readyz_url: &str, namespaces: &[String]) -> Result<(), SelftestError> {
    readyz(readyz_url).await?;
    println!("ok: {readyz_url} answers 200");
    let client = client().await?;
    if namespaces.is_empty() {
        list(kube::Api::all(client), "all namespaces").await?;
    } else {
        for namespace in namespaces {
            let api = kube::Api::namespaced(client.clone(), namespace);
            list(api, &format!("namespace {namespace}")).await?;
        }
    }
    Ok(())
}

/// Lists one HealthCheck through `api` (all namespaces or one, as the operator's RBAC allows).
async fn list(api: kube::Api<HealthCheck>, scope: &str) -> Result<(), SelftestError> {
    let params = kube::api::ListParams::default().limit(1);
    match tokio::time::timeout(TIMEOUT, api.list(&params)).await {
        Ok(Ok(_)) => {
            println!("ok: the API server serves healthchecks.canary.dev/v1alpha1 ({scope})");
            Ok(())
        }
        Ok(Err(e)) => Err(SelftestError::Api(format!("listing in {scope}: {e}"))),
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
