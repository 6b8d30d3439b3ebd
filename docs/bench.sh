#!/usr/bin/env bash
# Throughput figures of runnel, rerunnable: every server listens on
# 127.0.0.1 with a fresh data directory (fsync always), and the same
# `runnel bench` client measures each.
#
#   docs/bench.sh compare   runnel (and RUNNEL_BASE, an older runnel binary,
#                           when set) against kinesalite, side by side
#   docs/bench.sh scale     runnel at 1, 16, 256 and 1000 shards, across 1
#                           and 100 streams, and at 100 B, 10 KiB, 1 MiB
#                           and 10 MiB (less the key) records, with the
#                           server's memory and open files after each run
#   docs/bench.sh restart   time for runnel serve to be ready again after
#                           each count of RESTART_RECORDS records (the
#                           store grows from one to the next) and after
#                           1000 shards
#
# Environment: RUNNEL (default: built from this tree), RUNNEL_BASE,
# KINESALITE (default ~/.cache/runnel/kinesalite, where `npm install
# --prefix DIR kinesalite` puts it), TOTAL (records a run, default 200000),
# ROUNDS (compare's turns, default 3),
# RESTART_RECORDS (records after which to restart, ascending, default
# "1000000 3000000"). Output is one Markdown table row a run.
set -euo pipefail

cd "$(dirname "$0")/.."
mode="${1:-compare}"
total="${TOTAL:-200000}"
work="$(mktemp -d)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

runnel="${RUNNEL:-}"
if [ -z "$runnel" ]; then
	go build -o "$work/runnel" ./cmd/runnel
	runnel="$work/runnel"
fi
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1

# start_runnel BIN DIR: starts runnel serve on a free port; sets url and pid.
start_runnel() {
	local log="$work/serve-$RANDOM.log"
	"$1" serve --listen 127.0.0.1:0 --data-dir "$2" --shard-limit 2000 >"$log" 2>&1 &
	pid=$!
	pids+=("$pid")
	url=""
	for _ in $(seq 600); do
		url="$(grep -o 'url=http://[^ ]*' "$log" 2>/dev/null | head -1 | cut -d= -f2 || true)"
		[ -n "$url" ] && curl -fs -o /dev/null "$url/readyz" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$log" >&2
	echo "runnel serve did not start" >&2
	return 1
}

stop() {
	kill "$1"
	wait "$1" 2>/dev/null || true
}

# start_kinesalite: on a free port; sets url and pid.
start_kinesalite() {
	local dir="${KINESALITE:-${XDG_CACHE_HOME:-$HOME/.cache}/runnel/kinesalite}"
	local port
	port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
	# kinesalite's own command listens on every interface: this one only on
	# the loopback address.
	node -e 'require(process.argv[1])({shardLimit: 2000}).listen(+process.argv[2], "127.0.0.1")' \
		"$dir/node_modules/kinesalite" "$port" >"$work/kinesalite.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	url="http://127.0.0.1:$port"
	for _ in $(seq 100); do
		curl -s -o /dev/null "$url" && return 0
		sleep 0.1
	done
	echo "kinesalite did not start" >&2
	return 1
}

header() {
	echo "| $1 | put records/s | put MB/s | put p99 ms | get records/s | get MB/s | get p99 ms |$2"
	echo "|---|---|---|---|---|---|---|$3"
}

# bench LABEL EXTRA [bench flags...]: one row; EXTRA is appended as is,
# or, when it is "usage", the server's memory and open files with the
# stream still there.
bench() {
	local label="$1" extra="$2"
	shift 2
	if [ "$extra" = usage ]; then
		"$runnel" bench --endpoint "$url" --json --keep "$@" >"$work/out.json"
		extra="$(usage "$pid")"
	else
		"$runnel" bench --endpoint "$url" --json "$@" >"$work/out.json"
	fi
	jq -r --arg l "$label" --arg x "$extra" '"| \($l) | \(.put.records_per_sec|floor) | \(.put.mb_per_sec*10|floor/10) | \(.put.latency_ms.p99*10|floor/10) | \(.get.records_per_sec|floor) | \(.get.mb_per_sec*10|floor/10) | \(.get.latency_ms.p99*10|floor/10) |\($x)"' "$work/out.json"
}

# usage PID: the server's resident memory (MiB) and open files.
usage() {
	local rss fds
	rss="$(awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$1/status")"
	fds="$(ls "/proc/$1/fd" | wc -l)"
	echo " $rss | $fds |"
}

case "$mode" in
compare)
	# Rows: $total records in PutRecords of 500 from 4 clients into 4
	# shards, then 2000 single-record calls from one client (put p99 is the
	# latency of one record). The servers run side by side and are measured
	# in turn, ROUNDS times (default 3), so a change in the machine's load
	# touches them alike.
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
	servers=(runnel)
	start_runnel "$runnel" "$work/data-runnel"
	urls=("$url")
	if [ -n "${RUNNEL_BASE:-}" ]; then
		start_runnel "$RUNNEL_BASE" "$work/data-base"
		servers+=(base)
		urls+=("$url")
	fi
	start_kinesalite
	servers+=(kinesalite)
	urls+=("$url")
	header "server, run" "" ""
	for _ in $(seq "${ROUNDS:-3}"); do
		for i in "${!servers[@]}"; do
			url="${urls[$i]}"
			bench "${servers[$i]}, 500 a call" "" --total "$total"
			bench "${servers[$i]}, 1 a call" "" --total 2000 --shards 1 --clients 1 --records-per-call 1
		done
	done
	echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
	;;
scale)
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
	header "run" " RSS MiB | open files |" "---|---|"
	for shards in 1 16 256 1000; do
		start_runnel "$runnel" "$work/data-$shards"
		bench "$shards shards, 100 B" usage --shards "$shards" --clients 4 --total "$total"
		stop "$pid"
	done
	# The same work spread over 1 and 100 streams of one shard each: the
	# difference in memory and open files is what 99 streams cost.
	for streams in 1 100; do
		start_runnel "$runnel" "$work/data-streams-$streams"
		bench "$streams streams × 1 shard, 100 B" usage --streams "$streams" --shards 1 --clients 4 --total "$total"
		stop "$pid"
	done
	# A record's limit (1 MiB, or 10 MiB once the stream's
	# MaxRecordSizeInKiB is raised, which bench does) counts its
	# partition key too.
	for size in 10240 1048000 10485744; do
		start_runnel "$runnel" "$work/data-$size"
		n=$((total * 100 / size + 50))
		per=500
		[ "$size" -gt 10240 ] && per=9
		if [ "$size" -gt 1048576 ]; then
			n=$((total * 100 / size + 8))
			per=1
		fi
		bench "4 shards, $size B" usage --shards 4 --record-size "$size" --records-per-call "$per" --total "$n"
		stop "$pid"
	done
	echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
	;;
restart)
	# Each count adds records to the same store (a new stream of 4 shards
	# each time), then restarts the server.
	dir="$work/data-restart"
	start_runnel "$runnel" "$dir"
	have=0
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
	echo "| records | ready after restart s | RSS MiB | open files | data MiB |"
	echo "|---|---|---|---|---|"
	for n in ${RESTART_RECORDS:-1000000 3000000}; do
		"$runnel" bench --endpoint "$url" --keep --total $((n - have)) --json >/dev/null
		have=$n
		stop "$pid"
		start=$(date +%s.%N)
		start_runnel "$runnel" "$dir"
		echo "| $n | $(echo "$(date +%s.%N) - $start" | bc) |$(usage "$pid") $(du -sm "$dir" | cut -f1) |"
	done
	for i in $(seq 0 9); do
		"$runnel" stream create --endpoint "$url" "shards-$i" --shards 100 >/dev/null 2>&1
	done
	stop "$pid"
	start=$(date +%s.%N)
	start_runnel "$runnel" "$dir"
	echo "ready after another 1000 shards: $(echo "$(date +%s.%N) - $start" | bc) s, $(usage "$pid" | cut -d'|' -f1 | xargs) MiB RSS"
	stop "$pid"
	;;
*)
	echo "usage: $0 compare|scale|restart" >&2
	exit 2
	;;
esac
