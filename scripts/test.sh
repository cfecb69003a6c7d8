#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine with a Rust toolchain and a Docker engine:
# installs the Debian packages it needs, checks formatting and lints, builds the test images
# (cached by content hash), then runs the unit tests and the integration tests against the
# real Docker engine and real PostgreSQL containers, then the fuzzers (scripts/fuzz.sh,
# FUZZ_SECONDS each, 30 by default; FUZZ_SECONDS=0 skips them). Extra arguments go to
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
scripts/deps.sh
echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
echo "== images"
cargo build --locked --bins
scripts/images.sh stowage
echo "== tests"
cargo test --locked "$@"
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
	echo "== fuzz"
	scripts/fuzz.sh
fi
echo "== suite finished in $((SECONDS - started)) s"
