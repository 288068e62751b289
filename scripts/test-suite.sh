#!/usr/bin/env bash
# Runs one folder of node tests for `make test`: each test has 10 minutes, the whole suite the
# wall-clock cap given, and, however it ends, no `wrangler dev` it started outlives it (the
# harness starts them detached and stops them itself, but a test process killed by the cap
# cannot). Usage: scripts/test-suite.sh <cap, e.g. 30m> <folder>
set -uo pipefail
cap=$1 dir=$2
cd "$(dirname "$0")/.."
# This run's workers keep their state in a folder of its own (the harness reads the variable),
# so two suites run at once never stop each other's workers.
export BOTARMY_TEST_STATE_DIR="$PWD/test-output/state/suite-$$"
timeout --kill-after=30s "$cap" node --test --test-concurrency=1 --test-timeout=600000 "$dir"
rc=$?
# The harness's wrangler processes lead their own process groups: stop this run's groups
# (workerd included), nothing else.
for pid in $(pgrep -f "node_modules/wrangler/.* --persist-to $BOTARMY_TEST_STATE_DIR/" || true); do
  echo "test-suite: stopping a leftover wrangler dev (pid $pid)" >&2
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
done
[[ $rc == 124 || $rc == 137 ]] && echo "test-suite: $dir went past its $cap cap" >&2
exit "$rc"
