#!/bin/sh
# test_e2e_udp.sh - the appliance end to end on loopback: sluice-feed sends a generated session
# over UDP with loss, duplication and reordering and answers MoldUDP64 re-requests; sluiced
# receives it with the recvmmsg front end; the stored stream must equal the original exactly
# (compared with an offline ingest of the same session), verify must pass, and a restart must
# continue the session where it stopped. Run from the repository root with $BUILD set.
set -u
BUILD="${BUILD:-build}"
BIN="$BUILD/bin"
N="${SL_E2E_MESSAGES:-200000}"
[ -n "${SL_TEST_QUICK:-}" ] && N=50000
tmp=$(mktemp -d /tmp/sl_e2e.XXXXXX)
daemon=""
cleanup() {
	[ -n "$daemon" ] && kill -9 "$daemon" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
[ -n "${SL_KEEP:-}" ] && trap - EXIT

. tests/integration/lib/check.sh

# Ports from the pid, so parallel runs do not collide.
base=$((20000 + ($$ % 20000)))
feed_port=$base
rx_port=$((base + 1))

wait_listen() {
	i=0
	while [ $i -lt 100 ]; do
		grep -q "listening on" "$1" 2>/dev/null && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

run_session() { # $1 = data dir, $2 = messages, $3 = log
	"$BIN/sluiced" --data "$1" --udp "127.0.0.1:$rx_port" --rerequest "127.0.0.1:$feed_port" \
		--exit-at-end --gap-timeout-ms 20000 --stats-ms 0 >"$3.out" 2>"$3.err" &
	daemon=$!
	wait_listen "$3.err" || echo "sluiced did not start: $(cat "$3.err")"
	"$BIN/sluice-feed" --messages "$2" --seed 5 --rate 400000 --udp "127.0.0.1:$rx_port" \
		--port "$feed_port" --loss 0.02 --dup 0.02 --reorder 0.02 --linger-ms 3000 \
		--quiet >"$3.feed" 2>&1 &
	feed=$!
	# sluiced exits by itself at the end of the session; bound the wait.
	i=0
	while kill -0 "$daemon" 2>/dev/null && [ $i -lt 1200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	if kill -0 "$daemon" 2>/dev/null; then
		echo "sluiced still running after 60 s; stopping it"
		kill -TERM "$daemon"
	fi
	wait "$daemon"
	rc=$?
	daemon=""
	wait "$feed"
	return $rc
}

# The reference: the same session ingested offline from a raw file.
"$BIN/sluice-feed" --messages "$N" --seed 5 --raw "$tmp/ref.raw" --quiet >/dev/null 2>&1
"$BIN/sluice" ingest --data "$tmp/ref" "$tmp/ref.raw" --quiet >/dev/null
"$BIN/sluice" replay --data "$tmp/ref" --from 1 >"$tmp/ref.txt"

run_session "$tmp/live" "$N" "$tmp/run1"
check "sluiced exits 0 at end of session" [ $? -eq 0 ]
cat "$tmp/run1.out"
grep summary "$tmp/run1.feed" 2>/dev/null || tail -1 "$tmp/run1.feed"
"$BIN/sluice" replay --data "$tmp/live" --from 1 >"$tmp/live.txt"
check "stored stream equals the original ($N messages)" cmp -s "$tmp/ref.txt" "$tmp/live.txt"
check "feed dropped packets (the test exercised loss)" \
	grep -Eq 'dropped=[1-9]' "$tmp/run1.feed"
check "gaps were detected and all filled" \
	grep -Eq 'gaps [1-9][0-9]* detected / [1-9][0-9]* filled / 0 lost' "$tmp/run1.out"
check "duplicates were dropped" grep -Eq 'duplicates [1-9]' "$tmp/run1.out"
check "durable seq is the last message" grep -q "durable seq $N," "$tmp/run1.out"
check "verify passes" "$BIN/sluice" verify --data "$tmp/live"

# SIGTERM mid-session: a clean stop, and everything it had received is durable.
"$BIN/sluiced" --data "$tmp/restart" --udp "127.0.0.1:$rx_port" --stats-ms 0 \
	>"$tmp/term.out" 2>"$tmp/term.err" &
daemon=$!
wait_listen "$tmp/term.err"
"$BIN/sluice-feed" --messages "$N" --seed 5 --rate 200000 --udp "127.0.0.1:$rx_port" \
	--linger-ms 0 --quiet >/dev/null 2>&1 &
feed=$!
sleep 0.1
kill -TERM "$daemon"
wait "$daemon"
check "SIGTERM stops sluiced with status 0" [ $? -eq 0 ]
daemon=""
wait "$feed"
seq=$(sed -n 's/.*durable seq \([0-9]*\),.*/\1/p' "$tmp/term.out")
got=$("$BIN/sluice" replay --data "$tmp/restart" --from 1 | wc -l)
check "after SIGTERM the log holds exactly the durable sequence ($seq)" [ "$got" = "$seq" ]
check "it stopped mid-session" test "$seq" -gt 0 -a "$seq" -lt "$N"
check "verify passes after SIGTERM" "$BIN/sluice" verify --data "$tmp/restart"

# Restart on the same store while the whole session is sent again: what is stored already
# arrives as duplicates and is dropped, the rest is appended, and the result is the original.
run_session "$tmp/restart" "$N" "$tmp/run2"
check "restarted sluiced exits 0" [ $? -eq 0 ]
"$BIN/sluice" replay --data "$tmp/restart" --from 1 >"$tmp/live2.txt"
check "after restart the stream equals the original" cmp -s "$tmp/ref.txt" "$tmp/live2.txt"
check "recovery reported the first run's records" \
	grep -q "recovered $seq records" "$tmp/run2.err"

# A query on the stored state, as an operator would.
first_add=$(grep -m1 ' A add_order ' "$tmp/live2.txt")
loc=$(echo "$first_add" | sed -n 's/.* locate=\([0-9]*\) .*/\1/p')
ref=$(echo "$first_add" | sed -n 's/.* ref=\([0-9]*\) .*/\1/p')
"$BIN/sluice" get --data "$tmp/live" order "$loc" "$ref" --json >"$tmp/order.json" 2>&1 || true
check "get order prints JSON with the documented keys" grep -q "^{\"locate\":$loc,\"ref\":$ref,\"side\":\"[BS]\",\"shares\":[0-9]*,\"price\":[0-9]*,\"status\":\"[a-z]*\"" "$tmp/order.json"

check_summary test_e2e_udp
