#!/bin/sh
# deps.sh - install the Debian packages Sluice needs, once. Prints what it installs; a no-op
# (one line) when everything is present. Usage: scripts/deps.sh [build|bench]
#   build: compiler tools and libraries for the library, programs and tests (tshark: one
#          test checks that generated pcaps decode in Wireshark's dissectors; PoCL: the
#          OpenCL backend's tests run on it; libbpf, libxdp, bpftool, clang and llvm: the XDP
#          front end; ping and netcat: its end-to-end test checks ping and TCP still pass)
#   bench: build, plus RocksDB (the benchmark peer only)
set -eu
want="${1:-build}"
pkgs="gcc make pkg-config libck-dev libcmocka-dev libisal-dev iproute2 tshark"
# Replication: canonical raft (with libuv), the admin endpoint, HMAC-SHA256 for peer auth.
pkgs="$pkgs libraft-dev libuv1-dev libmicrohttpd-dev libssl-dev"
# OpenCL: the ICD loader (the library links it), the headers, and PoCL (CI's OpenCL device).
pkgs="$pkgs ocl-icd-opencl-dev opencl-c-headers pocl-opencl-icd clinfo"
# XDP/AF_XDP: the program is built with clang -target bpf, its skeleton with bpftool.
pkgs="$pkgs libbpf-dev libxdp-dev bpftool clang llvm iputils-ping netcat-openbsd"
if [ "$want" = bench ]; then
	pkgs="$pkgs librocksdb-dev"
fi
missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	echo "deps: all present ($want)"
	exit 0
fi
echo "deps: installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps: not root; run as root or install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
echo "deps: installed:$missing"
