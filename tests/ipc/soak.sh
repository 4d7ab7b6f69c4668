#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# IPC soak (not run in CI; issue 12). One publisher (ipc_peer soak-pub, block policy,
# block_timeout 500 ms), 3 steady `block` subscribers that check every checksum and that no
# buffer is missing, and up to 5 more at a time doing chaos for DURATION seconds: kill -9 of
# holders, SIGSTOP/SIGCONT of drop-oldest subscribers, hostile joins (every hostile-sub mode),
# subscribers that come and go. Then 1000 kill -9 cycles (test_ipc's kill test with
# PLX_IPC_SOAK_CYCLES). Prints the publisher's figures; exit 0 when every assertion held.
#   tests/ipc/soak.sh BUILD_DIR [DURATION=60] [CYCLES=1000]
set -u
BUILD=${1:?build dir}
DURATION=${2:-60}
CYCLES=${3:-1000}
PEER="$BUILD/tests/ipc/ipc_peer"
DIR=$(mktemp -d /tmp/plx-soak-XXXXXX)
SOCK="$DIR/soak.sock"
LOG="$DIR/pub.log"
cleanup() {
  for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
fail=0

"$PEER" soak-pub "$SOCK" "$DURATION" 3 >"$LOG" 2>"$DIR/pub.err" &
PUB=$!
for _ in $(seq 100); do grep -q ready "$LOG" 2>/dev/null && break; sleep 0.05; done

steady=()
for i in 1 2 3; do
  "$PEER" subscribe "$SOCK" -1 block >"$DIR/steady$i.out" 2>"$DIR/steady$i.err" &
  steady+=($!)
done
sleep 1  # the steady ones are in (the publisher waits for 3 before its first buffer)

modes=(garbage version fds toomanyfds never-leased double-release bad-read-pos bad-return-index
       talk-after-hello jam-wakeups)
declare -A chaos_pids=()
all_pids=()
events=0
end=$((SECONDS + DURATION - 2))
while [ $SECONDS -lt $end ]; do
  # at most 5 chaos peers at a time (8 subscribers with the steady ones)
  for p in "${!chaos_pids[@]}"; do kill -0 "$p" 2>/dev/null || unset "chaos_pids[$p]"; done
  if [ ${#chaos_pids[@]} -ge 5 ]; then
    victim=$(printf '%s\n' "${!chaos_pids[@]}" | shuf -n1)
    kill -9 "$victim" 2>/dev/null; unset "chaos_pids[$victim]"
  fi
  case $((RANDOM % 5)) in
    0) "$PEER" hold "$SOCK" >/dev/null 2>&1 & p=$!; chaos_pids[$p]=1
       ( sleep "0.$((RANDOM % 9 + 1))"; kill -9 $p 2>/dev/null ) & ;;
    1) "$PEER" subscribe "$SOCK" -1 drop-oldest >/dev/null 2>&1 & p=$!; chaos_pids[$p]=1
       ( sleep 0.3; kill -STOP $p 2>/dev/null; sleep "0.$((RANDOM % 9 + 1))"; kill -CONT $p 2>/dev/null
         sleep 0.5; kill -9 $p 2>/dev/null ) & ;;
    2) m=${modes[$((RANDOM % ${#modes[@]}))]}
       "$PEER" hostile-sub "$SOCK" "$m" >/dev/null 2>&1 & p=$!; chaos_pids[$p]=1
       ( sleep 4; kill -9 $p 2>/dev/null ) & ;;
    3) "$PEER" subscribe "$SOCK" -1 block >/dev/null 2>&1 & p=$!; chaos_pids[$p]=1
       ( sleep 0.$((RANDOM % 9 + 1)); kill -STOP $p 2>/dev/null; sleep 1; kill -CONT $p 2>/dev/null
         sleep 0.2; kill -9 $p 2>/dev/null ) & ;;
    4) "$PEER" hold "$SOCK" >/dev/null 2>&1 & p=$!; chaos_pids[$p]=1
       ( sleep 0.2; kill -TERM $p 2>/dev/null ) & ;;
  esac
  all_pids+=("$p")
  events=$((events + 1))
  sleep 0.2
done
# Every chaos peer is gone before the publisher's end: its quarantined slots must come back.
for p in "${all_pids[@]}"; do kill -9 "$p" 2>/dev/null; done

wait $PUB; pub_rc=$?
echo "chaos events: $events"
grep -E '^(soak|final)' "$LOG" | sed -n '1p;$p'
first=$(grep '^soak' "$LOG" | sed -n 3p)
last=$(grep '^final' "$LOG")
echo "after 3 s: $first"
[ $pub_rc -eq 0 ] || { echo "FAIL: publisher exit $pub_rc (a send stalled > 750 ms or pool not empty)"; cat "$DIR/pub.err"; fail=1; }
for i in 1 2 3; do
  wait "${steady[$((i-1))]}"; rc=$?
  if [ $rc -ne 0 ]; then echo "FAIL: steady subscriber $i exit $rc: $(cat "$DIR/steady$i.err")"; fail=1
  else echo "steady subscriber $i: $(tail -1 "$DIR/steady$i.out") buffers, checksums and order intact"; fi
done
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
if [ -n "$first" ] && [ -n "$last" ]; then
  f0=$(field fds "$first"); f1=$(field fds "$last"); r0=$(field rss_kb "$first"); r1=$(field rss_kb "$last")
  echo "fds $f0 -> $f1, rss $r0 -> $r1 kB"
  [ "$f1" -le "$f0" ] || { echo "FAIL: publisher fd count grew"; fail=1; }
  [ "$r1" -le $((r0 + 4096)) ] || { echo "FAIL: publisher RSS grew by more than 4 MiB"; fail=1; }
fi

if [ "$CYCLES" -gt 0 ]; then
  t0=$SECONDS
  if PLX_IPC_PEER="$PEER" PLX_IPC_SOAK_CYCLES=$CYCLES "$BUILD/tests/ipc/test_ipc" \
      --gtest_filter='IpcMultiProcess.SubscriberKilledMidStreamLeasesAndFdsReclaimed' >"$DIR/kill.log" 2>&1; then
    echo "kill -9 cycles: $CYCLES in $((SECONDS - t0)) s, pool back to baseline, fd count flat"
  else
    echo "FAIL: kill -9 cycles"; tail -20 "$DIR/kill.log"; fail=1
  fi
fi
[ $fail -eq 0 ] && echo "SOAK OK" || echo "SOAK FAILED"
exit $fail
