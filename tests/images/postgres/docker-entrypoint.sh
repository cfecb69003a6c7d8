#!/bin/bash
# Test-image entrypoint that behaves like the official postgres image's for the variables
# stowage reads: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, their *_FILE variants,
# POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD and /docker-entrypoint-initdb.d.
set -Eeuo pipefail

# file_env VAR [DEFAULT]: VAR, or the content of the file named by VAR_FILE.
file_env() {
	local var="$1" fileVar="${1}_FILE" def="${2:-}"
	if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
		echo >&2 "error: both $var and $fileVar are set (but are exclusive)"
		exit 1
	fi
	local val="$def"
	if [ "${!var:-}" ]; then
		val="${!var}"
	elif [ "${!fileVar:-}" ]; then
		val="$(< "${!fileVar}")"
	fi
	export "$var"="$val"
	unset "$fileVar"
}

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [ "${1:-}" = 'postgres' ]; then
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		if [ -z "$POSTGRES_PASSWORD" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
			echo >&2 "error: database is uninitialized and superuser password is not specified"
			exit 1
		fi
		pwfile=$(mktemp)
		printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
		chown postgres "$pwfile"
		# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a word list, as in the official image
		as_postgres initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
			--encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} > /dev/null
		rm -f "$pwfile"
		printf 'host all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >> "$PGDATA/pg_hba.conf"
		echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
		export PGPASSWORD="$POSTGRES_PASSWORD"
		as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start > /dev/null
		if [ "$POSTGRES_DB" != postgres ]; then
			as_postgres psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
				--set db="$POSTGRES_DB" -q <<<'CREATE DATABASE :"db";'
		fi
		for f in /docker-entrypoint-initdb.d/*; do
			case "$f" in
				*.sql) as_postgres psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -q -f "$f" ;;
				*.sh) . "$f" ;;
			esac
		done
		as_postgres pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
		unset PGPASSWORD
		echo 'PostgreSQL init process complete; ready for start up.'
	fi
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
fi
exec "$@"
