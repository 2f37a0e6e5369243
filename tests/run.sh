#!/bin/sh
# run.sh - run every test of the build in $BUILD: unit binaries (cmocka), crash tests, then the
# integration scripts. Each file's own output is shown; the closing line adds up the test cases
# of every file (cmocka's "[  PASSED  ] N" / "[  FAILED  ] N", the scripts' "N passed, N failed")
# as "tests: N passed, N failed". Exits non-zero if any file failed.
set -u
BUILD="${BUILD:-build}"
export BUILD
log=$(mktemp)
trap 'rm -f "$log"' EXIT
files=0
bad_files=""
cases_pass=0
cases_fail=0
run_one() {
	name="$1"
	shift
	echo "==> $name"
	files=$((files + 1))
	"$@" >"$log" 2>&1
	rc=$?
	cat "$log"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p; s/^.*: \([0-9]*\) passed, [0-9]* failed.*/\1/p; s/^\([0-9]*\) passed, [0-9]* failed.*/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p; s/^.*[: ][0-9]* passed, \([0-9]*\) failed.*/\1/p; s/^[0-9]* passed, \([0-9]*\) failed.*/\1/p' "$log" | tail -1)
	cases_pass=$((cases_pass + ${p:-0}))
	cases_fail=$((cases_fail + ${f:-0}))
	if [ "$rc" -ne 0 ]; then
		bad_files="$bad_files $name"
		# A file that died before its summary still counts as a failure.
		[ "${f:-0}" -eq 0 ] && cases_fail=$((cases_fail + 1))
		echo "FAILED: $name (exit $rc)"
	fi
}
for t in "$BUILD"/tests/test_* "$BUILD"/tests/crash_*; do
	[ -x "$t" ] && [ -f "$t" ] || continue
	run_one "$(basename "$t")" "$t"
done
for t in tests/integration/*.sh; do
	[ -f "$t" ] || continue
	run_one "$(basename "$t")" sh "$t"
done
# The engine's tests once more on each accelerator backend that is present (the seam promises
# bit-identical results, so every answer must stay the same); absent ones are named.
accel_json=$("$BUILD/bin/sluice" accel --accel=cpu --json 2>/dev/null || true)
for mode in sim opencl; do
	if ! printf '%s' "$accel_json" | grep -q "\"name\":\"$mode\",\"available\":true"; then
		why=$(printf '%s' "$accel_json" | sed -n "s/.*\"name\":\"$mode\",\"available\":false,\"why\":\"\([^\"]*\)\".*/\1/p")
		echo "==> engine tests with SLUICE_ACCEL=$mode: skipped, backend absent: ${why:-unknown}"
		continue
	fi
	list="test_db test_model test_corrupt test_compact test_tables test_sst test_flush test_wal"
	list="$list test_manifest"
	for t in $list; do
		[ -x "$BUILD/tests/$t" ] || continue
		run_one "$t (SLUICE_ACCEL=$mode)" env SLUICE_ACCEL=$mode SL_TEST_QUICK=1 \
			"$BUILD/tests/$t"
	done
done
echo
echo "files: $files run${bad_files:+; failed:$bad_files}"
echo "tests: $cases_pass passed, $cases_fail failed"
[ -z "$bad_files" ]
