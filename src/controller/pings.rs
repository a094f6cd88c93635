//! The operator's heartbeat backend: any replica authenticates a ping (the token of a check it
//! does not run is read from the check's Secret through the reference cache) and records it in
//! the check's status (`lastPingTime`, `lastPing`) under its own field manager and write
//! budget; the replica that runs the check learns of it from its watch
//! ([`super::index::Change::Pinged`]), or at once when it received the ping itself. No
//! replica-to-replica forwarding.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams},
};

use super::reconcile::Core;
use crate::{
    api::{CheckKey, HealthCheck, HealthCheckStatus, ProbeKind, validate},
    heartbeat::{Backend, RecordError},
    lock,
    probe::heartbeat_token,
    runner::heartbeat::Ping,
};

/// The field manager of ping writes (the status writer never applies these fields).
pub const PING_FIELD_MANAGER: &str = "canary-operator-heartbeat";
/// Ping writes per second this replica sends at most (its ping write budget), and the burst.
pub const PING_WRITE_QPS: u32 = 5;
pub const PING_WRITE_BURST: u32 = 20;
/// How long a token read for a check another replica runs is reused (a rotated Secret is
/// picked up within this).
const TOKEN_TTL: Duration = Duration::from_secs(30);
/// One ping write's limit.
const PATCH_TIMEOUT: Duration = Duration::from_secs(5);

type Token = Option<Arc<[u8]>>;

/// Pings recorded through the API server.
pub struct ApiPings {
    client: Client,
    /// Reconcile's core, once it exists (the engine, and so the listener, starts first).
    core: OnceLock<Arc<Core>>,
    budget: DefaultDirectRateLimiter,
    tokens: Mutex<HashMap<CheckKey, (Instant, Token)>>,
}

impl ApiPings {
    pub fn new(client: Client) -> Arc<Self> {
        let qps = NonZeroU32::new(PING_WRITE_QPS).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(PING_WRITE_BURST).unwrap_or(NonZeroU32::MIN);
        Arc::new(Self {
            client,
            core: OnceLock::new(),
            budget: RateLimiter::direct(Quota::per_second(qps).allow_burst(burst)),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Connects reconcile's core: until then pings are answered 503.
    pub fn attach(&self, core: Arc<Core>) {
        let _ = self.core.set(core);
    }

    fn core(&self) -> Result<&Arc<Core>, RecordError> {
        (self.core.get()).ok_or_else(|| RecordError::Unavailable("the operator is starting".into()))
    }

    async fn token_of(&self, key: &CheckKey) -> Result<Token, RecordError> {
        let core = self.core()?;
        if let Some(token) = core.context().scheduler.heartbeat_token(key) {
            return Ok(Some(token));
        }
        if let Some((at, token)) = lock(&self.tokens).get(key)
            && at.elapsed() < TOKEN_TTL
        {
            return Ok(token.clone());
        }
        let Some(object) = core.object(key) else {
            return Ok(None);
        };
        let Ok(valid) = validate(&object.spec) else {
            return Ok(None);
        };
        let ProbeKind::Heartbeat(heartbeat) = &valid.probe else {
            return Ok(None);
        };
        let references = [heartbeat.token.object.clone()];
        let resolved = (core
            .context()
            .refs
            .resolve(&key.namespace, &references)
            .await)
            .map_err(|error| RecordError::Unavailable(error.to_string()))?;
        let token: Token = heartbeat_token(heartbeat, &resolved).ok().map(Arc::from);
        let mut tokens = lock(&self.tokens);
        tokens.retain(|_, (at, _)| at.elapsed() < TOKEN_TTL);
        tokens.insert(key.clone(), (Instant::now(), token.clone()));
        Ok(token)
    }

    async fn write(
        &self,
        key: &CheckKey,
        ping: Ping,
        run_id: Option<String>,
    ) -> Result<(), RecordError> {
        let core = self.core()?;
        if self.budget.check().is_err() {
            return Err(RecordError::Busy);
        }
        // Status keeps whole seconds: the owner, here or through its watch, sees this time.
        let ping = Ping {
            at: jiff::Timestamp::from_second(ping.at.as_second()).unwrap_or(ping.at),
            ..ping
        };
        let mut status = HealthCheckStatus::default();
        ping.record(&mut status, run_id.clone());
        let patch = Patch::Apply(serde_json::json!({
            "apiVersion": HealthCheck::api_version(&()),
            "kind": HealthCheck::kind(&()),
            "status": {"lastPingTime": status.last_ping_time, "lastPing": status.last_ping},
        }));
        // force: these two fields are only ever written by receiving replicas, under this
        // manager; a manual edit must not make pings fail with a conflict.
        let params = PatchParams::apply(PING_FIELD_MANAGER).force();
        let api: Api<HealthCheck> = Api::namespaced(self.client.clone(), &key.namespace);
        let sent =
            tokio::time::timeout(PATCH_TIMEOUT, api.patch_status(&key.name, &params, &patch));
        match sent.await {
            Ok(Ok(_)) => {
                // The owner is this replica: it need not wait for the watch.
                core.context().scheduler.ping(key, ping, run_id);
                Ok(())
            }
            Ok(Err(error)) => {
                tracing::warn!(check = %key, %error, "cannot record a heartbeat ping");
                Err(RecordError::Unavailable(error.to_string()))
            }
            Err(_) => Err(RecordError::Unavailable(
                "the status write timed out".into(),
            )),
        }
    }
}

impl Backend for ApiPings {
    fn token<'a>(&'a self, key: &'a CheckKey) -> BoxFuture<'a, Result<Token, RecordError>> {
        Box::pin(self.token_of(key))
    }

    fn record<'a>(
        &'a self,
        key: &'a CheckKey,
        ping: Ping,
        run_id: Option<String>,
    ) -> BoxFuture<'a, Result<(), RecordError>> {
        Box::pin(self.write(key, ping, run_id))
    }
}
