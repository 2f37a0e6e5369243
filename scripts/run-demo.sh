#!/bin/sh
# run-demo.sh - `make run`: the appliance on a built-in feed. sluice-feed plays a generated
# NASDAQ TotalView-ITCH 5.0 session over MoldUDP64 on loopback, with a little packet loss that
# the daemon repairs through MoldUDP64 re-requests; sluiced ingests it with the UDP front end
# and makes it durable, flushing its state and the event stream to tables every 32 MiB of
# memtable; then the CLI shows the summary, one order's state, a replay and a verification.
set -eu
BUILD="${BUILD:-build}"
BIN="$BUILD/bin"
N="${SL_DEMO_MESSAGES:-2000000}"
RATE="${SL_DEMO_RATE:-1000000}"
DATA="$BUILD/demo/data"
rm -rf "$BUILD/demo"
mkdir -p "$BUILD/demo"
port=$((30000 + ($$ % 10000)))

echo "== sluiced: data in $DATA, MoldUDP64 on udp 127.0.0.1:$port, rewinder at :$((port + 1))"
"$BIN/sluiced" --data "$DATA" --udp "127.0.0.1:$port" --rerequest "127.0.0.1:$((port + 1))" \
	--exit-at-end --rcvbuf 8388608 --memtable-mb 32 &
daemon=$!
trap 'kill $daemon 2>/dev/null || true' INT TERM
sleep 0.3
echo "== sluice-feed: $N messages at $RATE msg/s, 0.1% of packets lost on the first send"
"$BIN/sluice-feed" --messages "$N" --rate "$RATE" --udp "127.0.0.1:$port" --port $((port + 1)) \
	--loss 0.001 --linger-ms 3000 --quiet
wait $daemon
echo
echo "== sluice stats --data $DATA"
"$BIN/sluice" stats --data "$DATA" | grep -E '^(durable_seq|checkpoint_seq|messages|tables|table_bytes|wal_segments|recovered_records|write_amplification) |^level '
echo
loc_ref=$("$BIN/sluice" replay --data "$DATA" --from 1000 --count 2000 |
	sed -n 's/.* A add_order locate=\([0-9]*\) .* ref=\([0-9]*\) .*/\1 \2/p' | head -1)
echo "== sluice get --data $DATA order $loc_ref"
# shellcheck disable=SC2086
"$BIN/sluice" get --data "$DATA" order $loc_ref
# shellcheck disable=SC2086
"$BIN/sluice" get --data "$DATA" order $loc_ref --json
echo
echo "== sluice replay --data $DATA --from $((N - 2)) --count 3"
"$BIN/sluice" replay --data "$DATA" --from $((N - 2)) --count 3
echo
echo "== sluice scan --data $DATA orders ${loc_ref%% *} --count 3 (the stock's orders, by reference)"
"$BIN/sluice" scan --data "$DATA" orders "${loc_ref%% *}" --count 3
echo
echo "== sluice compact --data $DATA (full compaction: final-state orders are dropped)"
"$BIN/sluice" compact --data "$DATA"
"$BIN/sluice" stats --data "$DATA" | grep -E '^level '
echo
echo "== sluice verify --data $DATA"
"$BIN/sluice" verify --data "$DATA"
