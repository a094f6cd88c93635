//! With `--sharding shards` each replica holds the history of the checks it probes only. With
//! `--ui-forward` (off by default: see docs/security.md), a request for a check's page, API
//! record or badge that reaches another replica (the Service picks any) is forwarded to the
//! owner's page, at the address the owner published on its member Lease, and answered with the
//! owner's reply. A Lease writer chooses that address, so: it must be in `--ui-forward-cidrs`
//! (the pod network) and outside the deny list; the request is rebuilt from the parsed route
//! (see `elsewhere`); and the reply is relayed only with a valid seal ([`super::seal`]) under
//! the replicas' shared key. One hop at most: a forwarded request is never forwarded again, so
//! two replicas with different views cannot bounce it.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use bytes::Bytes;
use http::{StatusCode, header};
use ipnet::IpNet;

use super::seal::{self, Key, Sealed};
use crate::{admin::client::get as get_once, api::CheckKey, probe::denied_in};

/// Marks a forwarded request (its value names the forwarding replica).
pub const FORWARDED_BY: &str = "x-canary-forwarded-by";
/// Names the replica that answered (sharded replicas only): a reply is relayed only from the
/// owner it was asked of, not from whatever listens at a published or recycled address.
pub const IDENTITY: &str = "x-canary-identity";
/// The owner must answer within this; the page refreshes every 10 s anyway.
const TIMEOUT: Duration = Duration::from_secs(3);
/// The largest reply relayed (a check's page with full history is about 100 KiB).
const MAX_BODY: usize = 1 << 20;
/// Default `--ui-forward-cidrs`: loopback and the private ranges pod networks use.
pub const DEFAULT_FORWARD_CIDRS: &str =
    "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7";

/// [`DEFAULT_FORWARD_CIDRS`] parsed.
pub fn default_cidrs() -> Vec<IpNet> {
    (DEFAULT_FORWARD_CIDRS.split(','))
        .filter_map(|net| net.trim().parse().ok())
        .collect()
}

/// How this replica forwards (and seals its own replies to forwarded requests).
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// The replicas' shared key.
    pub key: Key,
    /// A peer's page address must be in one of these.
    pub allow: Vec<IpNet>,
    /// ... and in none of these (the probes' deny list).
    pub deny: Vec<IpNet>,
}

impl Forwarding {
    /// Why `address` may not be forwarded to, if it may not.
    pub fn refuses(&self, address: SocketAddr) -> Option<String> {
        let ip = address.ip();
        if let Some(why) = denied_in(ip, &self.deny) {
            return Some(why);
        }
        let canonical = crate::probe::canonical_ip(ip);
        let inside = |ip: IpAddr| self.allow.iter().any(|net| net.contains(&ip));
        match inside(ip) && inside(canonical) {
            true => None,
            false => Some(format!("{ip} is outside --ui-forward-cidrs")),
        }
    }
}

/// Which replica probes a check, and where its page is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub identity: String,
    /// `None` when the owner published no address (it cannot be forwarded to).
    pub address: Option<SocketAddr>,
}

/// The ring as the page needs it (implemented by the shard membership).
pub trait Owners: Send + Sync {
    /// The replica that owns `key` under the current ring, unless it is this one.
    fn elsewhere(&self, key: &CheckKey) -> Option<Owner>;
    /// The other members of the ring.
    fn peers(&self) -> Vec<String>;
    /// This replica's identity.
    fn identity(&self) -> String;
}

/// Why a forwarded request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("{identity} published no status page address")]
    NoAddress { identity: String },
    #[error("{identity} at {address} did not answer within {TIMEOUT:?}")]
    Timeout {
        identity: String,
        address: SocketAddr,
    },
    #[error("{identity} at {address} may not be forwarded to: {why}")]
    Refused {
        identity: String,
        address: SocketAddr,
        why: String,
    },
    #[error("{identity} at {address}: {message}")]
    Failed {
        identity: String,
        address: SocketAddr,
        message: String,
    },
}

/// The owner's reply: status, content type and body.
#[derive(Debug)]
pub struct Relayed {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// GETs `path` (rebuilt from the route, never the visitor's) from `owner`'s page on behalf of
/// replica `by`, when the owner's address is allowed; relays the reply only when sealed.
pub async fn forward(
    forwarding: &Forwarding,
    owner: &Owner,
    path: &str,
    by: &str,
) -> Result<Relayed, ForwardError> {
    let identity = owner.identity.clone();
    let Some(address) = owner.address else {
        return Err(ForwardError::NoAddress { identity });
    };
    if let Some(why) = forwarding.refuses(address) {
        return Err(ForwardError::Refused {
            identity,
            address,
            why,
        });
    }
    let exchange = get(forwarding, address, path, by, &identity);
    match tokio::time::timeout(TIMEOUT, exchange).await {
        Ok(Ok(relayed)) => Ok(relayed),
        Ok(Err(message)) => Err(ForwardError::Failed {
            identity,
            address,
            message,
        }),
        Err(_) => Err(ForwardError::Timeout { identity, address }),
    }
}

/// The owner's reply, relayed only when it names itself as `owner` (see [`IDENTITY`]) and
/// carries a valid seal over this request's nonce and path.
async fn get(
    forwarding: &Forwarding,
    address: SocketAddr,
    path: &str,
    by: &str,
    owner: &str,
) -> Result<Relayed, String> {
    let nonce = seal::nonce().ok_or("no random nonce available")?;
    let host = address.to_string();
    let headers = [(FORWARDED_BY, by), (seal::NONCE, nonce.as_str())];
    let response = get_once(address, &host, path, &headers, MAX_BODY).await?;
    let text =
        |name| (response.headers().get(name)).and_then(|v: &http::HeaderValue| v.to_str().ok());
    let answered = text(IDENTITY);
    if answered != Some(owner) {
        return Err(format!("answered as {answered:?}, not as {owner}"));
    }
    let content_type = text(header::CONTENT_TYPE.as_str())
        .unwrap_or_default()
        .to_string();
    let sealed = Sealed {
        nonce: &nonce,
        identity: owner,
        path,
        status: response.status().as_u16(),
        content_type: &content_type,
        body: response.body(),
    };
    if !text(seal::SEAL).is_some_and(|seal| forwarding.key.verify(&sealed, seal)) {
        return Err("the reply carries no valid seal (is the forwarding key the same?)".into());
    }
    Ok(Relayed {
        status: response.status(),
        content_type: Some(content_type),
        body: response.into_body(),
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const KEY: [u8; 32] = [42; 32];

    fn forwarding() -> Forwarding {
        Forwarding {
            key: Key::new(KEY.to_vec()).unwrap(),
            allow: default_cidrs(),
            deny: crate::probe::default_deny(),
        }
    }

    /// A one-shot owner answering `identity` with `body`, sealed under `key` (none: unsealed);
    /// sends back the request line it got.
    async fn owner_at(
        identity: &'static str,
        key: Option<[u8; 32]>,
        body: &'static str,
    ) -> (SocketAddr, tokio::sync::oneshot::Receiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).await.unwrap();
            let request = String::from_utf8_lossy(&request[..n]).to_string();
            let path = request.split(' ').nth(1).unwrap_or_default().to_string();
            let nonce = (request.lines())
                .find_map(|l| l.strip_prefix("x-canary-forward-nonce: "))
                .unwrap_or_default()
                .to_string();
            let content_type = "text/html; charset=utf-8";
            let seal = key.map(|key| {
                let sealed = Sealed {
                    nonce: &nonce,
                    identity,
                    path: &path,
                    status: 200,
                    content_type,
                    body: body.as_bytes(),
                };
                format!(
                    "\r\nx-canary-forward-seal: {}",
                    Key::new(key.to_vec()).unwrap().seal(&sealed)
                )
            });
            let reply = format!(
                "HTTP/1.1 200 OK\r\nx-canary-identity: {identity}\r\ncontent-type: {content_type}{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                seal.unwrap_or_default(),
                body.len()
            );
            stream.write_all(reply.as_bytes()).await.unwrap();
            let _ = tx.send(request.lines().next().unwrap_or_default().to_string());
        });
        (address, rx)
    }

    fn owner(address: SocketAddr) -> Owner {
        Owner {
            identity: "r2".into(),
            address: Some(address),
        }
    }

    #[tokio::test]
    async fn only_a_sealed_reply_of_the_owner_asked_is_relayed() {
        let (genuine, asked) = owner_at("r2", Some(KEY), "<p>ok</p>").await;
        let relayed = forward(&forwarding(), &owner(genuine), "/checks/a/b", "r1").await;
        assert_eq!(relayed.unwrap().body, "<p>ok</p>");
        assert_eq!(asked.await.unwrap(), "GET /checks/a/b HTTP/1.1");
        // A listener at a forged address that names the owner (a Lease writer's) but holds no
        // key: refused, though the identity matches.
        let (unsealed, _) = owner_at("r2", None, "<p>forged</p>").await;
        let refused = forward(&forwarding(), &owner(unsealed), "/checks/a/b", "r1").await;
        assert!(
            matches!(&refused, Err(ForwardError::Failed { message, .. }) if message.contains("no valid seal")),
            "{refused:?}"
        );
        let (wrong_key, _) = owner_at("r2", Some([1; 32]), "<p>forged</p>").await;
        assert!(
            forward(&forwarding(), &owner(wrong_key), "/checks/a/b", "r1")
                .await
                .is_err()
        );
        let (impostor, _) = owner_at("r3", Some(KEY), "<p>ok</p>").await;
        let refused = forward(&forwarding(), &owner(impostor), "/", "r1").await;
        assert!(
            matches!(&refused, Err(ForwardError::Failed { message, .. }) if message.contains("not as r2"))
        );
        let nowhere = Owner {
            identity: "r2".into(),
            address: None,
        };
        assert!(matches!(
            forward(&forwarding(), &nowhere, "/", "r1").await,
            Err(ForwardError::NoAddress { .. })
        ));
    }

    #[tokio::test]
    async fn addresses_outside_the_pod_network_or_in_the_deny_list_are_never_dialled() {
        let forwarding = forwarding();
        for allowed in [
            "127.0.0.1:8082",
            "10.1.2.3:8082",
            "[fd00::1]:8082",
            "100.64.0.9:8082",
        ] {
            assert_eq!(
                forwarding.refuses(allowed.parse().unwrap()),
                None,
                "{allowed}"
            );
        }
        for refused in [
            "169.254.169.254:80",
            "0.0.0.0:8082",
            "8.8.8.8:80",
            "[2002:a00:1::]:80",
            "[::ffff:169.254.169.254]:80",
            "[fd00:ec2::254]:80",
        ] {
            let address: SocketAddr = refused.parse().unwrap();
            assert!(forwarding.refuses(address).is_some(), "{refused}");
            let result = forward(&forwarding, &owner(address), "/checks/a/b", "r1").await;
            assert!(
                matches!(result, Err(ForwardError::Refused { .. })),
                "{refused}: {result:?}"
            );
        }
    }
}
