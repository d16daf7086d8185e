#!/usr/bin/env bash
# `make run`: serve oncehook on this machine.
#
# DATABASE_URL unset: start (or reuse) a local Postgres on 127.0.0.1:54329, data in .data/pg.
# REDIS_URL unset:    start (or reuse) a local Redis on 127.0.0.1:63799.
# STRIPE_WEBHOOK_SECRET unset: use a dev secret kept in .data/dev-secret.
# Then print a command that sends a signed test event, and run bin/receiver.
#
# `scripts/dev.sh stop` stops the local Postgres and Redis.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
services=$root/scripts/services.sh
data=$root/.data
PG_PORT=${DEV_PG_PORT:-54329}
REDIS_PORT=${DEV_REDIS_PORT:-63799}
mkdir -p "$data"

# As root, Postgres runs as the postgres user, which may not reach a checkout
# under /root: keep its data under /var/tmp then.
pg_dir=$data/pg
if [[ $(id -u) -eq 0 ]] && ! runuser -u postgres -- test -x "$data" 2>/dev/null; then
	pg_dir=/var/tmp/oncehook-dev-$(printf '%s' "$root" | cksum | cut -d' ' -f1)/pg
fi

if [[ ${1:-} == stop ]]; then
	"$services" pg-stop "$pg_dir" || true
	"$services" redis-stop "$data/redis" || true
	exit 0
fi

port_in_use() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# pg_port_check stops with the command that frees PG_PORT when something
# other than this checkout's Postgres holds it (another checkout's
# `make run`, say); this checkout's own is reused.
pg_port_check() {
	port_in_use "$PG_PORT" || return 0
	local other
	other=$(psql "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable&connect_timeout=2" \
		-Atc 'SHOW data_directory' 2>/dev/null) || other=""
	if [[ -n $other && $other -ef $pg_dir ]]; then
		return 0
	fi
	{
		if [[ -n $other ]]; then
			echo "dev: port $PG_PORT is taken by another Postgres, with its data in $other"
			echo "     (another checkout's \`make run\`?). Stop it with:"
			if [[ $(id -u) -eq 0 ]]; then
				echo "       runuser -u postgres -- pg_ctl -D $other stop"
			else
				echo "       pg_ctl -D $other stop"
			fi
		else
			echo "dev: port $PG_PORT is taken by another program; see it with: ss -ltnp 'sport = :$PG_PORT'"
		fi
		echo "     or give this checkout another port: DEV_PG_PORT=$((PG_PORT + 1)) make run"
	} >&2
	exit 1
}

# redis_port_check does the same for REDIS_PORT.
redis_port_check() {
	port_in_use "$REDIS_PORT" || return 0
	local other
	other=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" CONFIG GET dir 2>/dev/null | sed -n 2p) || other=""
	if [[ -n $other && $other -ef $data/redis ]]; then
		return 0
	fi
	{
		if [[ -n $other ]]; then
			echo "dev: port $REDIS_PORT is taken by another Redis, working in $other"
			echo "     (another checkout's \`make run\`?). Stop it with: redis-cli -p $REDIS_PORT shutdown nosave"
		else
			echo "dev: port $REDIS_PORT is taken by another program; see it with: ss -ltnp 'sport = :$REDIS_PORT'"
		fi
		echo "     or give this checkout another port: DEV_REDIS_PORT=$((REDIS_PORT + 1)) make run"
	} >&2
	exit 1
}

if [[ -z ${DATABASE_URL:-} ]]; then
	"$services" ensure postgres
	mkdir -p "$(dirname "$pg_dir")"
	chmod 0755 "$(dirname "$pg_dir")"
	pg_port_check
	"$services" pg-start "$pg_dir" "$PG_PORT"
	"$services" pg-createdb "$pg_dir" "$PG_PORT" oncehook
	export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/oncehook?sslmode=disable"
	dev_db=1
	echo "dev: Postgres on 127.0.0.1:$PG_PORT (data in $pg_dir)"
fi
if [[ -z ${REDIS_URL:-} ]]; then
	"$services" ensure redis
	mkdir -p "$data/redis"
	redis_port_check
	"$services" redis-start "$data/redis" "$REDIS_PORT"
	export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
	echo "dev: Redis on 127.0.0.1:$REDIS_PORT"
fi
if [[ -z ${STRIPE_WEBHOOK_SECRET:-} ]]; then
	[[ -s $data/dev-secret ]] || echo "whsec_dev_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$data/dev-secret"
	STRIPE_WEBHOOK_SECRET=$(cat "$data/dev-secret")
	export STRIPE_WEBHOOK_SECRET
	echo "dev: STRIPE_WEBHOOK_SECRET=$STRIPE_WEBHOOK_SECRET (a dev secret, kept in .data/dev-secret)"
fi
export LOG_FORMAT=${LOG_FORMAT:-text}

# The dev database's URL has no password: print it whole. Yours stays yours.
if [[ -n ${dev_db:-} ]]; then
	events_cmd="DATABASE_URL='$DATABASE_URL' $root/bin/receiver events list"
else
	events_cmd="$root/bin/receiver events list    # with the same DATABASE_URL as this one"
fi

listen=${LISTEN_ADDR:-:8080}
port=${listen##*:}
first_secret=${STRIPE_WEBHOOK_SECRET%%,*}
cat <<MSG

Send a signed test event from another terminal (run it twice to see "duplicate"):

  STRIPE_WEBHOOK_SECRET=$first_secret $root/bin/receiver send-test-event -url http://127.0.0.1:$port/webhooks/stripe -id evt_test_$(date +%s)

List what was stored, from another terminal:

  $events_cmd

Accepted events are printed below as JSON lines (SINK_URL=stdout); logs go to stderr.
Stop with Ctrl-C; 'make clean' also stops the local Postgres and Redis.

MSG
exec "$root/bin/receiver" serve
