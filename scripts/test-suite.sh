#!/usr/bin/env bash
# Runs one folder of node tests for `make test`: each test has 10 minutes, the whole suite the
# wall-clock cap given, and, however it ends, no `wrangler dev` it started outlives it (the
# harness starts them detached and stops them itself, but a test process killed by the cap
# cannot). Usage: scripts/test-suite.sh <cap, e.g. 30m> <folder>
set -uo pipefail
cap=$1 dir=$2
cd "$(dirname "$0")/.."
timeout --kill-after=30s "$cap" node --test --test-concurrency=1 --test-timeout=600000 "$dir"
rc=$?
# The harness's wrangler processes lead their own process groups and keep their state under
# test-output/state: stop those groups (workerd included), nothing else.
for pid in $(pgrep -f "node_modules/wrangler/.* --persist-to $PWD/test-output/state/" || true); do
  echo "test-suite: stopping a leftover wrangler dev (pid $pid)" >&2
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
done
[[ $rc == 124 || $rc == 137 ]] && echo "test-suite: $dir went past its $cap cap" >&2
exit "$rc"
