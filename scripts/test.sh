#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine with a Rust toolchain and a Docker engine:
# installs the Debian packages it needs, checks formatting and lints, builds the test images
# (cached by content hash), then runs the unit tests and the integration tests against the
# real Docker engine and real PostgreSQL containers, then the fuzzers (scripts/fuzz.sh,
# FUZZ_SECONDS each, 20 by default here; FUZZ_SECONDS=0 skips them). Extra arguments go to
# `cargo test`.
#
# On a fresh machine two long steps overlap others that leave a core free: the test images
# (mmdebstrap: downloads and dpkg, about one core) build while Rust compiles, and the fuzz
# targets build while the tests run (those mostly wait on containers and scheduled minutes), at
# idle CPU priority (SCHED_IDLE) so that they take only CPU time the tests leave. A step in the
# background that fails fails the suite; the suite stopping stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

# Background steps run in their own process group, so that stopping one stops all it started.
background=()
logs=$(mktemp -d)
clean_up() {
	for pid in "${background[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
	rm -rf "$logs"
}
trap clean_up EXIT
start_background() { # LOG COMMAND...
	local log=$1; shift
	setsid "$@" >"$log" 2>&1 &
	background+=("$!")
}
finish_background() { # PID LOG WHAT
	local status=0
	wait "$1" || status=$?
	cat "$2"
	[ "$status" -eq 0 ] || { echo "test.sh: $3 failed (exit $status)" >&2; exit 1; }
}

scripts/deps.sh debian
echo "== images (built in the background from here on; their log follows the lints)"
start_background "$logs/images" scripts/images.sh
images=$!
scripts/deps.sh
echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked --bins
echo "== images"
finish_background "$images" "$logs/images" "building the test images"
scripts/images.sh stowage
export FUZZ_SECONDS=${FUZZ_SECONDS:-20}
if [ "$FUZZ_SECONDS" != 0 ]; then
	start_background "$logs/fuzz" chrt --idle 0 scripts/fuzz.sh build
	fuzz_build=$!
fi
echo "== tests"
cargo test --locked "$@"
if [ "$FUZZ_SECONDS" != 0 ]; then
	echo "== fuzz (built while the tests ran)"
	finish_background "$fuzz_build" "$logs/fuzz" "building the fuzz targets"
	scripts/fuzz.sh
fi
echo "== suite finished in $((SECONDS - started)) s"
