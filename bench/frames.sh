#!/usr/bin/env bash
# Benchmark: zstd's streaming encoder against one-shot frames (the measurement behind
# src/pipeline/compress.rs and the adaptive level's lowest step in src/pipeline/adapt.rs).
#
#   bench/frames.sh SAMPLE [ROUNDS]     a file of dump bytes, e.g. 200 MB of a realistic dump:
#     docker exec C pg_dump -U postgres bench | head -c 300000000 | tail -c 200000000 > /dev/shm/s
#
# Builds bench/frames (the zstd crate at stowage's version) and prints a table of CPU seconds
# (this thread's, from /proc) and compressed sizes, every variant once per round, in turn.
set -euo pipefail
cd "$(dirname "$0")/frames"
[ -f "${1:?usage: bench/frames.sh SAMPLE [ROUNDS]}" ] || { echo "frames.sh: no file $1" >&2; exit 1; }
sample=$(realpath "$1")
cargo build --release --quiet
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
./target/release/stowage-bench-frames "$sample" "${2:-5}"
