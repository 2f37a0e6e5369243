#!/bin/sh
# test_corruption_cli.sh - damaged store files through the operator CLI: a generated session is
# ingested with a small memtable (several state and event tables), then one file at a time is
# damaged with dd/truncate/rm (a bit in a data block of a state table, in a table's footer, in
# an event table's block, in a manifest edit; a table cut short or missing). `sluice verify`
# must exit 1 and name the file and the offset of the damaged block; `sluice get` of a key the
# damage does not touch must answer exactly as before, and of a key it does must exit 1 with an
# error naming the file; replay must stop exactly at the damaged block and go on after it; no
# command may die of a signal. Offsets come from the tables' own index blocks and footers
# (layout in host/src/sst.c) and the manifest's records (host/src/manifest.c). Run from the
# repository root with $BUILD set.
set -u
BUILD="${BUILD:-build}"
BIN="$BUILD/bin"
N="${SL_CORRUPT_MESSAGES:-60000}"
tmp=$(mktemp -d /tmp/sl_corrupt.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
[ -n "${SL_KEEP:-}" ] && trap - EXIT

. tests/integration/lib/check.sh

CORRUPT="data corrupt (checksum or format mismatch)"
D="$tmp/d"

# ---- Reading the files --------------------------------------------------------------------------

u8() { od -An -t u1 -j "$2" -N 1 "$1" | tr -d ' '; }
u32() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
u64() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
fsize() { wc -c <"$1" | tr -d ' '; }

# blocks FILE: one line per data block of a table, from its index block: "I OFFSET SIZE KIND F.."
# with the kind letter of the block's last key and that key's fields (O: locate ref; S: locate;
# E: sequence; T: match).
blocks() {
	foot=$(($(fsize "$1") - 64))
	ioff=$(u64 "$1" $((foot + 24)))
	isz=$(u32 "$1" $((foot + 56)))
	od -An -v -t u1 -j "$ioff" -N "$isz" "$1" | awk '
	function le(p, k,   v, j) {
		v = 0
		for (j = k - 1; j >= 0; j--)
			v = v * 256 + b[p + j]
		return v
	}
	function be(p, k,   v, j) {
		v = 0
		for (j = 0; j < k; j++)
			v = v * 256 + b[p + j]
		return v
	}
	{ for (i = 1; i <= NF; i++) b[n++] = $i }
	END {
		count = le(n - 8, 4)
		pos = 1 + b[0]
		for (i = 0; i < count; i++) {
			kl = b[pos]
			k = pos + 1
			kind = sprintf("%c", b[k])
			if (kind == "O")
				f = be(k + 1, 2) " " be(k + 3, 8)
			else if (kind == "S")
				f = be(k + 1, 2)
			else
				f = be(k + 1, 8)
			print i, le(k + kl, 8), le(k + kl + 8, 4), kind, f
			pos += 13 + kl
		}
	}'
}

# Field $2 of line $1 (0-based) of a blocks listing in $3.
blk() { sed -n "$(($1 + 1))p" "$3" | cut -d' ' -f"$2"; }

# flip FILE OFFSET: invert bit 4 of the byte at OFFSET, in place.
flip() {
	b=$(u8 "$1" "$2")
	# shellcheck disable=SC2059
	printf "$(printf '\\%03o' $((b ^ 16)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# ---- Running the CLI ----------------------------------------------------------------------------

crashed=""
# cli NAME ARGS...: run `sluice ARGS`, output in $tmp/NAME.out and .err, status in $rc.
cli() {
	name=$1
	shift
	"$BIN/sluice" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
	rc=$?
	[ "$rc" -lt 128 ] || crashed="$crashed $name:$rc"
}
# has NAME.out|NAME.err TEXT: the file holds the line TEXT exactly.
has() { grep -qxF -- "$2" "$tmp/$1"; }
# holds NAME.out|NAME.err TEXT: the file holds TEXT somewhere.
holds() { grep -qF -- "$2" "$tmp/$1"; }
# failed_with NAME.out|NAME.err TEXT: the last command exited 1 and printed the line TEXT.
failed_with() { [ "$rc" -eq 1 ] && has "$1" "$2"; }

order_json() { # DIR LOCATE REF -> the order as JSON on stdout, or nothing
	"$BIN/sluice" get --data "$1" order "$2" "$3" --json 2>/dev/null
}
json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
json_str() { sed -n "s/.*\"$1\":\"\([a-z]*\)\".*/\1/p"; }

# ---- The store ----------------------------------------------------------------------------------

"$BIN/sluice-feed" --messages "$N" --seed 7 --raw "$tmp/feed.raw" --quiet >/dev/null 2>&1
# No compaction: the tables stay as flushed, so file numbers order them by age.
"$BIN/sluice" ingest --data "$D" "$tmp/feed.raw" --memtable-mb 1 --no-compaction --quiet >/dev/null
cli verify0 verify --data "$D"
check "verify passes before any damage" [ "$rc" -eq 0 ]
"$BIN/sluice" stats --data "$D" >"$tmp/stats"
checkpoint=$(sed -n 's/^checkpoint_seq *\([0-9]*\)$/\1/p' "$tmp/stats")
"$BIN/sluice" replay --data "$D" --from 1 >"$tmp/replay.ref"

# State tables start with an order key, event tables with an event key.
state="" events=""
for f in "$D"/*.sst; do
	blocks "$f" >"$f.blocks"
	case $(blk 0 4 "$f.blocks") in
	O) state="$state $(basename "$f")" ;;
	E) events="$events $(basename "$f")" ;;
	esac
done
# nth LIST N: the Nth word of LIST (N = "last" or "mid" for those).
nth() {
	echo "$1" | awk -v n="$2" '{
		i = n == "last" ? NF : n == "mid" ? int((NF + 1) / 2) : n
		print $i
	}'
}
nstate=$(echo "$state" | wc -w)
nevents=$(echo "$events" | wc -w)
oldest=$(nth "$state" 1)
second=$(nth "$state" 2)
newest=$(nth "$state" last)
first_events=$(nth "$events" 1)
mid_events=$(nth "$events" mid)
check "the store has several state and event tables ($nstate and $nevents)" \
	[ "$nstate" -ge 3 -a "$nevents" -ge 3 ]
mkdir "$tmp/orig"
for f in "$D"/*.sst; do mv "$f.blocks" "$tmp/orig/$(basename "$f").blocks"; done
cp "$D"/*.sst "$D"/MANIFEST-* "$D"/CURRENT "$tmp/orig/"
mf=$(head -1 "$D/CURRENT")

# Undo a case's damage (only the tables, the manifest and CURRENT are ever touched).
restore() {
	rm -f "$D"/*.sst "$D"/MANIFEST-* "$D"/CURRENT
	for f in "$tmp"/orig/*; do
		case $f in *.blocks) ;; *) cp "$f" "$D/" ;; esac
	done
}

# A key of the newest state table that nothing newer shadows (the log's tail did not touch it:
# its last update is at or before the checkpoint), in an order block in the table's middle: a
# bit flipped in that block must fail exactly its lookups.
nb=$(wc -l <"$tmp/orig/$newest.blocks")
b=$((nb / 2))
bad_loc="" bad_ref=""
while [ "$b" -lt $((nb - 1)) ]; do
	if [ "$(blk $((b + 1)) 4 "$tmp/orig/$newest.blocks")" = O ]; then
		loc=$(blk "$b" 5 "$tmp/orig/$newest.blocks")
		ref=$(blk "$b" 6 "$tmp/orig/$newest.blocks")
		upd=$(order_json "$D" "$loc" "$ref" | json_num updated_seq)
		if [ -n "$upd" ] && [ "$upd" -le "$checkpoint" ]; then
			bad_loc=$loc bad_ref=$ref
			break
		fi
	fi
	b=$((b + 1))
done
check "found a key served by a middle block of $newest" [ -n "$bad_loc" ]
bad_off=$(blk "$b" 2 "$tmp/orig/$newest.blocks")
bad_size=$(blk "$b" 3 "$tmp/orig/$newest.blocks")
# Keys no case damages, both found in the newest state table (no older table is read for them):
# the last key of its first block (an order) and of its last block (a trade).
ok_loc=$(blk 0 5 "$tmp/orig/$newest.blocks")
ok_ref=$(blk 0 6 "$tmp/orig/$newest.blocks")
ok_match=$(blk $((nb - 1)) 5 "$tmp/orig/$newest.blocks")
"$BIN/sluice" get --data "$D" order "$ok_loc" "$ok_ref" >"$tmp/ok_order.ref" 2>&1
"$BIN/sluice" get --data "$D" trade "$ok_match" >"$tmp/ok_trade.ref" 2>&1
"$BIN/sluice" get --data "$D" order "$bad_loc" "$bad_ref" >"$tmp/bad_order.ref" 2>&1
keys_answer() {
	[ "$(blk $((nb - 1)) 4 "$tmp/orig/$newest.blocks")" = T ] &&
		grep -q "^order $ok_loc/$ok_ref " "$tmp/ok_order.ref" &&
		grep -q "^trade " "$tmp/ok_trade.ref" &&
		grep -q "^order $bad_loc/$bad_ref " "$tmp/bad_order.ref"
}
check "the keys answer before any damage" keys_answer

# The undamaged keys answer exactly as before.
check_ok_keys() { # CASE
	cli "$1.ok_order" get --data "$D" order "$ok_loc" "$ok_ref"
	check "$1: get of an undamaged order answers as before" \
		sh -c "[ $rc -eq 0 ] && cmp -s '$tmp/$1.ok_order.out' '$tmp/ok_order.ref'"
	cli "$1.ok_trade" get --data "$D" trade "$ok_match"
	check "$1: get of an undamaged trade answers as before" \
		sh -c "[ $rc -eq 0 ] && cmp -s '$tmp/$1.ok_trade.out' '$tmp/ok_trade.ref'"
}

# ---- A data block of a state table ------------------------------------------------------------

flip "$D/$newest" $((bad_off + bad_size / 2))
cli blk.verify verify --data "$D"
check "data block: verify exits 1" [ "$rc" -eq 1 ]
check "data block: verify names $newest and the block at offset $bad_off" \
	has blk.verify.out "verify: FAILED: $D/$newest at offset $bad_off: $CORRUPT"
cli blk.bad get --data "$D" order "$bad_loc" "$bad_ref"
check "data block: get of an order in the block exits 1" [ "$rc" -eq 1 ]
check "data block: the error names $newest and the block" \
	holds blk.bad.err "sluice: sst: $D/$newest: data block checksum mismatch at offset $bad_off"
check "data block: the CLI says the data is corrupt" has blk.bad.err "sluice: $CORRUPT"
check "data block: nothing on stdout for the damaged key" [ ! -s "$tmp/blk.bad.out" ]
cli blk.multi get --data "$D" orders "$ok_loc:$ok_ref" "$bad_loc:$bad_ref"
check "data block: a batched get exits 1" [ "$rc" -eq 1 ]
check "data block: the batched get answers the undamaged order as before" \
	sh -c "head -1 '$tmp/blk.multi.out' | cmp -s - '$tmp/ok_order.ref'"
check "data block: the batched get reports the damaged order" \
	sh -c "sed -n 2p '$tmp/blk.multi.out' | grep -qxF 'order $bad_loc $bad_ref: $CORRUPT'"
check_ok_keys blk
cli blk.replay replay --data "$D" --from 1
check "data block: replay is intact (event tables are separate)" \
	sh -c "[ $rc -eq 0 ] && cmp -s '$tmp/blk.replay.out' '$tmp/replay.ref'"
restore

# ---- The footer of the oldest state table -----------------------------------------------------

# A key whose newest version only the oldest table holds: an order in a final state (not
# carried into later memtables) that was last updated within the oldest table's range.
fb="$tmp/orig/$first_events.blocks"
last_ev=$(blk $(($(wc -l <"$fb") - 1)) 5 "$fb")
old_loc="" old_ref=""
i=0
while [ "$i" -lt 40 ] && [ -z "$old_loc" ]; do
	loc=$(blk "$i" 5 "$tmp/orig/$oldest.blocks")
	ref=$(blk "$i" 6 "$tmp/orig/$oldest.blocks")
	j=$(order_json "$D" "$loc" "$ref")
	st=$(echo "$j" | json_str status)
	upd=$(echo "$j" | json_num updated_seq)
	if [ -n "$upd" ] && [ "$upd" -le "$last_ev" ] && [ "$st" != open ]; then
		old_loc=$loc old_ref=$ref
	fi
	i=$((i + 1))
done
check "found a key only $oldest holds" [ -n "$old_loc" ]
size=$(fsize "$D/$oldest")
foot=$((size - 64))
flip "$D/$oldest" $((foot + 20))
cli foot.verify verify --data "$D"
check "footer: verify exits 1" [ "$rc" -eq 1 ]
check "footer: verify names $oldest and the footer at offset $foot" \
	has foot.verify.out "verify: FAILED: $D/$oldest at offset $foot: $CORRUPT"
cli foot.bad get --data "$D" order "$old_loc" "$old_ref"
check "footer: get of an order only $oldest holds exits 1" [ "$rc" -eq 1 ]
check "footer: the error names $oldest and its footer" \
	holds foot.bad.err "sluice: sst: $D/$oldest: footer checksum mismatch at offset $foot"
check_ok_keys foot
restore

# ---- A data block of an event table -------------------------------------------------------------

eb="$tmp/orig/$mid_events.blocks"
e=$(($(wc -l <"$eb") / 2))
s1=$(($(blk $((e - 1)) 5 "$eb") + 1))
s2=$(blk "$e" 5 "$eb")
eoff=$(blk "$e" 2 "$eb")
flip "$D/$mid_events" $((eoff + $(blk "$e" 3 "$eb") / 3))
cli ev.verify verify --data "$D"
check "event block: verify exits 1" [ "$rc" -eq 1 ]
check "event block: verify names $mid_events and the block at offset $eoff" \
	has ev.verify.out "verify: FAILED: $D/$mid_events at offset $eoff: $CORRUPT"
cli ev.replay replay --data "$D" --from 1
check "event block: replay from 1 exits 1" [ "$rc" -eq 1 ]
head -n $((s1 - 1)) "$tmp/replay.ref" >"$tmp/replay.before"
check "event block: replay gives exactly the $((s1 - 1)) events before the block" \
	cmp -s "$tmp/ev.replay.out" "$tmp/replay.before"
check "event block: replay says where it stopped and why" \
	has ev.replay.err "sluice: replay stopped after $((s1 - 1)) events: $CORRUPT"
msg="sluice: sst: $D/$mid_events: data block checksum mismatch at offset $eoff"
check "event block: the error names $mid_events and the block" holds ev.replay.err "$msg"
cli ev.after replay --data "$D" --from $((s2 + 1))
tail -n +$((s2 + 1)) "$tmp/replay.ref" >"$tmp/replay.after"
check "event block: replay from $((s2 + 1)), after the block, is exact" \
	sh -c "[ $rc -eq 0 ] && cmp -s '$tmp/ev.after.out' '$tmp/replay.after'"
check_ok_keys ev
restore

# ---- A manifest edit in the middle ------------------------------------------------------------

size=$(fsize "$D/$mf")
off=40
recs=""
while [ "$off" -lt "$size" ]; do
	recs="$recs $off"
	off=$((off + 8 + $(u32 "$D/$mf" "$off")))
done
moff=$(nth "$recs" mid)
check "the manifest has a snapshot and several edits ($(echo "$recs" | wc -w) records)" \
	[ "$(echo "$recs" | wc -w)" -ge 4 ]
flip "$D/$mf" $((moff + 12))
cli mf.verify verify --data "$D"
check "manifest: verify exits 1" [ "$rc" -eq 1 ]
check "manifest: verify names $mf and the edit at offset $moff" \
	has mf.verify.out "verify: FAILED: $D/$mf at offset $moff: $CORRUPT"
cli mf.get get --data "$D" order "$ok_loc" "$ok_ref"
check "manifest: get exits 1 (the store does not open)" [ "$rc" -eq 1 ]
msg="sluice: manifest: $D/$mf at offset $moff: checksum mismatch, with a good record after it"
check "manifest: the error names $mf and the offset" holds mf.get.err "$msg"
check "manifest: the CLI says the open failed" has mf.get.err "sluice: opening $D: $CORRUPT"
restore

# ---- Tables cut short or missing ----------------------------------------------------------------

sb="$tmp/orig/$second.blocks"
cut_at=$(($(blk 1 2 "$sb") + $(blk 1 3 "$sb") / 2))
truncate -s "$cut_at" "$D/$second"
cli cut.verify verify --data "$D"
check "cut mid data block: verify exits 1" [ "$rc" -eq 1 ]
check "cut mid data block: verify names $second where its footer should be ($((cut_at - 64)))" \
	has cut.verify.out "verify: FAILED: $D/$second at offset $((cut_at - 64)): $CORRUPT"
check_ok_keys cut
truncate -s 0 "$D/$second"
cli cut0.verify verify --data "$D"
check "cut to 0 bytes: verify names $second at offset 0" \
	failed_with cut0.verify.out "verify: FAILED: $D/$second at offset 0: $CORRUPT"
rm "$D/$second"
cli gone.verify verify --data "$D"
msg="verify: FAILED: $D/$second at offset 0: No such file or directory"
check "missing table: verify names $second" failed_with gone.verify.out "$msg"
check_ok_keys gone
restore

cli verify1 verify --data "$D"
check "verify passes again once the files are restored" [ "$rc" -eq 0 ]
check "no command died of a signal${crashed:+ (status:$crashed)}" [ -z "$crashed" ]

check_summary test_corruption_cli
