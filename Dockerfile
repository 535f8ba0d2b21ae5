# syntax=docker/dockerfile:1
# Multi-stage build: compile against Debian's FFmpeg, ship a slim runtime
# that runs as an unprivileged user with recordings in /data (mode 0700;
# cleannvr sets umask 0077 itself, so files inside are 0600).
#
# `--build-arg BINARY=prebuilt` skips the compile and takes a `cleannvr`
# binary built on a bookworm host from the root of the build context instead
# (tests/container_image.rs uses the test run's own build this way); the
# runtime image is otherwise the same.
ARG BINARY=build
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config clang libclang-dev \
      libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev \
      libavfilter-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin cleannvr

FROM scratch AS prebuilt
COPY cleannvr /src/target/release/cleannvr

FROM ${BINARY} AS binary

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
      libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavfilter8 fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin cleannvr \
 && mkdir -p /data /config \
 && chown cleannvr:cleannvr /data \
 && chmod 0700 /data
COPY --from=binary /src/target/release/cleannvr /usr/local/bin/cleannvr
COPY config/docker.toml /config/cleannvr.toml
# `demo` uses the same place and port as `run` with the baked-in config: its
# recordings go to the /data volume (the working directory is not writable),
# and the health check below finds it where it finds `run`.
ENV CLEANNVR_CONFIG=/config/cleannvr.toml \
    CLEANNVR_DEMO_DATA=/data \
    CLEANNVR_DEMO_LISTEN=0.0.0.0:8443
USER cleannvr
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8443
# `cleannvr health` asks the server's /api/health through the configured
# listener (on loopback, pinning the server's own certificate): no curl in
# the image. A config with another listen address or certificate is followed.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/cleannvr", "health"]
ENTRYPOINT ["/usr/local/bin/cleannvr"]
CMD ["run"]
