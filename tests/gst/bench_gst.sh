#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# GStreamer benchmark: parallaxsink -> parallaxsrc against shmsink -> shmsrc, two processes,
# fakesrc buffers of 4 KiB .. 8 MiB (fakesrc ignores the proposed pool: one copy per buffer),
# the same sizes written straight into the sink's proposed pool (plx_gst_pool_src: zero copy),
# plus 1080p RGBx from videotestsrc against videotestsrc alone and against its floor for a
# sleeping consumer (videotestsrc alone plus one cross-process futex wake-up per frame:
# plx_gst_app --wake-peer), and the copy floor of this machine (plx_memcpy_floor). Prints medians of REPS runs of consumer-side rates (see below).
#   tests/gst/bench_gst.sh BUILD_DIR        (REPS=5 by default; env REPS=N to change)
#   BENCH_GST_ONLY=sizes | video: only the size table, or only the 1080p comparison
set -u
ONLY=${BENCH_GST_ONLY:-all}
B=$(cd "${1:?usage: bench_gst.sh BUILD_DIR}" && pwd)
REPS=${REPS:-5}
APP=$B/tests/gst/plx_gst_app
POOL_SRC=$B/tests/gst/plx_gst_pool_src
FLOOR=$B/tests/gst/plx_memcpy_floor
[ -x "$APP" ] && [ -x "$POOL_SRC" ] && [ -x "$FLOOR" ] || { echo "build first: ninja -C $B tests/gst/plx_gst_app tests/gst/plx_gst_pool_src tests/gst/plx_memcpy_floor gst/libgstparallax.so" >&2; exit 1; }
export GST_PLUGIN_PATH=$B/gst GST_REGISTRY=$B/bench-registry.bin PARALLAX_LOG=error
T=$(mktemp -d /tmp/plx-bench-XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "hung"; else print a[int((NR+1)/2)]}'; }
elapsed_of() { sed -n 's/^elapsed \([0-9.]*\) s$/\1/p' "$1"; }

# Every rate is measured on the consumer side: buffers/s leaving the consumer's source, first to
# last buffer arriving at its `fakesink name=f` (so the producer's wait for its consumer to start
# and connect is not counted), and only from runs where all N buffers arrived.
CONS_OUT=$T/cons.out
consumer_rate() {
  grep -q "^probe f: buffers $1 " "$CONS_OUT" &&
    sed -n 's/^probe f: .* rate \([0-9]*\) buffers.*/\1/p' "$CONS_OUT"
}

# start_consumer SOCKET N DESCRIPTION: once the producer's socket exists.
start_consumer() {
  for _ in $(seq 100); do [ -S "$1" ] && break; sleep 0.05; done
  timeout 65 "$APP" --timeout-s 60 --stall-s 5 --probe f --expect "$2" "$3" > "$CONS_OUT" 2>&1 &
  cpid=$!
  pids+=($cpid)
}

# run_pool SOCKET SIZE N -> buffers/s from a producer writing into the sink's pool (zero copy),
# consumer parallaxsrc ! fakesink in a second process.
run_pool() {
  local sock=$1 size=$2 n=$3
  rm -f "$sock"
  timeout 60 "$POOL_SRC" --size "$size" --buffers "$n" \
    "parallaxsink socket-path=$sock wait-for-connection=true" > "$T/pool.out" 2>&1 &
  local p=$!
  pids+=($p)
  start_consumer "$sock" "$n" "parallaxsrc socket-path=$sock timeout=20000000000 ! fakesink name=f sync=false"
  wait "$p"
  wait "$cpid"
  consumer_rate "$n"
}

# run_pair SOCKET PRODUCER CONSUMER -> buffers/s through the hop (see above); nothing if not all
# N buffers arrived. The producer starts first (shmsrc fails when its socket is missing) and
# waits for the consumer (wait-for-connection=true). shmsrc never sees EOS (the shm protocol
# does not carry it): its run ends 2 s after the N-th buffer ("eos-hung"), counted by its rate.
run_pair() {
  local sock=$1 prod=$2 cons=$3
  rm -f "$sock"
  timeout 70 "$APP" --timeout-s 60 --stats s "$prod" > "$T/prod.out" 2>&1 &
  local p=$!
  pids+=($p)
  start_consumer "$sock" "$N" "$cons"
  wait "$cpid"
  # A parallaxsink producer ends at EOS (and prints its stats); shmsink waits at EOS forever.
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  consumer_rate "$N"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo "gstreamer: $(gst-launch-1.0 --version | sed -n 2p)"
echo "reps: $REPS (median)"
echo
if [ "$ONLY" != video ]; then
printf "%-10s %8s %14s %14s %8s %14s %12s %12s %14s %s\n" size N parallax_buf/s shm_buf/s ratio copy_floor gst_alone gst_queue pool_buf/s parallax_copies
for spec in 4096:500000:500000 262144:50000:300000 1048576:10000:300000 8388608:1000:100000; do
  IFS=: read -r S N NZ <<< "$spec"
  SRC="fakesrc num-buffers=$N sizetype=fixed sizemax=$S filltype=nothing"
  shm_size=$(( S * 16 > 67108864 ? S * 16 : 67108864 ))
  px=(); sh=(); zc=(); ga=(); gq=()
  for _ in $(seq "$REPS"); do
    # GStreamer's own per-buffer floor around the same source, one process: no hop, no copy
    # (gst_alone), and with a thread hop through a queue (gst_queue).
    timeout 60 "$APP" --probe f "$SRC ! fakesink name=f sync=false" > "$T/alone.out" 2>&1
    ga+=("$(sed -n "s/^probe f: buffers $N .* rate \([0-9]*\) buffers.*/\1/p" "$T/alone.out")")
    timeout 60 "$APP" --probe f "$SRC ! queue ! fakesink name=f sync=false" > "$T/alone.out" 2>&1
    gq+=("$(sed -n "s/^probe f: buffers $N .* rate \([0-9]*\) buffers.*/\1/p" "$T/alone.out")")
    r=$(run_pair "$T/s.sock" "$SRC ! parallaxsink name=s socket-path=$T/s.sock slot-size=$S wait-for-connection=true" \
          "parallaxsrc socket-path=$T/s.sock timeout=20000000000 ! fakesink name=f sync=false")
    [ -n "$r" ] && px+=("$r")
    copies=$(sed -n 's/.* copied=(guint64)\([0-9]*\).*/\1/p' "$T/prod.out" 2>/dev/null)
    r=$(run_pair "$T/shm.sock" "$SRC ! shmsink name=s socket-path=$T/shm.sock shm-size=$shm_size wait-for-connection=true sync=false" \
          "shmsrc socket-path=$T/shm.sock ! fakesink name=f sync=false")
    [ -n "$r" ] && sh+=("$r")
    r=$(run_pool "$T/z.sock" "$S" "$NZ")
    [ -n "$r" ] && zc+=("$r")
    zcopies=$(sed -n 's/.* copied=(guint64)\([0-9]*\).*/\1/p' "$T/pool.out" 2>/dev/null)
  done
  # The same number of slots as parallaxsink's automatic pool (16 MiB worth, 6..256).
  slots=$(( 16777216 / S )); [ "$slots" -lt 6 ] && slots=6; [ "$slots" -gt 256 ] && slots=256
  floor=$("$FLOOR" --size "$S" --buffers "$N" --slots "$slots" | sed -n 's/.* rate \([0-9]*\) buffers.*/\1/p')
  mp=$(printf "%s\n" "${px[@]}" | grep . | median)
  mz=$(printf "%s\n" "${zc[@]}" | grep . | median)
  ms=$(printf "%s\n" "${sh[@]}" | grep . | median)
  mga=$(printf "%s\n" "${ga[@]}" | grep . | median)
  mgq=$(printf "%s\n" "${gq[@]}" | grep . | median)
  ratio="-"
  [ "$mp" != hung ] && [ "$ms" != hung ] && ratio=$(echo "scale=2; $mp / $ms" | bc)
  printf "%-10s %8s %14s %14s %8s %14s %12s %12s %14s %s\n" "$S" "$N" "$mp" "$ms" "$ratio" "$floor" "$mga" "$mgq" "$mz" "${copies:-?}/$N (pool: ${zcopies:-?}/$NZ)"
done
echo "buffers/s = first to last buffer reaching the consumer's fakesink; hung = not all N arrived (stalled 5 s or 60 s)"
echo "copy_floor = g_malloc + one memcpy into a memfd slot + g_free per buffer, nothing else, over as many"
echo "  slots as parallaxsink's automatic pool (plx_memcpy_floor):"
echo "  the most any sink that copies fakesrc's buffers once can reach"
echo "gst_alone = the same fakesrc ! fakesink in one process (no hop, no copy), gst_queue = fakesrc ! queue ! fakesink:"
echo "  GStreamer's own per-buffer cost around this source, the most any pipeline through it can reach"
echo "pool_buf/s = GRAY8 frames of the same size acquired from parallaxsink's proposed pool (plx_gst_pool_src), payload untouched"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
fi
[ "$ONLY" = sizes ] && exit 0

# This VM's memory bandwidth is bimodal from one process to the next (the same pipeline runs at
# ~640 or ~900 fps): more repetitions here, every run printed, medians compared.
VN=1000
VREPS=${VREPS:-$((2 * REPS + 1))}
VCAPS="video/x-raw,format=RGBx,width=1920,height=1080,framerate=30/1"
alone=(); wake=(); hop=(); busy=()
for _ in $(seq "$VREPS"); do
  timeout 60 "$APP" --probe s "videotestsrc num-buffers=$VN ! $VCAPS ! fakesink name=s sync=false" > "$T/alone.out" 2>&1
  alone+=("$(sed -n 's/^probe s: .* rate \([0-9]*\) buffers.*/\1/p' "$T/alone.out")")
  # The floor of any hop whose consumer sleeps: alone, plus one cross-process futex wake-up per
  # frame (plx_gst_app --wake-peer: a second process that sleeps and does nothing else).
  timeout 60 "$APP" --wake-peer --probe s "videotestsrc num-buffers=$VN ! $VCAPS ! fakesink name=s sync=false" > "$T/alone.out" 2>&1
  wake+=("$(sed -n 's/^probe s: .* rate \([0-9]*\) buffers.*/\1/p' "$T/alone.out")")
  N=$VN
  r=$(run_pair "$T/s.sock" "videotestsrc num-buffers=$VN ! $VCAPS ! parallaxsink name=s socket-path=$T/s.sock wait-for-connection=true" \
        "parallaxsrc socket-path=$T/s.sock timeout=20000000000 ! fakesink name=f sync=false")
  [ -n "$r" ] && hop+=("$r")
  vcopies=$(sed -n 's/.* copied=(guint64)\([0-9]*\).*/\1/p' "$T/prod.out")
  r=$(run_pair "$T/s.sock" "videotestsrc num-buffers=$VN ! $VCAPS ! parallaxsink name=s socket-path=$T/s.sock wait-for-connection=true" \
        "parallaxsrc busy-poll=true socket-path=$T/s.sock timeout=20000000000 ! fakesink name=f sync=false")
  [ -n "$r" ] && busy+=("$r")
done
ma=$(printf "%s\n" "${alone[@]}" | median)
mw=$(printf "%s\n" "${wake[@]}" | grep . | median)
mh=$(printf "%s\n" "${hop[@]}" | grep . | median)
mb=$(printf "%s\n" "${busy[@]}" | grep . | median)
echo "1080p RGBx runs (fps), alone: ${alone[*]}; alone + a futex wake-up per frame: ${wake[*]}; through the hop: ${hop[*]}; busy-poll consumer: ${busy[*]}"
echo "1080p RGBx videotestsrc (median of $VREPS): alone $ma fps, through parallaxsink->parallaxsrc $mh fps" \
     "($(echo "scale=1; 100 * $mh / $ma" | bc) %), copies ${vcopies:-?}/$VN;" \
     "with parallaxsrc busy-poll=true $mb fps ($(echo "scale=1; 100 * $mb / $ma" | bc) %);" \
     "floor: alone + a futex wake-up of a sleeping process per frame $mw fps ($(echo "scale=1; 100 * $mw / $ma" | bc) %)," \
     "the hop at $(echo "scale=1; 100 * $mh / $mw" | bc) % of it"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
