# shellcheck shell=bash
# Installs what Lookout needs on a Debian 12 machine. Sourced by scripts/setup.

# A failure inside $(...) stops the script too: without this, bash runs command substitutions
# with -e cleared, and a failed build step went on as if it had succeeded.
shopt -s inherit_errexit

# Debian packages needed to build and run the daemon and its tests.
LOOKOUT_BUILD_PACKAGES=(
  build-essential pkg-config clang libclang-dev curl ca-certificates
  libglib2.0-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  libgstreamer-plugins-bad1.0-dev libgstrtspserver-1.0-dev
)
LOOKOUT_RUNTIME_PACKAGES=(
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-nice
  gstreamer1.0-libav gstreamer1.0-rtsp v4l-utils
)
LOOKOUT_TEST_PACKAGES=(chromium chromium-driver firefox-esr ffmpeg procps openssl mosquitto python3-venv)

# The tests' Python peers from PyPI, pinned, in a virtualenv kept outside the repository
# (LOOKOUT_VENV, default ~/.cache/lookout-venv): an ONVIF client (onvif-zeep, with the ONVIF
# WSDLs) and WS-Discovery; aiortc and aiohttp for a WHIP server that is not ours (the push
# tests' SFU stand-in, which decodes what it receives).
LOOKOUT_TEST_PYTHON=(onvif-zeep==0.2.12 WSDiscovery==2.1.2 zeep==4.3.3 aiortc==1.16.0 av==18.1.0 aiohttp==3.14.5)
LOOKOUT_VENV="${LOOKOUT_VENV:-$HOME/.cache/lookout-venv}"


as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the named Debian packages that are missing, in one apt run.
apt_install_missing() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing ${missing[*]}" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Makes sure a Rust toolchain is on PATH (rustup's default when none is), with rustfmt and
# clippy, which scripts/test runs as gates.
ensure_rust() {
  # shellcheck disable=SC1091
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  if ! command -v cargo >/dev/null; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
  fi
}

# geckodriver (Firefox's WebDriver) is not packaged by Debian; crates.io has it. Installed
# into ~/.cargo/bin, outside the repository, so CI builds it once per machine.
GECKODRIVER_VERSION=0.37.1
# Makes the tests' virtualenv, or brings it up to the pinned packages.
ensure_test_python() {
  local stamp="$LOOKOUT_VENV/.lookout-packages"
  if [ -x "$LOOKOUT_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${LOOKOUT_TEST_PYTHON[*]}" ]; then
    return 0
  fi
  python3 -m venv "$LOOKOUT_VENV"
  "$LOOKOUT_VENV/bin/pip" install --quiet --disable-pip-version-check "${LOOKOUT_TEST_PYTHON[@]}"
  echo "${LOOKOUT_TEST_PYTHON[*]}" > "$stamp"
}

ensure_geckodriver() {
  if command -v geckodriver >/dev/null && geckodriver --version 2>/dev/null | grep "$GECKODRIVER_VERSION" >/dev/null; then
    return 0
  fi
  cargo install --locked --quiet "geckodriver@$GECKODRIVER_VERSION"
}
