#!/usr/bin/env bash
# Installs everything BotArmy needs to build, run and test, skipping what is already there.
# Idempotent: a second run only checks. Usage: scripts/setup.sh [--browser]
#   --browser  also installs Debian's Chromium for the browser tests.
#
# On a fresh machine the slow part is compiling the pinned wasm-bindgen-cli. It starts first, in
# the background, and builds while apt and npm download, with a quicker release profile (no
# LTO, opt-level 1: it runs for a second per build, so its own speed hardly matters). The
# Worker is bundled by scripts/build-worker.mjs, not worker-build (see there). Timings are in
# the README's build notes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WANT_BROWSER=0
[[ "${1:-}" == "--browser" ]] && WANT_BROWSER=1
T0=$(date +%s)

say() { printf '\033[1m[setup]\033[0m %s (%ds)\n' "$*" "$(($(date +%s) - T0))"; }
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
LOGS=$ROOT/target/setup-logs
mkdir -p "$LOGS"

# 1. Cargo-installed tools, pinned: wasm-bindgen must equal the version in Cargo.lock.
tool_version() { # name -> version or empty. Tools print "name 1.2.3", "1.2.3" or "name v1.2.3".
  local have
  have=$("$HOME/.cargo/bin/$1" --version 2>/dev/null | head -1 | awk '{print $NF}') || true
  echo "${have#v}"
}
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)
[[ -n $WB_VERSION ]] || { echo "setup: wasm-bindgen not found in Cargo.lock" >&2; exit 1; }
# wasm-bindgen-cli without its default TLS (rustls and ring, only for downloading test
# runners we never use): less to compile.
# Fields: binary, crate, version, opt-level, cargo flags.
TOOLS=("wasm-bindgen wasm-bindgen-cli $WB_VERSION 1 --no-default-features")
PIDS=()
for t in "${TOOLS[@]}"; do
  read -r bin crate version opt flags <<<"$t"
  if [[ $(tool_version "$bin") == "$version" ]]; then
    say "$bin $version present"
    continue
  fi
  say "cargo install $crate $version in the background (log: target/setup-logs/$bin.log)"
  (
    export CARGO_PROFILE_RELEASE_OPT_LEVEL=$opt CARGO_PROFILE_RELEASE_LTO=false \
      CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=0 \
      CARGO_PROFILE_RELEASE_STRIP=true CARGO_TARGET_DIR="$ROOT/target/tools-$bin"
    # shellcheck disable=SC2086 # $flags is a list of words
    # A stalled download must fail setup, not hang it.
    timeout 40m cargo install "$crate" --version "=$version" $flags --force --locked >"$LOGS/$bin.log" 2>&1 ||
      timeout 40m cargo install "$crate" --version "=$version" $flags --force >>"$LOGS/$bin.log" 2>&1
    rm -rf "$ROOT/target/tools-$bin"
  ) &
  PIDS+=("$!:$bin")
done

# 2. Debian packages: the wasm32 toolchain where rustup has no target, Chromium for tests.
APT_UPDATED=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [[ ${#missing[@]} == 0 ]] && return 0
  if [[ $APT_UPDATED == 0 ]]; then
    say "apt-get update"
    as_root apt-get -o DPkg::Lock::Timeout=600 update -q >"$LOGS/apt.log" 2>&1
    APT_UPDATED=1
  fi
  say "apt-get install ${missing[*]}"
  # A new machine may still be running its own apt at boot: wait for the lock, not fail.
  DEBIAN_FRONTEND=noninteractive as_root apt-get -o DPkg::Lock::Timeout=600 install -y -q \
    "${missing[@]}" >>"$LOGS/apt.log" 2>&1 || { tail -20 "$LOGS/apt.log" >&2; exit 1; }
}
PACKAGES=()
if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "wasm32: rustup target present"
else
  say "wasm32: no rustup target; using Debian rustc-web with build-std (see ../shared/TOOLCHAIN.md)"
  PACKAGES+=(rustc-web cargo-web rust-web-src rust-web-clippy lld-22)
fi
[[ $WANT_BROWSER == 1 ]] && PACKAGES+=(chromium chromium-driver)

# 3. npm packages from the committed lock files (wrangler, esbuild, binaryen, test clients; the
# UI), downloaded while apt works.
npm_ci() { # dir
  local stamp="$1/node_modules/.botarmy-lock"
  local want
  want=$(sha256sum "$1/package-lock.json" | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    say "npm packages in $1 up to date"
  else
    say "npm ci in $1"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
  fi
}
(
  npm_ci "$ROOT"
  [[ -f frontend/package-lock.json ]] && npm_ci "$ROOT/frontend"
) &
NPM_PID=$!

[[ ${#PACKAGES[@]} -gt 0 ]] && apt_install "${PACKAGES[@]}"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  libdir=$(/usr/bin/rustc --target wasm32-unknown-unknown --print target-libdir)
  [[ -d $libdir ]] || { say "creating $libdir"; as_root mkdir -p "$libdir"; }
fi
[[ $WANT_BROWSER == 1 ]] && say "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo missing)"

# 4. While a tool still compiles (a fresh machine), the Worker compiles beside it, so the build
# that follows has only wasm-bindgen and wasm-opt left: the tool's last crates and link, and the
# Worker's LTO, each keep one core busy, and two compiles fill both.
if [[ ${#PIDS[@]} -gt 0 ]]; then
  say "cargo build of the Worker (wasm32) beside the tools (log: target/setup-logs/worker.log)"
  (
    # shellcheck source=scripts/env.sh
    source scripts/env.sh
    cargo build --lib --release --target wasm32-unknown-unknown >"$LOGS/worker.log" 2>&1
  ) &
  PIDS+=("$!:worker")
fi

wait "$NPM_PID" || { echo "setup: npm ci failed" >&2; exit 1; }
FAILED=0
for p in "${PIDS[@]}"; do
  pid=${p%%:*} bin=${p#*:}
  if wait "$pid"; then
    say "$bin ready"
  else
    echo "setup: building $bin failed; its log:" >&2
    tail -30 "$LOGS/$bin.log" >&2
    FAILED=1
  fi
done
[[ $FAILED == 0 ]] || exit 1
say "done"
