#!/usr/bin/env bash
# Benchmark: a restore drill of a PostgreSQL artifact against what a person would do by hand
# to check the same artifact: start a fresh container from the same image, wait until it is
# ready, `stowage restore` the artifact into it. Goal: drill ≤ 1.2 × (start + restore).
#
#   bench/drill.sh [ROWS]     default: 2000000 order rows (a dump of about 330 MB)
#
# The database looks like an application's, not like pgbench's (whose dump compresses ~90×):
# customers with names and e-mail addresses, orders with timestamps, amounts, a status word,
# free text from a 300-word vocabulary and a JSON column, foreign keys and secondary indexes.
# Its dump compresses about 5× with zstd -3 (pgbench's: about 90×). REPS runs of each, alternating; medians and
# ranges are printed as a Markdown table row.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
ROWS=${1:-2000000}
scripts/deps.sh
command -v jq >/dev/null && command -v bc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq bc >/dev/null
if [ -z "${BENCH_BIN:-}" ]; then
	cargo build --release --locked --bins 2>&1 | tail -1
fi
scripts/images.sh >/dev/null
BIN=${BENCH_BIN:-$PWD/target/release/stowage}
out=$(mktemp -d)
name=stowage-bench-drill-$$
into=$name-into
cleanup() {
	docker rm -f -v "$name" "$into" >/dev/null 2>&1 || true
	docker ps -aq --filter "label=stowage.drill-for=$name" | xargs -r docker rm -f -v >/dev/null
	rm -rf "$out"
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]}'; }
range() { sort -n | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.1f–%.1f", lo, hi}'; }
now() { date +%s.%N; }
ready() { # container: wait until the real server (not the init one) answers on TCP
	until docker exec "$1" pg_isready -q -h 127.0.0.1 -U postgres 2>/dev/null; do sleep 0.2; done
}

docker run -d --name "$name" -l stowage.enable=true -l "stowage.instance=$name" \
	-e POSTGRES_PASSWORD=bench -e POSTGRES_DB=shop stowage-test/postgres:test >/dev/null
ready "$name"
started=$SECONDS
docker exec -i "$name" psql -q -v ON_ERROR_STOP=1 -U postgres -d shop >/dev/null <<SQL
CREATE TABLE words (i int PRIMARY KEY, w text NOT NULL);
INSERT INTO words SELECT i, (ARRAY['order','delivery','customer','invoice','payment','shipping',
  'address','product','discount','return','refund','warehouse','package','express','standard',
  'priority','note','gift','wrap','please','call','before','after','monday','friday','evening',
  'morning','door','neighbour','garage','fragile','glass','books','shoes','kitchen','garden',
  'tools','paint','cable','phone','laptop','screen','chair','table','lamp','coffee','tea',
  'organic','fresh','frozen'])[1 + (i % 50)] || CASE WHEN i >= 50 THEN (i / 50)::text ELSE '' END
  FROM generate_series(0, 299) i;
CREATE TABLE customers (
  id int PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE, city text,
  created_at timestamptz NOT NULL);
INSERT INTO customers SELECT g, initcap(w1.w) || ' ' || initcap(w2.w),
  'user' || g || '@' || w3.w || '.example', w2.w || 'ville',
  now() - (g % 1000) * interval '1 day'
  FROM generate_series(1, $((ROWS / 10))) g
  JOIN words w1 ON w1.i = g % 300 JOIN words w2 ON w2.i = (g * 7) % 300
  JOIN words w3 ON w3.i = (g * 13) % 300;
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id),
  created_at timestamptz NOT NULL, status text NOT NULL, total numeric(12,2) NOT NULL,
  note text, attrs jsonb);
INSERT INTO orders SELECT g, 1 + (hashint4(g)::bigint & 2147483647) % $((ROWS / 10)),
  timestamptz '2024-01-01' + (g % 31536000) * interval '1 second',
  (ARRAY['new','paid','shipped','delivered','returned'])[1 + g % 5],
  ((hashint4(g * 3)::bigint & 65535) / 100.0)::numeric(12,2),
  CASE WHEN g % 3 = 0 THEN NULL ELSE
    w1.w || ' ' || w2.w || ' ' || w3.w || ' ' || w4.w || ' #' || (hashint4(g) & 65535) END,
  jsonb_build_object('channel', (ARRAY['web','app','phone'])[1 + g % 3],
    'items', 1 + g % 7, 'coupon', CASE WHEN g % 11 = 0 THEN w4.w END)
  FROM generate_series(1, $ROWS) g
  JOIN words w1 ON w1.i = (hashint4(g) & 2147483647) % 300
  JOIN words w2 ON w2.i = (hashint4(g + 1) & 2147483647) % 300
  JOIN words w3 ON w3.i = (hashint4(g + 2) & 2147483647) % 300
  JOIN words w4 ON w4.i = (hashint4(g + 3) & 2147483647) % 300;
CREATE INDEX ON orders (customer_id);
CREATE INDEX ON orders (created_at);
ANALYZE;
SQL
echo "bench: $ROWS orders seeded in $((SECONDS - started)) s" >&2
env STOWAGE_CONFIG=/dev/null STOWAGE_BACKUP_DIR="$out" STOWAGE_INSTANCE="$name" STOWAGE_LOG=warn \
	"$BIN" backup >/dev/null
artifact=$(find "$out" -name '*.sql.zst' | head -1)
raw=$(jq .raw.bytes "$artifact.json")
stored=$(jq .stored.bytes "$artifact.json")
image=$(docker inspect -f '{{.Image}}' "$name")

drill=() manual=() start=() restore=()
for _ in $(seq "$REPS"); do
	# By hand: a fresh container from the same image, ready, then `stowage restore`.
	t0=$(now)
	docker run -d --name "$into" --network none -e POSTGRES_PASSWORD=x -e POSTGRES_DB=shop \
		"$image" >/dev/null
	ready "$into"
	t1=$(now)
	env STOWAGE_CONFIG=/dev/null STOWAGE_BACKUP_DIR="$out" STOWAGE_LOG=warn \
		"$BIN" restore "$artifact" --to "$into" >/dev/null
	t2=$(now)
	docker rm -f -v "$into" >/dev/null
	start+=("$(echo "$t1 - $t0" | bc)")
	restore+=("$(echo "$t2 - $t1" | bc)")
	manual+=("$(echo "$t2 - $t0" | bc)")
	# The drill: container, verify, ready, restore with counting, row counts, removal.
	t0=$(now)
	env STOWAGE_CONFIG=/dev/null STOWAGE_BACKUP_DIR="$out" STOWAGE_INSTANCE="$name" \
		STOWAGE_LOG=warn "$BIN" drill >/dev/null
	drill+=("$(echo "$(now) - $t0" | bc)")
done
m_drill=$(printf '%s\n' "${drill[@]}" | median)
m_manual=$(printf '%s\n' "${manual[@]}" | median)
echo "| orders | raw dump | artifact | container start (s) | restore (s) | start + restore (s) | drill (s) | ratio |"
echo "|---|---|---|---|---|---|---|---|"
printf '| %s | %s MB | %s MB | %s (%s) | %s (%s) | %s (%s) | %s (%s) | %.2f |\n' \
	"$ROWS" "$((raw / 1000000))" "$((stored / 1000000))" \
	"$(printf '%s\n' "${start[@]}" | median)" "$(printf '%s\n' "${start[@]}" | range)" \
	"$(printf '%s\n' "${restore[@]}" | median)" "$(printf '%s\n' "${restore[@]}" | range)" \
	"$m_manual" "$(printf '%s\n' "${manual[@]}" | range)" \
	"$m_drill" "$(printf '%s\n' "${drill[@]}" | range)" \
	"$(echo "$m_drill / $m_manual" | bc -l)"
