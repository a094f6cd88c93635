//! The container image, built offline by `scripts/build-image.sh` (podman, the Dockerfile's
//! `prebuilt` target, a runtime base made from Debian packages) and run from its exported
//! filesystem under `chroot --userspec` (this sandbox's OCI runtime cannot set rlimits): small,
//! labelled, no shell, CA certificates, the user and entrypoint the chart runs, and
//! `canary operator` from it making a HealthCheck Ready against the local API server.
//!
//! podman comes from `scripts/test`; without it these tests fail naming it.

use std::{path::Path, process::Command, time::Duration};

use canary_test_harness::{
    chart::{container, one, render},
    cluster::{Cluster, http_check, ready},
    image::Image,
    operator::Launch,
    read, repo,
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::json;

/// The size the image must stay under (bytes, as podman counts them).
const MAX_SIZE: u64 = 40_000_000;
/// The user the chart runs the pod as.
const NONROOT: u32 = 65532;
/// Where the test puts the kubeconfig inside the image's filesystem.
const KUBECONFIG: &str = "/var/run/canary/kubeconfig";

#[test]
fn image_is_small_and_labelled_and_has_no_shell_but_ca_certificates() {
    let image = Image::built();
    let size = image.size();
    println!("{}: {size} bytes ({} MB)", image.name, size / 1_000_000);
    assert!(size < MAX_SIZE, "{} is {size} bytes", image.name);

    let label = |key: &str| image.label(&format!("org.opencontainers.image.{key}"));
    assert_eq!(label("title"), Some("canary-operator"));
    assert_eq!(label("version"), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(label("licenses"), Some(env!("CARGO_PKG_LICENSE")));
    assert_eq!(label("description"), Some(env!("CARGO_PKG_DESCRIPTION")));
    let revision = label("revision").unwrap_or_default();
    assert!(
        is_commit(revision.trim_end_matches("-dirty")),
        "revision {revision}"
    );
    assert!(label("source").is_some(), "no source label");

    for shell in ["sh", "bash", "dash", "ash", "busybox"] {
        for dir in ["/bin", "/usr/bin", "/sbin", "/usr/sbin"] {
            let path = image.path(&format!("{dir}/{shell}"));
            assert!(!path.exists(), "{} in the image", path.display());
        }
    }
    let programs = executables(&image.rootfs);
    assert_eq!(programs, ["/canary"], "the only program is canary");

    let bundle = read(&image.path("/etc/ssl/certs/ca-certificates.crt"));
    let certificates = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(certificates > 100, "{certificates} CA certificates");
}

/// Whether `sha` names a commit of the repository.
fn is_commit(sha: &str) -> bool {
    let object = format!("{sha}^{{commit}}");
    let repo = repo().display().to_string();
    let mut git = Command::new("git");
    git.args(["-C", &repo, "cat-file", "-e", &object]);
    sha.len() == 40 && git.status().expect("git").success()
}

/// Executable files of `root` that are not shared libraries, as paths inside it.
fn executables(root: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("read_dir")
            .map(Result::unwrap)
        {
            let meta = entry.metadata().expect("lstat");
            let name = entry.file_name().to_string_lossy().into_owned();
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if meta.is_file()
                && meta.permissions().mode() & 0o111 != 0
                && !name.contains(".so")
            {
                let inside = entry
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .display()
                    .to_string();
                found.push(format!("/{inside}"));
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn image_runs_canary_as_the_chart_runs_it() {
    let image = Image::built();
    let config = image.config();
    let objects = render(&[]).await;
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    let user = pod["securityContext"]["runAsUser"]
        .as_u64()
        .expect("runAsUser");
    let group = pod["securityContext"]["runAsGroup"]
        .as_u64()
        .expect("runAsGroup");
    assert_eq!((user, group), (NONROOT.into(), NONROOT.into()));
    assert_eq!(config["User"], format!("{user}:{group}"));
    assert_eq!(config["Entrypoint"], container(&objects)["command"]);
    assert_eq!(config["Cmd"], json!(["operator"]));

    let help = image.run_entrypoint(&["--help"]);
    let out = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&help.stderr)
    );
    assert!(out.contains("Usage: canary"), "{out}");
}

#[tokio::test]
async fn operator_from_the_image_makes_a_check_ready_as_the_nonroot_user() {
    let image = Image::built();
    let cluster = Cluster::start().await;
    let kubeconfig = image.path(KUBECONFIG);
    std::fs::create_dir_all(kubeconfig.parent().unwrap()).unwrap();
    std::fs::copy(cluster.kubeconfig(), &kubeconfig).expect("kubeconfig into the image");
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    cluster.namespace("shop").await;
    let check = http_check("shop", "api", &target.url("/healthz"), json!({}));
    cluster.kubectl.apply(&[check]).await;

    let entrypoint = image.config()["Entrypoint"][0]
        .as_str()
        .expect("Entrypoint");
    let (chroot, chroot_args) = image.chroot();
    let chroot_args: Vec<&str> = chroot_args.iter().map(String::as_str).collect();
    let mut launch = Launch::operator(entrypoint, Path::new(KUBECONFIG));
    for (name, value) in image.env() {
        launch = launch.env(&name, &value);
    }
    let operator = launch.through(&chroot, &chroot_args).process().await;
    let ids = |field: &str| {
        let status = read(Path::new(&format!("/proc/{}/status", operator.pid())));
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_default();
        line.split_whitespace()
            .skip(1)
            .map(|id| id.parse().unwrap())
            .collect::<Vec<u32>>()
    };
    assert_eq!(ids("Uid:"), [NONROOT; 4], "real, effective, saved, fs uid");
    assert_eq!(ids("Gid:"), [NONROOT; 4], "real, effective, saved, fs gid");

    let every = Duration::from_millis(200);
    eventually(
        Duration::from_secs(30),
        "api Ready=True",
        every,
        async || {
            assert!(operator.running(), "exited; logs:\n{}", operator.tail(30));
            let check = cluster.check("shop", "api").await;
            match ready(&check) {
                Some((status, _, _)) if status == "True" => Ok(()),
                other => Err(format!("{other:?}; logs:\n{}", operator.tail(10))),
            }
        },
    )
    .await;
    assert!(target.accepted() > 0, "the target was probed");
    operator.kill();
}

#[test]
fn dockerfile_labels_default_to_the_package_version() {
    let dockerfile = read(&repo().join("Dockerfile"));
    let default = format!("ARG VERSION={}", env!("CARGO_PKG_VERSION"));
    assert!(dockerfile.contains(&default), "Dockerfile lacks {default}");
}
