#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Demo: 300 frames of 1280x720 I420 cross from a gst-launch-1.0 producer process to a consumer
# process through parallaxsink -> parallaxsrc. Prints what crossed (caps, buffers, bytes), the
# rate, and how many payload copies were made (from both elements' stats properties).
#   tests/gst/demo_cross_process.sh BUILD_DIR
set -u
B=$(cd "${1:?usage: demo_cross_process.sh BUILD_DIR}" && pwd)
APP=$B/tests/gst/plx_gst_app
[ -x "$APP" ] || { echo "build first: ninja -C $B gst/libgstparallax.so tests/gst/plx_gst_app" >&2; exit 1; }
export GST_PLUGIN_PATH=$B/gst GST_REGISTRY=$B/demo-registry.bin PARALLAX_LOG=${PARALLAX_LOG:-error}
T=$(mktemp -d /tmp/plx-demo-XXXXXX)
S=$T/video.sock
trap 'kill -9 ${prod:-} 2>/dev/null; rm -rf "$T"' EXIT
CAPS="video/x-raw,format=I420,width=1280,height=720,framerate=30/1"

echo "producer process: videotestsrc num-buffers=300 ! $CAPS ! parallaxsink socket-path=$S wait-for-connection=true"
echo "consumer process: parallaxsrc socket-path=$S ! fakesink"
echo
timeout 60 "$APP" --stats sink --probe sink \
  "videotestsrc num-buffers=300 ! $CAPS ! parallaxsink name=sink socket-path=$S wait-for-connection=true" \
  > "$T/prod.out" 2> "$T/prod.err" &
prod=$!
timeout 60 "$APP" --stats src --probe out \
  "parallaxsrc name=src socket-path=$S ! fakesink name=out sync=false" \
  > "$T/cons.out" 2> "$T/cons.err"
cons_rc=$?
wait "$prod"
prod_rc=$?
caps=$(sed -n 's/^caps out: //p' "$T/cons.out")

field() { sed -n "s/.*[ ,]$2=(guint64)\\([0-9]*\\).*/\\1/p" "$1" | head -1; }
probe() { sed -n "s/^probe $2: buffers \\([0-9]*\\) bytes \\([0-9]*\\) span \\([0-9.]*\\) s rate \\([0-9]*\\) buffers\\/s \\([0-9.]*\\) MB\\/s/$3/p" "$1"; }

echo "caps:        $caps (set by parallaxsrc from the producer: no caps filter)"
echo "buffers:     sent $(field "$T/prod.out" buffers), received $(field "$T/cons.out" buffers)"
echo "bytes:       sent $(field "$T/prod.out" bytes), received $(field "$T/cons.out" bytes)"
echo "rate:        $(probe "$T/cons.out" out '\4') buffers/s, $(probe "$T/cons.out" out '\5') MB/s at the consumer (first to last buffer, no clock sync)"
echo "copies:      $(field "$T/prod.out" copied) payload copies in the producer (zero-copy buffers: $(field "$T/prod.out" zero-copy)), 0 in the consumer (it maps the producer's slots read-only)"
echo
echo "producer stats: $(sed -n 's/^stats sink: //p' "$T/prod.out")"
echo "consumer stats: $(sed -n 's/^stats src: //p' "$T/cons.out")"
if [ "$cons_rc" -ne 0 ] || [ "$prod_rc" -ne 0 ]; then
  echo "FAILED: producer rc $prod_rc, consumer rc $cons_rc" >&2
  cat "$T/prod.err" "$T/cons.err" >&2
  exit 1
fi
