#!/usr/bin/env bash
# Benchmark the real receiver end to end: build bin/receiver and bin/bench,
# start throwaway Postgres (durable settings) and Redis, the bench sink, the
# floor and the receivers, run the scenarios, write the report, and stop
# everything on exit.
#
# Usage: scripts/bench.sh [smoke]
#   (no argument)  the standard suite (make bench): bench/RESULTS.md,
#                  bench/chart.png and bench/results.json
#   smoke          a short correctness-only run (make bench-smoke): 400 events
#                  per scenario over 16 connections; results in bench/smoke/
# Exit status: 0 ok; 1 a run broke a guarantee (loss, double delivery, a bad
# request at the sink...); 2 something could not run. Timings never fail.
#
# Environment (default; smoke default):
#   BENCH_SCENARIOS    unique,storm,replay,mixed,hostile,spread; the same without hostile (the floor
#                      runs before and after them; hostile holds 3,000 idle connections, 200 slow
#                      bodies and 500 slow headers: BENCH_FLAGS=-hostile-idle N ... to change it)
#   BENCH_DURATION     10s per scenario (ignored when BENCH_EVENTS is set)
#   BENCH_EVENTS       unset; 400: events per scenario instead of a duration
#   BENCH_CONNECTIONS  64; 16
#   BENCH_RATE         0 (closed loop); requests/s for an open loop
#   BENCH_INSTANCES    3: receivers for spread (the other scenarios use one)
#   BENCH_OUT          bench; bench/smoke: where the report goes
#   BENCH_FLAGS        more flags for `bench run` (see bin/bench run -h)
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
	: "${BENCH_EVENTS:=400}" "${BENCH_CONNECTIONS:=16}" "${BENCH_OUT:=bench/smoke}" "${BENCH_SCENARIOS:=unique,storm,replay,mixed,spread}"
fi
scenarios=${BENCH_SCENARIOS:-unique,storm,replay,mixed,hostile,spread}
conns=${BENCH_CONNECTIONS:-64}
instances=${BENCH_INSTANCES:-3}
out=${BENCH_OUT:-bench}
[[ $instances =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: BENCH_INSTANCES must be a positive number" >&2; exit 2; }

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
echo "bench.sh: building bin/receiver and bin/bench" >&2
"$GO" build -o bin/receiver ./cmd/receiver
"$GO" build -o bin/bench ./cmd/bench
"$services" ensure postgres redis
mkdir -p "$out"

# /tmp rather than $TMPDIR: as root, Postgres runs as the postgres user and
# must be able to reach its data directory.
tmp=$(mktemp -d /tmp/oncehook-bench.XXXXXX)
chmod 0755 "$tmp"
pg_dir="" redis_dir="" procs=() failed_logs=0

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
PG_EXTRA_OPTS="-c shared_buffers=256MB" "$services" pg-start "$pg_dir" "$pg_port"
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
floor_port=$("$services" free-port)
bin/bench floor -addr "127.0.0.1:$floor_port" >"$tmp/floor.log" 2>&1 &
procs+=($!)

receiver_urls=() receiver_pids=()
# start_receiver starts one more receiver on free ports, sharing Postgres and Redis.
start_receiver() {
	local i=$((${#receiver_pids[@]} + 1)) port admin
	port=$("$services" free-port)
	admin=$("$services" free-port)
	LISTEN_ADDR=127.0.0.1:$port ADMIN_ADDR=127.0.0.1:$admin \
		DATABASE_URL=$database_url REDIS_URL=$redis_url \
		SINK_URL=http://127.0.0.1:$sink_port/ LOG_LEVEL=warn SHUTDOWN_TIMEOUT=5s \
		bin/receiver >"$tmp/receiver$i.log" 2>&1 &
	procs+=($!)
	receiver_pids+=($!)
	receiver_urls+=("http://127.0.0.1:$port/webhooks/stripe")
	echo "bench.sh: receiver $i: pid $!, http://127.0.0.1:$port, pprof http://127.0.0.1:$admin/debug/pprof/" >&2
}

join() {
	local IFS=,
	echo "$*"
}

run_flags=(-sink "http://127.0.0.1:$sink_port" -floor-url "http://127.0.0.1:$floor_port/webhooks/stripe"
	-c "$conns" -rate "${BENCH_RATE:-0}")
if [[ -n ${BENCH_EVENTS:-} ]]; then
	run_flags+=(-n "$BENCH_EVENTS")
else
	run_flags+=(-d "${BENCH_DURATION:-10s}")
fi
# shellcheck disable=SC2206 # BENCH_FLAGS is split on purpose
run_flags+=(${BENCH_FLAGS:-})

# The floor runs first and last; spread runs last, once more receivers are up.
single=() spread=0
IFS=, read -r -a wanted <<<"$scenarios"
for s in "${wanted[@]}"; do
	case $s in
	spread) spread=1 ;;
	floor) ;;
	*) single+=("$s") ;;
	esac
done

rc=0
run_phase() { # run_phase JSON SCENARIOS
	local json=$1 list=$2 code=0
	bin/bench run "${run_flags[@]}" -scenarios "$list" -url "$(join "${receiver_urls[@]}")" \
		-pids "$(join "${receiver_pids[@]}")" -json "$json" || code=$?
	if ((code > rc)); then
		rc=$code
	fi
}

start_receiver
idle_before=$(cpu_idle) || true
phases=()
if ((spread)); then
	run_phase "$tmp/phase1.json" "$(join floor:before "${single[@]}")"
	phases+=("$tmp/phase1.json")
	while ((${#receiver_pids[@]} < instances)); do
		start_receiver
	done
	run_phase "$tmp/phase2.json" "spread,floor:after"
	phases+=("$tmp/phase2.json")
else
	run_phase "$tmp/phase1.json" "$(join floor:before "${single[@]}" floor:after)"
	phases+=("$tmp/phase1.json")
fi

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
	echo "- Receivers: bin/receiver with its defaults (WORKERS, QUEUE_SIZE, the pgx pool size), LOG_LEVEL=warn," \
		"Redis and the HTTP sink (\`bench sink\`); 1 instance, ${#receiver_pids[@]} for spread"
	read -r timed requested wal <<<"$(pg_query "SELECT checkpoints_timed, checkpoints_req,
		pg_size_pretty(pg_current_wal_lsn() - '0/0'::pg_lsn) FROM pg_stat_bgwriter")"
	echo "- Postgres over the whole suite (from initdb): ${wal:-?} of WAL written, checkpoints: ${requested:-?} requested (WAL size), ${timed:-?} timed"
	echo "- Load: \`bench run $load_flags\` (fasthttp client on the same machine)"
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
		-setup "$tmp/setup.md" "${report_flags[@]}" "${done_phases[@]}" || rc=2
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
