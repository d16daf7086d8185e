#!/usr/bin/env bash
# Start and stop private Redis and PostgreSQL instances for development and tests.
#
# Usage:
#   services.sh ensure [postgres] [redis]   make sure the server binaries exist (default: both)
#   services.sh free-port                   print a free TCP port on 127.0.0.1 (20000-32000)
#   services.sh pg-start DIR PORT           initdb DIR if needed, start Postgres on 127.0.0.1:PORT
#   services.sh pg-stop DIR                 stop the Postgres cluster in DIR
#   services.sh pg-createdb DIR PORT NAME   create database NAME unless it exists
#   services.sh pg-standby DIR PORT PRIMARY_PORT UPSTREAM_PORT
#                                           pg_basebackup -R from 127.0.0.1:PRIMARY_PORT into
#                                           DIR and start it as a streaming standby on PORT,
#                                           replicating from 127.0.0.1:UPSTREAM_PORT (a proxy,
#                                           or PRIMARY_PORT) as application_name "standby"
#   services.sh pg-crash DIR                stop the cluster in DIR in immediate mode (a crash)
#   services.sh pg-promote DIR              promote the standby in DIR and wait until it is primary
#   services.sh redis-start DIR PORT        start Redis on 127.0.0.1:PORT, state in DIR
#   services.sh redis-stop DIR              stop the Redis whose pid is in DIR/redis.pid
#
# Postgres refuses to run as root, so as root it runs as the "postgres" user and
# DIR (and its parents) must be reachable by that user. PG_EXTRA_OPTS, if set,
# is appended to the server options (testenv.sh uses it to turn off fsync);
# REDIS_EXTRA_OPTS likewise for Redis (cluster nodes in tests).
set -euo pipefail

die() {
	echo "services.sh: $*" >&2
	exit 1
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# pg_bindir prints the directory holding initdb, pg_ctl and postgres: the one
# pg_ctl in PATH resolves to, else the newest /usr/lib/postgresql/*/bin.
pg_bindir() {
	local p dir
	if p=$(command -v pg_ctl 2>/dev/null); then
		dir=$(dirname "$(readlink -f "$p")")
		if [[ -x $dir/initdb && -x $dir/postgres ]]; then
			echo "$dir"
			return 0
		fi
	fi
	dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	if [[ -x $dir/pg_ctl && -x $dir/initdb && -x $dir/postgres ]]; then
		echo "$dir"
		return 0
	fi
	return 1
}

# as_pg runs a command as the postgres user when root, else as ourselves.
as_pg() {
	if is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

major() { sed -E 's/[^0-9]*([0-9]+).*/\1/'; }

# missing prints what is missing for the given components ("" if nothing).
missing() {
	local want=$1 out=() v dir
	if [[ $want == *redis* ]]; then
		if ! command -v redis-server >/dev/null 2>&1; then
			out+=("redis-server")
		else
			v=$(redis-server --version | sed -E 's/.*v=([0-9]+).*/\1/')
			[[ $v =~ ^[0-9]+$ && $v -ge 7 ]] || out+=("Redis >= 7.0 (found $(redis-server --version | head -n 1))")
		fi
	fi
	if [[ $want == *postgres* ]]; then
		if ! dir=$(pg_bindir); then
			out+=("PostgreSQL server binaries (initdb, pg_ctl, postgres)")
		else
			v=$("$dir/pg_ctl" --version | major)
			[[ $v =~ ^[0-9]+$ && $v -ge 13 ]] || out+=("PostgreSQL >= 13 (found $("$dir/pg_ctl" --version))")
			if is_root && ! id postgres >/dev/null 2>&1; then
				out+=("a \"postgres\" system user (Postgres cannot run as root)")
			fi
		fi
	fi
	if [[ ${#out[@]} -gt 0 ]]; then
		local IFS=,
		echo "${out[*]}"
	fi
}

cmd_ensure() {
	local want="${*:-postgres redis}" miss pkgs=()
	miss=$(missing "$want")
	[[ -z $miss ]] && return 0
	if is_root && command -v apt-get >/dev/null 2>&1; then
		if [[ $want == *redis* ]]; then pkgs+=(redis-server); fi
		if [[ $want == *postgres* ]]; then pkgs+=(postgresql); fi
		echo "services.sh: missing ${miss}; installing ${pkgs[*]} with apt-get" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${pkgs[@]}" >&2
		miss=$(missing "$want")
		[[ -z $miss ]] && return 0
	fi
	{
		echo "services.sh: missing ${miss}."
		echo "  Debian/Ubuntu: apt-get install redis-server postgresql"
		echo "  Elsewhere: install Redis >= 7.0 and the PostgreSQL >= 13 server binaries"
		echo "  (initdb, pg_ctl, postgres) in PATH or /usr/lib/postgresql/<version>/bin."
	} >&2
	exit 1
}

port_in_use() {
	# Exit status 1 means "connection refused"; anything else (connected,
	# timed out) counts as in use.
	local rc=0
	timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null || rc=$?
	[[ $rc -ne 1 ]]
}

# cmd_free_port picks below the kernel's ephemeral range (32768 and up on
# Linux), so that no outgoing connection or ":0" listener takes the port
# between the pick and the server's start, or while a test restarts it.
cmd_free_port() {
	local i port
	for ((i = 0; i < 100; i++)); do
		port=$((((RANDOM << 15) | RANDOM) % 12001 + 20000))
		if ! port_in_use "$port"; then
			echo "$port"
			return 0
		fi
	done
	die "no free port found in 20000-32000"
}

check_port() {
	[[ $1 =~ ^[0-9]+$ && $1 -ge 1 && $1 -le 65535 ]] || die "bad port: $1"
}

pg_running() {
	local bin=$1 dir=$2
	[[ -f $dir/PG_VERSION ]] && as_pg "$bin/pg_ctl" status -D "$dir" >/dev/null 2>&1
}

cmd_pg_start() {
	[[ $# -eq 2 ]] || die "usage: pg-start DIR PORT"
	local dir=$1 port=$2 bin out opts
	check_port "$port"
	[[ $dir != *"'"* ]] || die "DIR must not contain a single quote: $dir"
	dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
	bin=$(pg_bindir) || die "PostgreSQL server binaries not found; run: services.sh ensure"
	pg_running "$bin" "$dir" && return 0
	if [[ ! -f $dir/PG_VERSION ]]; then
		if is_root; then
			chown postgres: "$dir"
		fi
		if ! out=$(as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --no-locale 2>&1); then
			echo "$out" >&2
			die "initdb $dir failed"
		fi
	fi
	opts="-p $port -c listen_addresses=127.0.0.1 -c 'unix_socket_directories=$dir' -c max_connections=200"
	opts+=" ${PG_EXTRA_OPTS:-}"
	if ! as_pg "$bin/pg_ctl" -s -w -t 60 -D "$dir" -l "$dir/log" -o "$opts" start; then
		tail -n 30 "$dir/log" >&2 || true
		die "postgres in $dir on port $port failed to start"
	fi
}

cmd_pg_stop() {
	[[ $# -eq 1 ]] || die "usage: pg-stop DIR"
	local dir=$1 bin
	[[ -d $dir ]] || return 0
	bin=$(pg_bindir) || die "PostgreSQL server binaries not found; run: services.sh ensure"
	pg_running "$bin" "$dir" || return 0
	as_pg "$bin/pg_ctl" -s -D "$dir" -m fast -w -t 60 stop
}

cmd_pg_createdb() {
	[[ $# -eq 3 ]] || die "usage: pg-createdb DIR PORT NAME"
	local port=$2 name=$3 bin psql createdb exists
	check_port "$port"
	bin=$(pg_bindir) || die "PostgreSQL server binaries not found; run: services.sh ensure"
	psql=$bin/psql createdb=$bin/createdb
	[[ -x $psql ]] || psql=psql
	[[ -x $createdb ]] || createdb=createdb
	# psql interpolates :'name' only in scripts read from stdin, not in -c.
	exists=$("$psql" -X -q -A -t -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
		-v name="$name" <<<"SELECT 1 FROM pg_database WHERE datname = :'name';")
	[[ $exists == 1 ]] && return 0
	"$createdb" -h 127.0.0.1 -p "$port" -U postgres -- "$name"
}

cmd_pg_standby() {
	[[ $# -eq 4 ]] || die "usage: pg-standby DIR PORT PRIMARY_PORT UPSTREAM_PORT"
	local dir=$1 port=$2 primary=$3 upstream=$4 bin out
	check_port "$port"
	check_port "$primary"
	check_port "$upstream"
	bin=$(pg_bindir) || die "PostgreSQL server binaries not found; run: services.sh ensure"
	if [[ ! -f $dir/PG_VERSION ]]; then
		mkdir -p "$dir"
		chmod 0700 "$dir"
		if is_root; then
			chown postgres: "$dir"
		fi
		if ! out=$(as_pg "$bin/pg_basebackup" -D "$dir" -h 127.0.0.1 -p "$primary" -U postgres -R -X stream -c fast 2>&1); then
			echo "$out" >&2
			die "pg_basebackup from port $primary into $dir failed"
		fi
		# The last setting wins: replicate through UPSTREAM_PORT, under the
		# name synchronous_standby_names lists.
		echo "primary_conninfo = 'host=127.0.0.1 port=$upstream user=postgres application_name=standby'" |
			as_pg tee -a "$dir/postgresql.auto.conf" >/dev/null
		rm -f "$dir/log"
	fi
	cmd_pg_start "$dir" "$port"
}

cmd_pg_crash() {
	[[ $# -eq 1 ]] || die "usage: pg-crash DIR"
	local dir=$1 bin
	bin=$(pg_bindir) || die "PostgreSQL server binaries not found; run: services.sh ensure"
	pg_running "$bin" "$dir" || return 0
	as_pg "$bin/pg_ctl" -s -D "$dir" -m immediate -w -t 60 stop
}

cmd_pg_promote() {
	[[ $# -eq 1 ]] || die "usage: pg-promote DIR"
	local dir=$1 bin
	bin=$(pg_bindir) || die "PostgreSQL server binaries not found; run: services.sh ensure"
	as_pg "$bin/pg_ctl" -s -D "$dir" -w -t 60 promote
}

redis_ping() {
	local port=$1 reply=""
	if command -v redis-cli >/dev/null 2>&1; then
		reply=$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) || return 1
		[[ $reply == PONG ]]
	else
		reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'PING\r\n' >&3 && head -c 5 <&3" 2>/dev/null) || return 1
		[[ $reply == "+PONG" ]]
	fi
}

# alive reports whether process $1 exists and is not a zombie (an exited
# daemon stays a zombie until init reaps it, which can take a while).
alive() {
	local stat
	kill -0 "$1" 2>/dev/null || return 1
	if { read -r stat <"/proc/$1/stat"; } 2>/dev/null; then
		stat=${stat##*) }
		[[ ${stat%% *} != Z ]] || return 1
	fi
}

# redis_pid prints the pid from DIR/redis.pid if that process is a live redis-server.
redis_pid() {
	local pidfile=$1/redis.pid pid comm
	[[ -f $pidfile ]] || return 1
	pid=$(<"$pidfile")
	if [[ ! $pid =~ ^[0-9]+$ ]] || ! alive "$pid"; then
		return 1
	fi
	if [[ -r /proc/$pid/comm ]]; then
		comm=$(<"/proc/$pid/comm")
		[[ $comm == redis-server* ]] || return 1
	fi
	echo "$pid"
}

cmd_redis_start() {
	[[ $# -eq 2 ]] || die "usage: redis-start DIR PORT"
	local dir=$1 port=$2 i out
	check_port "$port"
	command -v redis-server >/dev/null 2>&1 || die "redis-server not found; run: services.sh ensure"
	dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
	if redis_pid "$dir" >/dev/null; then
		redis_ping "$port" && return 0
	else
		rm -f "$dir/redis.pid"
	fi
	# shellcheck disable=SC2086 # REDIS_EXTRA_OPTS is a list of options
	if ! out=$(redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
		--dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" ${REDIS_EXTRA_OPTS:-} </dev/null 2>&1); then
		echo "$out" >&2
		die "redis-server on port $port failed to start"
	fi
	for ((i = 0; i < 100; i++)); do
		if redis_pid "$dir" >/dev/null && redis_ping "$port"; then
			return 0
		fi
		sleep 0.1
	done
	tail -n 30 "$dir/redis.log" >&2 || true
	die "redis-server on port $port did not answer PING within 10s"
}

cmd_redis_stop() {
	[[ $# -eq 1 ]] || die "usage: redis-stop DIR"
	local dir=$1 pid i
	pid=$(redis_pid "$dir") || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	die "redis-server pid $pid did not exit"
}

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	ensure) cmd_ensure "$@" ;;
	free-port) cmd_free_port "$@" ;;
	pg-start) cmd_pg_start "$@" ;;
	pg-stop) cmd_pg_stop "$@" ;;
	pg-createdb) cmd_pg_createdb "$@" ;;
	pg-standby) cmd_pg_standby "$@" ;;
	pg-crash) cmd_pg_crash "$@" ;;
	pg-promote) cmd_pg_promote "$@" ;;
	redis-start) cmd_redis_start "$@" ;;
	redis-stop) cmd_redis_stop "$@" ;;
	*)
		sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
}

main "$@"
