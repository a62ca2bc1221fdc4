#!/usr/bin/env bash
# Build the native gRPC load generator once per version of its source and print its path:
#   bench/native/build.sh   ->  bench/results/.native/loadgen-<first 12 hex of sha256(loadgen.cc)>
# bench/serve.py, tests/bench and .ci/run all call this, so the compile (~7 s) happens once.
# Needs g++, pkg-config and grpc++ headers; as root on Debian/Ubuntu it installs them with apt
# (libgrpc++-dev is in Debian's main archive). Prints the reason and exits 1 when it cannot.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
digest=$(sha256sum "$here/loadgen.cc" | cut -c1-12)
out_dir="$(cd "$here/.." && pwd)/results/.native"
out="$out_dir/loadgen-$digest"

if [ -x "$out" ]; then
    echo "$out"
    exit 0
fi

have_toolchain() { command -v g++ >/dev/null && pkg-config --exists grpc++ 2>/dev/null; }

if ! have_toolchain; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing g++, pkg-config and libgrpc++-dev with apt-get" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q g++ pkg-config libgrpc++-dev >&2 \
            || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive \
                 apt-get install -y -q g++ pkg-config libgrpc++-dev >&2; }
    fi
    have_toolchain || { echo "no g++ with grpc++ (install g++, pkg-config, libgrpc++-dev)" >&2; exit 1; }
fi
mkdir -p "$out_dir"
# shellcheck disable=SC2046  # pkg-config prints several flags on purpose
g++ -O2 -std=c++17 -o "$out.tmp.$$" "$here/loadgen.cc" $(pkg-config --cflags --libs grpc++) >&2
mv "$out.tmp.$$" "$out"
echo "$out"
