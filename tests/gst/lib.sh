# SPDX-License-Identifier: MIT OR Apache-2.0
# The preamble of the gst test scripts (e2e.sh, e2e_sizes.sh, flow.sh, cross_native.sh,
# affinity.sh), sourced after they set $scenario: a scratch directory $T removed at exit, the
# socket path $S in it, children listed in pids[] woken (SIGCONT, for SIGSTOP tests) and killed
# at exit, and fail/ok that print one line tagged with the scenario (fail also shows the tail of
# every *.log / *.out in $T).
# Usage: . "$(dirname "$0")/lib.sh" NAME   (NAME goes into the scratch directory's name)
export GST_DEBUG_NO_COLOR=1
T=$(mktemp -d "/tmp/plx-$1-XXXXXX")
S=$T/s.sock
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill -CONT "$p" 2>/dev/null
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "FAIL [$scenario]: $*" >&2
  for f in "$T"/*.log "$T"/*.out; do
    [ -f "$f" ] && { echo "--- $f"; grep -v "^$" "$f" | tail -25; }
  done >&2
  exit 1
}
ok() { echo "ok [$scenario]: $*"; exit 0; }
