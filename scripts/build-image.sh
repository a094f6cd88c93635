#!/usr/bin/env bash
# Builds Canary's image offline with podman: no registry is contacted.
#
#   scripts/build-image.sh [--binary PATH] [--tag IMAGE]
#
# 1. The binary: `cargo build --profile dist --locked --features jemalloc --bin canary` (fat LTO; or --binary PATH), debug info
#    stripped, alone in a build context under target/image/context.
# 2. The runtime base `localhost/canary-runtime-base`: the Debian packages distroless/cc is made
#    of that Canary needs (libc6, libgcc-s1, ca-certificates), fetched with `apt-get download` and
#    unpacked with `dpkg-deb -x` (no maintainer scripts run, nothing else installed: no shell),
#    plus /etc/passwd and /etc/group with nonroot (65532), /home/nonroot and /tmp, imported with
#    `podman import`. Rebuilt only when the packages or this recipe change.
# 3. The image: the Dockerfile's `prebuilt` target on that base (`--pull=never`), tagged IMAGE
#    (default localhost/canary-operator:<Cargo.toml version>), with the OCI labels filled in.
#
# Work files live in target/image. See docs/image.md.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
binary=""
image="localhost/canary-operator:$version"
while (($#)); do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --tag) image="$2"; shift 2 ;;
    -h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

command -v podman >/dev/null || { echo "podman is not installed: run scripts/test (or apt-get install podman)" >&2; exit 1; }

work="$repo/target/image"
mkdir -p "$work"

# --- 1. the binary -----------------------------------------------------------------------------
if [[ -z "$binary" ]]; then
  cargo build --profile dist --locked --features jemalloc --bin canary
  binary="$repo/target/dist/canary"
fi
[[ -x "$binary" ]] || { echo "no executable at $binary" >&2; exit 1; }
rm -rf "$work/context"
mkdir -p "$work/context"
strip -o "$work/context/canary" "$binary"
chmod 0755 "$work/context/canary"

# --- 2. the runtime base -----------------------------------------------------------------------
packages=(libc6 libgcc-s1 ca-certificates)
debs="$work/debs"
mkdir -p "$debs"
have_all() {
  local p
  for p in "${packages[@]}"; do compgen -G "$debs/${p}_*.deb" >/dev/null || return 1; done
}
if ! have_all; then
  rm -f "$debs"/*.deb
  download() { (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "${packages[@]}"); }
  # apt-get download needs package lists; a fresh machine may have none yet.
  download || { apt-get update -qq && download; }
fi

# The base is named by what goes into it: the packages and this recipe (the function below).
make_rootfs() {
  local root="$1" deb
  rm -rf "$root"
  mkdir -p "$root"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  # What the maintainer scripts would have made: the CA bundle (update-ca-certificates' output).
  mkdir -p "$root/etc/ssl/certs"
  find "$root/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort \
    | while read -r crt; do sed -e '$a\' "$crt"; done >"$root/etc/ssl/certs/ca-certificates.crt"
  # Nothing that needs a shell or a package manager; keep only the licences of the docs.
  rm -f "$root/usr/sbin/update-ca-certificates"
  find "$root/usr/share/doc" -type f ! -name copyright -delete
  rm -rf "$root/usr/share/lintian" "$root/usr/share/man" "$root/etc/ca-certificates/update.d"
  # distroless' users: root, nobody and nonroot, none with a login shell.
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
  mkdir -p "$root/root" "$root/home/nonroot" "$root/tmp"
  chmod 0700 "$root/root" "$root/home/nonroot"
  chown 65532:65532 "$root/home/nonroot"
  chmod 1777 "$root/tmp"
}
recipe="$(declare -f make_rootfs)"
base_id="$( (cat "$debs"/*.deb; echo "$recipe") | sha256sum | cut -c1-12)"
base="localhost/canary-runtime-base:$base_id"
if ! podman image exists "$base"; then
  make_rootfs "$work/base-rootfs"
  tar --sort=name --mtime=@0 --numeric-owner -C "$work/base-rootfs" -cf "$work/base.tar" .
  podman import --quiet \
    --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    "$work/base.tar" "$base" >/dev/null
  rm -rf "$work/base-rootfs" "$work/base.tar"
fi
podman tag "$base" localhost/canary-runtime-base:latest

# --- 3. the image ------------------------------------------------------------------------------
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
[[ "$revision" == unknown ]] || git diff --quiet HEAD 2>/dev/null || revision="$revision-dirty"
source_url="$(git remote get-url origin 2>/dev/null || true)"
# --layers=false: podman 4.3 reuses a cached LABEL layer even when the build arguments it expands
# changed (a stale revision label), and keeps an image per instruction; the stage is one COPY.
previous="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
podman build --quiet --layers=false --pull=never --target prebuilt -f "$repo/Dockerfile" \
  --build-arg RUNTIME_IMAGE="$base" \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  --build-arg SOURCE="$source_url" \
  -t "$image" "$work/context" >/dev/null
# The image this tag named before, now untagged, goes (unless another tag still holds it).
current="$(podman image inspect --format '{{.Id}}' "$image")"
if [[ -n "$previous" && "$previous" != "$current" ]]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
size="$(podman image inspect --format '{{.Size}}' "$image")"
echo "built $image on $base: $((size / 1000000)) MB ($size bytes)"
