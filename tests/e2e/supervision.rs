//! Every long-lived task of the operator is supervised: when one ends (here: a panic injected
//! through `CANARY_FAULT_INJECT_PANIC`), the process exits non-zero within a second, naming the
//! task, so the kubelet restarts it instead of leaving a 200 in front of a dead part.

use std::time::{Duration, Instant};

use canary_test_harness::{cluster::Cluster, wait::eventually};

use super::operator;

/// Starts an operator (with leader election, so the elector runs too) whose `task` panics one
/// second after start, and checks that the process ends at once, non-zero, naming the task.
async fn a_crashed_task_ends_the_process(task: &str) {
    let cluster = Cluster::start().await;
    let lease = format!("--leader-election-lease-name=supervise-{task}");
    let canary = operator(&cluster)
        .args(&["--leader-elect", &lease])
        .env("CANARY_FAULT_INJECT_PANIC", task)
        .process()
        .await;
    let injected = format!("fault injected into task {task}");
    let seen = eventually(
        Duration::from_secs(10),
        "the injected panic",
        Duration::from_millis(10),
        async || match canary.logged(&injected) || !canary.running() {
            true => Ok(Instant::now()),
            false => Err(canary.tail(10)),
        },
    )
    .await;
    let exit = canary.wait_exit(Duration::from_secs(2)).await;
    assert!(
        seen.elapsed() <= Duration::from_secs(1),
        "exit {:?} after the panic",
        seen.elapsed()
    );
    assert!(!exit.success(), "{task}: exit {exit:?}");
    let named = format!("task {task} ended unexpectedly");
    assert!(
        canary.logged(&named),
        "{task}: the log names it:\n{}",
        canary.tail(15)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_watch_ends_the_process() {
    a_crashed_task_ends_the_process("watch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_reconcile_loop_ends_the_process() {
    a_crashed_task_ends_the_process("reconcile").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_status_writer_ends_the_process() {
    a_crashed_task_ends_the_process("writer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_event_publisher_ends_the_process() {
    a_crashed_task_ends_the_process("events").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_elector_ends_the_process() {
    a_crashed_task_ends_the_process("elector").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_scheduler_ticker_ends_the_process() {
    a_crashed_task_ends_the_process("ticker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_admin_server_ends_the_process() {
    a_crashed_task_ends_the_process("admin").await;
}
