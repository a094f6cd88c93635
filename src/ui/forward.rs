//! With `--sharding shards` each replica holds the history of the checks it probes only. A
//! request for a check's page, API record or badge that reaches another replica (the Service
//! picks any) is forwarded to the owner's page, at the address the owner published on its
//! member Lease, and answered with the owner's reply. One hop at most: a forwarded request is
//! never forwarded again, so two replicas with different views cannot bounce it.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{StatusCode, header};

use crate::{admin::client::get as get_once, api::CheckKey};

/// Marks a forwarded request (its value names the forwarding replica).
pub const FORWARDED_BY: &str = "x-canary-forwarded-by";
/// Names the replica that answered (sharded replicas only): a reply is relayed only from the
/// owner it was asked of, not from whatever listens at a published or recycled address.
pub const IDENTITY: &str = "x-canary-identity";
/// The owner must answer within this; the page refreshes every 10 s anyway.
const TIMEOUT: Duration = Duration::from_secs(3);
/// The largest reply relayed (a check's page with full history is about 100 KiB).
const MAX_BODY: usize = 1 << 20;

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

/// GETs `path_and_query` from `owner`'s page on behalf of replica `by`.
pub async fn forward(
    owner: &Owner,
    path_and_query: &str,
    by: &str,
) -> Result<Relayed, ForwardError> {
    let identity = owner.identity.clone();
    let Some(address) = owner.address else {
        return Err(ForwardError::NoAddress { identity });
    };
    let exchange = get(address, path_and_query, by, &identity);
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

/// The owner's reply, relayed only when it names itself as `owner` (see [`IDENTITY`]).
async fn get(
    address: SocketAddr,
    path_and_query: &str,
    by: &str,
    owner: &str,
) -> Result<Relayed, String> {
    let host = address.to_string();
    let headers = [(FORWARDED_BY, by)];
    let response = get_once(address, &host, path_and_query, &headers, MAX_BODY).await?;
    let answered = (response.headers().get(IDENTITY)).and_then(|v| v.to_str().ok());
    if answered != Some(owner) {
        return Err(format!("answered as {answered:?}, not as {owner}"));
    }
    let content_type = (response.headers().get(header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok(Relayed {
        status: response.status(),
        content_type,
        body: response.into_body(),
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A one-shot HTTP server answering `head` (status line and headers) with body `ok`.
    async fn answering(head: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await.unwrap();
            let reply = format!("{head}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            stream.write_all(reply.as_bytes()).await.unwrap();
        });
        address
    }

    fn owner(address: SocketAddr) -> Owner {
        Owner {
            identity: "r2".into(),
            address: Some(address),
        }
    }

    #[tokio::test]
    async fn only_the_owner_asked_is_relayed() {
        let genuine = answering("HTTP/1.1 200 OK\r\nx-canary-identity: r2").await;
        let relayed = forward(&owner(genuine), "/api/v1/checks/a/b", "r1").await;
        assert_eq!(relayed.unwrap().body, "ok");
        let stranger = answering("HTTP/1.1 200 OK\r\ncontent-type: text/html").await;
        let refused = forward(&owner(stranger), "/api/v1/checks/a/b", "r1").await;
        assert!(
            matches!(&refused, Err(ForwardError::Failed { message, .. }) if message.contains("not as r2")),
            "{refused:?}"
        );
        let impostor = answering("HTTP/1.1 200 OK\r\nx-canary-identity: r3").await;
        assert!(forward(&owner(impostor), "/", "r1").await.is_err());
        let nowhere = Owner {
            identity: "r2".into(),
            address: None,
        };
        assert!(matches!(
            forward(&nowhere, "/", "r1").await,
            Err(ForwardError::NoAddress { .. })
        ));
    }
}
