#!/usr/bin/env bash
# Installs everything BotArmy needs to build, run and test, skipping what is already there.
# Idempotent: a second run only checks. Usage: scripts/setup.sh [--browser]
#   --browser  also installs Debian's Chromium for the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WANT_BROWSER=0
[[ "${1:-}" == "--browser" ]] && WANT_BROWSER=1

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [[ ${#missing[@]} == 0 ]] && return 0
  if [[ $APT_UPDATED == 0 ]]; then
    say "apt-get update"
    as_root apt-get update -q
    APT_UPDATED=1
  fi
  say "apt-get install ${missing[*]} (a minute or two)"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${missing[@]}"
}

# 1. The wasm32 toolchain: rustup's target where present, else Debian's rustc-web + build-std.
if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "wasm32: rustup target present"
else
  say "wasm32: no rustup target; using Debian rustc-web with build-std (see ../shared/TOOLCHAIN.md)"
  apt_install rustc-web cargo-web rust-web-src rust-web-clippy lld-22
  libdir=$(/usr/bin/rustc --target wasm32-unknown-unknown --print target-libdir)
  [[ -d $libdir ]] || { say "creating $libdir"; as_root mkdir -p "$libdir"; }
fi

# 2. Cargo-installed tools, pinned: wasm-bindgen must equal the version in Cargo.lock.
cargo_tool() { # name crate version
  local have
  # Tools print "name 1.2.3", "1.2.3" or "name v1.2.3": take the last word, drop a leading v.
  have=$("$HOME/.cargo/bin/$1" --version 2>/dev/null | head -1 | awk '{print $NF}') || true
  have=${have#v}
  if [[ "$have" == "$3" ]]; then
    say "$1 $3 present"
  else
    say "cargo install $2 $3 (several minutes on 2 cores; cargo shows progress)"
    cargo install "$2" --version "=$3" --force
  fi
}
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)
[[ -n $WB_VERSION ]] || { echo "setup: wasm-bindgen not found in Cargo.lock" >&2; exit 1; }
cargo_tool wasm-bindgen wasm-bindgen-cli "$WB_VERSION"
cargo_tool worker-build worker-build 0.8.7

# 3. npm packages from the committed lock files (wrangler, esbuild, binaryen, test clients; the UI).
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
npm_ci "$ROOT"
[[ -f frontend/package-lock.json ]] && npm_ci "$ROOT/frontend"

# 4. Chromium for the browser tests.
if [[ $WANT_BROWSER == 1 ]]; then
  apt_install chromium chromium-driver
  say "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo missing)"
fi
say "done"
