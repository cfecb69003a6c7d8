#!/usr/bin/env bash
# Benchmark: what compression costs on data like an application's, against the raw dump, the
# machine's CPU floor and the stock shell pipeline.
#
#   bench/compress.sh [SIZE_GB...]        default: 1 4
#   DATA=pgbench bench/compress.sh 1      pgbench rows instead (they compress ~90x)
#   REPS=5 (default) runs of each command, interleaved; VARIANTS=... to pick commands;
#   ROWS=N rows in the first GB (2,200,000: about 1 GB of dump);
#   CONTAINER=NAME reuses a running PostgreSQL container from an earlier run (kept, not removed;
#   its data is seeded only where missing) instead of starting and seeding a new one;
#   RESULTS=DIR keeps each run's figures (DIR/GB-VARIANT: one line per run, in the order run,
#   "wall cpu rss bytes machine levels", six fields on every line, "-" for what a command lacks;
#   DIR/GB-VARIANT.chain: "container dockerd shim" CPU-s)
#   for paired comparisons across several runs of the script
#
# Data: bench/realistic.sql (prose from a word list, md5 tokens, numerics, timestamps, jsonb,
# ~5% random bytea; zstd -3 ratio ~3.3). The 1 GB table is made once; larger sizes copy its
# rows with new ids (copies sit a whole table apart, far beyond zstd's window, so the ratio
# stays). Commands, each REPS times in turn, after one warm-up dump:
#   raw     docker exec C pg_dump -U postgres bench > /dev/null
#   rawbuf  docker exec C stdbuf -o 65536 pg_dump … > /dev/null   (the raw dump with the
#           stdout buffer stowage gives pg_dump where the image has stdbuf; when it is among
#           the variants, the CPU floor is measured against it, the chain stowage really runs)
#   shell   docker exec C pg_dump … | zstd -3 -T0 | tee FILE | sha256sum   (the stock pipeline)
#   l3      stowage backup, level 3, threads 0      (the defaults; the CPU floor comparison)
#   l1      stowage backup, level 1, threads 0
#   l3t     stowage backup, level 3, threads auto
#   auto0   stowage backup, level auto, threads 0
#   auto    stowage backup, level auto, threads auto
#   age     as auto0, encrypted to one age recipient
#   l3b, auto0b  as l3 and auto0, run by the binary in BEFORE_BIN (an earlier build), for a
#           before/after comparison in the same interleaved run
# For each: median wall time and range, median ratio to raw (paired per rep), CPU seconds
# (stowage's own from /usr/bin/time; the machine's busy time during raw from /proc/stat, less
# what the docker CLI itself spent receiving the stream, which stowage replaces), the CPU floor
# max(raw wall, (raw CPU - CLI CPU + own CPU) / cores), how busy the machine's cores were
# (busy CPU-s from /proc/stat over cores x wall: below 100% some core sat idle while the chain
# waited on itself), peak RSS, artifact size. A second table splits the chain's CPU-s per run:
# the database's container (its cgroup: postgres and pg_dump), dockerd, and the container's
# containerd-shim ("-" where a figure cannot be read: another cgroup layout, another runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
DATA=${DATA:-realistic}
VARIANTS=${VARIANTS:-raw shell l3 l3t auto0 auto age}
scripts/deps.sh
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
command -v jq >/dev/null || apt-get install -y -qq jq >/dev/null
if [ -z "${BENCH_BIN:-}" ]; then
	cargo build --release --locked --bins 2>&1 | tail -1
fi
scripts/images.sh >/dev/null
BIN=${BENCH_BIN:-$PWD/target/release/stowage}
CORES=$(nproc)
TICK=$(getconf CLK_TCK)
work=$(mktemp -d)
if [ -n "${CONTAINER:-}" ]; then
	name=$CONTAINER
	trap 'rm -rf "$work"' EXIT
else
	name=stowage-compress-$$
	trap 'docker rm -f -v "$name" >/dev/null 2>&1; rm -rf "$work"' EXIT
fi
age-keygen -o "$work/key.txt" 2>/dev/null
recipient=$(age-keygen -y "$work/key.txt")

now() { date +%s.%N; }
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
busy_since() { awk -v a="$(busy)" -v b="$1" -v t="$TICK" 'BEGIN {print (a - b) / t}'; } # CPU-s since busy() gave $1
chain_cpu() { # CPU-s so far: "container dockerd shim", "-" for what cannot be read
	local cg=- d=- sh=- f p
	for f in "/sys/fs/cgroup/cpuacct/docker/$cid/cpuacct.usage" "/sys/fs/cgroup/system.slice/docker-$cid.scope/cpu.stat" "/sys/fs/cgroup/docker/$cid/cpu.stat"; do
		[ -r "$f" ] && cg=$(awk '/^usage_usec/ {print $2 / 1e6; exit} /^[0-9]+$/ {print $1 / 1e9}' "$f") && break
	done
	p=$(pgrep -x dockerd | head -1) && d=$(awk -v t="$TICK" '{print ($14 + $15) / t}' "/proc/$p/stat")
	p=$(pgrep -f "containerd-shim.*$cid" | head -1) && sh=$(awk -v t="$TICK" '{print ($14 + $15) / t}' "/proc/$p/stat")
	echo "$cg $d $sh"
}
chain_since() { # the chain's CPU-s since chain_cpu gave "$1"
	awk -v a="$(chain_cpu)" -v b="$1" 'BEGIN {n = split(a, x, " "); split(b, y, " "); for (i = 1; i <= n; i++) printf "%s%s", (x[i] == "-" || y[i] == "-" ? "-" : x[i] - y[i]), (i < n ? " " : "\n")}'
}
stats() { # median min max of the numbers on stdin, in format $1
	sort -g | awk -v f="${1:-%.2f}" '{a[NR] = $1} END {printf f " " f " " f "\n", a[int((NR + 1) / 2)], a[1], a[NR]}'
}

[ -n "${CONTAINER:-}" ] || docker run -d --name "$name" -l stowage.enable=true -l "stowage.instance=$name" \
	--shm-size 256m -e POSTGRES_PASSWORD=bench -e POSTGRES_DB=bench stowage-test/postgres:test >/dev/null
until docker logs "$name" 2>&1 | grep -q 'init process complete' &&
	docker exec "$name" pg_isready -q -U postgres 2>/dev/null; do sleep 0.5; done
sleep 1
cid=$(docker inspect -f '{{.Id}}' "$name")
psql() { docker exec -i "$name" psql -q -v ON_ERROR_STOP=1 -U postgres -d bench "$@"; }

seed() { # $1 = GB
	local started=$SECONDS
	if [ "$DATA" = pgbench ]; then
		docker exec "$name" pgbench -i -q -I dtg -s $((110 * $1)) -U postgres bench >/dev/null 2>&1
	elif ! psql -Atc "SELECT 1 FROM pg_tables WHERE tablename = 'orders'" | grep -q 1; then
		psql -v rows="${ROWS:-2200000}" <bench/realistic.sql 2>/dev/null
	fi
	if [ "$DATA" = realistic ]; then
		local base copies
		base=$(psql -Atc "SELECT count(*) FROM orders WHERE id <= 10000000")
		copies=$(psql -Atc "SELECT count(*) / $base FROM orders")
		while [ "$copies" -lt "$1" ]; do
			psql -c "INSERT INTO orders SELECT id + $copies * 10000000, customer, email, token, status, amount, quantity, ratio, created_at, updated_at, note, attrs, attachment FROM orders WHERE id <= 10000000"
			copies=$((copies + 1))
		done
		psql -c "VACUUM ANALYZE orders"
	fi
	echo "bench: $DATA ${1} GB seeded in $((SECONDS - started)) s" >&2
}

run() { # $1 = variant; appends "wall cpu rss bytes machine levels" to $work/$1, the chain's
	# CPU-s ("container dockerd shim") to $work/$1.chain
	local v=$1 t0 b0 wall machine c0
	rm -rf "${work:?}/out" && mkdir -p "$work/out"
	c0=$(chain_cpu)
	case $v in
	raw | rawbuf)
		local buf=()
		[ "$v" = rawbuf ] && buf=(stdbuf -o 65536)
		b0=$(busy) t0=$(now)
		/usr/bin/time -f '%U %S' -o "$work/time" docker exec "$name" "${buf[@]}" pg_dump -U postgres bench >/dev/null
		wall=$(awk -v a="$(now)" -v b="$t0" 'BEGIN {print a - b}')
		# The machine's busy CPU-s, less the CLI's own (stowage takes the CLI's place).
		machine=$(busy_since "$b0")
		echo "$wall $(awk -v m="$machine" -v cli="$(awk '{print $1 + $2}' "$work/time")" 'BEGIN {print m - cli}') 0 0 $machine -" >>"$work/$v"
		;;
	shell)
		b0=$(busy) t0=$(now)
		docker exec "$name" pg_dump -U postgres bench | zstd -3 -T0 -q | tee "$work/out/dump.sql.zst" | sha256sum >/dev/null
		wall=$(awk -v a="$(now)" -v b="$t0" 'BEGIN {print a - b}')
		echo "$wall 0 0 $(stat -c %s "$work/out/dump.sql.zst") $(busy_since "$b0") -" >>"$work/$v"
		;;
	*)
		local env=(STOWAGE_CONFIG=/dev/null STOWAGE_BACKUP_DIR="$work/out" STOWAGE_INSTANCE="$name" STOWAGE_LOG=warn)
		case $v in
		l3) env+=(STOWAGE_COMPRESSION__LEVEL=3 STOWAGE_COMPRESSION__THREADS=0) ;;
		l1) env+=(STOWAGE_COMPRESSION__LEVEL=1 STOWAGE_COMPRESSION__THREADS=0) ;;
		l3t) env+=(STOWAGE_COMPRESSION__LEVEL=3 STOWAGE_COMPRESSION__THREADS=auto) ;;
		auto0) env+=(STOWAGE_COMPRESSION__LEVEL=auto STOWAGE_COMPRESSION__THREADS=0) ;;
		auto) env+=(STOWAGE_COMPRESSION__LEVEL=auto STOWAGE_COMPRESSION__THREADS=auto) ;;
		age) env+=(STOWAGE_COMPRESSION__LEVEL=auto STOWAGE_COMPRESSION__THREADS=0 STOWAGE_ENCRYPTION__RECIPIENTS="$recipient") ;;
		l3b) env+=(STOWAGE_COMPRESSION__LEVEL=3 STOWAGE_COMPRESSION__THREADS=0) ;;
		auto0b) env+=(STOWAGE_COMPRESSION__LEVEL=auto STOWAGE_COMPRESSION__THREADS=0) ;;
		esac
		local bin=$BIN
		case $v in *b) bin=${BEFORE_BIN:?"variant $v needs BEFORE_BIN=path to an earlier stowage build"} ;; esac
		b0=$(busy)
		/usr/bin/time -f '%e %U %S %M' -o "$work/time" env "${env[@]}" "$bin" backup >/dev/null
		local manifest wall user sys kb
		manifest=$(find "$work/out" -name '*.zst*.json' -not -path '*/.*/*')
		read -r wall user sys kb <"$work/time"
		echo "$wall $(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}') $((kb / 1024)) $(jq .stored.bytes "$manifest") $(busy_since "$b0") $(jq -c '.stored.compression_levels // {} | to_entries | map("L\(.key):\(.value / 1048576 | floor)M") | join(",") | if . == "" then "-" else . end' "$manifest" | tr -d '"')" >>"$work/$v"
		if [ "$v" = age ]; then # the stock CLIs open it and get the whole dump back
			[ "$(age -d -i "$work/key.txt" "$(find "$work/out" -name '*.zst.age')" | zstd -dc | wc -c)" = "$(jq .raw.bytes "$manifest")" ] ||
				{ echo "bench: the encrypted artifact does not open to the dump" >&2; exit 1; }
		fi
		;;
	esac
	chain_since "$c0" >>"$work/$v.chain"
}

echo "machine: $CORES cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(docker version -f 'Docker {{.Server.Version}}'), $(date -u +%F)"
for gb in "${@:-1 4}"; do
	seed "$gb"
	size=$(docker exec "$name" pg_dump -U postgres bench | wc -c) # also warms the cache
	for v in $VARIANTS; do rm -f "${work:?}/$v" "$work/$v.chain"; done
	for rep in $(seq "$REPS"); do
		for v in $VARIANTS; do run "$v"; done
		echo "bench: rep $rep of $REPS done" >&2
	done
	echo
	echo "$DATA data, dump $(numfmt --to=iec "$size"), REPS=$REPS; median (min–max)"
	echo
	floor_base=raw
	case " $VARIANTS " in *" rawbuf "*) floor_base=rawbuf ;; esac
	echo "CPU floor of the stowage variants measured against $floor_base"
	echo
	echo "| command | wall (s) | ratio to raw | CPU s (own) | CPU floor (s) | wall / floor | cores busy | peak RSS (MiB) | artifact | zstd levels (median run) |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	for v in $VARIANTS; do
		read -r w wmin wmax < <(cut -d' ' -f1 "$work/$v" | stats)
		ratio=$(paste -d' ' <(cut -d' ' -f1 "$work/$v") <(cut -d' ' -f1 "$work/raw") | awk '{print $1 / $2}' | stats %.3f)
		read -r cpu _ _ < <(cut -d' ' -f2 "$work/$v" | stats)
		case $v in raw*) base=$v ;; *) base=$floor_base ;; esac
		floor=$(paste -d' ' <(cut -d' ' -f2 "$work/$base") <(cut -d' ' -f2 "$work/$v") <(cut -d' ' -f1 "$work/$base") |
			awk -v c="$CORES" -v own="$v" '{f = ($1 + (own ~ /^raw/ ? 0 : $2)) / c; if (f < $3) f = $3; print f}' | stats)
		per=$(paste -d' ' <(cut -d' ' -f1 "$work/$v") <(paste -d' ' <(cut -d' ' -f2 "$work/$base") <(cut -d' ' -f2 "$work/$v") <(cut -d' ' -f1 "$work/$base") |
			awk -v c="$CORES" -v own="$v" '{f = ($1 + (own ~ /^raw/ ? 0 : $2)) / c; if (f < $3) f = $3; print f}') | awk '{print $1 / $2}' | stats %.3f)
		rss=$(cut -d' ' -f3 "$work/$v" | sort -n | tail -1)
		bytes=$(cut -d' ' -f4 "$work/$v" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
		busyness=$(awk -v c="$CORES" '{print 100 * $5 / (c * $1)}' "$work/$v" | stats %.0f)
		levels=$(sort -g "$work/$v" | awk '{a[NR] = $6} END {print a[int((NR + 1) / 2)]}')
		read -r r rmin rmax <<<"$ratio"
		read -r f _ _ <<<"$floor"
		read -r p pmin pmax <<<"$per"
		read -r u umin umax <<<"$busyness"
		[ "$v" = shell ] && cpu=-
		printf '| %s | %s (%s–%s) | %s (%s–%s) | %s | %s | %s (%s–%s) | %s%% (%s–%s) | %s | %s | %s |\n' "$v" "$w" "$wmin" "$wmax" \
			"$r" "$rmin" "$rmax" "$cpu" "$f" "$p" "$pmin" "$pmax" "$u" "$umin" "$umax" \
			"$([ "$rss" = 0 ] && echo - || echo "$rss")" \
			"$([ "$bytes" = 0 ] && echo - || numfmt --to=iec "$bytes")" "$levels"
		if [ -n "${RESULTS:-}" ]; then
			mkdir -p "$RESULTS" && cp "$work/$v" "$RESULTS/$gb-$v" && cp "$work/$v.chain" "$RESULTS/$gb-$v.chain"
		fi
	done
	echo
	echo "The chain's CPU-s per run, median (min–max)"
	echo
	echo "| command | database container | dockerd | containerd-shim |"
	echo "|---|---|---|---|"
	for v in $VARIANTS; do
		row="| $v |"
		for col in 1 2 3; do
			if grep -qx -- - <(cut -d' ' -f"$col" "$work/$v.chain"); then
				row+=" - |"
			else
				read -r m mmin mmax < <(cut -d' ' -f"$col" "$work/$v.chain" | stats)
				row+=" $m ($mmin–$mmax) |"
			fi
		done
		echo "$row"
	done
done
