#!/usr/bin/env bash
# Installs what the tests and benchmarks need beyond a Rust toolchain and a running Docker
# engine, from Debian's packages: mmdebstrap (builds the test images), zstd (proves artifacts
# are plain zstd), age (proves encrypted artifacts are standard age), procps, and stunnel4 and
# openssl (the Docker-over-TLS test), prometheus (promtool) and python3-aiosmtpd (a real SMTP
# server for the alert tests), docker-compose (the compose example is brought up as written),
# iproute2 and util-linux (a second dockerd in its own network namespace: ip netns, nsenter),
# mosquitto and mosquitto-clients (a real MQTT broker and subscriber), curl, chromium (the
# status page in a real headless browser); from crates.io,
# s3s-fs (a real S3 server for the storage tests); from PyPI, matrix-synapse (a real Matrix
# homeserver for the notification tests) in a venv under ~/.cache/stowage-test. Does nothing
# when they are already there. `scripts/deps.sh debian` installs Debian's packages only.
set -euo pipefail
missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v zstd >/dev/null || missing+=(zstd)
command -v ps >/dev/null || missing+=(procps)
command -v stunnel >/dev/null || missing+=(stunnel4) # TLS in front of the engine (tests)
command -v openssl >/dev/null || missing+=(openssl) # test certificates
command -v age >/dev/null || missing+=(age) # the stock CLI opens encrypted artifacts (tests)
command -v promtool >/dev/null || missing+=(prometheus) # promtool checks a real /metrics scrape
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd) # a real SMTP server
command -v docker-compose >/dev/null || missing+=(docker-compose) # tests/examples.rs
command -v ip >/dev/null || missing+=(iproute2)                  # tests/hosts.rs: ip netns
command -v nsenter >/dev/null || missing+=(util-linux)           # tests/hosts.rs: nsenter --net
command -v mosquitto >/dev/null || missing+=(mosquitto)          # tests/notify.rs: MQTT broker
command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
command -v curl >/dev/null || missing+=(curl)                    # tests/notify.rs: Matrix API
command -v chromium >/dev/null || missing+=(chromium)            # tests/page.rs: a real browser
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "${1:-}" = debian ] && exit 0
command -v cargo >/dev/null || { echo "deps: cargo is missing: install a Rust toolchain (rustup) first" >&2; exit 1; }
# A real S3-compatible server for the storage tests, from crates.io (later versions need a
# newer rustc than some machines have; this one is known to work).
if ! command -v s3s-fs >/dev/null; then
	echo "deps: installing s3s-fs 0.14.1 from crates.io (a few minutes, once)"
	cargo install --quiet --locked s3s-fs@0.14.1 --features binary
fi
# A real Matrix homeserver for tests/notify.rs (a pinned version; about a minute, once).
synapse="${STOWAGE_SYNAPSE_VENV:-$HOME/.cache/stowage-test/synapse}"
if ! "$synapse/bin/python" -c 'import synapse' 2>/dev/null; then
	echo "deps: installing matrix-synapse 1.163.2 from PyPI into $synapse (about a minute, once)"
	rm -rf "$synapse"
	python3 -m venv "$synapse"
	"$synapse/bin/pip" install --quiet --disable-pip-version-check matrix-synapse==1.163.2
fi
docker info >/dev/null 2>&1 || { echo "deps: no Docker engine answers (docker info failed): start dockerd or set DOCKER_HOST" >&2; exit 1; }
