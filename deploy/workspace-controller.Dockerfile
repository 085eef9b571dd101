# syntax=docker/dockerfile:1.7
# Image of the workspace controller.
# The builder compiles a static musl binary (Alpine's Rust targets musl natively; the
# dependency tree uses rustls with ring, so no OpenSSL is linked); the runtime image holds
# that binary alone on distroless static, as user 65532. Build from the repository root:
#
#   docker build -f deploy/workspace-controller.Dockerfile -t ghcr.io/kaito-rs/workspace-controller:0.1.0 .

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-alpine AS build
# ring's assembly and C parts need the musl headers.
RUN apk add --no-cache musl-dev
WORKDIR /src
# The whole workspace: cargo reads every member's manifest even to build one binary.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin workspace-controller \
    && install -D -m 0755 target/release/workspace-controller /out/workspace-controller

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/workspace-controller /usr/local/bin/workspace-controller
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/workspace-controller"]
