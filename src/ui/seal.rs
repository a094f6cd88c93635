//! Forwarded replies are sealed with an HMAC-SHA256 under a key the replicas share (a Secret,
//! never written to a Lease): whoever can write a member Lease can point its page address
//! anywhere, but cannot make a reply the forwarding replica accepts. The seal covers a fresh
//! nonce (no replay of a recorded reply), the identity of the replica that answered (a relay
//! cannot pass off another replica's reply as the owner's), the path asked, the status, the
//! content type and the body.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Names the request's nonce (32 hex digits) and asks the owner to seal its reply.
pub const NONCE: &str = "x-canary-forward-nonce";
/// The reply's seal (64 hex digits).
pub const SEAL: &str = "x-canary-forward-seal";
/// Shorter keys are refused: HMAC-SHA256 wants at least 32 bytes of secret.
pub const MIN_KEY_BYTES: usize = 32;

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading the forwarding key {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the forwarding key {path} holds {len} bytes, fewer than the {MIN_KEY_BYTES} required")]
    Short { path: String, len: usize },
}

/// The shared key (its bytes never printed).
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<set>)")
    }
}

impl Key {
    /// The key in `path` (a mounted Secret's file), surrounding whitespace trimmed.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::new(bytes.trim_ascii().to_vec()).map_err(|len| KeyError::Short { path: shown, len })
    }

    /// `bytes` as a key; their length when too short.
    pub fn new(bytes: Vec<u8>) -> Result<Self, usize> {
        match bytes.len() >= MIN_KEY_BYTES {
            true => Ok(Self(bytes)),
            false => Err(bytes.len()),
        }
    }

    fn mac(&self, reply: &Sealed<'_>) -> Hmac<Sha256> {
        // Any key length is valid for HMAC; the error cannot happen.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        let head = format!(
            "canary-forward-v1\n{}\n{}\n{}\n{}\n{}\n",
            reply.nonce, reply.identity, reply.path, reply.status, reply.content_type
        );
        mac.update(head.as_bytes());
        mac.update(reply.body);
        mac
    }

    /// The seal of `reply`, in hex.
    pub fn seal(&self, reply: &Sealed<'_>) -> String {
        hex(&self.mac(reply).finalize().into_bytes())
    }

    /// Whether `seal` (hex) is `reply`'s, compared in constant time.
    pub fn verify(&self, reply: &Sealed<'_>, seal: &str) -> bool {
        let Some(bytes) = unhex(seal) else {
            return false;
        };
        self.mac(reply).verify_slice(&bytes).is_ok()
    }
}

/// What a seal covers.
#[derive(Debug, Clone, Copy)]
pub struct Sealed<'a> {
    pub nonce: &'a str,
    /// The replica answering.
    pub identity: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// A fresh nonce from the system's random source; `None` when it fails (nothing is forwarded).
pub fn nonce() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply<'a>(nonce: &'a str, path: &'a str, body: &'a [u8]) -> Sealed<'a> {
        Sealed {
            nonce,
            identity: "r2",
            path,
            status: 200,
            content_type: "text/html; charset=utf-8",
            body,
        }
    }

    #[test]
    fn a_seal_binds_key_nonce_path_and_body() {
        let key = Key::new(vec![7; 32]).unwrap();
        let genuine = reply("n1", "/checks/a/b", b"<p>ok</p>");
        let seal = key.seal(&genuine);
        assert_eq!(seal.len(), 64);
        assert!(key.verify(&genuine, &seal));
        assert!(
            !key.verify(&reply("n2", "/checks/a/b", b"<p>ok</p>"), &seal),
            "replayed"
        );
        assert!(
            !key.verify(&reply("n1", "/checks/a/c", b"<p>ok</p>"), &seal),
            "other path"
        );
        assert!(
            !key.verify(&reply("n1", "/checks/a/b", b"<p>forged</p>"), &seal),
            "body"
        );
        let relayed = Sealed {
            identity: "r3",
            ..genuine
        };
        assert!(!key.verify(&relayed, &seal), "another replica's reply");
        let other = Key::new(vec![8; 32]).unwrap();
        assert!(!other.verify(&genuine, &seal), "another key");
        assert!(!key.verify(&genuine, "zz"), "not hex");
        assert!(!key.verify(&genuine, ""), "empty");
    }

    #[test]
    fn short_or_missing_keys_are_refused_and_keys_are_never_printed() {
        assert_eq!(Key::new(vec![1; 31]).unwrap_err(), 31);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("{}\n", "k".repeat(40))).unwrap();
        let key = Key::load(&path).unwrap();
        assert_eq!(format!("{key:?}"), "Key(<set>)");
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            Key::load(&path),
            Err(KeyError::Short { len: 5, .. })
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(Key::load(&missing), Err(KeyError::Read { .. })));
        assert_ne!(nonce(), nonce());
    }
}
