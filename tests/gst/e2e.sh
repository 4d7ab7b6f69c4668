#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# End-to-end tests of parallaxsink / parallaxsrc with real gst-launch-1.0 processes and native
# helper programs. One scenario per invocation: e2e.sh SCENARIO (see the case below).
# Needs GST_PLUGIN_PATH (the build's gst/ dir), GST_REGISTRY (a per-test file) and
# PLX_GST_HELPERS (the build's tests/gst dir), as set by meson test.
set -u
scenario=${1:?scenario}
helpers=${PLX_GST_HELPERS:?}
. "$(dirname "$0")/lib.sh" e2e
GL="timeout 60 gst-launch-1.0 -q"
V720="video/x-raw,format=I420,width=1280,height=720,framerate=30/1"
V240="video/x-raw,format=I420,width=320,height=240,framerate=30/1"
LONG_TIMEOUT=20000000000  # parallaxsrc timeout (ns) while waiting for the producer to start

# Waits (up to 20 s) for the producer's socket to appear.
wait_socket() { for _ in $(seq 200); do [ -S "$S" ] && return 0; sleep 0.1; done; fail "no socket $S"; }
# The processes killed on purpose run without `timeout` (killing timeout would not kill them).
GLK="gst-launch-1.0 -q"

# Lines "pts sha1" -> just the hashes (live pipelines have different timestamps).
hashes() { grep -E '^[0-9]+:[0-9]{2}:[0-9]{2}\.[0-9]{9} [0-9a-f]{40}$' "$1" | cut -d' ' -f2; }
stat_of() { sed -nE "s/.*[ ,]$2=\(([a-z0-9]+)\)([0-9a-z]+).*/\2/p" "$1" | head -1; }
stamped() { grep -E '^[0-9]+:[0-9]{2}:[0-9]{2}\.[0-9]{9} [0-9a-f]{40}$' "$1"; }

case "$scenario" in
video)
  # Same checksums through the hop as without it; videoconvert reads the frames through the
  # forwarded GstVideoMeta.
  $GL videotestsrc num-buffers=60 pattern=ball ! $V720 ! videoconvert ! video/x-raw,format=RGBx ! checksumsink > "$T/direct.txt" || fail "direct pipeline"
  $GL videotestsrc num-buffers=60 pattern=ball ! $V720 ! parallaxsink socket-path="$S" wait-for-connection=true > "$T/prod.log" 2>&1 &
  pids+=($!)
  $GL parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! videoconvert ! video/x-raw,format=RGBx ! checksumsink > "$T/hop.txt" 2> "$T/cons.log" || fail "consumer"
  wait "${pids[0]}" || fail "producer"
  [ "$(stamped "$T/hop.txt" | wc -l)" -eq 60 ] || fail "expected 60 buffers, got $(stamped "$T/hop.txt" | wc -l)"
  diff <(stamped "$T/direct.txt") <(stamped "$T/hop.txt") > /dev/null || fail "checksums differ"
  ok "60 frames of 1280x720 I420, identical checksums and timestamps"
  ;;
audio)
  A="audio/x-raw,format=S16LE,rate=48000,channels=2,layout=interleaved"
  $GL audiotestsrc num-buffers=100 wave=sine freq=523 ! $A ! audioconvert ! audio/x-raw,format=F32LE ! checksumsink > "$T/direct.txt" || fail "direct pipeline"
  $GL audiotestsrc num-buffers=100 wave=sine freq=523 ! $A ! parallaxsink socket-path="$S" wait-for-connection=true > "$T/prod.log" 2>&1 &
  pids+=($!)
  $GL parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! audioconvert ! audio/x-raw,format=F32LE ! checksumsink > "$T/hop.txt" 2> "$T/cons.log" || fail "consumer"
  wait "${pids[0]}" || fail "producer"
  [ "$(stamped "$T/hop.txt" | wc -l)" -eq 100 ] || fail "expected 100 buffers"
  diff <(stamped "$T/direct.txt") <(stamped "$T/hop.txt") > /dev/null || fail "checksums differ"
  ok "100 buffers of S16LE stereo, identical checksums and timestamps"
  ;;
zerocopy)
  # The producer writes into the proposed pool: 0 copies, and the consumer maps the very
  # (memfd inode, offset) the producer wrote each buffer to.
  GST_DEBUG=parallaxsink:6 "$helpers/plx_gst_app" --stats s "videotestsrc num-buffers=30 ! video/x-raw,format=I420,width=640,height=480 ! parallaxsink name=s socket-path=$S wait-for-connection=true" > "$T/prod.out" 2> "$T/prod.log" &
  pids+=($!)
  timeout 60 "$helpers/plx_native_sub" --where --timeout-ms 20000 "$S" > "$T/where.txt" 2> "$T/cons.log" || fail "native subscriber"
  wait "${pids[0]}" || fail "producer"
  grep -q 'zero-copy=(guint64)30' "$T/prod.out" || fail "stats: $(grep stats "$T/prod.out")"
  grep -q 'copied=(guint64)0' "$T/prod.out" || fail "stats: $(grep stats "$T/prod.out")"
  sed -nE 's/.*buffer #([0-9]+) zero-copy: segment inode ([0-9]+) offset ([0-9]+).*/where \1 \2 \3/p' "$T/prod.log" | sort > "$T/prod_where.txt"
  grep '^where ' "$T/where.txt" | sort > "$T/cons_where.txt"
  [ "$(wc -l < "$T/cons_where.txt")" -eq 30 ] || fail "consumer saw $(wc -l < "$T/cons_where.txt") buffers"
  diff "$T/prod_where.txt" "$T/cons_where.txt" > /dev/null || fail "producer and consumer disagree on (inode, offset)"
  ok "30 buffers, 0 copies, same memfd inode and offset on both sides ($(head -1 "$T/cons_where.txt"))"
  ;;
fd-memory)
  # Issue 14: downstream of parallaxsrc (another process) sees fd memory: gst_is_fd_memory,
  # the memfd read-only, its bytes at the memory's offset equal to the buffer, and that
  # (inode, offset) is where the producer wrote each buffer (zero copy, nothing copied).
  GST_DEBUG=parallaxsink:6 "$helpers/plx_gst_app" --stats s "videotestsrc num-buffers=30 ! video/x-raw,format=I420,width=640,height=480 ! parallaxsink name=s socket-path=$S wait-for-connection=true" > "$T/prod.out" 2> "$T/prod.log" &
  pids+=($!)
  timeout 60 "$helpers/plx_fd_probe" "$S" > "$T/cons.out" 2> "$T/cons.log" || fail "fd probe: $(tail -1 "$T/cons.out")"
  wait "${pids[0]}" || fail "producer"
  grep -q '^buffers 30 fd-memory 30 identical 30 read-only-fd 30 eos 1$' "$T/cons.out" || fail "fd probe: $(tail -1 "$T/cons.out")"
  grep -q 'zero-copy=(guint64)30' "$T/prod.out" || fail "stats: $(grep stats "$T/prod.out")"
  grep -q 'copied=(guint64)0' "$T/prod.out" || fail "stats: $(grep stats "$T/prod.out")"
  sed -nE 's/.*buffer #[0-9]+ zero-copy: segment inode ([0-9]+) offset ([0-9]+).*/where \1 \2/p' "$T/prod.log" | sort > "$T/prod_where.txt"
  grep '^where ' "$T/cons.out" | sort > "$T/cons_where.txt"
  [ "$(wc -l < "$T/cons_where.txt")" -eq 30 ] || fail "probe saw $(wc -l < "$T/cons_where.txt") fd memories"
  diff "$T/prod_where.txt" "$T/cons_where.txt" > /dev/null || fail "producer's and consumer's (inode, offset) differ"
  ok "30 buffers downstream of parallaxsrc are fd memory of the producer's memfd at the producer's offsets, read-only, 0 copies"
  ;;
native-pub)
  timeout 60 "$helpers/plx_native_pub" "$S" 30 320 240 > "$T/expected.txt" 2> "$T/prod.log" &
  pids+=($!)
  $GL parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! checksumsink > "$T/hop.txt" 2> "$T/cons.log" || fail "consumer"
  wait "${pids[0]}" || fail "native publisher"
  [ "$(stamped "$T/hop.txt" | wc -l)" -eq 30 ] || fail "expected 30 buffers"
  diff <(stamped "$T/expected.txt") <(stamped "$T/hop.txt") > /dev/null || fail "checksums differ"
  ok "native IpcPublisher -> parallaxsrc: 30 frames, identical checksums"
  ;;
native-sub)
  $GL videotestsrc num-buffers=30 pattern=ball ! $V240 ! checksumsink > "$T/direct.txt" || fail "direct pipeline"
  $GL videotestsrc num-buffers=30 pattern=ball ! $V240 ! parallaxsink socket-path="$S" wait-for-connection=true > "$T/prod.log" 2>&1 &
  pids+=($!)
  timeout 60 "$helpers/plx_native_sub" --timeout-ms 20000 "$S" > "$T/hop.txt" 2> "$T/cons.log" || fail "native subscriber"
  wait "${pids[0]}" || fail "producer"
  grep -q '^caps video/x-raw, format=(string)I420, width=(int)320' "$T/hop.txt" || fail "no caps"
  diff <(stamped "$T/direct.txt") <(stamped "$T/hop.txt") > /dev/null || fail "checksums differ"
  ok "parallaxsink -> native IpcSubscriber: caps and 30 identical frames"
  ;;
caps-change)
  timeout 60 "$helpers/plx_native_pub" "$S" 40 320 240 160 120 > "$T/expected.txt" 2> "$T/prod.log" &
  pids+=($!)
  $GL parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! videoconvert ! video/x-raw,format=I420 ! checksumsink > "$T/hop.txt" 2> "$T/cons.log" || fail "consumer"
  wait "${pids[0]}" || fail "native publisher"
  diff <(stamped "$T/expected.txt") <(stamped "$T/hop.txt") > /dev/null || fail "checksums differ"
  ok "320x240 -> 160x120 mid-stream renegotiated downstream, 40 identical frames"
  ;;
late-join)
  # wait-for-connection=false: the stream runs before anyone joins (the point of this test).
  $GL videotestsrc is-live=true num-buffers=120 ! $V240 ! parallaxsink socket-path="$S" wait-for-connection=false > "$T/prod.log" 2>&1 &
  pids+=($!)
  sleep 1.5
  timeout 30 "$helpers/plx_gst_app" --stats src "parallaxsrc name=src socket-path=$S num-buffers=15 ! videoconvert ! video/x-raw,format=RGBx ! fakesink" > "$T/cons.out" 2> "$T/cons.log" || fail "late consumer"
  grep -q 'buffers=(guint64)15' "$T/cons.out" || fail "stats: $(cat "$T/cons.out")"
  wait "${pids[0]}" || fail "producer"
  ok "a consumer joining 1.5 s into a live stream got the caps and 15 frames"
  ;;
fan-out)
  for c in a b; do
    $GL parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! checksumsink > "$T/$c.txt" 2> "$T/$c.log" &
    pids+=($!)
  done
  sleep 0.3
  $GL videotestsrc num-buffers=60 pattern=ball ! $V240 ! checksumsink > "$T/direct.txt" || fail "direct pipeline"
  # A live producer (30 fps, 2 s): the sink starts when the first consumer connects, the second
  # may connect a little later on a loaded machine and then sees a suffix of the stream.
  $GL videotestsrc is-live=true num-buffers=60 pattern=ball ! $V240 ! parallaxsink socket-path="$S" wait-for-connection=true > "$T/prod.log" 2>&1 || fail "producer"
  wait "${pids[0]}" || fail "consumer a"
  wait "${pids[1]}" || fail "consumer b"
  for c in a b; do
    n=$(stamped "$T/$c.txt" | wc -l)
    [ "$n" -ge 40 ] || fail "consumer $c got $n of 60 frames"
    # Frame contents (the ball pattern depends on the frame number only), not timestamps.
    diff <(stamped "$T/direct.txt" | tail -n "$n" | cut -d' ' -f2) <(stamped "$T/$c.txt" | cut -d' ' -f2) > /dev/null ||
      fail "consumer $c: checksums differ"
  done
  ok "two consumers on one sink: $(stamped "$T/a.txt" | wc -l) and $(stamped "$T/b.txt" | wc -l) identical frames"
  ;;
fan-out-1080p)
  # Issue 12: four parallaxsrc consumers on one 1080p parallaxsink with automatic slots (6 slots
  # of 3 MiB, quota 4). The pool used to admit two (quotas 4 and 1) and refuse the third with
  # resource_exhausted; now it grows by a segment when a newcomer's quota would be too small,
  # within max-memory (512 MiB by default).
  V1080="video/x-raw,format=I420,width=1920,height=1080,framerate=30/1"
  timeout 60 "$helpers/plx_gst_app" --stats s "videotestsrc is-live=true num-buffers=30 pattern=ball ! $V1080 ! parallaxsink name=s socket-path=$S wait-for-connection=true" > "$T/prod.out" 2> "$T/prod.log" &
  prod=$!; pids+=($prod)
  wait_socket
  for c in a b c d; do
    $GL parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! checksumsink > "$T/$c.txt" 2> "$T/$c.log" &
    pids+=($!)
  done
  $GL videotestsrc num-buffers=30 pattern=ball ! $V1080 ! checksumsink > "$T/direct.txt" || fail "direct pipeline"
  wait "$prod" || fail "producer"
  i=1
  for c in a b c d; do
    wait "${pids[$i]}" || fail "consumer $c failed (refused?): $(tail -3 "$T/$c.log")"
    i=$((i + 1))
    n=$(stamped "$T/$c.txt" | wc -l)
    [ "$n" -ge 10 ] || fail "consumer $c got $n of 30 frames"
    diff <(stamped "$T/direct.txt" | tail -n "$n" | cut -d' ' -f2) <(stamped "$T/$c.txt" | cut -d' ' -f2) > /dev/null ||
      fail "consumer $c: checksums differ"
  done
  conns=$(stat_of "$T/prod.out" connections)
  [ "$conns" -ge 4 ] || fail "the sink admitted $conns consumers: $(grep stats "$T/prod.out")"
  pool=$(stat_of "$T/prod.out" pool-bytes)
  [ "$pool" -gt $((6 * 1920 * 1080 * 3 / 2)) ] || fail "the pool did not grow: $pool bytes"
  ok "four consumers on a 1080p sink: $(for c in a b c d; do printf '%s ' "$(stamped "$T/$c.txt" | wc -l)"; done)identical frames; pool grew to $pool bytes"
  ;;
consumer-killed)
  $GL videotestsrc is-live=true num-buffers=90 pattern=ball ! $V240 ! parallaxsink socket-path="$S" wait-for-connection=true > "$T/prod.log" 2>&1 &
  prod=$!; pids+=($prod)
  $GLK parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! fakesink > "$T/a.log" 2>&1 &
  victim=$!; pids+=($victim)
  $GL parallaxsrc socket-path="$S" timeout=$LONG_TIMEOUT ! checksumsink > "$T/b.txt" 2> "$T/b.log" &
  survivor=$!; pids+=($survivor)
  sleep 1.5
  kill -9 "$victim"
  wait "$victim" 2>/dev/null
  wait "$prod" || fail "producer did not finish after a consumer was killed"
  wait "$survivor" || fail "surviving consumer"
  n=$(stamped "$T/b.txt" | wc -l)
  [ "$n" -ge 80 ] || fail "surviving consumer got $n frames"
  ok "producer finished and the other consumer got $n frames after one consumer was killed"
  ;;
producer-killed)
  $GLK videotestsrc is-live=true ! $V240 ! parallaxsink socket-path="$S" > "$T/prod.log" 2>&1 &
  prod=$!; pids+=($prod)
  wait_socket
  timeout 30 "$helpers/plx_gst_app" --timeout-s 20 "parallaxsrc socket-path=$S timeout=1000000000 ! fakesink" > "$T/cons.out" 2> "$T/cons.log" &
  cons=$!; pids+=($cons)
  sleep 1.5
  kill -9 "$prod"
  wait "$prod" 2>/dev/null
  t0=$(date +%s.%N)
  wait "$cons"; rc=$?
  dt=$(echo "$(date +%s.%N) - $t0" | bc)
  [ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] || fail "consumer rc $rc (2 = hung until its own timeout, 124 = killed)"
  (( $(echo "$dt < 5" | bc) )) || fail "consumer took $dt s to notice"
  ok "consumer ended (rc $rc: $(head -1 "$T/cons.log")) ${dt%??????} s after the producer was killed"
  ;;
*)
  echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
