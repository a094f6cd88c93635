//! One budget for every status page body rendered and not yet sent. A body is counted from
//! the moment it is rendered until the last copy of it (a connection still sending it, the
//! cache) is dropped; a render that does not fit is answered 503 instead of held. So clients
//! that never read cost at most the budget together, however many connections they open and
//! whatever they ask for, gzipped or not.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of rendered, unsent bodies held at most, over all connections.
pub const BUDGET_BYTES: usize = 16 * 1024 * 1024;

/// The budget: one permit per byte held.
#[derive(Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    limit: usize,
}

/// A body and the part of the budget it holds; both go when the last copy is dropped.
struct Held {
    body: Bytes,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl Budget {
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// `body` counted against the budget until its last copy is dropped; `None` when it does
    /// not fit now.
    pub fn hold(&self, body: Bytes) -> Option<Bytes> {
        let size = u32::try_from(body.len()).ok()?;
        let permit = self.permits.clone().try_acquire_many_owned(size).ok()?;
        Some(Bytes::from_owner(Held {
            body,
            _permit: permit,
        }))
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.limit - self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_counted_until_its_last_copy_goes() {
        let budget = Budget::new(1000);
        let body = budget.hold(Bytes::from(vec![7u8; 600])).unwrap();
        let copy = body.clone();
        let chunk = copy.slice(100..200);
        assert_eq!(budget.held(), 600, "copies share one count");
        assert!(budget.hold(Bytes::from(vec![0u8; 600])).is_none(), "over");
        drop((body, copy));
        assert_eq!(budget.held(), 600, "a slice still holds it");
        drop(chunk);
        assert_eq!(budget.held(), 0);
        assert!(budget.hold(Bytes::from(vec![0u8; 600])).is_some());
    }
}
