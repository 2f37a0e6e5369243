#!/bin/sh
# test_e2e_xdp.sh - the XDP/AF_XDP front end end to end, in two network namespaces joined by a
# veth pair this script makes: sluice-feed sends a generated session on an A and a B line (each
# with its own loss, mostly not the same packets) and is the MoldUDP64 rewinder; sluiced --xdp
# captures it on the other end. The stored stream must equal the original exactly with no gap
# left open (what both lines lost comes from the rewinder), duplicates must be dropped in XDP,
# ping and TCP must keep working while the program is attached, and the program must go away
# on exit and on a crash, and replace (not stack on) a stale one. Needs root; without it (or
# without namespaces) it says so in one line. Run from the repository root with $BUILD set.
set -u
BUILD="${BUILD:-build}"
BIN="$BUILD/bin"
N="${SL_E2E_MESSAGES:-200000}"
[ -n "${SL_TEST_QUICK:-}" ] && N=50000

if [ "$(id -u)" != 0 ]; then
	echo "test_e2e_xdp: not run: not root (needs network namespaces, veth and XDP)"
	exit 0
fi
for tool in ip ping nc setpriv; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "test_e2e_xdp: not run: $tool is missing (scripts/deps.sh build installs it)"
		exit 0
	fi
done

tag="slx$$"
nsf="${tag}f" # the feed's side
nsr="${tag}r" # the appliance's side
vf="${tag}f"
vr="${tag}r"
tmp=$(mktemp -d /tmp/sl_xdp.XXXXXX)
daemon=""
feed=""
cleanup() {
	[ -n "$daemon" ] && kill -9 "$daemon" 2>/dev/null
	[ -n "$feed" ] && kill -9 "$feed" 2>/dev/null
	ip netns del "$nsf" 2>/dev/null
	ip netns del "$nsr" 2>/dev/null
	ip link del "$vf" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
[ -n "${SL_KEEP:-}" ] && trap - EXIT

if ! ip netns add "$nsf" 2>"$tmp/err" || ! ip netns add "$nsr" 2>>"$tmp/err" ||
	! ip link add "$vf" type veth peer name "$vr" 2>>"$tmp/err"; then
	echo "test_e2e_xdp: not run: cannot make namespaces and a veth pair: $(head -1 "$tmp/err")"
	exit 0
fi

. tests/integration/lib/check.sh

ip link set "$vf" netns "$nsf"
ip link set "$vr" netns "$nsr"
ip -n "$nsf" addr add 10.77.0.1/24 dev "$vf"
ip -n "$nsr" addr add 10.77.0.2/24 dev "$vr"
ip -n "$nsf" link set lo up
ip -n "$nsr" link set lo up
ip -n "$nsf" link set "$vf" up
ip -n "$nsr" link set "$vr" up

feed_port=26400
line_a=26477
line_b=26478
lines="10.77.0.2:$line_a,10.77.0.2:$line_b"
inf() { ip netns exec "$nsf" "$@"; }
inr() { ip netns exec "$nsr" "$@"; }
ping_ok() { ip netns exec "$nsf" ping -q "$@" 10.77.0.2 >/dev/null 2>&1; }

wait_for() { # $1 = file, $2 = text: up to 5 s
	i=0
	while [ $i -lt 100 ]; do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

wait_exit() { # $1 = pid, $2 = seconds: then SIGTERM
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt $(($2 * 20)) ]; do
		sleep 0.05
		i=$((i + 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		echo "pid $1 still running after $2 s; stopping it"
		kill -TERM "$1"
	fi
	wait "$1"
}

xdp_attached() { ip -n "$nsr" link show dev "$vr" | grep -q 'prog/xdp'; }
# The kernel releases a closed BPF link from a work queue: give it up to 3 s.
xdp_detached() {
	i=0
	while xdp_attached; do
		[ $i -ge 60 ] && return 1
		sleep 0.05
		i=$((i + 1))
	done
}

# The reference: the same session ingested offline from a raw file.
"$BIN/sluice-feed" --messages "$N" --seed 5 --raw "$tmp/ref.raw" --quiet >/dev/null 2>&1
"$BIN/sluice" ingest --data "$tmp/ref" "$tmp/ref.raw" --quiet >/dev/null
"$BIN/sluice" replay --data "$tmp/ref" --from 1 >"$tmp/ref.txt"

check "ping through the veth before XDP" ping_ok -c 1 -W 2

# ---- The session on two lines ---------------------------------------------------------------
ip netns exec "$nsr" "$BIN/sluiced" --data "$tmp/live" --xdp "$vr" --feed "$lines" \
	--rerequest "10.77.0.1:$feed_port" --exit-at-end --gap-timeout-ms 20000 --stats-ms 0 \
	>"$tmp/run.out" 2>"$tmp/run.err" &
daemon=$!
wait_for "$tmp/run.err" "listening on" || echo "sluiced did not start: $(cat "$tmp/run.err")"
check "sluiced attached the program (native mode, copy fallback on veth)" \
	grep -q "listening on $vr with XDP (native mode, copy, 1 queue" "$tmp/run.err"
check "XDP program attached while sluiced runs" xdp_attached

# Ping and TCP pass through the program to the kernel stack.
check "ping passes with the program attached" ping_ok -c 3 -i 0.2 -W 2
ip netns exec "$nsr" timeout 10 nc -l 10.77.0.2 5555 >"$tmp/tcp.out" 2>/dev/null &
srv=$!
sleep 0.2
printf 'hello over tcp\n' | inf timeout 5 nc -N -w 3 10.77.0.2 5555 >/dev/null 2>&1
wait "$srv"
check "TCP passes with the program attached" grep -qx 'hello over tcp' "$tmp/tcp.out"

ip netns exec "$nsf" "$BIN/sluice-feed" --messages "$N" --seed 5 --rate 300000 \
	--udp "10.77.0.2:$line_a" --udp-b "10.77.0.2:$line_b" --loss 0.03 --loss-b 0.02 --port "$feed_port" \
	--linger-ms 3000 --quiet >"$tmp/feed.out" 2>&1 &
feed=$!
wait_exit "$daemon" 40
rc=$?
daemon=""
check "sluiced exits 0 at the end of the session" [ "$rc" -eq 0 ]
wait "$feed"
feed=""
cat "$tmp/run.out"
cat "$tmp/feed.out"
inr true # the namespace is still there
"$BIN/sluice" replay --data "$tmp/live" --from 1 >"$tmp/live.txt"
check "stored stream equals the original ($N messages)" cmp -s "$tmp/ref.txt" "$tmp/live.txt"
check "durable seq is the last message" grep -q "durable seq $N," "$tmp/run.out"
check "no gap left open (0 lost)" grep -Eq '/ 0 lost, ' "$tmp/run.out"
drop_a=$(sed -n 's/.* dropped=\([0-9]*\) .*/\1/p' "$tmp/feed.out")
drop_b=$(sed -n 's/.* dropped_b=\([0-9]*\) .*/\1/p' "$tmp/feed.out")
both=$(sed -n 's/.* dropped_both=\([0-9]*\).*/\1/p' "$tmp/feed.out")
check "both lines lost packets, different ones (A ${drop_a:-?}, B ${drop_b:-?}, both ${both:-?})" \
	sh -c "[ ${drop_a:-0} -gt 0 ] && [ ${drop_b:-0} -gt 0 ] && [ ${both:-0} -lt ${drop_b:-0} ]"
if [ "${both:-0}" -gt 0 ]; then
	check "what both lines lost ($both packets) was re-requested and filled" \
		grep -Eq 'gaps [1-9][0-9]* detected / [1-9][0-9]* filled / 0 lost, re-requests [1-9]' \
		"$tmp/run.out"
else
	check "nothing lost on both lines: no re-request needed" \
		grep -Eq ' 0 lost, re-requests 0,' "$tmp/run.out"
fi
dups=$(sed -n 's/.*duplicates dropped \([0-9]*\),.*/\1/p' "$tmp/run.out")
host_dups=$(sed -n 's/.*, duplicates \([0-9]*\), gaps.*/\1/p' "$tmp/run.out")
check "XDP dropped B's copies of what A delivered (${dups:-?}) and the host saw few (${host_dups:-?})" \
	sh -c "[ ${dups:-0} -gt $((N / 100)) ] && [ ${host_dups:-1} -lt ${dups:-0} ]"
check "no socket dropped a frame" grep -q 'socket drops 0 ' "$tmp/run.out"
check "XDP program detached at exit" xdp_detached
check "verify passes" "$BIN/sluice" verify --data "$tmp/live"

# ---- Crash and stale programs ---------------------------------------------------------------
ip netns exec "$nsr" "$BIN/sluiced" --data "$tmp/crash" --xdp "$vr" --feed "$lines" --stats-ms 0 \
	>/dev/null 2>"$tmp/crash.err" &
daemon=$!
wait_for "$tmp/crash.err" "listening on"
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
daemon=""
check "a killed sluiced leaves no program attached" xdp_detached

# A program of ours attached the old way (netlink, outliving its loader) is replaced.
if inr ip link set dev "$vr" xdpdrv obj "$BUILD/bpf/sluice.bpf.o" sec xdp 2>"$tmp/ip.err"; then
	old=$(ip -n "$nsr" -d link show dev "$vr" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p')
	ip netns exec "$nsr" "$BIN/sluiced" --data "$tmp/stale" --xdp "$vr" --feed "$lines" --stats-ms 0 \
		>"$tmp/stale.out" 2>"$tmp/stale.err" &
	daemon=$!
	wait_for "$tmp/stale.err" "listening on"
	check "a stale sluice_xdp program (id $old) is replaced" \
		grep -q "replaced a stale sluice_xdp program (id $old)" "$tmp/stale.err"
	new=$(ip -n "$nsr" -d link show dev "$vr" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p')
	check "exactly one program attached, not the stale one ($new)" \
		sh -c "[ -n '$new' ] && [ '$new' != '$old' ]"
	inr "$BIN/sluiced" --data "$tmp/second" --xdp "$vr" --feed "$lines" >/dev/null \
		2>"$tmp/second.err"
	rc=$?
	check "a second sluiced on the same interface is refused, naming the running one" \
		sh -c "[ $rc -ne 0 ] && grep -q 'a running sluiced holds its XDP program' \
		'$tmp/second.err'"
	inf "$BIN/sluice-feed" --messages 20000 --seed 7 --udp "10.77.0.2:$line_a" \
		--udp-b "10.77.0.2:$line_b" --linger-ms 0 --quiet >/dev/null 2>&1
	sleep 0.3
	kill -TERM "$daemon"
	wait "$daemon"
	daemon=""
	check "the replacing program steers the feed" grep -q 'durable seq 20000,' "$tmp/stale.out"
	check "nothing attached after it stops" xdp_detached
else
	echo "(ip link cannot attach an object here: $(head -1 "$tmp/ip.err"); stale-program check not run)"
fi

# Generic mode (the kernel runs the program on socket buffers) takes the same path.
ip netns exec "$nsr" "$BIN/sluiced" --data "$tmp/generic" --xdp "$vr" --feed "$lines" \
	--xdp-mode generic --exit-at-end --stats-ms 0 >"$tmp/generic.out" 2>"$tmp/generic.err" &
daemon=$!
wait_for "$tmp/generic.err" "listening on"
inf "$BIN/sluice-feed" --messages 20000 --seed 9 --udp "10.77.0.2:$line_a" \
	--udp-b "10.77.0.2:$line_b" --linger-ms 500 --quiet >/dev/null 2>&1
wait_exit "$daemon" 10
daemon=""
check "generic mode: a session captured whole, B's copies dropped in XDP" \
	sh -c "grep -q 'generic mode' '$tmp/generic.err' && grep -q 'durable seq 20000,' \
	'$tmp/generic.out' && grep -Eq 'duplicates dropped [1-9]' '$tmp/generic.out'"

# ---- Where XDP is unavailable ---------------------------------------------------------------
inr "$BIN/sluiced" --data "$tmp/zc" --xdp "$vr" --feed "$lines" --zero-copy on >/dev/null \
	2>"$tmp/zc.err"
rc=$?
check "--zero-copy on where the driver has none (veth) fails and says so" \
	sh -c "[ $rc -ne 0 ] && grep -q 'zero-copy AF_XDP on $vr queue 0: Operation not supported' \
	'$tmp/zc.err'"
inr setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN/sluiced" --data "$tmp/nobody" \
	--xdp "$vr" --feed "$lines" >/dev/null 2>"$tmp/nobody.err"
rc=$?
check "without root sluiced --xdp says so and exits non-zero" \
	sh -c "[ $rc -ne 0 ] && grep -q 'not root' '$tmp/nobody.err'"
ip netns exec "$nsr" "$BIN/sluiced" --data "$tmp/noif" --xdp "${tag}x" --feed "$lines" >/dev/null 2>"$tmp/noif.err"
rc=$?
check "a missing interface is named and sluiced exits non-zero" \
	sh -c "[ $rc -ne 0 ] && grep -q \"no network interface '${tag}x'\" '$tmp/noif.err'"

check_summary test_e2e_xdp
