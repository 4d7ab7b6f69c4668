#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Runs bench_ipc and GStreamer's shmsink/shmsrc peer for the same buffer sizes in the same run,
# and prints buffers/s for both and the Parallax/peer ratio. A peer run that does not finish
# within its timeout is reported as "hung".
#   tests/ipc/bench_ipc_vs_shm.sh [BUILD_DIR] [N]
set -u
BUILD=${1:-build}
N=${2:-20000}
BENCH="$BUILD/tests/ipc/bench_ipc"
[ -x "$BENCH" ] || { echo "missing $BENCH (ninja -C $BUILD tests/ipc/bench_ipc)" >&2; exit 1; }
command -v gst-launch-1.0 >/dev/null || { echo "gst-launch-1.0 not found" >&2; exit 1; }

echo "== machine: $(lscpu | grep 'Model name' | sed 's/Model name: *//'), $(nproc) cores"
echo "== Parallax: $BENCH"
PLX_OUT=$(PARALLAX_LOG=error BENCH_IPC_N=$N "$BENCH" 2>&1)
echo "$PLX_OUT"

sizes=(64 4096 262144 1048576 8388608)
names=("64 B" "4 KiB" "256 KiB" "1 MiB" "8 MiB")
TMP=$(mktemp -d /tmp/plx-shm-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

peer_rate() {  # size -> buffers/s or "hung"
  local size=$1
  local sock="$TMP/shm.$size"
  local shm=$(( size * 8 > 4194304 ? size * 8 : 4194304 ))
  rm -f "$sock"
  gst-launch-1.0 -q fakesrc num-buffers="$N" sizetype=fixed sizemax="$size" \
    filltype=nothing ! shmsink socket-path="$sock" wait-for-connection=true shm-size="$shm" \
    sync=false >/dev/null 2>&1 &
  local sink=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.02; done
  # shmsink does not finish at EOS while a client is attached, and shmsrc never sees EOS:
  # the receiving pipeline stops itself after N buffers (identity eos-after) and is timed.
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout 30 gst-launch-1.0 -q shmsrc socket-path="$sock" ! identity eos-after="$N" \
    ! fakesink sync=false >/dev/null 2>&1
  rc=$?
  t1=$(date +%s.%N)
  # SIGINT lets gst-launch shut down cleanly; shmsink's /dev/shm area is removed if it did not.
  kill -INT "$sink" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$sink" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$sink" 2>/dev/null; wait "$sink" 2>/dev/null
  rm -f /dev/shm/shmpipe."$sink".* "$sock"
  if [ "$rc" -ne 0 ]; then echo hung; return; fi
  awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }'
}

printf '\n%-9s %14s %14s %8s\n' size parallax/s shm-peer/s ratio
for i in "${!sizes[@]}"; do
  name=${names[$i]}
  plx=$(echo "$PLX_OUT" | awk -v n="$name" 'index($0, n) == 1 { print $NF; exit }')
  peer=$(peer_rate "${sizes[$i]}")
  if [ "$peer" = hung ] || [ -z "$plx" ]; then ratio="-"; else
    ratio=$(awk -v a="$plx" -v b="$peer" 'BEGIN { printf "%.1fx", a / b }'); fi
  printf '%-9s %14s %14s %8s\n' "$name" "${plx:-?}" "$peer" "$ratio"
done
