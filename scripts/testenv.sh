#!/usr/bin/env bash
# Run a command with TEST_DATABASE_URL and TEST_REDIS_URL pointing at
# throwaway Postgres and Redis instances, started here and removed afterwards.
# A URL that is already set is left alone and its server is not started.
#
# Usage: scripts/testenv.sh CMD [ARGS...]
#   e.g. scripts/testenv.sh go test -race ./...
set -euo pipefail

if [[ $# -eq 0 ]]; then
	echo "usage: $0 CMD [ARGS...]" >&2
	exit 2
fi

if [[ -n ${TEST_DATABASE_URL:-} && -n ${TEST_REDIS_URL:-} ]]; then
	exec "$@"
fi

services=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/services.sh

want=()
[[ -n ${TEST_DATABASE_URL:-} ]] || want+=(postgres)
[[ -n ${TEST_REDIS_URL:-} ]] || want+=(redis)
"$services" ensure "${want[@]}"

# /tmp rather than $TMPDIR: as root, Postgres runs as the postgres user and
# must be able to reach its data directory.
tmp=$(mktemp -d /tmp/oncehook-testenv.XXXXXX)
chmod 0755 "$tmp"
pg_dir="" redis_dir=""

cleanup() {
	[[ -z $pg_dir ]] || "$services" pg-stop "$pg_dir" || true
	[[ -z $redis_dir ]] || "$services" redis-stop "$redis_dir" || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=()
if [[ -z ${TEST_DATABASE_URL:-} ]]; then
	port=$("$services" free-port)
	pg_dir=$tmp/pg
	PG_EXTRA_OPTS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
		"$services" pg-start "$pg_dir" "$port"
	export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	started+=("postgres on 127.0.0.1:$port")
fi
if [[ -z ${TEST_REDIS_URL:-} ]]; then
	port=$("$services" free-port)
	redis_dir=$tmp/redis
	"$services" redis-start "$redis_dir" "$port"
	export TEST_REDIS_URL="redis://127.0.0.1:$port/0"
	started+=("redis on 127.0.0.1:$port")
fi
msg=$(printf '%s, ' "${started[@]}")
echo "testenv: started ${msg%, } (stopped on exit)" >&2

rc=0
"$@" || rc=$?
exit "$rc"
