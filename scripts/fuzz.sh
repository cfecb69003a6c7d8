#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for FUZZ_SECONDS each (default 30) with cargo-fuzz
# and libFuzzer, on the stable toolchain (no sanitizer: the targets look for panics, which Rust
# code reports without one). Inputs that reach new code are added to fuzz/corpus/<target>/,
# which is kept in the repository. A panic, or an input that takes more than 10 s (libFuzzer's
# timeout: the schedule target's corpus once held inputs that took a minute), fails the script
# and leaves the input in fuzz/artifacts/<target>/. Replay it from fuzz/ with the flags below,
# or cargo-fuzz rebuilds everything elsewhere: `cargo fuzz run -s none --release
# --codegen-units 16 --target-dir ~/.cache/stowage/fuzz-target TARGET FILE`.
# Installs cargo-fuzz from crates.io the first time. `scripts/fuzz.sh build` installs and builds
# only (scripts/test.sh runs it while the tests run, at idle CPU priority).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
# Built as fuzz/Cargo.toml says: stowage at opt-level 1, its dependencies at 0. cargo-fuzz's
# release build would pass -Ccodegen-units=1 in RUSTFLAGS, overriding the profile; the flags below
# ask for its 16. The build and the runs must pass the same flags, or each run rebuilds. The
# target directory is kept between runs on the same machine, so only the first run pays for the
# build.
target_dir=${STOWAGE_FUZZ_TARGET_DIR:-$HOME/.cache/stowage/fuzz-target}
if ! command -v cargo-fuzz >/dev/null; then
	echo "fuzz: installing cargo-fuzz from crates.io (a minute or two, once)"
	cargo install --quiet --locked cargo-fuzz
fi
cd fuzz
flags=(-s none --release --codegen-units 16 --target-dir "$target_dir")
started=$SECONDS
cargo fuzz build "${flags[@]}"
echo "fuzz: built the targets in $((SECONDS - started)) s"
[ "${1:-}" = build ] && exit 0
for target in $(cargo fuzz list); do
	mkdir -p "corpus/$target"
	echo "fuzz: $target for ${seconds} s"
	cargo fuzz run "${flags[@]}" "$target" "corpus/$target" -- \
		-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 2>&1 |
		grep -E '^(stat::number_of_executed_units|stat::new_units_added|#[0-9]+ +DONE)|panicked|ERROR|SUMMARY' || true
	status=${PIPESTATUS[0]}
	if [ "$status" -ne 0 ]; then
		echo "fuzz: $target FAILED (exit $status); the input is in fuzz/artifacts/$target/" >&2
		exit 1
	fi
done
echo "fuzz: every target ran ${seconds} s without a panic or a timeout"
