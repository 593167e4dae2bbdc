#!/usr/bin/env bash
# make bench: release build, then the benchmarks (bench/bench.py). Extra arguments go to bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/bench.py "$@"
