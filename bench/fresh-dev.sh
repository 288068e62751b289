#!/usr/bin/env bash
# Measures `make dev` from a fresh machine state to the first /api/health (README, build notes).
# DESTRUCTIVE for this machine's Debian packages: removes rustc-web, cargo-web, rust-web-src,
# rust-web-clippy and lld-22 and cleans apt's cache, so the setup downloads them again. Uses a new
# HOME (no cargo registry, no cargo tools, no npm cache) and a fresh clone of the given branch.
# Run on an otherwise idle machine:  bench/fresh-dev.sh --yes [branch]
set -euo pipefail
[[ ${1:-} == --yes ]] || { sed -n 2,6p "$0"; exit 2; }
BRANCH=${2:-main}
REPO=$(cd "$(dirname "$0")/.." && pwd)
F=$(mktemp -d /tmp/botarmy-fresh.XXXXXX)
PORT=${PORT:-8799}
mkdir -p "$F/w" "$F/home"
apt-get remove --purge -y -q rustc-web cargo-web rust-web-src rust-web-clippy lld-22 >"$F/apt-remove.log" 2>&1 || true
apt-get autoremove --purge -y -q >>"$F/apt-remove.log" 2>&1 || true
apt-get clean
rm -rf /usr/lib/rustlib/wasm32-unknown-unknown
[[ -d $REPO/../shared ]] && cp -r "$REPO/../shared" "$F/w/shared"
git clone -q -b "$BRANCH" "$REPO" "$F/w/main"
export HOME=$F/home CARGO_HOME=$F/home/.cargo RUSTUP_HOME=${RUSTUP_HOME:-/root/.rustup}
export PATH=$F/home/.cargo/bin:/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd "$F/w/main"
start=$(date +%s)
make dev PORT="$PORT" >"$F/dev.log" 2>&1 &
DEV=$!
until curl -sf "http://127.0.0.1:$PORT/api/health" >/dev/null 2>&1; do
  kill -0 "$DEV" 2>/dev/null || { echo "make dev stopped; see $F/dev.log" >&2; exit 1; }
  sleep 1
done
echo "make dev to the first /api/health: $(($(date +%s) - start)) s (log: $F/dev.log)"
grep -F '[setup]' "$F/dev.log" | sed 's/\x1b\[[0-9;]*m//g'
stat -c '%y %n' target/setup-logs/*.log build/index_bg.wasm frontend/dist/index.html
pkill -f "$F/w/main/node_modules/wrangler" || true
