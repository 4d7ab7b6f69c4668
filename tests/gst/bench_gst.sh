#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# GStreamer benchmark: parallaxsink -> parallaxsrc against shmsink -> shmsrc, two processes,
# fakesrc buffers of 4 KiB .. 8 MiB (fakesrc ignores the proposed pool: one copy per buffer),
# the same sizes written straight into the sink's proposed pool (plx_gst_pool_src: zero copy),
# plus 1080p RGBx from videotestsrc against videotestsrc alone. Prints medians of REPS runs
# (buffers/s entering the producer's sink, first to last buffer).
#   tests/gst/bench_gst.sh BUILD_DIR        (REPS=5 by default; env REPS=N to change)
set -u
B=$(cd "${1:?usage: bench_gst.sh BUILD_DIR}" && pwd)
REPS=${REPS:-5}
APP=$B/tests/gst/plx_gst_app
POOL_SRC=$B/tests/gst/plx_gst_pool_src
[ -x "$APP" ] && [ -x "$POOL_SRC" ] || { echo "build first: ninja -C $B tests/gst/plx_gst_app tests/gst/plx_gst_pool_src gst/libgstparallax.so" >&2; exit 1; }
export GST_PLUGIN_PATH=$B/gst GST_REGISTRY=$B/bench-registry.bin PARALLAX_LOG=error
T=$(mktemp -d /tmp/plx-bench-XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "hung"; else print a[int((NR+1)/2)]}'; }
elapsed_of() { sed -n 's/^elapsed \([0-9.]*\) s$/\1/p' "$1"; }

# run_pool SOCKET SIZE N -> buffers/s of a producer writing into the sink's pool (zero copy),
# consumer parallaxsrc ! fakesink in a second process.
run_pool() {
  local sock=$1 size=$2 n=$3
  rm -f "$sock"
  timeout 60 "$POOL_SRC" --size "$size" --buffers "$n" \
    "parallaxsink socket-path=$sock wait-for-connection=true" > "$T/pool.out" 2>&1 &
  local p=$!
  pids+=($p)
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
  timeout 65 "$APP" --timeout-s 60 "parallaxsrc socket-path=$sock timeout=20000000000 ! fakesink sync=false" > "$T/cons.out" 2>&1 &
  local c=$!
  pids+=($c)
  wait "$p"
  if grep -q "^probe s: buffers $n " "$T/pool.out"; then
    sed -n 's/^probe s: .* rate \([0-9]*\) buffers.*/\1/p' "$T/pool.out"
  fi
  kill -9 "$c" 2>/dev/null
  wait "$c" 2>/dev/null
}

# run_pair SOCKET PRODUCER CONSUMER -> buffers/s entering the producer's sink (element
# named "s"), first to last buffer; nothing if the run hung. The producer starts first (shmsrc
# fails when its socket is missing) and waits for the consumer (wait-for-connection=true).
run_pair() {
  local sock=$1 prod=$2 cons=$3
  rm -f "$sock"
  timeout 40 "$APP" --timeout-s 30 --stats s --probe s --expect "$N" "$prod" > "$T/prod.out" 2>&1 &
  local p=$!
  pids+=($p)
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
  timeout 45 "$APP" --timeout-s 40 "$cons" > "$T/cons.out" 2>&1 &
  local c=$!
  pids+=($c)
  wait "$p"
  # Every buffer entered the sink (even if the pipeline then hung at EOS, as shmsink does).
  if grep -q "^probe s: buffers $N " "$T/prod.out"; then
    sed -n 's/^probe s: .* rate \([0-9]*\) buffers.*/\1/p' "$T/prod.out"
    grep -q '^eos-hung' "$T/prod.out" && echo "eos-hung" >> "$T/eos_hung"
  fi
  kill -9 "$c" 2>/dev/null
  wait "$c" 2>/dev/null
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo "gstreamer: $(gst-launch-1.0 --version | sed -n 2p)"
echo "reps: $REPS (median)"
echo
printf "%-10s %8s %16s %16s %10s %16s %s\n" size N parallax_buf/s shm_buf/s ratio pool_buf/s parallax_copies
for spec in 4096:100000 262144:10000 1048576:5000 8388608:1000; do
  S=${spec%%:*}; N=${spec##*:}
  SRC="fakesrc num-buffers=$N sizetype=fixed sizemax=$S filltype=nothing"
  shm_size=$(( S * 16 > 67108864 ? S * 16 : 67108864 ))
  px=(); sh=(); zc=()
  for _ in $(seq "$REPS"); do
    r=$(run_pair "$T/s.sock" "$SRC ! parallaxsink name=s socket-path=$T/s.sock slot-size=$S wait-for-connection=true" \
          "parallaxsrc socket-path=$T/s.sock timeout=20000000000 ! fakesink sync=false")
    [ -n "$r" ] && px+=("$r")
    copies=$(sed -n 's/.* copied=(guint64)\([0-9]*\).*/\1/p' "$T/prod.out" 2>/dev/null)
    r=$(run_pair "$T/shm.sock" "$SRC ! shmsink name=s socket-path=$T/shm.sock shm-size=$shm_size wait-for-connection=true sync=false" \
          "shmsrc socket-path=$T/shm.sock ! fakesink sync=false")
    [ -n "$r" ] && sh+=("$r")
    r=$(run_pool "$T/z.sock" "$S" "$N")
    [ -n "$r" ] && zc+=("$r")
    zcopies=$(sed -n 's/.* copied=(guint64)\([0-9]*\).*/\1/p' "$T/pool.out" 2>/dev/null)
  done
  mp=$(printf "%s\n" "${px[@]}" | grep . | median)
  mz=$(printf "%s\n" "${zc[@]}" | grep . | median)
  ms=$(printf "%s\n" "${sh[@]}" | grep . | median)
  ratio="-"
  [ "$mp" != hung ] && [ "$ms" != hung ] && ratio=$(echo "scale=2; $mp / $ms" | bc)
  printf "%-10s %8s %16s %16s %10s %16s %s\n" "$S" "$N" "$mp" "$ms" "$ratio" "$mz" "${copies:-?}/$N (pool: ${zcopies:-?}/$N)"
done
[ -f "$T/eos_hung" ] && echo "($(wc -l < "$T/eos_hung") runs passed every buffer but never reached EOS; counted by their rate)"
echo "hung = not every buffer reached the sink within 30 s; buffers/s = first to last buffer entering the producer's sink"
echo "pool_buf/s = GRAY8 frames of the same size acquired from parallaxsink's proposed pool (plx_gst_pool_src), payload untouched"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" 

echo
VN=300
VCAPS="video/x-raw,format=RGBx,width=1920,height=1080,framerate=30/1"
alone=(); hop=()
for _ in $(seq "$REPS"); do
  timeout 60 "$APP" --probe s "videotestsrc num-buffers=$VN ! $VCAPS ! fakesink name=s sync=false" > "$T/alone.out" 2>&1
  alone+=("$(sed -n 's/^probe s: .* rate \([0-9]*\) buffers.*/\1/p' "$T/alone.out")")
  N=$VN
  r=$(run_pair "$T/s.sock" "videotestsrc num-buffers=$VN ! $VCAPS ! parallaxsink name=s socket-path=$T/s.sock wait-for-connection=true" \
        "parallaxsrc socket-path=$T/s.sock timeout=20000000000 ! fakesink sync=false")
  [ -n "$r" ] && hop+=("$r")
  vcopies=$(sed -n 's/.* copied=(guint64)\([0-9]*\).*/\1/p' "$T/prod.out")
done
ma=$(printf "%s\n" "${alone[@]}" | median)
mh=$(printf "%s\n" "${hop[@]}" | grep . | median)
echo "1080p RGBx videotestsrc: alone $ma fps, through parallaxsink->parallaxsrc $mh fps" \
     "($(echo "scale=1; 100 * $mh / $ma" | bc) %), copies ${vcopies:-?}/$VN"
