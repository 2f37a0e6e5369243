#!/bin/sh
# test_gateway_link.sh - a gateway builds against sluice.h alone and links libsluice.a or
# libsluice.so; the shared library exports the public sl_* API and nothing internal.
set -u
BUILD="${BUILD:-build}"
tmp=$(mktemp -d /tmp/sl_gw.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/integration/lib/check.sh
# Under `make check` the library is instrumented: the gateway links the sanitizers too.
flags="-std=c11 -Wall -Wextra -Werror -Ihost/include ${SL_SAN_FLAGS:-}"
check "builds against sluice.h and libsluice.a" \
	cc $flags -o "$tmp/gw_static" examples/gateway.c "$BUILD/libsluice.a" -lck -lisal -lOpenCL -ldl -lm -pthread
check "builds against sluice.h and libsluice.so" \
	cc $flags -o "$tmp/gw_shared" examples/gateway.c -L"$BUILD" -lsluice
check "sluice.h compiles as C++ too" sh -c "echo '#include \"sluice.h\"' |
	c++ -x c++ -std=c++11 -Wall -Werror -Ihost/include -fsyntax-only - 2>/dev/null ||
	! command -v c++ >/dev/null"
expect='{"locate":7,"ref":42,"side":"B","shares":300,"price":1234500,"status":"open","stock":"AAPL"'
check "static gateway appends, syncs and reads back" \
	sh -c "'$tmp/gw_static' '$tmp/d1' | grep -qF '$expect'"
check "shared gateway appends, syncs and reads back" \
	sh -c "LD_LIBRARY_PATH='$BUILD' '$tmp/gw_shared' '$tmp/d2' | grep -qF '$expect'"
internal=$(nm -D --defined-only "$BUILD/libsluice.so" | awk '{print $3}' | grep -v '^sl_' |
	grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$' | head -5)
check "libsluice.so exports only sl_* symbols${internal:+ (also: $internal)}" [ -z "$internal" ]
check "libsluice.so exports no sl__ internals" \
	sh -c "! nm -D --defined-only '$BUILD/libsluice.so' | grep -q ' sl__'"
check_summary test_gateway_link
