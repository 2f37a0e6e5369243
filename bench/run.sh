#!/bin/sh
# run.sh - run the benchmarks of the build in $BUILD (make bench sets it): bench_ingest, Sluice
# against RocksDB on durable ITCH ingest. Extra options come from $BENCH_ARGS (split on blanks),
# e.g. BENCH_ARGS="--messages 500000 --json". The report (stdout) is also written to
# $BUILD/bench/results.txt; progress goes to stderr. Exits with the benchmark's status.
set -eu
BUILD="${BUILD:-build}"
bin="$BUILD/bench/bench_ingest"
out="$BUILD/bench/results.txt"
if [ ! -x "$bin" ]; then
	echo "run.sh: $bin is missing; build it with: make bench" >&2
	exit 1
fi
# POSIX sh has no pipefail: the benchmark's status travels through a file past tee.
status="$(mktemp)"
trap 'rm -f "$status"' EXIT
# shellcheck disable=SC2086 # BENCH_ARGS is a list of options
{
	rc=0
	"$bin" ${BENCH_ARGS:-} || rc=$?
	echo "$rc" >"$status"
} | tee "$out"
rc="$(cat "$status")"
echo "run.sh: report in $out" >&2
exit "$rc"
