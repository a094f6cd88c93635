//! Leader election with a coordination.k8s.io/v1 Lease: acquire when free or expired, renew
//! every third of the lease duration, step down when renewal fails for a whole duration, and
//! release on shutdown so a standby takes over at once.

use std::time::Duration;

use k8s_openapi::{api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::MicroTime};
use kube::{Api, Client, api::PostParams};
use tokio::{sync::watch, time::Instant};

/// Where and as whom to hold the Lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
}

/// Why one election round failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("reading Lease: {0}")]
    Get(#[source] kube::Error),
    #[error("writing Lease: {0}")]
    Write(#[source] kube::Error),
}

/// Campaigns until `shutdown` flips, publishing whether this replica leads.
pub async fn run(
    client: Client,
    config: LeaseConfig,
    leading: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let period = config.duration / 3;
    let mut last_renewal: Option<Instant> = None;
    loop {
        match try_acquire_or_renew(&api, &config).await {
            Ok(true) => last_renewal = Some(Instant::now()),
            Ok(false) => last_renewal = None,
            Err(error) => {
                tracing::warn!(%error, lease = %config.name, "leader election round failed")
            }
        }
        // Lead only while the last renewal is fresher than the lease duration.
        let leads = last_renewal.is_some_and(|at| at.elapsed() < config.duration);
        leading.send_if_modified(|current| {
            let changed = *current != leads;
            if changed {
                tracing::info!(identity = %config.identity, leading = leads, "leadership changed");
            }
            *current = leads;
            changed
        });
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => break,
        }
    }
    if *leading.borrow() {
        if let Err(error) = release(&api, &config).await {
            tracing::warn!(%error, "could not release the Lease; a standby takes over when it expires");
        }
        leading.send_replace(false);
    }
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// One round: true when this replica holds the Lease afterwards.
async fn try_acquire_or_renew(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, LeaderError> {
    let seconds = i32::try_from(config.duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&config.name).await.map_err(LeaderError::Get)? else {
        let mut lease = Lease::default();
        lease.metadata.name = Some(config.name.clone());
        lease.spec = Some(k8s_openapi::api::coordination::v1::LeaseSpec {
            holder_identity: Some(config.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            lease_transitions: Some(0),
            ..Default::default()
        });
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(LeaderError::Write(error)),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(duration)) => {
            let until =
                renewed.0 + std::time::Duration::from_secs(u64::try_from(duration).unwrap_or(0));
            until < jiff::Timestamp::now()
        }
        _ => true,
    };
    if holder != config.identity {
        if !holder.is_empty() && !expired {
            return Ok(false);
        }
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(seconds);
    // replace() sends the resourceVersion we read: a concurrent writer makes this a 409.
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(LeaderError::Write(error)),
    }
}

async fn release(api: &Api<Lease>, config: &LeaseConfig) -> Result<(), LeaderError> {
    let Some(mut lease) = api.get_opt(&config.name).await.map_err(LeaderError::Get)? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    api.replace(&config.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
        .map_err(LeaderError::Write)
}
