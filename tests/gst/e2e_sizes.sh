#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# End-to-end tests of buffer sizes with real gst-launch-1.0 processes: caps that grow through
# `concat`, an H.264 stream whose frames grow 1000x, a byte stream of 6 MiB blocks after 4 KiB
# ones, and the shared memory an H.264 stream of ~20 KiB frames takes. One scenario per
# invocation: e2e_sizes.sh SCENARIO. Needs GST_PLUGIN_PATH, GST_REGISTRY and PLX_GST_HELPERS
# (as set by meson test).
set -u
scenario=${1:?scenario}
helpers=${PLX_GST_HELPERS:?}
. "$(dirname "$0")/lib.sh" sizes
GL="timeout 60 gst-launch-1.0 -q"
LONG_TIMEOUT=20000000000  # parallaxsrc timeout (ns) while waiting for the producer to start
stamped() { grep -E '^[0-9]+:[0-9]{2}:[0-9]{2}\.[0-9]{9} [0-9a-f]{40}$' "$1"; }
stat_of() { sed -nE "s/.*[ ,]$2=\(([a-z0-9]+)\)([0-9a-z]+).*/\2/p" "$1" | head -1; }

case "$scenario" in
caps-grow)
  # 320x240 -> 1280x720 -> 3840x2160 through concat: each caps change needs larger slots.
  SRCS="videotestsrc num-buffers=4 pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! c.
        videotestsrc num-buffers=4 pattern=ball ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 ! c.
        videotestsrc num-buffers=4 pattern=ball ! video/x-raw,format=I420,width=3840,height=2160,framerate=30/1 ! c."
  # shellcheck disable=SC2086
  $GL concat name=c ! checksumsink $SRCS > "$T/direct.txt" || fail "direct pipeline"
  # shellcheck disable=SC2086
  timeout 60 "$helpers/plx_gst_app" --stats s "concat name=c ! parallaxsink name=s socket-path=$S wait-for-connection=true $SRCS" > "$T/prod.out" 2> "$T/prod.log" &
  pids+=($!)
  $GL parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! checksumsink > "$T/hop.txt" 2> "$T/cons.log" || fail "consumer"
  wait "${pids[0]}" || fail "producer"
  n=$(stamped "$T/hop.txt" | wc -l)
  [ "$n" -eq 12 ] || fail "expected 12 frames, got $n"
  diff <(stamped "$T/direct.txt") <(stamped "$T/hop.txt") > /dev/null || fail "checksums differ"
  growths=$(stat_of "$T/prod.out" pool-growths)
  [ "$growths" = 2 ] || fail "expected 2 pool growths, stats say '$growths'"
  ok "12 frames 320x240 -> 1280x720 -> 3840x2160, identical checksums, $growths pool growths, copied=$(stat_of "$T/prod.out" copied)"
  ;;
h264-grow)
  # A black scene then noise at 3840x2160, lossless (quantizer 0): encoded frames grow from a
  # few hundred bytes to ~12 MiB, past the 4 MiB slots the sink used to give encoded streams.
  SRCS="videotestsrc num-buffers=3 pattern=black ! video/x-raw,format=I420,width=3840,height=2160,framerate=30/1 ! c.
        videotestsrc num-buffers=2 pattern=snow ! video/x-raw,format=I420,width=3840,height=2160,framerate=30/1 ! c."
  ENC="x264enc speed-preset=ultrafast tune=zerolatency pass=quant quantizer=0 key-int-max=30 threads=1 ! video/x-h264,stream-format=byte-stream,alignment=au ! h264parse"
  # shellcheck disable=SC2086
  $GL concat name=c ! $ENC ! avdec_h264 ! checksumsink $SRCS > "$T/direct.txt" 2> "$T/direct.log" || fail "direct pipeline"
  # shellcheck disable=SC2086
  timeout 60 "$helpers/plx_gst_app" --stats s "concat name=c ! $ENC ! parallaxsink name=s socket-path=$S wait-for-connection=true $SRCS" > "$T/prod.out" 2> "$T/prod.log" &
  pids+=($!)
  $GL parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! h264parse ! avdec_h264 ! checksumsink > "$T/hop.txt" 2> "$T/cons.log" || fail "consumer"
  wait "${pids[0]}" || fail "producer"
  n=$(stamped "$T/hop.txt" | wc -l)
  [ "$n" -eq 5 ] || fail "expected 5 decoded frames, got $n"
  diff <(stamped "$T/direct.txt") <(stamped "$T/hop.txt") > /dev/null || fail "decoded checksums differ"
  v=$(stat_of "$T/prod.out" variable-size)
  [ "$v" = TRUE ] || [ "$v" = true ] || fail "expected a variable-size pool: $(grep stats "$T/prod.out")"
  ok "5 frames 3840x2160 black -> snow through x264enc (lossless), identical decoded checksums; encoded $(stat_of "$T/prod.out" bytes) bytes, pool $(stat_of "$T/prod.out" pool-bytes) bytes, high water $(stat_of "$T/prod.out" pool-bytes-high-water)"
  ;;
bytes-grow)
  # 64 blocks of 4 KiB, then 4 blocks of 6 MiB (filesrc blocksize), no caps: a variable-size
  # pool that grows a segment for the large blocks.
  head -c $((64 * 4096)) /dev/urandom > "$T/a.bin"
  head -c $((4 * 6 * 1024 * 1024)) /dev/urandom > "$T/b.bin"
  cat "$T/a.bin" "$T/b.bin" > "$T/expected.bin"
  timeout 60 "$helpers/plx_gst_app" --stats s "concat name=c ! parallaxsink name=s socket-path=$S wait-for-connection=true filesrc location=$T/a.bin blocksize=4096 ! c. filesrc location=$T/b.bin blocksize=6291456 ! c." > "$T/prod.out" 2> "$T/prod.log" &
  pids+=($!)
  $GL parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! filesink location="$T/out.bin" > "$T/cons.log" 2>&1 || fail "consumer"
  wait "${pids[0]}" || fail "producer"
  cmp "$T/expected.bin" "$T/out.bin" > "$T/cmp.out" 2>&1 || fail "output differs: $(cat "$T/cmp.out")"
  ok "64 x 4 KiB then 4 x 6 MiB: $(stat -c %s "$T/out.bin") identical bytes; pool $(stat_of "$T/prod.out" pool-bytes) bytes, high water $(stat_of "$T/prod.out" pool-bytes-high-water)"
  ;;
bytes-grow-native)
  # The native sink (parallax-launch) with 4 KiB slots gets 6 MiB buffers: it replaces its
  # pool by one of 6 MiB slots (the old one retired); a gst consumer writes them out identical.
  PL=${PARALLAX_LAUNCH:?PARALLAX_LAUNCH is not set (run through meson test)}
  head -c $((3 * 6 * 1024 * 1024 + 4096)) /dev/urandom > "$T/in.bin"
  $GL parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! filesink location="$T/out.bin" > "$T/cons.log" 2>&1 &
  pids+=($!)
  timeout 40 "$PL" -q "filesrc location=$T/in.bin blocksize=6291456 ! parallaxsink slot-size=4096 socket-path=$S" > "$T/prod.log" 2>&1 || fail "native producer"
  wait "${pids[0]}" || fail "gst consumer"
  cmp -s "$T/in.bin" "$T/out.bin" || fail "bytes differ ($(stat -c %s "$T/out.bin") of $(stat -c %s "$T/in.bin"))"
  ok "native parallaxsink slot-size=4096 fed 6 MiB blocks: $(stat -c %s "$T/out.bin") identical bytes"
  ;;
h264-memory)
  # ~20 KiB frames (4.8 Mbit/s at 30 fps): the pool's bytes follow the frames in flight, not
  # 4 MiB per slot. Prints the figures (docs/gstreamer.md quotes them).
  timeout 60 "$helpers/plx_gst_app" --stats s "videotestsrc num-buffers=150 pattern=snow ! video/x-raw,format=I420,width=640,height=480,framerate=30/1 ! x264enc tune=zerolatency bitrate=4800 threads=1 ! h264parse ! parallaxsink name=s socket-path=$S wait-for-connection=true" > "$T/prod.out" 2> "$T/prod.log" &
  pids+=($!)
  $GL parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! h264parse ! avdec_h264 ! fakesink > "$T/cons.log" 2>&1 || fail "consumer"
  wait "${pids[0]}" || fail "producer"
  buffers=$(stat_of "$T/prod.out" buffers)
  bytes=$(stat_of "$T/prod.out" bytes)
  pool=$(stat_of "$T/prod.out" pool-bytes)
  hw=$(stat_of "$T/prod.out" pool-bytes-high-water)
  [ "$buffers" -ge 150 ] || fail "stats: $(grep stats "$T/prod.out")"
  avg=$((bytes / buffers))
  # The old sizing: 6 slots of 4 MiB = 24 MiB. Now: the arena's first segment (2 MiB) and
  # a high water of the frames in flight.
  [ "$pool" -le $((2 * 1024 * 1024)) ] || fail "pool of $pool bytes for ~$avg-byte frames"
  [ "$hw" -le $((64 * avg + 1024 * 1024)) ] || fail "high water $hw bytes for ~$avg-byte frames"
  ok "$buffers H.264 frames of $avg bytes on average: pool $pool bytes, high water $hw bytes in use, copied=$(stat_of "$T/prod.out" copied) (was 6 x 4 MiB slots = 25165824)"
  ;;
*)
  echo "unknown scenario $scenario" >&2
  exit 2
  ;;
esac
