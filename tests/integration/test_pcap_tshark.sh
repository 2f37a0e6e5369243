#!/bin/sh
# test_pcap_tshark.sh - an independent dissector checks what sluice-feed writes: Wireshark's
# tshark must decode a 20,000-message pcap as Ethernet/IPv4/UDP/MoldUDP64 with good IPv4 and UDP
# checksums, no malformed packet and no error, and count exactly the packets and messages
# sluice-feed reported, in contiguous sequences. Wireshark's own ITCH dissector (nasdaq_itch) is
# chained under MoldUDP64 only where it knows ITCH 5.0 (Wireshark 4.0 decodes ITCH 2.0-4.1).
# Run from the repository root; $BUILD names the build directory (default build).
set -u
BUILD="${BUILD:-build}"

if ! command -v tshark >/dev/null 2>&1; then
	echo "test_pcap_tshark: SKIP: tshark not installed"
	exit 0
fi

pass=0
fail=0
check() {
	# check NAME CONDITION-STATUS [DETAIL]
	if [ "$2" -eq 0 ]; then
		pass=$((pass + 1))
		echo "ok   $1"
	else
		fail=$((fail + 1))
		echo "FAIL $1${3:+: $3}"
	fi
}

feed="$BUILD/bin/sluice-feed"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sl_tshark.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
pcap="$tmp/feed.pcap"
# tshark refuses to run as root with a warning on stderr; keep stderr apart from the decode.
ts() {
	tshark -r "$pcap" -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE \
		-d udp.port==26477,moldudp64 "$@" 2>>"$tmp/tshark.err"
}

"$feed" --messages 20000 --seed 7 --session TSHARK0001 --pcap "$pcap" --quiet >"$tmp/summary"
st=$?
check "sluice-feed writes the pcap" "$st" "exit status $st"
summary=$(cat "$tmp/summary")
messages=$(echo "$summary" | sed -n 's/.* messages=\([0-9]*\) .*/\1/p')
packets=$(echo "$summary" | sed -n 's/.* packets=\([0-9]*\) .*/\1/p')
eos=$(echo "$summary" | sed -n 's/.* end_of_session=\([0-9]*\) .*/\1/p')
if [ -z "$messages" ] || [ -z "$packets" ] || [ -z "$eos" ]; then
	check "sluice-feed summary line" 1 "got '$summary'"
	echo "$pass passed, $fail failed"
	exit 1
fi
[ "$messages" -eq 20000 ]
check "sluice-feed reports 20000 messages" $? "reported $messages"

# The same seed gives the same file, byte for byte.
"$feed" --messages 20000 --seed 7 --session TSHARK0001 --pcap "$tmp/again.pcap" --quiet \
	>/dev/null && cmp -s "$pcap" "$tmp/again.pcap"
check "same seed, same pcap" $?

ts -V >"$tmp/verbose"
check "tshark decodes the file" $? "$(tail -n 3 "$tmp/tshark.err")"

n=$(grep -c -i 'malformed' "$tmp/verbose")
[ "$n" -eq 0 ]
check "no malformed packet" $? "$n lines: $(grep -i -m 3 'malformed' "$tmp/verbose")"

n=$(grep -c 'Expert Info (Error' "$tmp/verbose")
[ "$n" -eq 0 ]
check "no expert error" $? "$n lines: $(grep -m 3 'Expert Info (Error' "$tmp/verbose")"

frames=$(ts -T fields -e frame.number | wc -l)
good_ip=$(grep -c 'Header checksum status: Good' "$tmp/verbose")
good_udp=$(grep -c '\[Checksum Status: Good\]' "$tmp/verbose")
[ "$good_ip" -eq "$frames" ] && [ "$good_udp" -eq "$frames" ]
check "IPv4 and UDP checksums good in every frame" $? \
	"$frames frames, $good_ip IPv4 good, $good_udp UDP good"

# One line per MoldUDP64 packet: session, first sequence, count. Data packets carry messages;
# the last is end of session (count 65535) at the next sequence.
ts -Y moldudp64 -T fields -E separator=' ' -e moldudp64.session -e moldudp64.sequence \
	-e moldudp64.count >"$tmp/mold"
mold_packets=$(wc -l <"$tmp/mold")
[ "$mold_packets" -eq $((packets + eos)) ]
check "MoldUDP64 packets = packets + end of session" $? \
	"tshark $mold_packets, sluice-feed $packets + $eos"

# shellcheck disable=SC2016
awk -v want="$messages" '
	$1 != "TSHARK0001" { bad = "session " $1; exit }
	$3 == 65535 { if ($2 != next_seq) bad = "end of session at " $2; eos++; next }
	{
		if (NR == 1) next_seq = 1
		if ($2 != next_seq) {
			bad = "packet " NR " starts at " $2 ", expected " next_seq
			exit
		}
		next_seq += $3; msgs += $3
	}
	END {
		if (bad == "" && msgs != want) bad = "tshark counted " msgs " messages"
		if (bad == "" && eos != 1) bad = eos " end-of-session packets"
		if (bad != "") { print bad; exit 1 }
	}' "$tmp/mold" >"$tmp/awk.out"
check "messages counted and contiguous, one end of session" $? "$(cat "$tmp/awk.out")"

blocks=$(grep -c '^    Message Block' "$tmp/verbose")
[ "$blocks" -eq "$messages" ]
check "MoldUDP64 message blocks = messages" $? "tshark $blocks, sluice-feed $messages"

# Wireshark's ITCH dissector: chain it only if it knows ITCH 5.0 (stock locate, tracking
# number); older ones decode 5.0 bytes as 3.0 and would only report noise.
itch5='nasdaq[-_]itch\.(stock_locate|locate|tracking)'
if tshark -G fields 2>/dev/null | grep -q -i -E "$itch5"; then
	ts -d moldudp64.payload,nasdaq_itch -V >"$tmp/itch" 2>/dev/null
	n=$(grep -c -i -E 'malformed|Expert Info \(Error' "$tmp/itch")
	[ "$n" -eq 0 ]
	check "nasdaq_itch decodes every ITCH 5.0 message" $? "$n errors"
else
	echo "info tshark's nasdaq_itch has no ITCH 5.0 support; decoded as MoldUDP64 only"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
