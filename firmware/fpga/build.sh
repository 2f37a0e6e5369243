#!/bin/sh
# build.sh - the FPGA build recipe (`make fpga`): every kernel of kernels/*.cl compiled by v++
# into its own .xo, then linked with connectivity.cfg into $BUILD/fpga/sluice.xclbin, the file
# the xrt backend loads (--accel=xrt --accel-binary FILE). Where Vitis is absent (no v++ on
# PATH) it prints one line saying so, with the commands it would run, and exits 0.
#
# Variables: BUILD (build), PLATFORM (xilinx_u250_gen3x16_xdma_4_1_202210_1), TARGET (hw; or
# hw_emu, sw_emu), VPP (v++), VPP_FLAGS (extra flags for both steps). No card has run the
# result; see firmware/fpga/README.md.
set -eu
BUILD=${BUILD:-build}
PLATFORM=${PLATFORM:-xilinx_u250_gen3x16_xdma_4_1_202210_1}
TARGET=${TARGET:-hw}
VPP=${VPP:-v++}
VPP_FLAGS=${VPP_FLAGS:-}
here=$(dirname "$0")
cfg=$here/connectivity.cfg
out=$BUILD/fpga
xclbin=$out/sluice.xclbin

# "FILE NAME" for each kernel (__kernel or SLK_KERNEL) of each kernels/*.cl (comments dropped
# first).
kernels() {
	id='[A-Za-z_][A-Za-z_0-9]*'
	for f in kernels/*.cl; do
		tr '\n\t\r' '   ' <"$f" |
			sed -e 's|/\*[^*]*\*\{1,\}\([^/*][^*]*\*\{1,\}\)*/| |g' |
			grep -o "\\(__kernel\\|SLK_KERNEL\\)[^;{]*void[ ]\\{1,\\}${id}[ ]*(" |
			sed -e "s#^\\(__kernel\\|SLK_KERNEL\\).*void[ ]\\{1,\\}\\($id\\)[ ]*(\$#$f \\2#" || true
	done
}

list=$(kernels)
if [ -z "$list" ]; then
	echo "fpga: no __kernel functions in kernels/*.cl" >&2
	exit 1
fi
common="-t $TARGET --platform $PLATFORM${VPP_FLAGS:+ $VPP_FLAGS}"
compile() { # FILE NAME
	# SLK_FPGA: each kernel is one work-item looping over its items (kernels/sl_kernel_abi.h).
	echo "$VPP -c $common -DSLK_FPGA -I kernels -k $2 -o $out/$2.xo $1"
}
objs=$(echo "$list" | while read -r f k; do printf '%s ' "$out/$k.xo"; done)
objs=${objs% }
link="$VPP -l $common --config $cfg -o $xclbin $objs"

if ! command -v "$VPP" >/dev/null 2>&1; then
	cmds=$(echo "$list" | while read -r f k; do printf '%s; ' "$(compile "$f" "$k")"; done)
	echo "fpga: Vitis is absent ($VPP not on PATH), nothing built; it would run: $cmds$link"
	exit 0
fi

mkdir -p "$out"
echo "$list" | while read -r f k; do
	cmd=$(compile "$f" "$k")
	echo "  VPP     $out/$k.xo"
	# shellcheck disable=SC2086 # the command is word-split on purpose
	mkdir -p "$out/$k.tmp"
	$cmd --temp_dir "$out/$k.tmp" --log_dir "$out/$k.tmp"
done
echo "  VPP     $xclbin"
# shellcheck disable=SC2086
$link --temp_dir "$out/link.tmp" --log_dir "$out/link.tmp" --report_dir "$out/link.tmp"
echo "fpga: $xclbin built for $PLATFORM ($TARGET)"
