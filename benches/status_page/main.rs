//! Status page benchmark, in sections (`SECTIONS`, default `render,memory,flood`):
//!
//! - `render` ([`render`]): history cost per check and page render times, in this process.
//! - `memory` and `flood` ([`process`]): a `canary standalone` process with 2,000 checks under
//!   clients that never read, and under a page flood while a sentinel check watches its
//!   latency budget (issue 23).
//!
//! Run: `cargo bench --bench status_page` (bench profile: fat LTO, as shipped; prints its
//! figures). `RENDERS` sets the
//! renders timed per page, `CHECKS` the checks of `render`, `FLEET`, `INTERVAL` and `SECONDS`
//! the process sections, `CANARY_BIN` another `canary` build for them (before and after).

mod process;
mod render;

use canary_test_harness::env_or;

fn main() {
    let sections: String = env_or("SECTIONS", "render,memory,flood".to_string());
    let sections: Vec<&str> = sections.split(',').collect();
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if sections.contains(&"render") {
        render::run();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if sections.contains(&"memory") {
        runtime.block_on(process::memory());
    }
    if sections.contains(&"flood") {
        runtime.block_on(process::flood());
    }
}
