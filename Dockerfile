# syntax=docker/dockerfile:1
# Canary's container image: build the `canary` binary in the Rust image, run it in distroless
# (glibc, CA certificates, no shell) as the non-root user 65532 the Helm chart expects.
#
#   docker build -t canary-operator:0.1.0 .        # or: podman build / buildah bud
#   helm install canary charts/canary-operator --set image.repository=<registry>/canary-operator
#
# See docs/image.md.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The whole workspace (the test API server is a workspace member, so its manifest must exist);
# .dockerignore keeps target/ and local tools out of the context.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin canary \
    && install -D -m 0755 target/release/canary /out/canary

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/canary /canary
USER 65532:65532
# /metrics and /healthz + /readyz (the chart's metrics.port and healthProbePort).
EXPOSE 8080 8081
ENTRYPOINT ["/canary"]
CMD ["operator"]
