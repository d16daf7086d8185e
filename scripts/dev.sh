#!/usr/bin/env bash
# `make run`: serve oncehook on this machine.
#
# DATABASE_URL unset: start (or reuse) a local Postgres on 127.0.0.1:54329, data in .data/pg.
# REDIS_URL unset:    start (or reuse) a local Redis on 127.0.0.1:63799.
# STRIPE_WEBHOOK_SECRET unset: use a dev secret kept in .data/dev-secret.
# ADMIN_TOKEN unset:  serve the console on ADMIN_ADDR (127.0.0.1:9090) with a
#                     dev token kept in .data/dev-admin-token; ADMIN_ADDR set
#                     empty turns the console off.
# Then check the configuration (bin/oncehook config), write every variable of
# it that is set to .data/dev.env (mode 0600), print each destination with its
# sink (redacted), a command that sends a signed test event, the commands that
# list what was stored (they source dev.env) and the console's URL, and run
# bin/oncehook. Taken ports are all named in one message, before anything
# starts.
#
# DEV_PG_PORT, DEV_REDIS_PORT pick other ports for the local Postgres and
# Redis; DEV_DATA_DIR another directory than .data (the tests use it).
#
# `scripts/dev.sh stop` stops the local Postgres and Redis.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
services=$root/scripts/services.sh
data=${DEV_DATA_DIR:-$root/.data}
PG_PORT=${DEV_PG_PORT:-54329}
REDIS_PORT=${DEV_REDIS_PORT:-63799}
mkdir -p "$data"
data=$(cd "$data" && pwd)
# shown in messages: .data as the README calls it, else the whole path
if [[ $data == "$root/.data" ]]; then
	data_shown=.data
else
	data_shown=$data
fi

# As root, Postgres runs as the postgres user, which may not reach a checkout
# under /root: keep its data under /var/tmp then, in a directory of this
# checkout's own (of this data directory's, with DEV_DATA_DIR).
pg_dir=$data/pg
if [[ $(id -u) -eq 0 ]] && ! runuser -u postgres -- test -x "$data" 2>/dev/null; then
	key=$root
	[[ $data == "$root/.data" ]] || key=$data
	pg_dir=/var/tmp/oncehook-dev-$(printf '%s' "$key" | cksum | cut -d' ' -f1)/pg
fi

if [[ ${1:-} == stop ]]; then
	"$services" pg-stop "$pg_dir" || true
	"$services" redis-stop "$data/redis" || true
	exit 0
fi

# port_in_use PORT HOST: something accepts connections on HOST:PORT.
port_in_use() { timeout 1 bash -c "exec 3<>/dev/tcp/$2/$1" 2>/dev/null; }

# The port checks note each taken port in clashes (what holds it, how to
# free it) and in fixes (the variable that picks another one), so that one
# message names them all, before anything starts.
clashes=()
fixes=()

# listen_port_check NAME ADDR notes a clash when another program already
# listens on ADDR's port: the receiver would fail to bind it (LISTEN_ADDR)
# or, for ADMIN_ADDR, serve without its console.
listen_port_check() {
	local name=$1 addr=$2 host port probe
	[[ $addr == *:* ]] || return 0 # the receiver names what is wrong with it
	host=${addr%:*} port=${addr##*:}
	[[ $port =~ ^[0-9]+$ && $port -ge 1 && $port -le 65535 ]] || return 0
	probe=${host#\[}
	probe=${probe%\]}
	[[ -n $probe && $probe != 0.0.0.0 && $probe != :: ]] || probe=127.0.0.1
	port_in_use "$port" "$probe" || return 0
	clashes+=("port $port ($name) is taken by another program (another \`make run\`?);
     see it with: ss -ltnp 'sport = :$port'
     or give this one another port: $name=$host:$((port + 1)) make run")
	fixes+=("$name=$host:$((port + 1))")
}

# pg_port_check notes a clash, with the command that frees PG_PORT, when
# something other than this checkout's Postgres holds it (another
# checkout's `make run`, say); this checkout's own is reused.
pg_port_check() {
	port_in_use "$PG_PORT" 127.0.0.1 || return 0
	local other msg
	other=$(psql "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable&connect_timeout=2" \
		-Atc 'SHOW data_directory' 2>/dev/null) || other=""
	if [[ -n $other && $other -ef $pg_dir ]]; then
		return 0
	fi
	if [[ -n $other ]]; then
		msg="port $PG_PORT (DEV_PG_PORT) is taken by another Postgres, with its data in $other
     (another checkout's \`make run\`?). Stop it with:"
		if [[ $(id -u) -eq 0 ]]; then
			msg+="
       runuser -u postgres -- pg_ctl -D $other stop"
		else
			msg+="
       pg_ctl -D $other stop"
		fi
	else
		msg="port $PG_PORT (DEV_PG_PORT) is taken by another program; see it with: ss -ltnp 'sport = :$PG_PORT'"
	fi
	clashes+=("$msg
     or give this checkout another port: DEV_PG_PORT=$((PG_PORT + 1)) make run")
	fixes+=("DEV_PG_PORT=$((PG_PORT + 1))")
}

# redis_port_check does the same for REDIS_PORT.
redis_port_check() {
	port_in_use "$REDIS_PORT" 127.0.0.1 || return 0
	local other msg
	other=$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" CONFIG GET dir 2>/dev/null | sed -n 2p) || other=""
	if [[ -n $other && $other -ef $data/redis ]]; then
		return 0
	fi
	if [[ -n $other ]]; then
		msg="port $REDIS_PORT (DEV_REDIS_PORT) is taken by another Redis, working in $other
     (another checkout's \`make run\`?). Stop it with: redis-cli -p $REDIS_PORT shutdown nosave"
	else
		msg="port $REDIS_PORT (DEV_REDIS_PORT) is taken by another program; see it with: ss -ltnp 'sport = :$REDIS_PORT'"
	fi
	clashes+=("$msg
     or give this checkout another port: DEV_REDIS_PORT=$((REDIS_PORT + 1)) make run")
	fixes+=("DEV_REDIS_PORT=$((REDIS_PORT + 1))")
}

# The URLs of the dev Postgres and Redis. Set to these (from a shell that
# sourced dev.env, say), DATABASE_URL and REDIS_URL still mean "the dev
# ones": this script starts them if they are down.
dev_db_url="postgres://postgres@127.0.0.1:$PG_PORT/oncehook?sslmode=disable"
dev_redis_url="redis://127.0.0.1:$REDIS_PORT/0"
[[ ${DATABASE_URL:-} != "$dev_db_url" ]] || DATABASE_URL=""
[[ ${REDIS_URL:-} != "$dev_redis_url" ]] || REDIS_URL=""

# Every port before starting anything, all clashes in one message.
listen=${LISTEN_ADDR:-:8080}
admin=${ADMIN_ADDR-127.0.0.1:9090} # set empty: no admin listener, no console
listen_port_check LISTEN_ADDR "$listen"
[[ -z $admin ]] || listen_port_check ADMIN_ADDR "$admin"
[[ -n ${DATABASE_URL:-} ]] || pg_port_check
[[ -n ${REDIS_URL:-} ]] || redis_port_check
if ((${#clashes[@]} == 1)); then
	echo "dev: ${clashes[0]}" >&2
	exit 1
elif ((${#clashes[@]} > 1)); then
	{
		echo "dev: ${#clashes[@]} ports are taken:"
		for c in "${clashes[@]}"; do
			echo "dev: $c"
		done
		echo "dev: give them all other ports at once: ${fixes[*]} make run"
	} >&2
	exit 1
fi

if [[ -z ${DATABASE_URL:-} ]]; then
	"$services" ensure postgres
	mkdir -p "$(dirname "$pg_dir")"
	chmod 0755 "$(dirname "$pg_dir")"
	"$services" pg-start "$pg_dir" "$PG_PORT"
	"$services" pg-createdb "$pg_dir" "$PG_PORT" oncehook
	export DATABASE_URL=$dev_db_url
	echo "dev: Postgres on 127.0.0.1:$PG_PORT (data in $pg_dir)"
fi
if [[ -z ${REDIS_URL:-} ]]; then
	"$services" ensure redis
	mkdir -p "$data/redis"
	"$services" redis-start "$data/redis" "$REDIS_PORT"
	export REDIS_URL=$dev_redis_url
	echo "dev: Redis on 127.0.0.1:$REDIS_PORT"
fi
if [[ -z ${STRIPE_WEBHOOK_SECRET:-} ]]; then
	[[ -s $data/dev-secret ]] || echo "whsec_dev_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$data/dev-secret"
	STRIPE_WEBHOOK_SECRET=$(cat "$data/dev-secret")
	export STRIPE_WEBHOOK_SECRET
	echo "dev: STRIPE_WEBHOOK_SECRET=$STRIPE_WEBHOOK_SECRET (a dev secret, kept in $data_shown/dev-secret)"
fi
# The console's token: yours if you set ADMIN_TOKEN (never printed), else a
# dev one, kept readable by you only. No console without ADMIN_ADDR.
if [[ -n $admin && -n ${ADMIN_TOKEN:-} && -s $data/dev-admin-token && $ADMIN_TOKEN == "$(cat "$data/dev-admin-token")" ]]; then
	dev_token=1 # the dev one, from a shell that sourced dev.env
elif [[ -n $admin && -z ${ADMIN_TOKEN:-} ]]; then
	[[ -s $data/dev-admin-token ]] || (umask 077 && echo "dev_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$data/dev-admin-token")
	ADMIN_TOKEN=$(cat "$data/dev-admin-token")
	export ADMIN_TOKEN
	dev_token=1
fi
export LOG_FORMAT=${LOG_FORMAT:-text}

# The configuration as the receiver reads it, checked, secrets redacted; it
# names each variable the commands below may need. Its errors name the
# variable to fix.
cfg=$("$root/bin/oncehook" config) || exit 1
cfg_get() { sed -n "s/^$1=//p" <<<"$cfg"; }

# dev.env holds every variable of that configuration that is set here, with
# its real value (secrets too: readable by you only), for the commands run
# from another terminal.
dev_env=$data/dev.env
quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
tmp=$(mktemp "$data/.dev.env.XXXXXX") # mode 0600
{
	echo "# written by \`make run\` (scripts/dev.sh): the configuration it serves with."
	echo "# Load it in a shell with: set -a; . $dev_env; set +a"
	while IFS= read -r line; do
		name=${line%%=*}
		[[ $name =~ ^[A-Z][A-Z0-9_]*$ && -n ${!name+x} ]] || continue
		echo "$name=$(quote "${!name}")"
	done <<<"$cfg"
} >"$tmp"
chmod 0600 "$tmp"
mv -f "$tmp" "$dev_env"
load="set -a; . $dev_env; set +a;"

# Each destination and its sink, as the receiver will deliver.
stdout_sink=""
destinations=""
if [[ -n $(cfg_get SINK_URL) ]]; then
	names=default
else
	names=$(cfg_get DESTINATIONS)
fi
IFS=, read -r -a dest_names <<<"$names"
for name in "${dest_names[@]}"; do
	if [[ $name == default && -n $(cfg_get SINK_URL) ]]; then
		url=$(cfg_get SINK_URL) types="*" mode=both
	else
		v=DESTINATION_${name^^}
		v=${v//-/_}
		url=$(cfg_get "${v}_URL") types=$(cfg_get "${v}_TYPES") mode=$(cfg_get "${v}_LIVEMODE")
	fi
	what="every event"
	[[ $types == "*" ]] || what=$types
	[[ $mode == both || -z $mode ]] || what+=" ($mode mode only)"
	if [[ $url == stdout ]]; then
		url="stdout: printed below as JSON lines"
		stdout_sink=1
	fi
	destinations+="
  $name: $what
    -> $url"
done
if [[ -n $stdout_sink ]]; then
	logs="Events for the stdout destinations are printed below as JSON lines; logs go to stderr."
else
	logs="Logs go to stderr below."
fi

port=${listen##*:}
evt_id=evt_test_$(date +%s)
if [[ -z $admin ]]; then
	console="The console is off (ADMIN_ADDR is empty); unset ADMIN_ADDR to serve it on 127.0.0.1:9090."
else
	console_host=${admin%:*}
	[[ -n $console_host && $console_host != 0.0.0.0 && $console_host != "[::]" ]] || console_host=127.0.0.1
	console="Browse and replay the stored events in the console:

  http://$console_host:${admin##*:}/console/"
	if [[ -n ${dev_token:-} ]]; then
		console+="
  sign in with the dev token: $ADMIN_TOKEN    (kept in $data_shown/dev-admin-token)"
	else
		console+="
  sign in with your ADMIN_TOKEN"
	fi
fi
cat <<MSG

Accepted events are delivered to:
$destinations

The commands below read this configuration from $dev_env
(written now, readable by you only: it holds the secrets).

Send a signed test event from another terminal (run it twice to see "duplicate"):

  $load $root/bin/oncehook send-test-event --url http://127.0.0.1:$port/webhooks/stripe --id $evt_id

List what was stored, and deliver an event again:

  $load $root/bin/oncehook events list
  $load $root/bin/oncehook replay $evt_id

$console

$logs
Stop with Ctrl-C; 'make clean' also stops the local Postgres and Redis.

MSG
exec "$root/bin/oncehook" serve
