//! Stamps the binary with the source revision for `canary_build_info`: `CANARY_REVISION` when
//! the build sets it (image builds without a .git folder), else `git rev-parse`, else
//! "unknown".

use std::{path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-env-changed=CANARY_REVISION");
    let revision = std::env::var("CANARY_REVISION").ok().or_else(git_revision);
    println!(
        "cargo:rustc-env=CANARY_REVISION={}",
        revision.as_deref().unwrap_or("unknown")
    );
}

fn git_revision() -> Option<String> {
    // Rebuild when HEAD moves (a commit, a checkout), not on every edit.
    for path in [".git/HEAD", ".git/packed-refs", ".git/refs/heads"] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let revision = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !revision.is_empty()).then_some(revision)
}
