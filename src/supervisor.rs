//! Every long-lived task of a service, supervised: the tasks are meant to run until shutdown,
//! so any of them ending (returning or panicking) is a failure that ends the process non-zero
//! with the task named, and the kubelet restarts it. Nothing is left dead behind a 200.

use std::{collections::HashMap, time::Duration};

use tokio::task::{AbortHandle, Id, JoinSet};

/// Environment variable naming a task to crash one second after start (tests only).
pub const FAULT_INJECTION_ENV: &str = "CANARY_FAULT_INJECT_PANIC";

/// A supervised task that ended.
#[derive(Debug, Clone, thiserror::Error)]
#[error("task {task} ended unexpectedly: {cause}")]
pub struct TaskEnded {
    pub task: &'static str,
    pub cause: String,
}

/// Named tasks that must all live.
#[derive(Default)]
pub struct Supervisor {
    tasks: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    aborts: HashMap<&'static str, AbortHandle>,
}

impl Supervisor {
    /// Spawns `task` under `name` (with the test hook that crashes a named task on demand).
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let inject = std::env::var(FAULT_INJECTION_ENV).is_ok_and(|target| target == name);
        let handle = self.tasks.spawn(async move {
            if inject {
                tokio::select! {
                    () = task => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        panic!("fault injected into task {name} ({FAULT_INJECTION_ENV})")
                    }
                }
            } else {
                task.await;
            }
        });
        self.names.insert(handle.id(), name);
        self.aborts.insert(name, handle);
    }

    /// Supervises a task spawned elsewhere: its end (and its panic) count as this one's.
    pub fn adopt(&mut self, name: &'static str, handle: tokio::task::JoinHandle<()>) {
        self.spawn(name, async move {
            if let Err(error) = handle.await
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        });
    }

    /// Waits (up to `deadline`) for the tasks that are still running to end on their own.
    pub async fn drain(&mut self, deadline: Duration) {
        let _ = tokio::time::timeout(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
    }

    /// Resolves when any task ends, naming it and why; never while all run.
    pub async fn ended(&mut self) -> TaskEnded {
        let Some(joined) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, cause) = match joined {
            Ok((id, ())) => (id, "returned".to_string()),
            Err(error) if error.is_panic() => {
                let id = error.id();
                let payload = error.into_panic();
                let message = (payload.downcast_ref::<String>().cloned())
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                (id, format!("panicked: {message}"))
            }
            Err(error) => (error.id(), format!("{error}")),
        };
        let task = self.names.get(&id).copied().unwrap_or("unknown");
        TaskEnded { task, cause }
    }

    /// Stops one task (shutdown order matters for some).
    pub fn abort(&mut self, name: &str) {
        if let Some(handle) = self.aborts.get(name) {
            handle.abort();
        }
    }

    /// Stops every task.
    pub fn abort_all(&mut self) {
        self.tasks.abort_all();
    }
}

/// Resolves when `thread` ends (re-raising its panic), so a thread is supervised like a task.
pub async fn watch_thread(thread: std::thread::JoinHandle<()>) {
    if let Ok(Err(panic)) = tokio::task::spawn_blocking(move || thread.join()).await {
        std::panic::resume_unwind(panic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_returns_or_panics_is_named() {
        let mut supervisor = Supervisor::default();
        supervisor.spawn("forever", std::future::pending());
        supervisor.spawn("quitter", async {});
        let ended = supervisor.ended().await;
        assert_eq!((ended.task, ended.cause.as_str()), ("quitter", "returned"));
        supervisor.spawn("crasher", async { panic!("boom") });
        let ended = supervisor.ended().await;
        assert_eq!(ended.task, "crasher");
        assert!(ended.cause.contains("boom"), "{}", ended.cause);
        supervisor.abort_all();
    }
}
