#!/bin/sh
# test_cluster.sh - replication and failover with real processes on loopback: three sluiced
# nodes (raft over TCP with the shared cluster key) receive the same MoldUDP64 feed from
# sluice-feed (A/B lines: --also-udp) and its rewinder; the leader is killed with SIGKILL at
# random points, again and again, and restarted as a follower; after each kill another node
# must lead and the feed goes on. At the end every node holds exactly the original stream (no
# gap, no duplicate: byte-for-byte the offline ingest of the same session), verify passes, a
# node without the key is refused and says so, writes and membership calls to a follower name
# the leader. Halfway, a follower loses its directory and rejoins (removed, restarted empty with
# --join, added back): it catches up by a snapshot whose tables come over the data channel
# while ingest goes on. SL_CLUSTER_ROUNDS (default 20) kills; SL_CLUSTER_LONG=1 for a long run
# (100); SL_TEST_QUICK (make check) 5.
# Run from the repository root with $BUILD set.
set -u
BUILD="${BUILD:-build}"
BIN="$BUILD/bin"
ROUNDS="${SL_CLUSTER_ROUNDS:-20}"
NODES="${SL_CLUSTER_NODES:-3}"     # 3 or 5
KILL="${SL_CLUSTER_KILL:-1}"       # nodes killed together each round: the leader, then
				   # followers (at most (NODES - 1) / 2)
IDS=$(seq 1 "$NODES")
[ -n "${SL_CLUSTER_LONG:-}" ] && ROUNDS=100
[ -n "${SL_TEST_QUICK:-}" ] && [ -z "${SL_CLUSTER_ROUNDS:-}" ] && ROUNDS=5
# The feed outlasts the kills: about 1.1 s a round.
RATE=20000
N=$((RATE * (ROUNDS * 11 / 10 + 4)))
tmp=$(mktemp -d /tmp/sl_cluster.XXXXXX)
pids=""
feed=""
cleanup() {
	for p in $pids $feed; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
[ -n "${SL_KEEP:-}" ] && trap - EXIT

. tests/integration/lib/check.sh

base=$((21000 + ($$ % 15000)))
feed_port=$base
peers=""
also=""
for i in $IDS; do
	peers="$peers${peers:+,}$i=127.0.0.1:$((base + 10 + i))"
	[ "$i" != 1 ] && also="$also --also-udp 127.0.0.1:$((base + i))"
done
head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/key"
head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/badkey"

admin() { echo "127.0.0.1:$((base + 20 + $1))"; }

start_node() { # $1 = node id, then extra options
	id=$1
	shift
	"$BIN/sluiced" --data "$tmp/n$id" --udp "127.0.0.1:$((base + id))" \
		--rerequest "127.0.0.1:$feed_port" --gap-timeout-ms 120000 --stats-ms 0 \
		--accel cpu --cluster-id ci --node "$id" --peers "$peers" \
		--cluster-key-file "$tmp/key" --admin "$(admin "$id")" --snapshot-entries 256 \
		--memtable-mb 1 "$@" >>"$tmp/n$id.out" 2>>"$tmp/n$id.err" &
	eval "pid$id=$!"
	pids="$pids $!"
}

status() { # $1 = node id; prints the JSON status or nothing
	"$BIN/sluice" cluster status --admin "$(admin "$1")" --json 2>/dev/null
}

field() { # $1 = JSON, $2 = a top-level key (a number or a quoted string)
	echo "$1" | sed 's/,"servers".*//' | sed -n "s/.*\"$2\":\"\{0,1\}\([a-z0-9.:]*\).*/\1/p"
}

# The node that leads and takes appends (0 when none yet).
ready_leader() {
	for i in $IDS; do
		s=$(status "$i")
		if [ "$(field "$s" role)" = leader ] && [ "$(field "$s" ready)" = true ]; then
			echo "$i"
			return
		fi
	done
	echo 0
}

leader_or() { # the ready leader, else $1
	l=$(ready_leader)
	[ "$l" = 0 ] && l=$1
	echo "$l"
}

now_ms() { date +%s%3N; }

# The reference: the same session ingested offline from a raw file.
"$BIN/sluice-feed" --messages "$N" --seed 9 --raw "$tmp/ref.raw" --quiet >/dev/null 2>&1
"$BIN/sluice" ingest --data "$tmp/ref" "$tmp/ref.raw" --quiet --accel cpu >/dev/null
"$BIN/sluice" replay --data "$tmp/ref" --from 1 >"$tmp/ref.txt"

for i in $IDS; do start_node "$i"; done
leader=0
t=0
while [ "$leader" = 0 ] && [ $t -lt 200 ]; do
	sleep 0.05
	leader=$(ready_leader)
	t=$((t + 1))
done
check "a leader is elected" [ "$leader" != 0 ]

# A node that lacks the key is refused at connect, and the refusal is logged.
"$BIN/sluiced" --data "$tmp/intruder" --cluster-id ci --node $((NODES + 1)) \
	--peers "$peers,$((NODES + 1))=127.0.0.1:$((base + 11 + NODES))" \
	--cluster-key-file "$tmp/badkey" \
	--stats-ms 0 --accel cpu >"$tmp/intruder.out" 2>"$tmp/intruder.err" &
intruder=$!
sleep 1.5
kill -9 $intruder 2>/dev/null
wait $intruder 2>/dev/null
check "a node without the cluster key is refused, and it is logged" \
	grep -q "refused a connection from .*claims node $((NODES + 1)).*wrong cluster key" \
	"$tmp"/n[0-9].err

follower=$((leader % NODES + 1))
"$BIN/sluice" cluster remove --admin "$(admin "$follower")" 3 >/dev/null 2>"$tmp/notleader.txt"
check "a membership change sent to a follower fails naming the leader" \
	grep -q "\"leader\":$leader," "$tmp/notleader.txt"
"$BIN/sluice" cluster status --admin "$(admin "$leader")" >"$tmp/status.txt"
check "cluster status shows the leader and each follower's lag" \
	grep -q "lag [0-9]* entries" "$tmp/status.txt"

# shellcheck disable=SC2086 # $also is a list of options
"$BIN/sluice-feed" --messages "$N" --seed 9 --rate "$RATE" --udp "127.0.0.1:$((base + 1))" \
	$also --port "$feed_port" --linger-ms 600000 --quiet >"$tmp/feed.out" 2>&1 &
feed=$!

# Kill the leader at random points; each time another node must take over.
seed=$$
kills=0
failovers=""
r=0
while [ $kills -lt "$ROUNDS" ] && [ $r -lt $((ROUNDS * 3)) ]; do
	r=$((r + 1))
	seed=$(((seed * 1103515245 + 12345) % 2147483648))
	sleep "0.$((300 + seed % 600))"
	leader=$(ready_leader)
	[ "$leader" = 0 ] && continue
	eval "victim=\$pid$leader"
	t0=$(now_ms)
	kill -9 "$victim"
	wait "$victim" 2>/dev/null
	# With five nodes, followers die with the leader: a majority still stands.
	others=""
	k=1
	while [ $k -lt "$KILL" ]; do
		o=$(((leader + k - 1) % NODES + 1))
		eval "p=\$pid$o"
		kill -9 "$p"
		wait "$p" 2>/dev/null
		others="$others $o"
		k=$((k + 1))
	done
	kills=$((kills + 1))
	new=0
	while [ "$new" = 0 ] && [ $(($(now_ms) - t0)) -lt 10000 ]; do
		new=$(ready_leader)
		[ "$new" = "$leader" ] && new=0
		[ "$new" = 0 ] && sleep 0.02
	done
	t1=$(now_ms)
	[ "$new" != 0 ] && failovers="$failovers $((t1 - t0))"
	echo "round $r: killed node $leader$others, node $new leads after $((t1 - t0)) ms"
	start_node "$leader"
	for o in $others; do start_node "$o"; done
	wipe_at=$((ROUNDS / 2))
	[ $wipe_at -lt 2 ] && wipe_at=2
	if [ $kills = $wipe_at ] && [ "$new" != 0 ]; then
		# A follower loses its directory. A voter that forgot its votes could elect a
		# second leader in a term, so it rejoins as a new member: removed, restarted
		# empty with --join, added back (`cluster add` returns once it has caught up,
		# by snapshot here, and is a voter again), all while ingest goes on.
		wiped=$((new % NODES + 1))
		# Every other node up again first (the ones just killed are restarting).
		t=0
		while [ $t -lt 150 ]; do
			up=0
			for i in $IDS; do
				[ "$i" = "$wiped" ] || [ -n "$(status "$i")" ] && up=$((up + 1))
			done
			[ "$up" = "$NODES" ] && break
			sleep 0.1
			t=$((t + 1))
		done
		eval "victim=\$pid$wiped"
		kill -9 "$victim"
		wait "$victim" 2>/dev/null
		rm -rf "$tmp/n$wiped"
		# Started empty as the voter it was, it refuses (its peers say the cluster ran).
		start_node "$wiped"
		eval "wp=\$pid$wiped"
		wait "$wp"
		wipe_rc=$?
		grep -q "must not vote again.*--join" "$tmp/n$wiped.err" && wipe_refused=1
		rm -rf "$tmp/n$wiped"
		# (A removal can report lost leadership and still commit under the next
		# leader: "server ID is not valid" then means it is done.)
		try=0
		until "$BIN/sluice" cluster remove --admin "$(admin "$(leader_or "$new")")" "$wiped" \
			>>"$tmp/wipe-remove.txt" 2>&1 || [ $try -ge 40 ] ||
			grep -q "ID is not valid" "$tmp/wipe-remove.txt"; do
			try=$((try + 1))
			sleep 0.5
		done
		start_node "$wiped" --join
		try=0
		until "$BIN/sluice" cluster add --admin "$(admin "$(leader_or "$new")")" "$wiped" \
			"127.0.0.1:$((base + 10 + wiped))" >>"$tmp/wipe-add.txt" 2>&1 ||
			[ $try -ge 40 ]; do
			try=$((try + 1))
			sleep 0.5
		done
		echo "round $r: node $wiped lost its directory; removed, restarted empty, added" \
			"back: $(tr -d '\n' <"$tmp/wipe-remove.txt") $(tr -d '\n' <"$tmp/wipe-add.txt")"
		wipe_added=$(grep -c '"ok":true' "$tmp/wipe-add.txt")
	fi
done
check "$ROUNDS rounds of SIGKILL on the leader ($kills kills)" [ "$kills" -ge "$ROUNDS" ]
nf=$(echo "$failovers" | wc -w)
check "after every kill another node led within 10 s ($nf of $kills)" [ "$nf" = "$kills" ]
echo "failover ms (kill to new leader ready):$failovers"

# The feed has sent everything; the cluster must commit all of it (what is missing comes from
# the rewinder), on every node.
t=0
done_nodes=0
while [ $t -lt 1200 ]; do
	done_nodes=0
	for i in $IDS; do
		[ "$(field "$(status "$i")" commit_seq)" = "$N" ] && done_nodes=$((done_nodes + 1))
	done
	[ "$done_nodes" = "$NODES" ] && break
	sleep 0.1
	t=$((t + 1))
done
for i in $IDS; do status "$i" | cut -c1-220; done
check "every node committed all $N messages" [ "$done_nodes" = "$NODES" ]
wipe_ok=0
[ "${wipe_refused:-0}" = 1 ] && [ "${wipe_rc:-0}" != 0 ] && wipe_ok=1
check "restarted empty without --join, it refused to vote again and said how to rejoin" \
	[ "$wipe_ok" = 1 ]
check "the node that lost its directory was added back as a voter" [ "${wipe_added:-0}" = 1 ]
check "it caught up by a snapshot whose tables came over the data channel" \
	grep -q "installed snapshot [0-9a-f]*: [1-9][0-9]* tables through seq" "$tmp/n$wiped.err"
check "its raft snapshot carried the tables' description, not the store" \
	grep -q "installed a snapshot through .*: [1-9][0-9]* fetched, .*this node had 0)" \
	"$tmp/n$wiped.err"

# Reads over the network: a follower (the node that rejoined, whose tables came by snapshot,
# unless it leads now) answers with what it applied, the same as the offline reference.
rd=$wiped
[ "$(field "$(status "$rd")" role)" = follower ] || rd=$(($(ready_leader) % NODES + 1))
# (An order still open: compaction drops fully executed or cancelled orders at the bottom
# level, which the reference, never compacted, still holds.)
for ref_order in $(grep " A add_order " "$tmp/ref.txt" | tail -20 |
	sed 's/.*locate=\([0-9]*\).*ref=\([0-9]*\).*/\1:\2/'); do
	ref_order=$(echo "$ref_order" | tr : ' ')
	"$BIN/sluice" get --data "$tmp/ref" order $ref_order --json >"$tmp/order.ref"
	grep -q '"status":"open"' "$tmp/order.ref" && break
done
"$BIN/sluice" get --admin "$(admin "$rd")" order $ref_order >"$tmp/order.net"
check "a follower serves a point read over the network, saying its applied_seq" \
	grep -q "^{\"node\":$rd,\"role\":\"follower\",\"applied_seq\":$N,\"order\":$(cat "$tmp/order.ref")}\$" \
	"$tmp/order.net"
"$BIN/sluice" replay --data "$tmp/ref" --from 1000 --count 50 --json | sed 's/"rx_ns":[0-9]*,//' \
	>"$tmp/replay.ref"
"$BIN/sluice" replay --admin "$(admin "$rd")" --from 1000 --count 50 |
	sed 's/.*"events":\[//; s/\],"count".*//; s/},{"seq"/}\n{"seq"/g' |
	sed 's/"rx_ns":[0-9]*,//' >"$tmp/replay.net"
check "and replays 50 events from seq 1000 exactly as the reference" \
	cmp -s "$tmp/replay.ref" "$tmp/replay.net"
kill -TERM "$feed" 2>/dev/null
wait "$feed" 2>/dev/null
feed=""
for i in $IDS; do
	eval "p=\$pid$i"
	kill -TERM "$p"
	wait "$p"
	check "node $i stops cleanly on SIGTERM" [ $? -eq 0 ]
done
pids=""
for i in $IDS; do
	"$BIN/sluice" replay --data "$tmp/n$i" --from 1 >"$tmp/n$i.txt" 2>"$tmp/n$i.replay.err"
	check "node $i holds exactly the original stream ($N messages, no gap, no duplicate)" \
		cmp -s "$tmp/ref.txt" "$tmp/n$i.txt"
	check "node $i: verify passes" "$BIN/sluice" verify --data "$tmp/n$i"
done
check_summary "${SL_CLUSTER_NAME:-test_cluster}"
