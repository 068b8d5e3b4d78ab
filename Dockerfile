# widthlab: multi-stage build. Not built on the development machines (no Docker engine there);
# kept minimal: a builder with the Rust toolchain, a slim runtime, a non-root user.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY benches benches
COPY tests tests
RUN cargo build --release --locked --bin widthlab

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --create-home --home-dir /data widthlab
COPY --from=builder /src/target/release/widthlab /usr/local/bin/widthlab
USER widthlab
WORKDIR /data
ENV WIDTHLAB_BIND=0.0.0.0:8080 \
    WIDTHLAB_DATABASE_URL=/data/widthlab.db
EXPOSE 8080
# The binary probes itself: no curl in the slim image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["widthlab", "probe", "--url", "http://127.0.0.1:8080/healthz"]
# SIGTERM: stop accepting, put running jobs back in the queue, exit within 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["widthlab"]
CMD ["serve"]
