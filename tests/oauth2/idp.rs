//! A loopback token endpoint and a protected target.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use canary_test_harness::targets::{Recorded, Reply, TestServer, Transport};
use serde_json::{Value, json};

/// The client secret every test uses: characters form encoding must escape.
pub const SECRET: &str = "s3cr3t:with+odd/chars";
/// Every token issued starts with this, so a test can look for any of them.
pub const TOKEN_PREFIX: &str = "tok3n-";

/// A token endpoint issuing `tok3n-1`, `tok3n-2`, ... with the answer it is set to.
pub struct Idp {
    pub server: TestServer,
    issued: Arc<AtomicUsize>,
    /// `None`: issue a token; `Some(reply)`: answer that instead.
    refuse: Arc<Mutex<Option<Reply>>>,
    https: bool,
}

impl Idp {
    /// Issues tokens that expire after `expires_in` (left out when `Null`).
    pub async fn start(expires_in: Value) -> Self {
        Self::start_on(Transport::Plain, expires_in).await
    }

    /// [`Idp::start`] speaking `transport`.
    pub async fn start_on(transport: Transport, expires_in: Value) -> Self {
        let issued = Arc::new(AtomicUsize::new(0));
        let refuse: Arc<Mutex<Option<Reply>>> = Arc::default();
        let (count, refusal) = (issued.clone(), refuse.clone());
        let https = matches!(transport, Transport::Tls(_));
        let server = TestServer::start(transport, move |_: &Recorded| {
            if let Some(reply) = refusal.lock().unwrap().clone() {
                return reply;
            }
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let mut body =
                json!({"access_token": format!("{TOKEN_PREFIX}{n}"), "token_type": "Bearer"});
            if !expires_in.is_null() {
                body["expires_in"] = expires_in.clone();
            }
            Reply::Full {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: body.to_string().into_bytes(),
            }
        })
        .await;
        Self {
            server,
            issued,
            refuse,
            https,
        }
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// Answers `reply` instead of a token from now on.
    pub fn refuse(&self, reply: Reply) {
        *self.refuse.lock().unwrap() = Some(reply);
    }

    pub fn token_url(&self) -> String {
        url(&self.server, self.https, "/oauth2/token")
    }
}

/// `http://127.0.0.1:PORT{path}`, or `https://localhost:PORT{path}` (the name in test
/// certificates).
fn url(server: &TestServer, https: bool, path: &str) -> String {
    match https {
        true => format!("https://localhost:{}{path}", server.port()),
        false => server.url(path),
    }
}

/// A target that answers 200 to `Bearer tok3n-N` with N at least the floor, else 401.
pub struct Api {
    pub server: TestServer,
    floor: Arc<AtomicUsize>,
    https: bool,
}

impl Api {
    pub async fn start() -> Self {
        Self::start_on(Transport::Plain).await
    }

    /// [`Api::start`] speaking `transport`.
    pub async fn start_on(transport: Transport) -> Self {
        let https = matches!(transport, Transport::Tls(_));
        let floor = Arc::new(AtomicUsize::new(1));
        let min = floor.clone();
        let server = TestServer::start(transport, move |request: &Recorded| {
            let n = (request.header("authorization"))
                .and_then(|v| v.strip_prefix(&format!("Bearer {TOKEN_PREFIX}")))
                .and_then(|n| n.parse::<usize>().ok());
            match n {
                Some(n) if n >= min.load(Ordering::SeqCst) => Reply::ok("up"),
                _ => Reply::status(401, "no"),
            }
        })
        .await;
        Self {
            server,
            floor,
            https,
        }
    }

    pub fn url(&self) -> String {
        url(&self.server, self.https, "/health")
    }

    /// Tokens below `n` are refused from now on (revoked); `usize::MAX` refuses all.
    pub fn revoke_below(&self, n: usize) {
        self.floor.store(n, Ordering::SeqCst);
    }

    /// The Authorization values received, oldest first.
    pub fn authorizations(&self) -> Vec<String> {
        (self.server.requests().iter())
            .map(|r| r.header("authorization").unwrap_or_default().to_string())
            .collect()
    }
}

/// An http check of `api` authenticated at `idp` (the Secret `idp`, key `secret`).
pub fn check(api: &Api, idp: &Idp, style: &str) -> Value {
    json!({
        "interval": "1s",
        "timeout": "900ms",
        "http": {
            "url": api.url(),
            "auth": {"oauth2ClientCredentials": {
                "tokenURL": idp.token_url(),
                "clientID": "canary probe",
                "clientSecretRef": {"name": "idp", "key": "secret"},
                "scopes": ["health:read", "openid"],
                "audience": "https://api.example",
                "extraParams": {"resource": "urn:shop"},
                "authStyle": style,
            }},
        },
    })
}
