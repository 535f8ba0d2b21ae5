#!/usr/bin/env bash
# Builds the unmodified Dockerfile with podman, runs `cleannvr demo` in the
# image and checks /api/health. Slow (a release build inside the image), so
# it is not part of `cargo test`; run it by hand or in a nightly job:
#   bash tests/container.sh
# On machines without a registry, ../shared/rig/container-bases.sh provides
# local rust:1-bookworm and debian:bookworm-slim images first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f ../shared/rig/container-bases.sh ] && ! podman image exists docker.io/library/rust:1-bookworm 2>/dev/null; then
  bash ../shared/rig/container-bases.sh
fi
# Docker format: the OCI format drops HEALTHCHECK.
podman build --format docker -t cleannvr:test .
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
name=cleannvr-test-$$
# The image's own defaults put the demo in /data (no --data: that default is
# under test); only the port moves, to a free one on the host network, and
# the health check is told the same through a config of its own.
conf=$(mktemp)
printf '[server]\nlisten = "127.0.0.1:%s"\n[storage]\ndir = "/data"\n' "$port" >"$conf"
chmod 0644 "$conf"
podman run -d --rm --init --name "$name" --network host \
  -e CLEANNVR_DEMO_LISTEN="127.0.0.1:$port" -v "$conf:/config/cleannvr.toml:ro" \
  cleannvr:test demo >/dev/null
trap 'podman logs "$name" 2>&1 | tail -20; podman stop -t 5 "$name" >/dev/null 2>&1 || true; rm -f "$conf"' EXIT
for _ in $(seq 1 120); do
  if body=$(curl -fsk "https://127.0.0.1:$port/api/health" 2>/dev/null || curl -fs "http://127.0.0.1:$port/api/health" 2>/dev/null); then
    echo "health: $body"
    case "$body" in *'"ok"'*) ;; *) echo "unexpected health body" >&2; exit 1 ;; esac
    # The demo camera must actually be recorded inside the container.
    for _ in $(seq 1 60); do
      if podman exec "$name" sh -c 'ls /data/demo1/*/ 2>/dev/null | grep -q mp4'; then
        # The server process (PID 1 is --init's tini) must not run as root.
        uid=$(podman exec "$name" sh -c 'for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = cleannvr ] && stat -c %u "$p"; done' | head -1)
        if [ -z "$uid" ] || [ "$uid" = 0 ]; then
          echo "cleannvr runs as root inside the container" >&2
          exit 1
        fi
        # The image's HEALTHCHECK (cleannvr health, no curl in the image) passes.
        podman exec "$name" sh -c 'command -v curl' && { echo "curl in the image" >&2; exit 1; }
        podman healthcheck run "$name" || { echo "HEALTHCHECK failed: $(podman exec "$name" cleannvr health)" >&2; exit 1; }
        echo "container test passed: image builds, runs as uid $uid ($(podman exec "$name" id -un)), records in /data and passes its HEALTHCHECK"
        exit 0
      fi
      sleep 1
    done
    echo "no recording appeared in /data" >&2
    exit 1
  fi
  sleep 1
done
echo "health check never answered" >&2
exit 1
