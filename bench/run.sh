#!/bin/sh
# run.sh - run the benchmarks of the build in $BUILD (make bench sets it): bench_ingest, Sluice
# against RocksDB on durable ITCH ingest, then bench_store, the storage engine end to end
# (durable ingest, point lookups, full compaction, recovery) against RocksDB, then bench_accel,
# the accelerator operations on every backend present (cpu, auto, opencl, sim and its modelled
# FPGA/GPU times), then bench_xdp, the AF_XDP front end against the recvmmsg UDP front end in a
# veth pair (root only), then bench_cluster, replication (single node against a 3-node raft
# cluster: ingest, commit latency at 100k msg/s, failover over SIGKILLs of the leader).
# BENCH_ONLY=ingest, store, accel, xdp or cluster runs only that one. Extra options come from
# $BENCH_ARGS for bench_ingest, $BENCH_STORE_ARGS for bench_store, $BENCH_XDP_ARGS for bench_xdp
# and $BENCH_CLUSTER_ARGS for bench_cluster (split on blanks), e.g.
# BENCH_ARGS="--messages 500000 --json" BENCH_STORE_ARGS="--messages 50M". The reports (stdout)
# are also written to $BUILD/bench/results.txt (bench_ingest) and $BUILD/bench/results-store.txt
# (bench_store), $BUILD/bench/results-accel.txt, results-xdp.txt and results-cluster.txt;
# progress goes to stderr. Exits with the first failing benchmark's status.
set -eu
BUILD="${BUILD:-build}"
only="${BENCH_ONLY:-}"
case "$only" in
"" | ingest | store | accel | xdp | cluster) ;;
*)
	echo "run.sh: BENCH_ONLY must be ingest, store, accel, xdp or cluster, not '$only'" >&2
	exit 2
	;;
esac
# POSIX sh has no pipefail: a benchmark's status travels through a file past tee.
status="$(mktemp)"
trap 'rm -f "$status"' EXIT

# run_bench NAME REPORT [OPTION...]: the report on stdout and in REPORT, the status in $status.
run_bench() {
	bin="$BUILD/bench/$1"
	out="$2"
	shift 2
	if [ ! -x "$bin" ]; then
		echo "run.sh: $bin is missing; build it with: make bench" >&2
		echo 1 >"$status"
		return 0
	fi
	{
		rc=0
		"$bin" "$@" || rc=$?
		echo "$rc" >"$status"
	} | tee "$out"
	echo "run.sh: report in $out" >&2
}

rc=0
if [ -z "$only" ] || [ "$only" = ingest ]; then
	# shellcheck disable=SC2086 # BENCH_ARGS is a list of options
	run_bench bench_ingest "$BUILD/bench/results.txt" ${BENCH_ARGS:-}
	rc="$(cat "$status")"
fi
if [ -z "$only" ] || [ "$only" = store ]; then
	# shellcheck disable=SC2086 # BENCH_STORE_ARGS is a list of options
	run_bench bench_store "$BUILD/bench/results-store.txt" ${BENCH_STORE_ARGS:-}
	r="$(cat "$status")"
	if [ "$rc" -eq 0 ]; then
		rc="$r"
	fi
fi
if [ -z "$only" ] || [ "$only" = accel ]; then
	run_bench bench_accel "$BUILD/bench/results-accel.txt"
	r="$(cat "$status")"
	if [ "$rc" -eq 0 ]; then
		rc="$r"
	fi
fi
if [ -z "$only" ] || [ "$only" = xdp ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "run.sh: bench_xdp not run: not root (it makes a veth pair and attaches XDP)" >&2
	else
		# shellcheck disable=SC2086 # BENCH_XDP_ARGS is a list of options
		run_bench bench_xdp "$BUILD/bench/results-xdp.txt" ${BENCH_XDP_ARGS:-}
		r="$(cat "$status")"
		if [ "$rc" -eq 0 ]; then
			rc="$r"
		fi
	fi
fi
if [ -z "$only" ] || [ "$only" = cluster ]; then
	# shellcheck disable=SC2086 # BENCH_CLUSTER_ARGS is a list of options
	run_bench bench_cluster "$BUILD/bench/results-cluster.txt" ${BENCH_CLUSTER_ARGS:-}
	r="$(cat "$status")"
	if [ "$rc" -eq 0 ]; then
		rc="$r"
	fi
fi
exit "$rc"
