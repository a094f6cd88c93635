//! Bytes the current thread holds (allocated and not yet freed) from jemalloc's per-thread
//! counters: what lets a CEL evaluation be charged for the values it copies while it runs.
//! They exist only where jemalloc is the global allocator (feature `jemalloc`, on in the
//! image and the test suite); elsewhere [`net`] is `None` and nothing is charged.

/// The current thread's allocated minus freed bytes, wrapping (compare two readings with
/// [`grown`]); `None` when jemalloc does not serve this process's allocations.
pub fn net() -> Option<u64> {
    counters::net()
}

/// Bytes held at `now` beyond `then`, two [`net`] readings on one thread (0 when fewer).
pub fn grown(then: u64, now: u64) -> u64 {
    u64::try_from(now.wrapping_sub(then) as i64).unwrap_or(0)
}

#[cfg(feature = "jemalloc")]
mod counters {
    use std::hint::black_box;

    use tikv_jemalloc_ctl::thread::{ThreadLocal, allocatedp, deallocatedp};

    type Counters = Option<(ThreadLocal<u64>, ThreadLocal<u64>)>;

    thread_local! {
        static COUNTERS: Counters = open();
    }

    /// The thread's counters, if they move when it allocates: linked but not installed as
    /// the global allocator (a test binary), jemalloc counts nothing.
    fn open() -> Counters {
        let allocated = allocatedp::read().ok()?;
        let deallocated = deallocatedp::read().ok()?;
        let before = allocated.get();
        drop(black_box(Vec::<u8>::with_capacity(64)));
        (allocated.get() != before).then_some((allocated, deallocated))
    }

    pub fn net() -> Option<u64> {
        COUNTERS
            .try_with(|c| c.map(|(a, d)| a.get().wrapping_sub(d.get())))
            .ok()
            .flatten()
    }
}

#[cfg(not(feature = "jemalloc"))]
mod counters {
    pub fn net() -> Option<u64> {
        None
    }
}
