#!/bin/bash
# Test-image entrypoint that behaves like the official mariadb image's for the variables
# stowage reads: MARIADB_ROOT_PASSWORD / MYSQL_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD /
# MYSQL_ALLOW_EMPTY_PASSWORD, MARIADB_DATABASE / MYSQL_DATABASE, MARIADB_USER / MYSQL_USER,
# MARIADB_PASSWORD / MYSQL_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD / MYSQL_RANDOM_ROOT_PASSWORD,
# and the *_FILE variants of the passwords, users and databases.
set -Eeuo pipefail

file_env() {
	local var="$1" fileVar="${1}_FILE"
	if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
		echo >&2 "error: both $var and $fileVar are set (but are exclusive)"
		exit 1
	fi
	if [ "${!fileVar:-}" ]; then
		export "$var"="$(< "${!fileVar}")"
	fi
}
first() { for v in "$@"; do if [ -n "${!v:-}" ]; then printf '%s' "${!v}"; return; fi; done; }
sql_string() { local s=${1//\\/\\\\}; s=${s//\'/\\\'}; printf "'%s'" "$s"; }
sql_ident() { local s=${1//\`/\`\`}; printf '`%s`' "$s"; }

if [ "${1:-}" = 'mariadbd' ]; then
	for v in MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD MARIADB_PASSWORD MYSQL_PASSWORD \
		MARIADB_USER MYSQL_USER MARIADB_DATABASE MYSQL_DATABASE; do file_env "$v"; done
	root_pw=$(first MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD)
	if [ -z "$root_pw" ] && [ -n "$(first MARIADB_RANDOM_ROOT_PASSWORD MYSQL_RANDOM_ROOT_PASSWORD)" ]; then
		root_pw=$(head -c 18 /dev/urandom | base64)
		echo "GENERATED ROOT PASSWORD: $root_pw"
	fi
	allow_empty=$(first MARIADB_ALLOW_EMPTY_ROOT_PASSWORD MYSQL_ALLOW_EMPTY_PASSWORD)
	db=$(first MARIADB_DATABASE MYSQL_DATABASE)
	user=$(first MARIADB_USER MYSQL_USER)
	pw=$(first MARIADB_PASSWORD MYSQL_PASSWORD)
	mkdir -p /run/mysqld /var/lib/mysql
	chown mysql:mysql /run/mysqld /var/lib/mysql
	if [ ! -d /var/lib/mysql/mysql ]; then
		if [ -z "$root_pw" ] && [ -z "$allow_empty" ]; then
			echo >&2 "error: database is uninitialized and no root password option is specified"
			exit 1
		fi
		mariadb-install-db --user=mysql --datadir=/var/lib/mysql --auth-root-authentication-method=normal \
			--skip-test-db --skip-name-resolve > /dev/null
		mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock &
		pid=$!
		for _ in $(seq 60); do mariadb-admin --socket=/run/mysqld/mysqld.sock ping > /dev/null 2>&1 && break; sleep 0.5; done
		{
			echo "SET @@SESSION.SQL_LOG_BIN=0;"
			echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$root_pw");"
			echo "CREATE USER 'root'@'%' IDENTIFIED BY $(sql_string "$root_pw");"
			echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
			if [ -n "$db" ]; then echo "CREATE DATABASE IF NOT EXISTS $(sql_ident "$db");"; fi
			if [ -n "$user" ]; then
				echo "CREATE USER $(sql_string "$user")@'%' IDENTIFIED BY $(sql_string "$pw");"
				if [ -n "$db" ]; then echo "GRANT ALL ON $(sql_ident "$db").* TO $(sql_string "$user")@'%';"; fi
			fi
			echo "FLUSH PRIVILEGES;"
		} | mariadb --socket=/run/mysqld/mysqld.sock -uroot
		kill "$pid"
		wait "$pid" || true
		echo 'MariaDB init process done. Ready for start up.'
	fi
	exec mariadbd --user=mysql
fi
exec "$@"
