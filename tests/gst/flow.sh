#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Issue 11 (flow): real pipelines never hang and never lose data. Real processes, real elements:
# a downstream that keeps buffers (x264enc with its default lookahead, a queue that releases
# nothing before N buffers, filesink batching), a native producer that exits at EOS, and a
# consumer SIGSTOPped mid-stream while the producer gets Ctrl-C. One scenario per invocation:
# flow.sh SCENARIO. Needs GST_PLUGIN_PATH, GST_REGISTRY (meson test); PARALLAX_LAUNCH for the
# native scenarios.
set -u
scenario=${1:?scenario}
. "$(dirname "$0")/lib.sh" flow
GL="timeout 40 gst-launch-1.0 -q"
WAIT_NS=20000000000  # parallaxsrc timeout while the producer starts (ns)
# checksumsink lines: "H:MM:SS.NNNNNNNNN <sha1>"
stamped() { grep -E '^[0-9]+:[0-9]{2}:[0-9]{2}\.[0-9]{9} [0-9a-f]{40}$' "$1"; }
same_frames() {  # direct.txt hop.txt expected_count
  local n
  n=$(stamped "$1" | wc -l)
  [ "$n" -eq "$3" ] || fail "direct pipeline gave $n frames, expected $3"
  n=$(stamped "$2" | wc -l)
  [ "$n" -eq "$3" ] || fail "through the hop: $n of $3 frames"
  diff <(stamped "$1") <(stamped "$2") > "$T/diff.txt" || fail "frames differ: $(head -4 "$T/diff.txt")"
}
# Microseconds since the epoch (bash 5's EPOCHREALTIME), and since a given point.
now() { echo "${EPOCHREALTIME/./}"; }
elapsed_ms() { echo $((($(now) - $1) / 1000)); }
# Waits for a process to end within $2 ms; 0 if it did.
ended_within() {
  local pid=$1 limit=$2 t0
  t0=$(now)
  while kill -0 "$pid" 2>/dev/null; do
    [ "$(elapsed_ms "$t0")" -gt "$limit" ] && return 1
    sleep 0.05
  done
  return 0
}
# Waits until the socket exists and a consumer is streaming (its log says nothing; we wait
# for the producer's socket and give the consumer time to connect).
wait_socket() {
  for _ in $(seq 200); do [ -S "$S" ] && return 0; sleep 0.05; done
  fail "no socket at $S"
}

case "$scenario" in
x264)
  # x264enc with its default settings keeps ~40+ frames (lookahead, B-frames) before it
  # outputs anything, far more than the consumer's lease quota (9 of 12 automatic 720p slots):
  # before copy-threshold the producer stalled and x264enc waited forever.
  V720="video/x-raw,format=I420,width=1280,height=720,framerate=30/1"
  N=40  # x264enc alone keeps them all until EOS (lookahead 40): 4x the quota of 9
  ENC="x264enc ! h264parse ! avdec_h264 ! checksumsink"
  $GL videotestsrc num-buffers=$N pattern=ball ! $V720 ! $ENC > "$T/direct.txt" 2> "$T/direct.log" || fail "direct pipeline"
  $GL parallaxsrc socket-path="$S" timeout=$WAIT_NS ! $ENC > "$T/hop.txt" 2> "$T/cons.log" &
  pids+=($!)
  $GL videotestsrc num-buffers=$N pattern=ball ! $V720 ! parallaxsink socket-path="$S" > "$T/prod.log" 2>&1 || fail "producer"
  wait "${pids[0]}" || fail "consumer"
  same_frames "$T/direct.txt" "$T/hop.txt" $N
  ok "$N 720p frames through default x264enc, decoded checksums identical with and without the hop"
  ;;
hold)
  # A queue that releases nothing before it holds HOLD buffers (min-threshold-buffers), for
  # HOLD = 4x the quota (slot-count=8: quota 6): every received buffer past copy-threshold is
  # copied and its lease returned at once, so the producer never stalls.
  V240="video/x-raw,format=I420,width=320,height=240,framerate=30/1"
  N=60
  HOLD=24
  Q="queue min-threshold-buffers=$HOLD max-size-buffers=0 max-size-bytes=0 max-size-time=0"
  $GL videotestsrc num-buffers=$N pattern=ball ! $V240 ! $Q ! checksumsink > "$T/direct.txt" 2> "$T/direct.log" || fail "direct pipeline"
  GST_DEBUG=parallaxsrc:4 timeout 40 gst-launch-1.0 parallaxsrc socket-path="$S" timeout=$WAIT_NS ! $Q ! checksumsink > "$T/hop.txt" 2> "$T/cons.log" &
  pids+=($!)
  timeout 40 gst-launch-1.0 videotestsrc num-buffers=$N pattern=ball ! $V240 ! parallaxsink slot-count=8 socket-path="$S" > "$T/prod.log" 2>&1 || fail "producer"
  wait "${pids[0]}" || fail "consumer"
  same_frames "$T/direct.txt" "$T/hop.txt" $N
  # The copies were made, said once, with the reason.
  n=$(grep -c 'copying payloads past copy-threshold 3 ' "$T/cons.log")
  [ "$n" -eq 1 ] || fail "expected one log line about copies past copy-threshold 3, got $n"
  ok "$N frames through a queue holding $HOLD (4x the quota of 6) before releasing any: identical"
  ;;
native-filesink)
  # A native producer (parallax-launch filesrc ! parallaxsink) that exits at EOS, a gst
  # consumer writing with filesink's default buffering (~64 KiB = 16 leases of 4 KiB, more
  # than the native sink's quota of 12): 16 MiB identical.
  PL=${PARALLAX_LAUNCH:?PARALLAX_LAUNCH is not set (run through meson test)}
  head -c $((16 << 20)) /dev/urandom > "$T/in.bin"
  $GL parallaxsrc socket-path="$S" timeout=$WAIT_NS ! filesink location="$T/out.bin" > "$T/cons.log" 2>&1 &
  pids+=($!)
  timeout 40 "$PL" -q "filesrc location=$T/in.bin ! parallaxsink socket-path=$S" > "$T/prod.log" 2>&1 || fail "native producer"
  wait "${pids[0]}" || fail "gst consumer"
  cmp -s "$T/in.bin" "$T/out.bin" || fail "bytes differ ($(stat -c %s "$T/out.bin") of $(stat -c %s "$T/in.bin"))"
  ok "16 MiB identical: native filesrc ! parallaxsink (exits at EOS) -> parallaxsrc ! filesink"
  ;;
sigstop-gst | sigstop-native)
  # A consumer that stops reading (SIGSTOP) mid-stream: the producer blocks on it (policy
  # block). Ctrl-C (SIGINT; gst-launch -e and parallax-launch first try an EOS, which cannot
  # get through the blocked sink, a second SIGINT stops) must end the producer within 2 s.
  V240="video/x-raw,format=I420,width=320,height=240,framerate=30/1"
  if [ "$scenario" = sigstop-gst ]; then
    gst-launch-1.0 -e videotestsrc ! $V240 ! parallaxsink socket-path="$S" > "$T/prod.log" 2>&1 &
  else
    PL=${PARALLAX_LAUNCH:?PARALLAX_LAUNCH is not set (run through meson test)}
    "$PL" -q "nullsource size=4096 ! parallaxsink socket-path=$S" > "$T/prod.log" 2>&1 &
  fi
  prod=$!
  pids+=($prod)
  wait_socket
  GST_DEBUG=parallaxsrc:4 gst-launch-1.0 parallaxsrc socket-path="$S" timeout=$WAIT_NS ! fakesink > "$T/cons.log" 2>&1 &
  cons=$!
  pids+=($cons)
  # Streaming for sure (a loaded machine takes seconds to start gst-launch): the consumer
  # connected (the producer waits for it: wait-for-connection), then data flows for a while.
  for _ in $(seq 400); do grep -q 'connected to' "$T/cons.log" && break; sleep 0.05; done
  grep -q 'connected to' "$T/cons.log" || fail "consumer never connected"
  sleep 0.5
  kill -0 "$cons" 2>/dev/null || fail "consumer ended early"
  kill -STOP "$cons"
  sleep 1  # the producer fills the stopped consumer's quota and blocks
  kill -0 "$prod" 2>/dev/null || fail "producer ended early"
  t0=$(now)
  kill -INT "$prod"
  if ! ended_within "$prod" 500; then
    kill -INT "$prod" 2>/dev/null
    ended_within "$prod" 1500 || fail "producer still running $(elapsed_ms "$t0") ms after SIGINT"
  fi
  took=$(elapsed_ms "$t0")
  wait "$prod"
  rc=$?
  [ "$rc" -lt 124 ] || [ "$rc" -eq 130 ] || fail "producer exit status $rc"
  ok "producer ended $took ms after SIGINT with a SIGSTOPped consumer (exit $rc)"
  ;;
*)
  echo "unknown scenario $scenario" >&2
  exit 2
  ;;
esac
