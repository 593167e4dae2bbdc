#!/usr/bin/env bash
# make bench: release build (the Makefile), then the benchmarks (bench/bench.py). Extra arguments
# go to bench.py, e.g. `bench/run.sh --sections wan,inodes`. Installs Debian's rclone, which the
# comparisons need, when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v rclone >/dev/null 2>&1; then
    echo "Installing rclone (Debian package) for the comparison benchmarks"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rclone >/dev/null
fi
if [ ! -x .build/release/mediafs-faultproxy ]; then
    swift build -c release --product mediafs-faultproxy
fi
exec python3 bench/bench.py "$@"
