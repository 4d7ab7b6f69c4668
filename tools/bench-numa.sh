#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Same-node vs cross-node placement (docs/topology.md): copy bandwidth and IPC hop latency with
# the thread on node 0 and the memory on node 0, then on node 1. A one-node machine says so
# and runs the same-node half. Usage: tools/bench-numa.sh [BUILD_DIR] (default: build).
set -eu
build=${1:-build}
bin=$build/tests/topology/bench_numa
[ -x "$bin" ] || { echo "no $bin: build with -Dbenchmarks=enabled" >&2; exit 1; }
echo "# $(date -u +%FT%TZ) $(uname -r), load: $(cut -d' ' -f1-3 /proc/loadavg)"
exec "$bin"
