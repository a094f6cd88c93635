//! Canary's container image as `scripts/build-image.sh` builds it with podman (offline, on a
//! runtime base made from Debian packages), with its filesystem exported so its entrypoint can
//! run under `chroot --userspec`: this sandbox's OCI runtime cannot set rlimits, so the tests
//! never `podman run`. podman and chroot come from `scripts/test`; a missing one fails the test.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use serde_json::Value;

use crate::tools::{SETUP, text, tool};

/// The tag the tests build (not the release tag, which is the Cargo.toml version).
pub const TAG: &str = "localhost/canary-operator:test";

/// The built image: its name, `podman image inspect` and its exported filesystem.
#[derive(Debug)]
pub struct Image {
    pub name: String,
    pub inspect: Value,
    pub rootfs: PathBuf,
}

/// Runs `program` with `args`, failing the test with its output unless it succeeds.
fn run(program: &Path, args: &[&str]) -> Output {
    let out = (Command::new(program).args(args).output())
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        text(&out)
    );
    out
}

impl Image {
    /// The image built from the working tree (`dist` binary) and exported, once per test
    /// process.
    pub fn built() -> &'static Image {
        static IMAGE: OnceLock<Image> = OnceLock::new();
        IMAGE.get_or_init(|| Self::build(TAG))
    }

    fn build(name: &str) -> Self {
        let podman = tool("podman");
        let script = crate::repo().join("scripts/build-image.sh");
        let out = (Command::new(&script).args(["--tag", name]).output())
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed (podman and apt-get download come with {SETUP}): {}",
            script.display(),
            text(&out)
        );
        let inspect = run(&podman, &["image", "inspect", name]).stdout;
        let inspect: Value = serde_json::from_slice(&inspect).expect("podman image inspect JSON");
        let rootfs = crate::repo().join("target/image/rootfs");
        export(&podman, name, &rootfs);
        Self {
            name: name.to_string(),
            inspect: inspect[0].clone(),
            rootfs,
        }
    }

    /// The image's size in bytes, as podman reports it (all layers, uncompressed).
    pub fn size(&self) -> u64 {
        self.inspect["Size"].as_u64().expect("Size")
    }

    /// The image's run configuration (`User`, `Entrypoint`, `Cmd`, `Env`, `Labels`...).
    pub fn config(&self) -> &Value {
        &self.inspect["Config"]
    }

    /// Label `key`, if set.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.config()["Labels"][key].as_str()
    }

    /// The image's environment as (name, value) pairs.
    pub fn env(&self) -> Vec<(String, String)> {
        (self.config()["Env"].as_array().into_iter().flatten())
            .filter_map(|e| e.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The path on this machine of `path` inside the image.
    pub fn path(&self, path: &str) -> PathBuf {
        self.rootfs.join(path.trim_start_matches('/'))
    }

    /// `chroot` and its arguments to run a program of the image as the image's `User`.
    pub fn chroot(&self) -> (PathBuf, Vec<String>) {
        let user = self.config()["User"].as_str().expect("the image sets User");
        let root = self.rootfs.display().to_string();
        (tool("chroot"), vec![format!("--userspec={user}"), root])
    }

    /// Runs `args` of the image's entrypoint under `chroot` as its user, with its environment.
    pub fn run_entrypoint(&self, args: &[&str]) -> Output {
        let entrypoint = self.config()["Entrypoint"].as_array().expect("Entrypoint");
        let entrypoint = entrypoint.iter().map(|a| a.as_str().expect("string"));
        let (chroot, chroot_args) = self.chroot();
        (Command::new(&chroot)
            .args(chroot_args)
            .args(entrypoint)
            .args(args))
        .env_clear()
        .envs(self.env())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", chroot.display()))
    }
}

/// Exports the filesystem of image `name` to `rootfs` (replaced), owners kept.
fn export(podman: &Path, name: &str, rootfs: &Path) {
    if rootfs.exists() {
        std::fs::remove_dir_all(rootfs).expect("remove the previous export");
    }
    std::fs::create_dir_all(rootfs).expect("create the export folder");
    let created = run(podman, &["create", name]).stdout;
    let container = String::from_utf8_lossy(&created).trim().to_string();
    let tar = rootfs.with_extension("tar");
    let tar_path = tar.display().to_string();
    let exported = Command::new(podman)
        .args(["export", "-o", &tar_path, &container])
        .output();
    run(podman, &["rm", &container]);
    let exported = exported.expect("podman export");
    assert!(exported.status.success(), "{}", text(&exported));
    let root = rootfs.display().to_string();
    run(
        &tool("tar"),
        &["-x", "--numeric-owner", "-f", &tar_path, "-C", &root],
    );
    std::fs::remove_file(&tar).expect("remove the exported tar");
}
