# syntax=docker/dockerfile:1
# Canary's container image: build the `canary` binary in the Rust image, run it in distroless
# (glibc, CA certificates, no shell) as the non-root user 65532 the Helm chart expects.
#
#   docker build -t canary-operator:0.1.0 .        # or: podman build / buildah bud
#   helm install canary charts/canary-operator --set image.repository=<registry>/canary-operator
#
# Both base images are build arguments (a mirror, a pinned digest, or a local base). The
# `prebuilt` target packs a binary built beforehand instead of compiling one; it is how
# scripts/build-image.sh builds the image offline, on a base made from Debian packages.
# See docs/image.md.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The whole workspace (the test API server is a workspace member, so its manifest must exist);
# .dockerignore keeps target/ and local tools out of the context.
COPY . .
# The `dist` profile: fat LTO, one codegen unit (Cargo.toml), with jemalloc. Stripped of debug
# info (the profile keeps line tables: ~110 MB) and of symbols (3.5 MB, which kept the image
# under 40 MB): a panic still names its file and line; a backtrace shows addresses only.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --features jemalloc --bin canary \
    && install -D -m 0755 target/dist/canary /out/canary \
    && strip /out/canary

# What every Canary image is, whichever way the binary got there.
FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="canary-operator" \
      org.opencontainers.image.description="Kubernetes operator for HTTP, TCP, TLS, DNS and gRPC health checks that proves it is itself alive" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
USER 65532:65532
# /metrics and /healthz + /readyz (the chart's metrics.port and healthProbePort).
EXPOSE 8080 8081 8082
ENTRYPOINT ["/canary"]
CMD ["operator"]

# A binary built beforehand, from a context holding just `canary` (stripped):
#   podman build --target prebuilt --build-arg RUNTIME_IMAGE=... -f Dockerfile <dir with canary>
FROM runtime AS prebuilt
COPY canary /canary

# The default target: the binary built from source above.
FROM runtime AS image
COPY --from=build /out/canary /canary
