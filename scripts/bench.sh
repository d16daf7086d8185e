#!/usr/bin/env bash
# Benchmark the real receiver end to end: build bin/oncehook and bin/bench,
# start throwaway Postgres (durable settings) and Redis, the bench sink, the
# floor and the receivers, run the scenarios, write the report, and stop
# everything on exit.
#
# Usage: scripts/bench.sh [smoke]
#   (no argument)  the standard suite (make bench): bench/RESULTS.md,
#                  bench/chart.png and bench/results.json; about 20 minutes
#                  on 2 busy cores, 15 of them filling the ledger to 10M events
#   smoke          a short correctness-only run (make bench-smoke): 400 events
#                  per scenario over 16 connections, steady on 20,000 filled
#                  events; results in bench/smoke/
# Exit status: 0 ok; 1 a run broke a guarantee (loss, double delivery, a bad
# request at the sink...); 2 something could not run. Timings never fail.
#
# Environment (default; smoke default):
#   BENCH_SCENARIOS    unique,fanout,storm,replay,mixed,hostile,unordered,ordered,nats,rabbitmq,growth,steady,spread;
#                      unique,fanout,storm,replay,mixed,steady,spread (the floor runs before and after
#                      them; fanout runs on a receiver of its own with DESTINATIONS=a,b,c, each a path
#                      of the sink; unordered and ordered each on a receiver of its own with DESTINATIONS=o,
#                      ordered's with DESTINATION_O_ORDER_KEY=data.object.id, events about 1,000 objects;
#                      nats and rabbitmq (not in smoke) run unique's load each on a receiver of its own
#                      whose one destination is a broker: a nats-server -js of the bench's own on a free
#                      port, and a vhost of its own on the local RabbitMQ (guest on 127.0.0.1:5672,
#                      created with rabbitmqctl, so as root); their deliveries per second are reported as
#                      ratios to unique's; hostile holds 3,000 idle connections, 200 slow bodies and 500 slow
#                      headers: BENCH_FLAGS=-hostile-idle N ... to change it; spread runs against one
#                      receiver, then against BENCH_INSTANCES). growth and steady are no load of their
#                      own: each runs unique and storm on a ledger filled by `bench fill` (SQL, events
#                      spread over the last 30 days, all delivered), in a database of its own
#                      (oncehook_bench_ledger) with a receiver of its own. growth: at each size of
#                      BENCH_GROWTH, with RETENTION=2160h (nothing to prune). steady: at
#                      BENCH_STEADY_ROWS, with RETENTION=BENCH_STEADY_RETENTION, so that the pruner
#                      deletes while the runs go on (each waits until it is seen deleting). The
#                      ledger grows from one size to the next; one that must shrink is made anew.
#   BENCH_GROWTH       1000000,10000000: growth's ledger sizes (filled events), run smallest
#                      first; steady at the same size as the last reuses its fill
#   BENCH_STEADY_ROWS  10000000; 20000: steady's ledger size (filled events)
#   BENCH_STEADY_RETENTION  72h (the least RETENTION allowed): steady's RETENTION; with 30 days of
#                      events, 90% of them are prunable
#   BENCH_FILL_FLAGS   more flags for `bench fill` (see bin/bench fill -h; e.g. -no-attempts: no
#                      delivery history, about 10% quicker)
#   BENCH_DURATION     10s per scenario (ignored when BENCH_EVENTS is set)
#   BENCH_EVENTS       unset; 400: events per scenario instead of a duration
#   BENCH_CONNECTIONS  64; 16
#   BENCH_RATE         0 (closed loop); requests/s for an open loop
#   BENCH_INSTANCES    3: receivers for spread's second run (the other scenarios use one)
#   BENCH_ROUNDS       3: rounds of unordered and ordered, alternating (unordered, ordered,
#                      unordered, ...), each run on a receiver and database of its own; their
#                      ratio is of the rounds taken together (and each round's is listed)
#   BENCH_OUT          bench; bench/smoke: where the report goes
#   BENCH_FLAGS        more flags for `bench run` (see bin/bench run -h)
#   BENCH_PGSS         0; 1: measure each scenario's cost per event. Postgres starts with
#                      pg_stat_statements (and track_wal_io_timing); each scenario then runs as
#                      a `bench run` of its own, with the statistics reset before it and, after
#                      it (drain and check included), $BENCH_OUT/pgss-SCENARIO.txt written: the
#                      statements' execution time per event, the top statements, commits, WAL
#                      and WAL syncs per event, and the CPU split (Postgres, Redis, receivers,
#                      sink, load generator) per event. A line per scenario goes to
#                      $BENCH_OUT/pgss.txt and stderr. The floor is not measured.
#   BENCH_PG_OPTS      unset: more server options for the bench's Postgres ("-c name=value ...";
#                      e.g. auto_explain to see a slow statement's plan in its log)
#   GO                 go
set -euo pipefail

mode=${1:-full}
case $mode in
full | smoke) ;;
*)
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
services=$root/scripts/services.sh
GO=${GO:-go}

if [[ $mode == smoke ]]; then
	: "${BENCH_EVENTS:=400}" "${BENCH_CONNECTIONS:=16}" "${BENCH_OUT:=bench/smoke}" "${BENCH_STEADY_ROWS:=20000}"
	: "${BENCH_SCENARIOS:=unique,fanout,storm,replay,mixed,steady,spread}"
fi
scenarios=${BENCH_SCENARIOS:-unique,fanout,storm,replay,mixed,hostile,unordered,ordered,nats,rabbitmq,growth,steady,spread}
growth=${BENCH_GROWTH:-1000000,10000000}
steady_rows=${BENCH_STEADY_ROWS:-10000000}
steady_retention=${BENCH_STEADY_RETENTION:-72h}
# The fanout receiver's DESTINATIONS: destination NAME posts to the sink's /NAME.
fanout_dests=a,b,c
conns=${BENCH_CONNECTIONS:-64}
instances=${BENCH_INSTANCES:-3}
rounds=${BENCH_ROUNDS:-3}
out=${BENCH_OUT:-bench}
pgss=${BENCH_PGSS:-0}
[[ $pgss == 0 || $pgss == 1 ]] || { echo "bench.sh: BENCH_PGSS must be 0 or 1" >&2; exit 2; }
[[ $instances =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: BENCH_INSTANCES must be a positive number" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]?$ ]] || { echo "bench.sh: BENCH_ROUNDS must be a number from 1 to 99" >&2; exit 2; }
[[ $steady_rows =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: BENCH_STEADY_ROWS must be a positive number" >&2; exit 2; }
[[ $growth =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "bench.sh: BENCH_GROWTH must be positive numbers, comma-separated" >&2; exit 2; }
growth=$(tr , '\n' <<<"$growth" | sort -n -u | paste -sd ,)

# cpu_idle prints the machine's idle CPU share over one second: other work
# skews every number, so the report shows it from just before the runs.
cpu_idle() {
	local a b
	read -r -a a </proc/stat
	sleep 1
	read -r -a b </proc/stat
	awk -v a="${a[*]:1}" -v b="${b[*]:1}" 'BEGIN {
		n = split(a, x); split(b, y); t = 0
		for (i = 1; i <= n; i++) t += y[i] - x[i]
		idle = (y[4] - x[4]) + (y[5] - x[5])
		printf "%.0f%%", (t > 0 ? 100 * idle / t : 0)
	}'
}
idle_before=""
echo "bench.sh: building bin/oncehook and bin/bench" >&2
"$GO" build -o bin/oncehook ./cmd/oncehook
"$GO" build -o bin/bench ./cmd/bench
"$services" ensure postgres redis
mkdir -p "$out"

# /tmp rather than $TMPDIR: as root, Postgres runs as the postgres user and
# must be able to reach its data directory.
tmp=$(mktemp -d /tmp/oncehook-bench.XXXXXX)
chmod 0755 "$tmp"
pg_dir="" redis_dir="" procs=() failed_logs=0 amqp_vhost=""

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local pid i
	for pid in "${procs[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${procs[@]}"; do
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ $failed_logs == 1 ]]; then
		for f in "$tmp"/receiver*.log; do
			[[ -s $f ]] || continue
			echo "--- last lines of $(basename "$f")" >&2
			tail -n 20 "$f" >&2
		done
	fi
	[[ -z $amqp_vhost ]] || rabbitmqctl -q delete_vhost "$amqp_vhost" >/dev/null 2>&1 || true
	[[ -z $pg_dir ]] || "$services" pg-stop "$pg_dir" || true
	[[ -z $redis_dir ]] || "$services" redis-stop "$redis_dir" || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Postgres with its durable defaults (fsync, synchronous_commit and
# full_page_writes on): this benchmarks a payments system. Only memory is raised.
pg_port=$("$services" free-port)
pg_dir=$tmp/pg
pg_opts="-c shared_buffers=256MB ${BENCH_PG_OPTS:-}"
if ((pgss)); then
	# pg_stat_statements ships with the server (Debian: postgresql-NN;
	# elsewhere postgresql-contrib). track_wal_io_timing times WAL fsyncs,
	# which statement times leave out (a commit waits for its flush after
	# the statement).
	pg_opts+=" -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top"
	pg_opts+=" -c pg_stat_statements.track_utility=on -c track_wal_io_timing=on"
fi
PG_EXTRA_OPTS=$pg_opts "$services" pg-start "$pg_dir" "$pg_port" ||
	{ ((pgss)) && echo "bench.sh: BENCH_PGSS=1 needs pg_stat_statements (postgresql-contrib)" >&2; exit 2; }
"$services" pg-createdb "$pg_dir" "$pg_port" oncehook_bench
redis_port=$("$services" free-port)
redis_dir=$tmp/redis
"$services" redis-start "$redis_dir" "$redis_port"

secret=whsec_bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export STRIPE_WEBHOOK_SECRET=$secret
database_url="postgres://postgres@127.0.0.1:$pg_port/oncehook_bench?sslmode=disable"
redis_url="redis://127.0.0.1:$redis_port/0"

sink_port=$("$services" free-port)
bin/bench sink -addr "127.0.0.1:$sink_port" >"$tmp/sink.log" 2>&1 &
procs+=($!)
sink_pid=$!
floor_port=$("$services" free-port)
bin/bench floor -addr "127.0.0.1:$floor_port" >"$tmp/floor.log" 2>&1 &
procs+=($!)

# start_receiver NAME DATABASE_URL VAR=VALUE...: start a receiver on free
# ports with Redis, the database and the sink variables given; it logs to
# $tmp/NAME.log and sets started_pid and started_url.
start_receiver() {
	local name=$1 db=$2 port admin
	shift 2
	port=$("$services" free-port)
	admin=$("$services" free-port)
	env -u SINK_URL -u DESTINATIONS LISTEN_ADDR="127.0.0.1:$port" ADMIN_ADDR="127.0.0.1:$admin" \
		DATABASE_URL="$db" REDIS_URL="$redis_url" LOG_LEVEL=warn SHUTDOWN_TIMEOUT=5s "$@" \
		bin/oncehook >"$tmp/$name.log" 2>&1 &
	started_pid=$! started_url=http://127.0.0.1:$port/webhooks/stripe
	procs+=("$started_pid")
	echo "bench.sh: $name: pid $started_pid, http://127.0.0.1:$port, pprof http://127.0.0.1:$admin/debug/pprof/" >&2
}

receiver_urls=() receiver_pids=()
# start_single starts one more receiver with SINK_URL, sharing Postgres and Redis.
start_single() {
	start_receiver "receiver$((${#receiver_pids[@]} + 1))" "$database_url" SINK_URL="http://127.0.0.1:$sink_port/"
	receiver_pids+=("$started_pid")
	receiver_urls+=("$started_url")
}

# start_fanout starts a receiver with DESTINATIONS=$fanout_dests and no
# SINK_URL, on a database (and so a Redis namespace) of its own, apart
# from the SINK_URL receivers that stay up.
fanout_db=oncehook_bench_fanout fanout_starts=0
start_fanout() {
	local d var dest_env=()
	for d in ${fanout_dests//,/ }; do
		var=${d^^}
		dest_env+=("DESTINATION_${var//-/_}_URL=http://127.0.0.1:$sink_port/$d")
	done
	"$services" pg-createdb "$pg_dir" "$pg_port" "$fanout_db"
	fanout_starts=$((fanout_starts + 1))
	start_receiver "receiver-fanout$fanout_starts" "postgres://postgres@127.0.0.1:$pg_port/$fanout_db?sslmode=disable" \
		DESTINATIONS="$fanout_dests" "${dest_env[@]}"
}

# start_keyed KIND: a receiver with DESTINATIONS=o (the sink's /o), with
# DESTINATION_O_ORDER_KEY=data.object.id for ordered, on a fresh database.
keyed_starts=0
start_keyed() {
	local db=oncehook_bench_$1 order=()
	[[ $1 != ordered ]] || order=(DESTINATION_O_ORDER_KEY=data.object.id)
	pg_admin -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
	"$services" pg-createdb "$pg_dir" "$pg_port" "$db"
	keyed_starts=$((keyed_starts + 1))
	start_receiver "receiver-$1$keyed_starts" "postgres://postgres@127.0.0.1:$pg_port/$db?sslmode=disable" \
		DESTINATIONS=o DESTINATION_O_URL="http://127.0.0.1:$sink_port/o" "${order[@]}"
}

# The brokers of nats and rabbitmq, started on first use.
nats_url="" amqp_url="" brokers=0
# start_nats: a nats-server -js of our own on a free port, its store in $tmp.
start_nats() {
	[[ -z $nats_url ]] || return 0
	command -v nats-server >/dev/null ||
		{ echo "bench.sh: nats: nats-server is not installed (Debian package nats-server)" >&2; return 1; }
	local port
	port=$("$services" free-port)
	nats-server -js -a 127.0.0.1 -p "$port" -sd "$tmp/nats" >"$tmp/nats.log" 2>&1 &
	procs+=($!)
	local i
	for ((i = 0; i < 100; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	((i < 100)) || { echo "bench.sh: nats: nats-server did not listen on $port (see below)" >&2; cat "$tmp/nats.log" >&2; return 1; }
	nats_url=nats://127.0.0.1:$port
}
# start_amqp: a vhost of our own on the local RabbitMQ, deleted on exit.
start_amqp() {
	[[ -z $amqp_url ]] || return 0
	command -v rabbitmqctl >/dev/null ||
		{ echo "bench.sh: rabbitmq: rabbitmqctl is not installed (Debian package rabbitmq-server)" >&2; return 1; }
	local vhost
	vhost=oncehook-bench-$(basename "$tmp")
	rabbitmqctl -q add_vhost "$vhost" >/dev/null ||
		{ echo "bench.sh: rabbitmq: cannot add vhost $vhost (is rabbitmq-server running? Debian package rabbitmq-server; run as root)" >&2; return 1; }
	amqp_vhost=$vhost
	rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null ||
		{ echo "bench.sh: rabbitmq: cannot give guest vhost $vhost" >&2; return 1; }
	amqp_url=amqp://guest:guest@127.0.0.1:5672/$vhost
}
# start_broker KIND: nats or rabbitmq, a receiver with DESTINATIONS=q, the
# broker, on a fresh database; its `bench run` flags go to phase_flags.
start_broker() {
	local db=oncehook_bench_$1 dest
	if [[ $1 == nats ]]; then
		start_nats || return 1
		dest=$nats_url/bench.{type} phase_flags=(-nats "$nats_url")
	else
		start_amqp || return 1
		dest="$amqp_url?exchange=bench" phase_flags=(-amqp "$amqp_url")
	fi
	pg_admin -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
	"$services" pg-createdb "$pg_dir" "$pg_port" "$db"
	start_receiver "receiver-$1" "postgres://postgres@127.0.0.1:$pg_port/$db?sslmode=disable" \
		DESTINATIONS=q DESTINATION_Q_URL="$dest"
}

# stop_receiver PID: SIGTERM, then SIGKILL after 10 s.
stop_receiver() {
	local i
	kill -TERM "$1" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

join() {
	local IFS=,
	echo "$*"
}

run_flags=(-sink "http://127.0.0.1:$sink_port" -floor-url "http://127.0.0.1:$floor_port/webhooks/stripe"
	-c "$conns" -rate "${BENCH_RATE:-0}" -destinations "$fanout_dests")
if [[ -n ${BENCH_EVENTS:-} ]]; then
	run_flags+=(-n "$BENCH_EVENTS")
else
	run_flags+=(-d "${BENCH_DURATION:-10s}")
fi
# shellcheck disable=SC2206 # BENCH_FLAGS is split on purpose
run_flags+=(${BENCH_FLAGS:-})

# Phases: runs of consecutive scenarios on the same receivers, in the order
# asked. Fanout has a receiver of its own, and so have growth and steady
# (a phase each); spread runs last, against one receiver and then, once
# more receivers are up, against all; the floor runs first and last.
groups=() kinds=() spread="" fanout=0 ledger=0 keyed=0 keyed_list=()
IFS=, read -r -a wanted <<<"$scenarios"
for s in "${wanted[@]}"; do
	case ${s%%:*} in
	spread)
		spread=$s
		continue
		;;
	floor) continue ;;
	growth | steady)
		groups+=("") kinds+=("${s%%:*}") ledger=1
		continue
		;;
	fanout) kind=fanout fanout=1 ;;
	ordered | unordered)
		# A receiver of its own each, in rounds (one phase, keyed, at the
		# place of the first).
		((keyed)) || groups+=("") kinds+=(keyed)
		keyed_list+=("${s%%:*}") keyed=1
		continue
		;;
	nats | rabbitmq)
		groups+=("$s") kinds+=("${s%%:*}") brokers=1
		continue
		;;
	*) kind=single ;;
	esac
	n=${#groups[@]}
	if ((n > 0)) && [[ ${kinds[n - 1]} == "$kind" ]]; then
		groups[n - 1]+=",$s"
	else
		groups+=("$s") kinds+=("$kind")
	fi
done
if [[ -n $spread ]]; then
	if ((instances > 1)); then
		groups+=("spread:1 instance") kinds+=(spread1)
	fi
	groups+=("$spread") kinds+=(spread)
fi
if ((${#groups[@]} == 0)) || [[ ${kinds[0]} == growth || ${kinds[0]} == steady ]]; then
	groups=("" "${groups[@]}") kinds=(single "${kinds[@]}")
fi
groups[0]=floor:before${groups[0]:+,${groups[0]}}
if [[ ${kinds[-1]} == growth || ${kinds[-1]} == steady ]]; then
	groups+=(floor:after) kinds+=(single)
else
	groups[-1]+=,floor:after
fi

# BENCH_PGSS=1: cost per event, measured around each scenario's `bench run`.
pg_admin() { # pg_admin SQL: run SQL in the postgres database (the receivers use others)
	psql -X -q -v ON_ERROR_STOP=1 -P pager=off -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres "$@"
}
# cpu_ticks PID...: utime+stime of the processes, in clock ticks.
cpu_ticks() {
	local pid st f t=0
	for pid; do
		{ read -r st <"/proc/$pid/stat"; } 2>/dev/null || continue
		read -r -a f <<<"${st##*) }"
		t=$((t + f[11] + f[12]))
	done
	echo "$t"
}
# pg_ticks: the CPU of Postgres: the postmaster, its live children (backends,
# WAL writer, checkpointer...) and the children it has reaped.
pg_ticks() {
	local pm st f t=0 p
	read -r pm <"$pg_dir/postmaster.pid"
	{ read -r st <"/proc/$pm/stat"; } 2>/dev/null || { echo 0; return; }
	read -r -a f <<<"${st##*) }"
	t=$((f[11] + f[12] + f[13] + f[14]))
	for p in /proc/[0-9]*/stat; do
		{ read -r st <"$p"; } 2>/dev/null || continue
		read -r -a f <<<"${st##*) }"
		((f[1] == pm)) && t=$((t + f[11] + f[12]))
	done
	echo "$t"
}
# bench_ticks: the CPU of this script's reaped children: the load generator
# (`bench run` and little else during a scenario).
bench_ticks() {
	local st f
	read -r st <"/proc/$$/stat"
	read -r -a f <<<"${st##*) }"
	echo $((f[13] + f[14]))
}
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)
if ((pgss)); then
	pg_admin -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
	rm -f "$out"/pgss-*.txt "$out/pgss.txt"
fi
declare -A mark=()
# wait_ready URLS: wait up to 60 s for each receiver's /readyz, so that a
# receiver's start (migrations) stays out of the measurement.
wait_ready() {
	local u b i
	command -v curl >/dev/null 2>&1 || return 0
	for u in ${1//,/ }; do
		b=${u#*://} b=${u%%://*}://${b%%/*}
		for ((i = 0; i < 600; i++)); do
			curl -fsS -o /dev/null --max-time 2 "$b/readyz" 2>/dev/null && break
			sleep 0.1
		done
	done
}
measure_start() { # measure_start URLS PIDS: reset the statistics and note the counters
	wait_ready "$1"
	pg_admin -c "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
	mark[commits]=$(pg_admin -A -t -c "SELECT sum(xact_commit) FROM pg_stat_database WHERE datname LIKE 'oncehook_bench%'")
	mark[pg]=$(pg_ticks) mark[redis]=$(cpu_ticks "$(cat "$redis_dir/redis.pid")")
	# shellcheck disable=SC2086 # the pids are split on purpose
	mark[receivers]=$(cpu_ticks ${2//,/ }) mark[sink]=$(cpu_ticks "$sink_pid")
	mark[at]=$(date +%s.%N) mark[bench]=$(bench_ticks)
}
# measure_end NAME JSON PIDS: write $out/pgss-NAME.txt and a line to $out/pgss.txt.
measure_end() {
	local name=$1 json=$2 bench pg redis receivers sink at events file line commits f
	bench=$(($(bench_ticks) - mark[bench])) at=$(date +%s.%N)
	pg=$(($(pg_ticks) - mark[pg])) redis=$(($(cpu_ticks "$(cat "$redis_dir/redis.pid")") - mark[redis]))
	# shellcheck disable=SC2086 # the pids are split on purpose
	receivers=$(($(cpu_ticks ${3//,/ }) - mark[receivers])) sink=$(($(cpu_ticks "$sink_pid") - mark[sink]))
	# Distinct events sent, the replay's warm-up included.
	[[ -s $json ]] || return 0
	if command -v jq >/dev/null 2>&1; then
		events=$(jq '[.results[] | .events + (.warmup_events // 0)] | add // 0' "$json")
	else
		events=$(sed -n 's/^      "\(warmup_\)\{0,1\}events": \([0-9]*\),\{0,1\}$/\2/p' "$json" | awk '{ n += $1 } END { print n + 0 }')
	fi
	[[ $events =~ ^[0-9]+$ ]] && ((events > 0)) || return 0
	sleep 0.6 # PG 15 flushes a backend's pg_stat_database counters at most every 0.5-1 s
	commits=$(pg_admin -A -t -c "SELECT sum(xact_commit) FROM pg_stat_database WHERE datname LIKE 'oncehook_bench%'")
	commits=$((commits - mark[commits]))
	file=$out/pgss-${name//[^A-Za-z0-9_-]/-}.txt
	{
		echo "# $name: $events events; Postgres from pg_stat_statements (statements of the oncehook_bench databases,"
		echo "# reset before the scenario; read after its drain and check); CPU from /proc/PID/stat over the same window"
		echo
		awk -v ev="$events" -v s="$(awk -v a="${mark[at]}" -v b="$at" 'BEGIN { print b - a }')" -v hz="$clk_tck" \
			-v pg="$pg" -v redis="$redis" -v rcv="$receivers" -v sink="$sink" -v bench="$bench" -v commits="$commits" 'BEGIN {
			printf "window %.1f s; transactions committed: %.2f per event\n\n", s, commits / ev
			printf "CPU split (ms per event; CPU s over the window):\n"
			n = split("postgres redis receivers sink bench", k, " ")
			v["postgres"] = pg; v["redis"] = redis; v["receivers"] = rcv; v["sink"] = sink; v["bench"] = bench
			for (i = 1; i <= n; i++) { t += v[k[i]]; printf "  %-10s %8.3f ms/event  %7.2f s\n", k[i], 1000 * v[k[i]] / hz / ev, v[k[i]] / hz }
			printf "  %-10s %8.3f ms/event  %7.2f s\n", "total", 1000 * t / hz / ev, t / hz
		}'
		echo
		pg_admin -c "SELECT round(sum(total_exec_time)::numeric, 1) AS exec_ms,
				round((sum(total_exec_time) / $events)::numeric, 4) AS exec_ms_per_event,
				sum(calls) AS calls, round(sum(calls)::numeric / $events, 2) AS calls_per_event,
				round(sum(rows)::numeric / $events, 2) AS rows_per_event
			FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname LIKE 'oncehook_bench%'" \
			-c "SELECT wal_records, pg_size_pretty(wal_bytes) AS wal, round(wal_bytes / $events) AS wal_bytes_per_event,
				wal_sync, round(wal_sync::numeric / $events, 3) AS syncs_per_event, round(wal_sync_time::numeric, 1) AS sync_ms,
				round((wal_sync_time / $events)::numeric, 4) AS sync_ms_per_event, round(wal_write_time::numeric, 1) AS write_ms
			FROM pg_stat_wal" \
			-c "SELECT round(total_exec_time::numeric, 1) AS total_ms, round((total_exec_time / $events)::numeric, 4) AS ms_per_event,
				round(100 * total_exec_time / nullif(sum(total_exec_time) OVER (), 0))::int AS pct,
				calls, round(calls::numeric / $events, 2) AS calls_per_event, rows, round(mean_exec_time::numeric, 3) AS mean_ms,
				round(wal_bytes / $events) AS wal_b_per_event, left(regexp_replace(query, '\s+', ' ', 'g'), 80) AS query
			FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname LIKE 'oncehook_bench%'
			ORDER BY total_exec_time DESC LIMIT 15"
	} >"$file" 2>&1 || true
	line=$(pg_admin -A -t -F ' ' -c "SELECT round((coalesce(sum(total_exec_time), 0) / $events)::numeric, 4),
			round(coalesce(sum(calls), 0)::numeric / $events, 2), (SELECT round((wal_sync_time / $events)::numeric, 4) FROM pg_stat_wal)
		FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname LIKE 'oncehook_bench%'" 2>/dev/null) || line="? ? ?"
	read -r -a f <<<"$line"
	line=$(printf '%-16s %8d events  Postgres %s ms/event in statements (%s calls/event), %s ms/event in WAL syncs, CPU ms/event: postgres %s, receivers %s' \
		"$name" "$events" "${f[0]}" "${f[1]}" "${f[2]}" \
		"$(awk -v t="$pg" -v hz="$clk_tck" -v ev="$events" 'BEGIN { printf "%.3f", 1000 * t / hz / ev }')" \
		"$(awk -v t="$receivers" -v hz="$clk_tck" -v ev="$events" 'BEGIN { printf "%.3f", 1000 * t / hz / ev }')")
	echo "$line" >>"$out/pgss.txt"
	echo "bench.sh: pgss: $line (see $file)" >&2
}

rc=0
phases=() phase_flags=()
run_bench() { # run_bench JSON SCENARIOS URLS PIDS: one `bench run`, with $phase_flags
	local code=0
	bin/bench run "${run_flags[@]}" "${phase_flags[@]}" -scenarios "$2" -url "$3" -pids "$4" -json "$1" || code=$?
	if ((code > rc)); then
		rc=$code
	fi
	phases+=("$1")
}
# run_phase JSON SCENARIOS URLS PIDS: one `bench run`, or with BENCH_PGSS=1
# one per scenario, each measured.
run_phase() {
	local k=0 s list
	if ((!pgss)); then
		run_bench "$@"
		return
	fi
	IFS=, read -r -a list <<<"$2"
	for s in "${list[@]}"; do
		k=$((k + 1))
		if [[ ${s%%:*} == floor ]]; then
			run_bench "$1.$k" "$s" "$3" "$4"
			continue
		fi
		measure_start "$3" "$4"
		run_bench "$1.$k" "$s" "$3" "$4"
		measure_end "$s" "$1.$k" "$4"
	done
}

# The ledger of growth and steady: a database of their own, filled by
# `bench fill` to the size each phase asks.
ledger_db=oncehook_bench_ledger
ledger_url="postgres://postgres@127.0.0.1:$pg_port/$ledger_db?sslmode=disable"
ledger_filled=-1 fills=() # -1: no database yet, or one that must be made anew
# ledger_drop: drop the ledger's database, so that no autovacuum of it
# runs under later runs.
ledger_drop() {
	ledger_filled=-1
	pg_admin -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $ledger_db WITH (FORCE)" >/dev/null
}
# ledger_fill_to N: grow the ledger to N filled events (anew if it holds
# more); the fill's JSON goes to $fills.
ledger_fill_to() {
	local n=$1 json
	if ((ledger_filled < 0 || ledger_filled > n)); then
		ledger_drop && "$services" pg-createdb "$pg_dir" "$pg_port" "$ledger_db" || return 1
		DATABASE_URL=$ledger_url bin/oncehook migrate >"$tmp/migrate.log" 2>&1 ||
			{ cat "$tmp/migrate.log" >&2; return 1; }
		ledger_filled=0
	fi
	((n > ledger_filled)) || return 0
	json=$tmp/fill$((${#fills[@]} + 1)).json
	echo "bench.sh: filling the ledger from $ledger_filled to $n events" >&2
	# shellcheck disable=SC2086 # BENCH_FILL_FLAGS is split on purpose
	bin/bench fill -db "$ledger_url" -events $((n - ledger_filled)) -json "$json" ${BENCH_FILL_FLAGS:-} || return 1
	fills+=("$json") ledger_filled=$n
}
# rows_label N: 1000000 -> 1M, 20000 -> 20k.
rows_label() {
	if (($1 >= 1000000 && $1 % 1000000 == 0)); then
		echo "$(($1 / 1000000))M"
	elif (($1 >= 1000 && $1 % 1000 == 0)); then
		echo "$(($1 / 1000))k"
	else
		echo "$1"
	fi
}
# run_ledger JSON NAME ROWS RETENTION LABEL [-pruning RETENTION]: fill to
# ROWS, run unique and storm labelled LABEL on a receiver of its own with
# RETENTION, then stop it.
run_ledger() {
	local json=$1 name=$2 rows=$3 retention=$4 label=$5
	shift 5
	if ! ledger_fill_to "$rows"; then
		echo "bench.sh: filling the ledger to $rows events failed" >&2
		((rc >= 2)) || rc=2
		ledger_filled=-1
		return 0
	fi
	start_receiver "$name" "$ledger_url" SINK_URL="http://127.0.0.1:$sink_port/" RETENTION="$retention"
	phase_flags=(-ledger-db "$ledger_url" -ledger-filled "$rows" "$@")
	run_phase "$json" "unique:$label,storm:$label" "$started_url" "$started_pid"
	phase_flags=()
	stop_receiver "$started_pid"
}

start_single
idle_before=$(cpu_idle) || true
for i in "${!groups[@]}"; do
	json=$tmp/phase$((i + 1)).json
	case ${kinds[i]} in
	fanout)
		start_fanout
		run_phase "$json" "${groups[i]}" "$started_url" "$started_pid"
		stop_receiver "$started_pid"
		;;
	keyed)
		# Rounds alternate the scenarios, so that a slow stretch of a
		# shared machine falls on both. The group holds only the floors
		# that go first and last.
		for ((r = 1; r <= rounds; r++)); do
			for s in "${keyed_list[@]}"; do
				list=$s
				((rounds == 1)) || list="$s:round $r"
				if ((r == 1)) && [[ $s == "${keyed_list[0]}" && ,${groups[i]}, == *,floor:before,* ]]; then
					list="floor:before,$list"
				fi
				if ((r == rounds)) && [[ $s == "${keyed_list[-1]}" && ,${groups[i]}, == *,floor:after,* ]]; then
					list+=",floor:after"
				fi
				start_keyed "$s"
				run_phase "$json.$r.$s" "$list" "$started_url" "$started_pid"
				stop_receiver "$started_pid"
			done
		done
		;;
	nats | rabbitmq)
		if ! start_broker "${kinds[i]}"; then
			((rc >= 2)) || rc=2
			phase_flags=()
			continue
		fi
		run_phase "$json" "${groups[i]}" "$started_url" "$started_pid"
		phase_flags=()
		stop_receiver "$started_pid"
		;;
	growth)
		IFS=, read -r -a sizes <<<"$growth"
		for k in "${!sizes[@]}"; do
			run_ledger "$json.$k" "receiver-growth$((k + 1))" "${sizes[k]}" 2160h "$(rows_label "${sizes[k]}") rows"
		done
		;;
	steady)
		run_ledger "$json" receiver-steady "$steady_rows" "$steady_retention" "steady $(rows_label "$steady_rows") rows" \
			-pruning "$steady_retention"
		ledger_drop || true # pruned: a later ledger phase starts anew
		;;
	spread1)
		run_phase "$json" "${groups[i]}" "${receiver_urls[0]}" "${receiver_pids[0]}"
		;;
	*)
		if [[ ${kinds[i]} == spread ]]; then
			while ((${#receiver_pids[@]} < instances)); do
				start_single
			done
		fi
		run_phase "$json" "${groups[i]}" "$(join "${receiver_urls[@]}")" "$(join "${receiver_pids[@]}")"
		;;
	esac
done

# What the report says about the setup.
pg_query() {
	psql -X -q -A -t -F ' ' -h 127.0.0.1 -p "$pg_port" -U postgres -d oncehook_bench -c "$1" 2>/dev/null || echo "?"
}
pg_show() { pg_query "SHOW $1"; }
load_flags="-c $conns"
if [[ -n ${BENCH_EVENTS:-} ]]; then
	load_flags+=" -n $BENCH_EVENTS"
else
	load_flags+=" -d ${BENCH_DURATION:-10s}"
fi
[[ ${BENCH_RATE:-0} == 0 ]] || load_flags+=" -rate $BENCH_RATE"
[[ -z ${BENCH_FLAGS:-} ]] || load_flags+=" $BENCH_FLAGS"
{
	echo "- Postgres $(pg_show server_version): fsync $(pg_show fsync), synchronous_commit $(pg_show synchronous_commit)," \
		"full_page_writes $(pg_show full_page_writes), shared_buffers $(pg_show shared_buffers)," \
		"max_connections $(pg_show max_connections); data on $(df -T "$pg_dir" | awk 'NR==2 {print $2}') ($(df "$pg_dir" | awk 'NR==2 {print $1}'))"
	echo "- $(redis-server --version | awk '{print "Redis", $3}' | sed 's/v=//'), no persistence"
	echo "- Receivers: bin/oncehook with its defaults (WORKERS, QUEUE_SIZE, the pgx pool size), LOG_LEVEL=warn," \
		"Redis and the HTTP sink (\`bench sink\`); 1 instance${spread:+, ${#receiver_pids[@]} for spread}"
	if ((fanout)); then
		echo "- Fanout: one more receiver, started for its run and stopped after it, without SINK_URL but with DESTINATIONS=$fanout_dests," \
			"each an HTTP destination on its own path of the same sink, taking every event type, on a database of its own"
	fi
	if ((keyed)); then
		echo "- Ordered and unordered: a receiver each, started for its run and stopped after it, with DESTINATIONS=o" \
			"(the sink's /o), on a database of its own; ordered's has DESTINATION_O_ORDER_KEY=data.object.id"
	fi
	if ((brokers)); then
		echo "- Brokers: a receiver each for nats and rabbitmq, started for its run and stopped after it, on a database of its own," \
			"with DESTINATIONS=q: NATS JetStream (\`nats-server -js\`, subjects bench.{type}, stream BENCH) or RabbitMQ" \
			"(a vhost of the bench's own, topic exchange bench, queue bench bound to #); the bench reads the stream and drains the queue"
	fi
	if ((ledger)); then
		line="- Filled ledger: one more receiver per ledger size, started for its runs and stopped after them, on a database of its own"
		line+=" filled by \`bench fill${BENCH_FILL_FLAGS:+ $BENCH_FILL_FLAGS}\`"
		[[ ",$scenarios," != *,growth,* ]] || line+="; growth at $growth filled events with RETENTION=2160h"
		[[ ",$scenarios," != *,steady,* ]] || line+="; steady at $steady_rows with RETENTION=$steady_retention (the pruner deletes during the runs)"
		echo "$line"
	fi
	read -r timed requested wal <<<"$(pg_query "SELECT checkpoints_timed, checkpoints_req,
		pg_size_pretty(pg_current_wal_lsn() - '0/0'::pg_lsn) FROM pg_stat_bgwriter")"
	echo "- Postgres over the whole suite (from initdb): ${wal:-?} of WAL written, checkpoints: ${requested:-?} requested (WAL size), ${timed:-?} timed"
	echo "- Load: \`bench run $load_flags\` (fasthttp client on the same machine)"
	if ((pgss)); then
		echo "- BENCH_PGSS=1: Postgres with pg_stat_statements and track_wal_io_timing, one \`bench run\` per scenario;" \
			"the cost per event of each scenario in pgss-SCENARIO.txt (these add overhead: compare with runs made the same way)"
	fi
	echo "- CPU idle in the second before the runs (with the services up): ${idle_before:-?}; anything else running skews the numbers"
} >"$tmp/setup.md"

report_flags=(-command "make bench")
[[ $mode == full ]] || report_flags=(-command "make bench-smoke" -no-targets)
echo >&2
done_phases=()
for f in "${phases[@]}"; do
	[[ ! -s $f ]] || done_phases+=("$f")
done
if ((${#done_phases[@]} > 0)); then
	echo "All runs:"
	bin/bench report -md "$out/RESULTS.md" -chart "$out/chart.png" -json "$out/results.json" \
		-setup "$tmp/setup.md" -fills "$(join "${fills[@]}")" "${report_flags[@]}" "${done_phases[@]}" || rc=2
	echo "bench.sh: report in $out/RESULTS.md, chart in $out/chart.png" >&2
fi
case $rc in
0) echo "bench.sh: every run kept its guarantees" >&2 ;;
1)
	echo "bench.sh: FAIL: a run broke a guarantee (see above and $out/RESULTS.md)" >&2
	failed_logs=1
	;;
*)
	echo "bench.sh: FAIL: a run could not be made" >&2
	failed_logs=1
	;;
esac
exit "$rc"
