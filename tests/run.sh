#!/bin/sh
# run.sh - run every test of the build in $BUILD: unit binaries (cmocka), crash tests, then the
# integration scripts. Each file's own output is shown; the last line is the total, as
# "N passed, N failed". Exits non-zero if any file failed.
set -u
BUILD="${BUILD:-build}"
export BUILD
pass=0
fail=0
failed=""
run_one() {
	name="$1"
	shift
	echo "==> $name"
	if "$@"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		failed="$failed $name"
		echo "FAILED: $name"
	fi
}
for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	case "$t" in *.o | *.d) continue ;; esac
	run_one "$(basename "$t")" "$t"
done
for t in "$BUILD"/tests/crash_*; do
	[ -x "$t" ] || continue
	run_one "$(basename "$t")" "$t"
done
for t in tests/integration/*.sh; do
	[ -f "$t" ] || continue
	run_one "$(basename "$t")" sh "$t"
done
echo
[ -n "$failed" ] && echo "failed files:$failed"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
