# check.sh - sourced by the integration scripts: `check NAME COMMAND...` runs the command and
# counts it as passed or failed; `check_summary SCRIPT` prints "SCRIPT: N passed, N failed"
# and returns non-zero if anything failed.
pass=0
fail=0
check() {
	name="$1"
	shift
	if "$@"; then
		pass=$((pass + 1))
		echo "ok   $name"
	else
		fail=$((fail + 1))
		echo "FAIL $name"
	fi
}
check_summary() {
	echo "$1: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}
