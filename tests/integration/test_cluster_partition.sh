#!/bin/sh
# test_cluster_partition.sh - a network partition with real processes: three sluiced nodes, each
# in its own network namespace made by the test (veth pairs on a bridge in a fourth one that
# also runs the feed and its rewinder). The leader is cut off (its link goes down) while the
# feed runs: the minority side stops acknowledging, the majority elects a leader that resumes
# the feed; after healing, the old leader's unacknowledged tail is discarded and every node
# converges on exactly the original stream. Needs root and `ip netns` (iproute2); without them
# it says so in one line. Run from the repository root with $BUILD set.
set -u
BUILD="${BUILD:-build}"
BIN="$(cd "$BUILD/bin" && pwd)"
. tests/integration/lib/check.sh
tag="slp$$"
if [ "$(id -u)" != 0 ] || ! ip netns add "${tag}h" 2>/dev/null; then
	echo "test_cluster_partition: skipped: needs root and network namespaces (ip netns)"
	check_summary test_cluster_partition
	exit 0
fi
RATE=20000
N=$((RATE * 14))
tmp=$(mktemp -d /tmp/sl_part.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill -9 "$p" 2>/dev/null; done
	for i in 1 2 3; do ip netns del "$tag$i" 2>/dev/null; done
	ip netns del "${tag}h" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# The hub: a bridge at 10.231.0.254 for the feed; node i at 10.231.0.i behind veth "e0".
H="ip netns exec ${tag}h"
$H ip link set lo up
$H ip link add br0 type bridge
$H ip addr add 10.231.0.254/24 dev br0
$H ip link set br0 up
for i in 1 2 3; do
	ip netns add "$tag$i"
	ip link add "${tag}v$i" type veth peer name e0 netns "$tag$i"
	ip link set "${tag}v$i" netns "${tag}h"
	$H ip link set "${tag}v$i" master br0 up
	ip netns exec "$tag$i" ip link set lo up
	ip netns exec "$tag$i" ip addr add "10.231.0.$i/24" dev e0
	ip netns exec "$tag$i" ip link set e0 up
done
peers="1=10.231.0.1:7001,2=10.231.0.2:7001,3=10.231.0.3:7001"
head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/key"

start_node() {
	ip netns exec "$tag$1" "$BIN/sluiced" --data "$tmp/n$1" --udp "10.231.0.$1:26477" \
		--rerequest 10.231.0.254:26400 --gap-timeout-ms 120000 --stats-ms 0 --accel cpu \
		--cluster-id part --node "$1" --peers "$peers" --cluster-key-file "$tmp/key" \
		--admin 127.0.0.1:7100 --snapshot-entries 1024 \
		>>"$tmp/n$1.out" 2>>"$tmp/n$1.err" &
	eval "pid$1=$!"
	pids="$pids $!"
}
# A node's status, asked from inside its namespace (it answers even while cut off).
status() {
	ip netns exec "$tag$1" "$BIN/sluice" cluster status --admin 127.0.0.1:7100 --json \
		2>/dev/null
}
field() {
	echo "$1" | sed 's/,"servers".*//' | sed -n "s/.*\"$2\":\"\{0,1\}\([a-z0-9.:]*\).*/\1/p"
}
ready_leader() { # among the nodes given
	for i in "$@"; do
		s=$(status "$i")
		if [ "$(field "$s" role)" = leader ] && [ "$(field "$s" ready)" = true ]; then
			echo "$i"
			return
		fi
	done
	echo 0
}

"$BIN/sluice-feed" --messages "$N" --seed 11 --raw "$tmp/ref.raw" --quiet >/dev/null 2>&1
"$BIN/sluice" ingest --data "$tmp/ref" "$tmp/ref.raw" --quiet --accel cpu >/dev/null
"$BIN/sluice" replay --data "$tmp/ref" --from 1 >"$tmp/ref.txt"

for i in 1 2 3; do start_node "$i"; done
old=0
t=0
while [ "$old" = 0 ] && [ $t -lt 100 ]; do
	sleep 0.1
	old=$(ready_leader 1 2 3)
	t=$((t + 1))
done
check "a leader is elected across the namespaces" [ "$old" != 0 ]
$H "$BIN/sluice-feed" --messages "$N" --seed 11 --rate "$RATE" --udp 10.231.0.1:26477 \
	--also-udp 10.231.0.2:26477 --also-udp 10.231.0.3:26477 --port 26400 \
	--linger-ms 600000 --quiet >"$tmp/feed.out" 2>&1 &
feed=$!
pids="$pids $feed"
sleep 3
# Cut the leader off: no raft traffic, no feed.
ip netns exec "$tag$old" ip link set e0 down
cut_at=$(field "$(status "$old")" commit_seq)
rest=""
for i in 1 2 3; do [ "$i" != "$old" ] && rest="$rest $i"; done
new=0
t=0
while [ "$new" = 0 ] && [ $t -lt 100 ]; do
	sleep 0.1
	# shellcheck disable=SC2086
	new=$(ready_leader $rest)
	t=$((t + 1))
done
check "the majority elects a new leader" [ "$new" != 0 ]
sleep 3
s=$(status "$old")
echo "cut-off node $old: $(echo "$s" | cut -c1-200)"
check "the cut-off node commits nothing more (commit_seq $cut_at)" \
	[ "$(field "$s" commit_seq)" = "$cut_at" ]
s=$(status "$new")
check "the majority goes on with the feed (commit_seq $(field "$s" commit_seq) > $cut_at)" \
	[ "$(field "$s" commit_seq)" -gt "$cut_at" ]
ip netns exec "$tag$old" ip link set e0 up
t=0
while [ $t -lt 600 ]; do
	n=0
	for i in 1 2 3; do [ "$(field "$(status "$i")" commit_seq)" = "$N" ] && n=$((n + 1)); done
	[ "$n" = 3 ] && break
	sleep 0.1
	t=$((t + 1))
done
check "after healing every node committed all $N messages" [ "$n" = 3 ]
check "the old leader follows the new term" [ "$(field "$(status "$old")" role)" = follower ]
kill -TERM $feed 2>/dev/null
for i in 1 2 3; do
	eval "p=\$pid$i"
	kill -TERM "$p"
	wait "$p"
	check "node $i stops cleanly" [ $? -eq 0 ]
done
for i in 1 2 3; do
	"$BIN/sluice" replay --data "$tmp/n$i" --from 1 >"$tmp/n$i.txt"
	check "node $i holds exactly the original stream" cmp -s "$tmp/ref.txt" "$tmp/n$i.txt"
	check "node $i: verify passes" "$BIN/sluice" verify --data "$tmp/n$i"
done
check_summary test_cluster_partition
