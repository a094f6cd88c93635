//! The slot policy as a pure state machine: who may take a free slot, and which waiter gets
//! the next one. Time is passed in, so every rule is tested without a clock.
//!
//! A namespace is *active* while it holds or waits for a slot, and for twice the longest
//! interval of its checks after it last took or gave one back. With `A` active namespaces its
//! *fair share* is `slots / A` (rounded down). Each active namespace is owed *headroom*: its
//! recent peak demand (slots held plus waited for at once, over the last two to four intervals),
//! capped at its share, less what it holds. A free slot goes to a namespace holding less than its
//! share, or else only if the slots left free still cover the headroom owed to every other
//! active namespace. Of the waiting namespaces that may take one, the one holding the fewest goes
//! first (ties: the longest waiting, then by name); first come first served within a namespace.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use tokio::time::Instant;

/// Slots held and waited for, per namespace, with the rule above. `W`: what a waiter is
/// (a channel to hand it the slot, or a plain id in tests).
pub(super) struct Pool<W> {
    capacity: usize,
    in_use: usize,
    waiting: usize,
    tenants: HashMap<Arc<str>, Tenant<W>>,
    /// Last time any slot was given back.
    last_release: Instant,
    /// The earliest time an idle namespace stops being active, if one is idle.
    next_expiry: Option<Instant>,
}

struct Tenant<W> {
    held: usize,
    queue: VecDeque<(Instant, W)>,
    /// Twice the longest interval of its checks seen while active: how long it stays active
    /// after its last slot, and how far back its peak reaches.
    window: Duration,
    /// When it last took or gave back a slot.
    seen: Instant,
    peak: Peak,
}

/// The most slots held plus waited for at once, over the current and the previous window.
struct Peak {
    current: usize,
    previous: usize,
    since: Instant,
}

impl Peak {
    fn observe(&mut self, demand: usize, now: Instant, window: Duration) {
        let age = now.saturating_duration_since(self.since);
        if age >= window {
            self.previous = if age >= 2 * window { 0 } else { self.current };
            self.current = 0;
            self.since = now;
        }
        self.current = self.current.max(demand);
    }

    fn get(&self, now: Instant, window: Duration) -> usize {
        let age = now.saturating_duration_since(self.since);
        match age {
            _ if age >= 2 * window => 0,
            _ if age >= window => self.current,
            _ => self.current.max(self.previous),
        }
    }
}

impl<W> Tenant<W> {
    fn new(interval: Duration, now: Instant) -> Self {
        Self {
            held: 0,
            queue: VecDeque::new(),
            window: 2 * interval,
            seen: now,
            peak: Peak {
                current: 0,
                previous: 0,
                since: now,
            },
        }
    }

    fn active(&self, now: Instant) -> bool {
        self.idle_until().is_none_or(|until| now < until)
    }

    /// When it stops being active, if it neither holds nor waits for a slot.
    fn idle_until(&self) -> Option<Instant> {
        (self.held == 0 && self.queue.is_empty()).then(|| self.seen + self.window)
    }

    /// Headroom owed: recent peak demand up to the share, less what it holds.
    fn owed(&self, share: usize, now: Instant) -> usize {
        let demand = self.held + self.queue.len();
        let peak = self.peak.get(now, self.window).max(demand);
        peak.min(share).saturating_sub(self.held)
    }
}

/// A namespace with waiters, and since when its first one waits.
fn first_waiter<'a, W>(
    (namespace, tenant): (&'a Arc<str>, &'a Tenant<W>),
) -> Option<(&'a Arc<str>, &'a Tenant<W>, Instant)> {
    Some((namespace, tenant, tenant.queue.front()?.0))
}

impl<W> Pool<W> {
    pub(super) fn new(capacity: usize, now: Instant) -> Self {
        Self {
            capacity: capacity.max(1),
            in_use: 0,
            waiting: 0,
            tenants: HashMap::new(),
            last_release: now,
            next_expiry: None,
        }
    }

    /// Queues `waiter` of `namespace`, whose check runs every `interval`; [`Pool::grants`] says
    /// when it gets its slot (at once, when the rule allows).
    pub(super) fn arrive(
        &mut self,
        namespace: &Arc<str>,
        interval: Duration,
        waiter: W,
        now: Instant,
    ) {
        let tenant =
            (self.tenants.entry(namespace.clone())).or_insert_with(|| Tenant::new(interval, now));
        tenant.window = tenant.window.max(2 * interval);
        tenant.queue.push_back((now, waiter));
        let demand = tenant.held + tenant.queue.len();
        tenant.peak.observe(demand, now, tenant.window);
        self.waiting += 1;
    }

    /// Gives back a slot of `namespace`.
    pub(super) fn release(&mut self, namespace: &str, now: Instant) {
        self.in_use = self.in_use.saturating_sub(1);
        if let Some(tenant) = self.tenants.get_mut(namespace) {
            tenant.held = tenant.held.saturating_sub(1);
            tenant.seen = now;
            if let Some(until) = tenant.idle_until() {
                self.next_expiry = Some(self.next_expiry.map_or(until, |at| at.min(until)));
            }
        }
        self.last_release = now;
    }

    /// Takes a slot for `namespace` outside the queue (a waiter whose grant was lost).
    pub(super) fn take(&mut self, namespace: &Arc<str>, now: Instant) {
        let tenant = (self.tenants.entry(namespace.clone()))
            .or_insert_with(|| Tenant::new(Duration::ZERO, now));
        tenant.held += 1;
        tenant.seen = now;
        self.in_use += 1;
    }

    /// Every grant the rule allows now, in order, each slot already taken.
    pub(super) fn grants(&mut self, now: Instant) -> Vec<(Arc<str>, W)> {
        if self.waiting == 0 || self.in_use >= self.capacity {
            return Vec::new();
        }
        self.expire(now);
        let share = self.fair_share();
        std::iter::from_fn(|| self.next_grant(share, now)).collect()
    }

    /// The next waiter the rule lets take a free slot: the one holding fewest below its share,
    /// or else a borrower, if the slots left free cover everyone else's headroom.
    fn next_grant(&mut self, share: usize, now: Instant) -> Option<(Arc<str>, W)> {
        if self.waiting == 0 || self.in_use >= self.capacity {
            return None;
        }
        let below = (self.tenants.iter().filter_map(first_waiter))
            .filter(|(_, t, _)| t.held < share)
            .min_by_key(|(ns, t, since)| (t.held, *since, *ns));
        let namespace = match below {
            Some((ns, ..)) => ns.clone(),
            None => {
                let owed: usize = self.tenants.values().map(|t| t.owed(share, now)).sum();
                let spare = self.capacity - self.in_use - 1;
                (self.tenants.iter().filter_map(first_waiter))
                    .filter(|(_, t, _)| spare + t.owed(share, now) >= owed)
                    .min_by_key(|(ns, t, since)| (t.held, *since, *ns))
                    .map(|(ns, ..)| ns.clone())?
            }
        };
        let tenant = self.tenants.get_mut(&namespace)?;
        let (_, waiter) = tenant.queue.pop_front()?;
        self.waiting -= 1;
        self.take(&namespace, now);
        Some((namespace, waiter))
    }

    /// Forgets namespaces no longer active, when one may have expired (not at every grant:
    /// the pass costs one step per namespace).
    fn expire(&mut self, now: Instant) {
        if self.next_expiry.is_none_or(|at| now < at) {
            return;
        }
        self.tenants.retain(|_, tenant| tenant.active(now));
        self.next_expiry = (self.tenants.values()).filter_map(Tenant::idle_until).min();
    }

    /// Slots divided by the active namespaces (0 when they outnumber the slots).
    fn fair_share(&self) -> usize {
        self.capacity / self.tenants.len().max(1)
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(super) fn in_use(&self) -> usize {
        self.in_use
    }

    pub(super) fn waiting(&self) -> usize {
        self.waiting
    }

    /// When the waiting namespace that went longest without progress last made some: its own
    /// slot taken or given back, or for one holding none, any slot given back (it is first in
    /// line for those). `None` when nothing waits. A healthy engine moves it within the longest
    /// probe timeout: held slots come back by their deadline.
    pub(super) fn moved(&self) -> Option<Instant> {
        let progress = |t: &Tenant<W>| match t.held {
            0 => self.last_release,
            _ => t.seen,
        };
        (self.tenants.values())
            .filter(|t| !t.queue.is_empty())
            .map(progress)
            .min()
    }

    /// Slots `namespace` holds.
    #[cfg(test)]
    pub(super) fn held(&self, namespace: &str) -> usize {
        self.tenants.get(namespace).map_or(0, |t| t.held)
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
