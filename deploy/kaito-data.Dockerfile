# syntax=docker/dockerfile:1.7
# Image of the tuning data tool (the tuning Job runs it as `kaito-data`).
# The builder compiles a static musl binary (Alpine's Rust targets musl natively; the
# dependency tree uses rustls with ring, so no OpenSSL is linked); the runtime image holds
# that binary alone on distroless static, as user 65532. Build from the repository root:
#
#   docker build -f deploy/kaito-data.Dockerfile -t ghcr.io/kaito-rs/kaito-data:0.1.0 .

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-alpine AS build
# ring's assembly and C parts need the musl headers.
RUN apk add --no-cache musl-dev
WORKDIR /src
# The whole workspace: cargo reads every member's manifest even to build one binary.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kaito-data \
    && install -D -m 0755 target/release/kaito-data /out/kaito-data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kaito-data /usr/local/bin/kaito-data
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kaito-data"]
