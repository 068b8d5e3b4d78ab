# widthlab: multi-stage build. The builder compiles the dependencies in their own layer (it
# changes only with Cargo.toml and Cargo.lock), then the crate; tests, benches and docs are not
# part of the image, so editing them rebuilds nothing.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Every target the manifest declares must exist for cargo to read it: empty stand-ins here.
RUN mkdir -p src benches tests/api tests/sim \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && for f in benches/trial.rs benches/latency.rs benches/bounds.rs tests/api/main.rs tests/sim/main.rs; do \
        echo 'fn main() {}' > "$f"; done \
 && cargo build --release --locked --bin widthlab
COPY src src
COPY migrations migrations
# COPY keeps the files' old timestamps: touch the crate roots so cargo rebuilds the crate.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin widthlab

FROM debian:bookworm-slim
# uid 10001 owns /data: a bind-mounted host directory must be writable by it
# (chown 10001 DIR on the host, or run with --user).
RUN useradd --system --uid 10001 --create-home --home-dir /data widthlab
COPY --from=builder /src/target/release/widthlab /usr/local/bin/widthlab
USER widthlab
WORKDIR /data
# Inside a container the service listens on every interface; whether anyone reaches it is
# decided where the port is published (docker run -p, compose's ports). Without tokens that is
# an open server, so the image says so explicitly; set WIDTHLAB_TOKENS to require tokens.
ENV WIDTHLAB_BIND=0.0.0.0:8080 \
    WIDTHLAB_DATABASE_URL=/data/widthlab.db \
    WIDTHLAB_OPEN=true
EXPOSE 8080
# The binary probes itself (no curl in the slim image), at the address of WIDTHLAB_BIND.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["widthlab", "probe"]
# SIGTERM: stop accepting, put running jobs back in the queue, exit within about 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["widthlab"]
CMD ["serve"]
