#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Native <-> GStreamer through the IPC elements: parallax-launch's parallaxsink/parallaxsrc
# against gst-launch-1.0's, as real processes. One scenario per invocation:
# cross_native.sh SCENARIO. Needs PARALLAX_LAUNCH, GST_PLUGIN_PATH and GST_REGISTRY (meson test).
set -u
scenario=${1:?scenario}
PL=${PARALLAX_LAUNCH:?PARALLAX_LAUNCH is not set (run through meson test)}
. "$(dirname "$0")/lib.sh" cross
GL="timeout 30 gst-launch-1.0 -q"
PLT="timeout 30 $PL"
V240="video/x-raw,format=I420,width=320,height=240,framerate=30/1"
WAIT_NS=20000000000  # parallaxsrc timeout while the producer starts (ns)
stamped() { grep -E '^[0-9]+:[0-9]{2}:[0-9]{2}\.[0-9]{9} [0-9a-f]{40}$' "$1"; }

case "$scenario" in
native-to-gst)
  # nullsource's counter pattern through parallaxsink (native) -> parallaxsrc (GStreamer), byte
  # for byte against the same native pipeline writing the file itself. filesink must not batch:
  # by default it holds ~64 KiB of buffers, more leases than the producer's quota (12 of 16
  # slots), which stalls a policy=block producer.
  $PLT -q "nullsource num-buffers=100 size=1000 pattern=counter ! filesink location=$T/direct.bin" || fail "direct pipeline"
  $GL parallaxsrc socket-path="$S" timeout=$WAIT_NS ! filesink buffer-mode=unbuffered location="$T/hop.bin" > "$T/cons.log" 2>&1 &
  pids+=($!)
  $PLT -q "nullsource num-buffers=100 size=1000 pattern=counter ! parallaxsink socket-path=$S" > "$T/prod.log" 2>&1 || fail "native producer"
  wait "${pids[0]}" || fail "gst consumer"
  cmp -s "$T/direct.bin" "$T/hop.bin" || fail "bytes differ ($(stat -c %s "$T/hop.bin") of $(stat -c %s "$T/direct.bin"))"
  # And a gst consumer counting buffers: fakesink's handoffs in -v output.
  timeout 30 gst-launch-1.0 parallaxsrc socket-path="$S" timeout=$WAIT_NS ! fakesink silent=false -v > "$T/count.txt" 2> "$T/count.log" &
  pids+=($!)
  $PLT -q "nullsource num-buffers=37 size=64 ! parallaxsink socket-path=$S" > "$T/prod2.log" 2>&1 || fail "native producer 2"
  wait "${pids[1]}" || fail "gst consumer 2"
  n=$(grep -c 'chain   \*\*\*\*\*\*\*' "$T/count.txt")
  [ "$n" -eq 37 ] || fail "gst consumer saw $n of 37 buffers"
  ok "100 KB identical through native parallaxsink -> gst parallaxsrc; 37/37 buffers counted"
  ;;
gst-to-native)
  # videotestsrc through parallaxsink (GStreamer) -> parallaxsrc (native) ! filesink, compared
  # with the same gst pipeline writing the file directly; the caps event is printed by -v.
  $GL videotestsrc num-buffers=10 pattern=ball ! $V240 ! filesink location="$T/direct.bin" || fail "direct pipeline"
  $PLT -v "parallaxsrc socket-path=$S timeout=$WAIT_NS ! filesink location=$T/hop.bin" > "$T/cons.txt" 2> "$T/cons.log" &
  pids+=($!)
  $GL videotestsrc num-buffers=10 pattern=ball ! $V240 ! parallaxsink socket-path="$S" wait-for-connection=true > "$T/prod.log" 2>&1 || fail "gst producer"
  wait "${pids[0]}" || fail "native consumer"
  cmp -s "$T/direct.bin" "$T/hop.bin" || fail "bytes differ ($(stat -c %s "$T/hop.bin") of $(stat -c %s "$T/direct.bin"))"
  grep -q '^/pipeline/parallaxsrc0.src: caps: video/x-raw, format=I420, width=320, height=240, framerate=30/1' "$T/cons.txt" || fail "no caps event: $(grep caps "$T/cons.txt")"
  grep -q '^/pipeline/parallaxsrc0.src: eos' "$T/cons.txt" || fail "no eos"
  ok "10 frames of 320x240 I420 identical through gst parallaxsink -> native parallaxsrc, caps forwarded"
  ;;
relay)
  # GStreamer -> native relay (parallaxsrc ! queue ! parallaxsink) -> GStreamer: the format string
  # crosses the native hop unchanged (note=(string)42 would come back as an int if the relay
  # republished its own caps text), and frames and timestamps arrive intact.
  VN="$V240,note=(string)42"
  $GL videotestsrc num-buffers=30 pattern=ball ! $V240 ! checksumsink > "$T/direct.txt" || fail "direct pipeline"
  timeout 30 gst-launch-1.0 -v parallaxsrc socket-path="$T/b.sock" timeout=$WAIT_NS ! checksumsink > "$T/hop.txt" 2> "$T/cons.log" &
  pids+=($!)
  $PLT "parallaxsrc socket-path=$S timeout=$WAIT_NS ! queue ! parallaxsink socket-path=$T/b.sock" > "$T/relay.log" 2>&1 &
  pids+=($!)
  $GL videotestsrc num-buffers=30 pattern=ball ! "$VN" ! parallaxsink socket-path="$S" wait-for-connection=true > "$T/prod.log" 2>&1 || fail "gst producer"
  wait "${pids[1]}" || fail "native relay"
  wait "${pids[0]}" || fail "gst consumer"
  [ "$(stamped "$T/hop.txt" | wc -l)" -eq 30 ] || fail "expected 30 buffers, got $(stamped "$T/hop.txt" | wc -l)"
  diff <(stamped "$T/direct.txt") <(stamped "$T/hop.txt") > /dev/null || fail "checksums or timestamps differ"
  grep -q 'parallaxsrc0.GstPad:src: caps = video/x-raw, .*note=(string)42' "$T/hop.txt" || fail "format changed on the way: $(grep 'src: caps' "$T/hop.txt")"
  ok "30 frames gst -> native relay -> gst, identical checksums and timestamps, format string intact"
  ;;
*)
  echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
