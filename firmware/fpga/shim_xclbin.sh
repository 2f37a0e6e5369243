#!/bin/sh
# shim_xclbin.sh - make the stand-in "xclbin" that the XRT shim (sim/shim/xrt_shim.h) loads in
# the tests: every kernel of the given kernels/*.cl with its argument kinds, and each global
# argument's memory bank from the connectivity.cfg that the real v++ link uses, so the tests
# run the connectivity the card would get. Not an xclbin: a text file the shim alone reads.
#
#   sh firmware/fpga/shim_xclbin.sh firmware/fpga/connectivity.cfg kernels/*.cl > FILE
#
# A kernel without an nk= line gets one compute unit named <kernel>_1 and a global argument
# without an sp= line the first bank the file names, as v++ would place them by default; both
# are said on stderr. Exits non-zero when a kernel's signature cannot be read.
set -eu
if [ $# -lt 2 ]; then
	echo "usage: $0 CONNECTIVITY.cfg KERNEL.cl..." >&2
	exit 2
fi
cfg=$1
shift
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# One line per kernel, "NAME|ARGS": the sources on one line, comments out, then each
# "__kernel ... void NAME(ARGS)".
cat "$@" | tr '\n\t\r' '   ' |
	sed -e 's|/\*[^*]*\*\{1,\}\([^/*][^*]*\*\{1,\}\)*/| |g' |
	grep -o '\(__kernel\|SLK_KERNEL\)[^;{]*void[ ]\{1,\}[A-Za-z_][A-Za-z_0-9]*[ ]*([^)]*)' |
	sed -e 's/^\(__kernel\|SLK_KERNEL\).*void[ ]\{1,\}\([A-Za-z_][A-Za-z_0-9]*\)[ ]*(\(.*\))$/\2|\3/' >"$tmp" ||
	true
if [ ! -s "$tmp" ]; then
	echo "$0: no __kernel functions in $*" >&2
	exit 1
fi
uuid=$(cat "$cfg" "$@" | md5sum | cut -c1-32)
awk -v uuid="$uuid" -v cfg="$cfg" '
function trim(s) { sub(/^[ ]+/, "", s); sub(/[ ]+$/, "", s); return s }
FNR == NR {
	line = $0
	sub(/#.*/, "", line)
	line = trim(line)
	if (line ~ /^nk=/) {
		split(substr(line, 4), f, ":")
		cu[f[1]] = f[3] != "" ? f[3] : f[1] "_1"
		sub(/\..*/, "", cu[f[1]])
	} else if (line ~ /^sp=/) {
		s = substr(line, 4)
		i = index(s, ":")
		port = substr(s, 1, i - 1)
		tag = substr(s, i + 1)
		sp[port] = tag
		if (!(tag in bank)) {
			bank[tag] = nbanks + 0
			tags[nbanks++] = tag
		}
	}
	next
}
{
	name = substr($0, 1, index($0, "|") - 1)
	args = substr($0, index($0, "|") + 1)
	c = (name in cu) ? cu[name] : name "_1"
	if (!(name in cu))
		printf "%s: kernel %s has no nk= line in %s: one compute unit %s\n", \
			"shim_xclbin.sh", name, cfg, c > "/dev/stderr"
	out = "kernel " name
	n = split(args, a, ",")
	for (i = 1; i <= n; i++) {
		s = trim(a[i])
		if (s == "" || s == "void")
			continue
		an = s
		sub(/.*[ *]/, "", an)
		if (index(s, "*")) {
			port = c "." an
			if (!(port in sp)) {
				if (!nbanks) {
					bank["DDR[0]"] = 0
					tags[nbanks++] = "DDR[0]"
				}
				sp[port] = tags[0]
				printf "shim_xclbin.sh: %s has no sp= line in %s: bank %s\n", \
					port, cfg, tags[0] > "/dev/stderr"
			}
			out = out " g" bank[sp[port]]
		} else if (s ~ /(^|[ ])(ulong|long|size_t)[ ]/) {
			out = out " u64"
		} else if (s ~ /(^|[ ])(uint|int|unsigned)[ ]/) {
			out = out " u32"
		} else {
			printf "%s: kernel %s argument \"%s\": unknown type\n", "shim_xclbin.sh", \
				name, s > "/dev/stderr"
			bad = 1
		}
	}
	kern[nk++] = out
}
END {
	if (bad)
		exit 1
	print "sluice-xrt-shim-xclbin 1"
	print "# The XRT shim'"'"'s stand-in xclbin, made by firmware/fpga/shim_xclbin.sh from " cfg
	print "# and kernels/*.cl. Not an xclbin: a real one comes from make fpga (v++)."
	print "uuid " uuid
	for (i = 0; i < nbanks; i++)
		print "bank " i " " tags[i]
	for (i = 0; i < nk; i++)
		print kern[i]
}' "$cfg" "$tmp"
