# BotArmy task runner. `make dev` serves UI + API; `make test` runs every test.
# Each target installs what is missing first (scripts/setup.sh is idempotent).
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
PORT ?= 8787

.PHONY: setup setup-test build build-worker build-frontend dev test test-rust test-rust-and-lint-native lint fmt-check imports lint-native lint-wasm test-frontend test-e2e-beside-lint-wasm test-e2e test-chaos test-security test-soak test-chaos-and-security test-browser-and-soak build-and-test-frontend test-browser chaos-long fuzz bench bench-ab bench-ui deploy clean

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --browser

build-worker:
	source scripts/env.sh
	node scripts/build-worker.mjs
	ls -l build/index_bg.wasm

build-frontend:
	cd frontend && npm run build

build: build-worker build-frontend

dev: setup build
	PORT=$(PORT) scripts/dev.sh

test-rust:
	cargo test --all-targets

# `make test` builds the native tests with clippy as the crate's compiler: clippy-driver is rustc
# plus clippy's lints, so as RUSTC_WORKSPACE_WRAPPER (dependencies still go to plain rustc) it
# fails the build on any warning, as lint-native does, in the one compile the tests need (cargo
# clippy would compile everything a second time). CLIPPY_ARGS is how cargo-clippy hands the
# driver its arguments. Not for the Worker: the driver turns MIR optimisation off, and the tests
# must run the build that ships.
test-rust-and-lint-native:
	export RUSTC_WORKSPACE_WRAPPER="$$(rustc --print sysroot)/bin/clippy-driver"
	export CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
	cargo test --all-targets

fmt-check:
	cargo fmt --check

# The module graph of src/, and no file importing one that imports it back.
imports:
	node scripts/imports.mjs

lint-native:
	cargo clippy --all-targets -- -D warnings

# The edge compiles for wasm32 only: lint it there too.
lint-wasm:
	source scripts/env.sh
	cargo clippy --release --target wasm32-unknown-unknown --lib -- -D warnings

lint: fmt-check imports lint-native lint-wasm

test-frontend:
	cd frontend && npm run typecheck && npm test

# No test may hang CI (scripts/test-suite.sh): each test has 10 minutes, each suite a
# wall-clock cap (several times what it takes here; see the README's build notes), after which
# it fails with what it printed; no `wrangler dev` a suite started outlives it.
test-e2e:
	scripts/test-suite.sh 30m tests/e2e/

# The wasm32 lint checks std and every dependency for wasm32 again (1.5 min of both cores after
# the Worker build), and the e2e suite leaves much of the machine idle while its tests wait on
# timers. So the lint runs beside it at the lowest priority (nice 19 yields the CPU to the
# tests: their timing is not touched) and in a process group of its own, and its verdict is
# awaited after the suite's. It shares target/ with the Worker's build before it, whose host
# half (build scripts, proc macros) it reuses; nothing else runs cargo meanwhile.
test-e2e-beside-lint-wasm:
	mkdir -p target
	set -m
	nice -n 19 $(MAKE) --no-print-directory lint-wasm >target/lint-wasm.log 2>&1 &
	lint=$$!
	set +m
	trap 'kill -- -$$lint 2>/dev/null || true' EXIT
	trap 'exit 130' INT TERM
	rc=0
	$(MAKE) --no-print-directory test-e2e || rc=$$?
	if wait $$lint; then echo "lint-wasm: clean"; else cat target/lint-wasm.log; echo "lint-wasm failed (its log is above)" >&2; rc=1; fi
	exit $$rc

test-chaos:
	scripts/test-suite.sh 15m tests/chaos/

test-security:
	scripts/test-suite.sh 15m tests/security/

# On demand: 100 sessions of chaos.
chaos-long: build
	CHAOS_SESSIONS=100 CHAOS_CONCURRENCY=25 node --test tests/chaos/chaos.test.mjs

# SOAK_SECONDS=600 make test-soak for the long run.
test-soak:
	scripts/test-suite.sh $$(( $${SOAK_SECONDS:-60} / 60 + 15 ))m tests/soak/

test-browser:
	scripts/test-suite.sh 20m tests/browser/

# Suites run two at a time where neither fills the machine; each has its own state folder and
# workers (scripts/test-suite.sh). Chaos and security: together 101 s, one after the other
# 190 s. The soak paces one session a second and waits most of its minute, so it runs beside
# the browser suite; its cap of 8 pipelines at once then skips more starts (47 sessions in a
# minute here, against about 60 alone), and its memory bound is checked the same.
test-chaos-and-security:
	$(MAKE) -j2 --output-sync=target test-chaos test-security

test-browser-and-soak:
	$(MAKE) -j2 --output-sync=target test-browser test-soak

# The Worker build ends on one core (the crate's LTO, then wasm-opt: about 100 s): the
# frontend's typecheck and unit tests run beside it on the other.
build-and-test-frontend:
	$(MAKE) -j2 --output-sync=target build test-frontend

test: setup-test fmt-check imports test-rust-and-lint-native build-and-test-frontend test-e2e-beside-lint-wasm test-chaos-and-security test-browser-and-soak

# Long fuzz run of the command decoder, SSE parser and JSON-Patch reducer (property tests).
fuzz:
	PROPTEST_CASES=$${PROPTEST_CASES:-200000} cargo test --release --lib -- \
	  arbitrary apply_never_panics apply_of_diff chunking byte_at_a_time decoder random_sessions

bench: setup build
	node bench/run.mjs

# An earlier commit's build against this one, interleaved pairs (bench/ab.mjs), e.g.
# make bench-ab AB_ARGS='--base 25990e2 --pairs 5 --quick'
bench-ab: setup build
	node bench/ab.mjs $(AB_ARGS)

# How fast the page answers input while agents stream (Chromium, Event Timing).
bench-ui: setup-test build
	node bench/ui.mjs

deploy: setup build
	npx wrangler deploy

clean:
	rm -rf build target/wasm32-unknown-unknown frontend/dist test-output bench-output
