#!/usr/bin/env bash
# Benchmark: the daemon's idle memory with 100 labelled containers, and the time to plan 200.
#
#   bench/daemon.sh            (REPS=5 by default for the plan timing)
#
# Starts 100 small labelled containers (the test base image running `sleep`), runs the release
# `stowage run` against them with discovery every 5 s and its HTTP server on, lets it settle
# for 60 s (a dozen re-plans, scrapes of /metrics), and reads its resident memory from /proc.
# Then starts 100 more and times `stowage plan` (listing, inspecting and planning all 200)
# REPS times. Prints Markdown table rows. The containers are removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
scripts/deps.sh
cargo build --release --locked --bins 2>&1 | tail -1
scripts/images.sh >/dev/null
BIN=$PWD/target/release/stowage
inst=stowage-bench-daemon-$$
work=$(mktemp -d)
cleanup() {
	[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
	docker ps -aq --filter "label=stowage.instance=$inst" | xargs -r docker rm -f >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

start_containers() { # from to
	for i in $(seq "$1" "$2"); do
		docker run -d --name "$inst-$i" -l stowage.enable=true -l stowage.engine=postgres \
			-l "stowage.instance=$inst" -e POSTGRES_PASSWORD=x stowage-test/base:test sleep infinity >/dev/null
	done
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

start_containers 1 100
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
STOWAGE_CONFIG=/dev/null STOWAGE_BACKUP_DIR="$work" STOWAGE_INSTANCE="$inst" STOWAGE_LOG=warn \
	STOWAGE_DAEMON__DISCOVERY_INTERVAL=5 STOWAGE_HTTP__LISTEN="127.0.0.1:$port" "$BIN" run &
pid=$!
for _ in $(seq 60); do
	sleep 1
	curl -s "http://127.0.0.1:$port/metrics" >/dev/null || true
done
targets=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^stowage_targets /{print $2}')
rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")
hwm=$(awk '/^VmHWM/{print $2}' "/proc/$pid/status")
kill "$pid"
wait "$pid" || true
pid=
printf '| idle daemon, %s targets, 60 s | RSS %.1f MiB (peak %.1f MiB) |\n' "$targets" \
	"$(awk -v k="$rss" 'BEGIN {print k / 1024}')" "$(awk -v k="$hwm" 'BEGIN {print k / 1024}')"

start_containers 101 200
times=()
for _ in $(seq "$REPS"); do
	t0=$(now)
	STOWAGE_CONFIG=/dev/null STOWAGE_BACKUP_DIR="$work" STOWAGE_INSTANCE="$inst" STOWAGE_LOG=warn \
		"$BIN" plan >"$work/plan.txt"
	times+=("$(awk -v a="$(now)" -v b="$t0" 'BEGIN {print a - b}')")
done
planned=$(grep -c '^  engine:' "$work/plan.txt" || true)
printf '| stowage plan, %s containers (median of %s) | %.2f s |\n' "$planned" "$REPS" \
	"$(printf '%s\n' "${times[@]}" | median)"
