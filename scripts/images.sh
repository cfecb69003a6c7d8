#!/usr/bin/env bash
# Builds the images the tests and benchmarks use, from Debian's packages, with no registry:
# mmdebstrap writes a root filesystem tarball from this machine's apt sources and
# `docker import` turns it into an image. Each image is tagged by a hash of its recipe
# (this script plus its files under tests/images/), so a second run with an unchanged recipe
# builds nothing. The stable tag `:test` always points at the current build.
#
#   scripts/images.sh            base, postgres, mariadb, redis, etcd and test application images
#   scripts/images.sh stowage    also the stowage runtime image (needs target/debug/stowage)
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
EXCLUDES=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*')

need() { command -v "$1" >/dev/null || { echo "images.sh: '$1' is missing (scripts/test.sh installs it)" >&2; exit 1; }; }
need mmdebstrap
need docker

# A recipe's hash: the suite, the image's build arguments and the files it copies in.
recipe_hash() { # files... (the build arguments come from the caller's "$@")
	{ echo "$SUITE"; printf '%s\n' "${RECIPE[@]}"; for f in "$@"; do cat "$f"; done; } | sha256sum | cut -c1-16
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# build_rootfs NAME "FILES" [mmdebstrap args...] [-- docker import --change args...]
# FILES are the recipe's own files (copied into the image); they are part of its hash.
build_rootfs() {
	local name=$1 files=$2; shift 2
	RECIPE=("${EXCLUDES[@]}" "$@")
	# shellcheck disable=SC2086 # FILES is a space-separated list of paths without spaces
	local hash; hash=$(recipe_hash $files)
	local mm=() changes=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do mm+=("$1"); shift; done
	[ "${1:-}" = -- ] && shift
	for c in "$@"; do changes+=(--change "$c"); done
	local tag="stowage-test/$name:$hash"
	if have_image "$tag"; then
		echo "images: $tag is cached"
	else
		local started=$SECONDS tar
		tar=$(mktemp --suffix=.tar)
		echo "images: building $tag with mmdebstrap"
		mmdebstrap --quiet --variant=minbase "${EXCLUDES[@]}" "${mm[@]}" "$SUITE" "$tar"
		docker import "${changes[@]}" "$tar" "$tag" >/dev/null
		rm -f "$tar"
		echo "images: built $tag in $((SECONDS - started)) s"
	fi
	docker tag "$tag" "stowage-test/$name:test"
	# Older builds of this image are dead weight on a machine that is kept.
	docker images --format '{{.Repository}}:{{.Tag}}' "stowage-test/$name" |
		grep -vxF -e "$tag" -e "stowage-test/$name:test" | xargs -r docker rmi >/dev/null 2>&1 || true
}

# stowage's runtime base; sqlite3 is for SQLite helper containers.
build_rootfs base "" --include=ca-certificates,procps,sqlite3 \
	-- 'ENV LANG=C.UTF-8' 'CMD ["bash"]'

pg_dir=tests/images/postgres
build_rootfs postgres "$pg_dir/docker-entrypoint.sh" --include=postgresql-15,procps \
	--customize-hook='rm -rf "$1"/var/lib/postgresql/15 "$1"/etc/postgresql/15' \
	--customize-hook="copy-in $pg_dir/docker-entrypoint.sh /usr/local/bin/" \
	--customize-hook='mkdir -p "$1"/docker-entrypoint-initdb.d' \
	-- 'ENV LANG=C.UTF-8 PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PG_MAJOR=15' \
	'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]' 'EXPOSE 5432'

mdb_dir=tests/images/mariadb
build_rootfs mariadb "$mdb_dir/docker-entrypoint.sh" --include=mariadb-server,mariadb-client,procps \
	--customize-hook='rm -rf "$1"/var/lib/mysql/*' \
	--customize-hook="copy-in $mdb_dir/docker-entrypoint.sh /usr/local/bin/" \
	-- 'ENV LANG=C.UTF-8 MARIADB_MAJOR=10.11' \
	'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["mariadbd"]' 'EXPOSE 3306'

# Redis 7.0 as the official image runs it: redis-server in the foreground as user redis, its
# data in /data (the working directory). The password comes from the command line
# (--requirepass) as users set it, and REDIS_PASSWORD for stowage.
build_rootfs redis "" --include=redis-server,procps \
	--customize-hook='mkdir -p "$1"/data && chroot "$1" chown redis:redis /data' \
	-- 'ENV LANG=C.UTF-8' 'USER redis' 'WORKDIR /data' 'VOLUME /data' \
	'CMD ["redis-server", "--dir", "/data", "--protected-mode", "no"]' 'EXPOSE 6379'

# etcd 3.4 (server and etcdctl), one member, its data on a volume.
build_rootfs etcd "" --include=etcd-server,etcd-client,procps \
	--customize-hook='mkdir -p "$1"/var/lib/etcd/default && chroot "$1" chown -R etcd:etcd /var/lib/etcd' \
	-- 'ENV LANG=C.UTF-8 ETCDCTL_API=3' 'USER etcd' 'VOLUME /var/lib/etcd' \
	'CMD ["etcd", "--data-dir=/var/lib/etcd/default", "--listen-client-urls=http://0.0.0.0:2379", "--advertise-client-urls=http://127.0.0.1:2379"]' 'EXPOSE 2379'

# An application that writes SQLite from Python and has no sqlite3 binary, and the same with
# one. Runs as uid 1000, its data in /data (a volume).
app_dir=tests/images/sqlite-app
for variant in sqlite-app:python3 sqlite-app-cli:python3,sqlite3; do
	build_rootfs "${variant%%:*}" "$app_dir/app.py" --include="${variant#*:}" \
		--customize-hook="copy-in $app_dir/app.py /usr/local/bin/" \
		--customize-hook='mkdir -p "$1"/data && chown 1000:1000 "$1"/data' \
		-- 'ENV LANG=C.UTF-8' 'USER 1000:1000' 'VOLUME /data' \
		'CMD ["python3", "/usr/local/bin/app.py", "write", "/data/app.db", "wal", "0"]'
done

if [ "${1:-}" = stowage ]; then
	bin=${IMAGE_STOWAGE_BIN:-target/debug/stowage}  # not STOWAGE_*: stowage reads those as config
	[ -x "$bin" ] || { echo "images.sh: $bin not built" >&2; exit 1; }
	# The runtime image as the Dockerfile's runtime stage makes it, on the locally built base,
	# from a context that holds only the binary.
	ctx=$(mktemp -d)
	cp "$bin" "$ctx/stowage"
	log=$(mktemp)
	docker build -f tests/images/stowage.Dockerfile --build-arg BASE=stowage-test/base:test \
		-t stowage-test/stowage:test "$ctx" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
	rm -f "$log"
	docker image prune -f --filter label=org.stowage.test-image=stowage >/dev/null
	rm -rf "$ctx"
	echo "images: stowage-test/stowage:test from $bin"
fi
