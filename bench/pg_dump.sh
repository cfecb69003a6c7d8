#!/usr/bin/env bash
# Benchmark: stowage backing up a pgbench database against the raw `docker exec … pg_dump >
# /dev/null` of the same database, in the same run, plus stowage's peak RSS.
#
#   bench/pg_dump.sh [SCALE...]     default: 110 440 (dumps of about 1.1 GB and 4.4 GB)
#
# For each scale: start a PostgreSQL container (the test image), fill it with `pgbench -i`,
# then alternate REPS runs of the raw dump, of `stowage backup` (release build, default
# config: zstd level 3, no worker threads) and of `stowage backup` with age encryption to one
# X25519 recipient, and print the medians as a Markdown table row.
# Needs about 6 GB of free disk per 100 of scale for the container (removed afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
scripts/deps.sh
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
# BENCH_BIN=path measures another build (e.g. target/small/stowage) instead of the release one.
if [ -z "${BENCH_BIN:-}" ]; then
	cargo build --release --locked --bins 2>&1 | tail -1
fi
scripts/images.sh >/dev/null
BIN=${BENCH_BIN:-$PWD/target/release/stowage}
out=$(mktemp -d)
keys=$(mktemp -d)
trap 'rm -rf "$out" "$keys"' EXIT
age-keygen -o "$keys/key.txt" 2>/dev/null
recipient=$(age-keygen -y "$keys/key.txt")

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

echo "| pgbench scale | dump size | raw pg_dump (s) | stowage (s) | ratio | stowage + age (s) | ratio with age | stowage peak RSS (MiB) | artifact size |"
echo "|---|---|---|---|---|---|---|---|---|"
for scale in "${@:-110 440}"; do
	name=stowage-bench-$scale-$$
	docker run -d --name "$name" -l stowage.enable=true -l "stowage.instance=$name" \
		-e POSTGRES_PASSWORD=bench -e POSTGRES_DB=bench stowage-test/postgres:test >/dev/null
	trap 'docker rm -f -v "$name" >/dev/null 2>&1; rm -rf "$out" "$keys"' EXIT
	until docker logs "$name" 2>&1 | grep -q 'init process complete' &&
		docker exec "$name" pg_isready -q -U postgres 2>/dev/null; do sleep 0.5; done
	sleep 1
	started=$SECONDS
	docker exec "$name" pgbench -i -q -I dtg -s "$scale" -U postgres bench >/dev/null 2>&1
	echo "bench: scale $scale seeded in $((SECONDS - started)) s" >&2
	size=$(docker exec "$name" pg_dump -U postgres bench | wc -c) # also warms the cache
	raw=() ours=() aged=() rss=() stored=0
	# One `stowage backup`; its wall time goes to the array named $1, extra env after it.
	backup() {
		local -n times=$1
		shift
		rm -rf "${out:?}"/*
		/usr/bin/time -f '%e %M' -o "$out/time" env STOWAGE_CONFIG=/dev/null STOWAGE_BACKUP_DIR="$out" \
			STOWAGE_INSTANCE="$name" STOWAGE_LOG=warn "$@" "$BIN" backup >/dev/null
		read -r wall kb <"$out/time"
		times+=("$wall")
		rss+=("$((kb / 1024))")
	}
	for _ in $(seq "$REPS"); do
		t0=$(now)
		docker exec "$name" pg_dump -U postgres bench >/dev/null
		raw+=("$(awk -v a="$(now)" -v b="$t0" 'BEGIN {print a - b}')")
		backup ours
		stored=$(find "$out" -name '*.zst' -printf '%s\n')
		backup aged STOWAGE_ENCRYPTION__RECIPIENTS="$recipient"
		# The encrypted artifact opens with the stock CLIs and holds the whole dump.
		[ "$(age -d -i "$keys/key.txt" "$(find "$out" -name '*.zst.age')" | zstd -dc | wc -c)" = "$size" ] ||
			{ echo "bench: the encrypted artifact does not decrypt to the dump" >&2; exit 1; }
	done
	r=$(printf '%s\n' "${raw[@]}" | median)
	o=$(printf '%s\n' "${ours[@]}" | median)
	a=$(printf '%s\n' "${aged[@]}" | median)
	m=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
	printf '| %s | %s | %.2f | %.2f | %.3f | %.2f | %.3f | %s | %s |\n' "$scale" "$(numfmt --to=iec "$size")" \
		"$r" "$o" "$(awk -v o="$o" -v r="$r" 'BEGIN {print o / r}')" \
		"$a" "$(awk -v o="$a" -v r="$r" 'BEGIN {print o / r}')" "$m" "$(numfmt --to=iec "$stored")"
	docker rm -f -v "$name" >/dev/null
done
