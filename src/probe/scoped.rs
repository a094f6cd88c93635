//! An executor for hyper's HTTP/2 client that spawns nothing: hyper hands it the connection
//! task (which owns the socket) and per-request body pipes, and the probe drives them inside
//! its own future. Dropping the probe (deadline, removal) then drops the socket, as for
//! HTTP/1.1; a runtime-spawned connection task would outlive it, with its descriptor.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
};

use futures::stream::{FuturesUnordered, StreamExt};

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Default)]
struct Queue {
    tasks: Vec<Task>,
    waker: Option<Waker>,
}

/// The executor half, given to hyper (cheap to clone).
#[derive(Clone)]
pub struct ScopedExecutor {
    queue: Arc<Mutex<Queue>>,
}

/// An executor and the driver that runs what it is handed, made together: tasks hold clones
/// of the executor, so only the driver's drop (which clears the queue) breaks that cycle.
pub fn scoped() -> (ScopedExecutor, Driver) {
    let queue = Arc::new(Mutex::new(Queue::default()));
    let driver = Driver {
        queue: queue.clone(),
        running: FuturesUnordered::new(),
    };
    (ScopedExecutor { queue }, driver)
}

impl<F> hyper::rt::Executor<F> for ScopedExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        let mut queue = crate::lock(&self.queue);
        queue.tasks.push(Box::pin(future));
        if let Some(waker) = queue.waker.take() {
            waker.wake();
        }
    }
}

/// The future that polls the executor's tasks, never completing on its own (select it
/// against the work that needs them); dropping it drops them all.
pub struct Driver {
    queue: Arc<Mutex<Queue>>,
    running: FuturesUnordered<Task>,
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let new: Vec<Task> = {
                let mut queue = crate::lock(&self.queue);
                queue.waker = Some(cx.waker().clone());
                std::mem::take(&mut queue.tasks)
            };
            self.running.extend(new);
            // Finished tasks are dropped as they complete; an empty set waits for new ones.
            match self.running.poll_next_unpin(cx) {
                Poll::Ready(Some(())) => continue,
                Poll::Ready(None) | Poll::Pending => {
                    if crate::lock(&self.queue).tasks.is_empty() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.running.clear();
        // Tasks queued but never polled hold the socket too: drop them with the driver.
        let queue = std::mem::take(&mut *crate::lock(&self.queue));
        drop(queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn tasks_run_only_while_driven_and_die_with_the_driver() {
        let (executor, driver) = scoped();
        let ran = Arc::new(AtomicUsize::new(0));
        let count = ran.clone();
        executor.execute(async move {
            count.fetch_add(1, Ordering::SeqCst);
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let guard = Arc::new(());
        let held = guard.clone();
        executor.execute(async move {
            let _held = held;
            let _ = rx.await;
        });
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "nothing runs before it is driven"
        );
        tokio::select! {
            _ = driver => unreachable!("the driver never completes"),
            _ = tokio::task::yield_now() => {}
        }
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(
            Arc::strong_count(&guard),
            1,
            "dropping the driver dropped the waiting task"
        );
        drop(tx);
    }
}
