#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The test command: installs what is missing, builds, and runs the whole test suite four ways:
#   1. release-ish build (debugoptimized), every suite, GStreamer included;
#   2. ASan + UBSan build, every core suite;
#   3. ThreadSanitizer build, the lock-free and IPC suites (meson suite 'tsan');
#   4. clang + libFuzzer build, every fuzz target for a short fixed time on its corpus.
# Plus the clang-format check. Ends with one line "check: N passed, M failed".
# Environment: PLX_CHECK_QUICK=1 skips 2-4; PLX_FUZZ_SECONDS (default 20) per fuzz target.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${PLX_JOBS:-2}
FUZZ_SECONDS=${PLX_FUZZ_SECONDS:-20}
passed=0
failed=0
failures=()
failed_dirs=()  # build dirs whose failing tests the summary names

log() { printf '\n=== %s ===\n' "$*"; }

# Adds the Ok/Fail counts of the last meson test run in build dir $1 to the totals.
count_meson() {
  local dir=$1 name=$2 ok fail
  ok=$(grep -E '^(Ok|Expected Fail):' "$dir/meson-logs/testlog.txt" | awk '{s+=$NF} END {print s+0}')
  fail=$(grep -E '^(Fail|Timeout|Unexpected Pass):' "$dir/meson-logs/testlog.txt" | awk '{s+=$NF} END {print s+0}')
  passed=$((passed + ok))
  failed=$((failed + fail))
  if [ "$fail" -ne 0 ]; then
    failures+=("$name: $fail failing test(s), see $dir/meson-logs/testlog.txt")
    failed_dirs+=("$dir")
  fi
}

step_fail() { failed=$((failed + 1)); failures+=("$1"); }

setup_build() {  # dir, meson args...
  local dir=$1; shift
  if [ -d "$dir" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null || meson setup --wipe "$dir" "$@"
  else
    meson setup "$dir" "$@"
  fi
}

log "dependencies"
tools/setup-deps.sh || { echo "check: 0 passed, 1 failed"; exit 1; }

log "format"
if tools/format.sh --check; then passed=$((passed + 1)); else step_fail "clang-format: files not formatted (run tools/format.sh)"; fi

log "build (debugoptimized, GStreamer on)"
if setup_build build -Dwerror=true --prefix="$ROOT/build/prefix" -Dgstreamer=enabled -Dtests=enabled -Dbenchmarks=enabled && ninja -C build -j"$JOBS"; then
  log "tests"
  meson test -C build --no-rebuild --num-processes "$JOBS" --print-errorlogs
  count_meson build main
  log "install into a scratch prefix"
  if tools/install-check.sh build; then passed=$((passed + 1)); else step_fail "install check (tools/install-check.sh build)"; fi
else
  step_fail "main build failed"
fi

if [ "${PLX_CHECK_QUICK:-0}" != 1 ]; then
  log "ASan + UBSan build"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  if setup_build build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dgstreamer=disabled \
       -Dbenchmarks=disabled -Dexamples=disabled -Doptimization=1 -Ddebug=true &&
     ninja -C build-asan -j"$JOBS"; then
    meson test -C build-asan --no-rebuild --num-processes "$JOBS" --print-errorlogs --no-suite slow --no-suite compile-fail \
      --timeout-multiplier 3
    count_meson build-asan asan
  else
    step_fail "ASan build failed"
  fi

  log "ThreadSanitizer build (suite tsan)"
  if setup_build build-tsan -Dwerror=true -Db_sanitize=thread -Db_lundef=false -Dgstreamer=disabled \
       -Dbenchmarks=disabled -Dexamples=disabled -Dtools=disabled -Doptimization=1 -Ddebug=true &&
     ninja -C build-tsan -j"$JOBS"; then
    TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
      meson test -C build-tsan --no-rebuild --num-processes 1 --print-errorlogs --suite tsan \
      --timeout-multiplier 4
    count_meson build-tsan tsan
  else
    step_fail "TSan build failed"
  fi

  # This build also compiles the hot-path probes (-Dhotpath-probes=true, a profiling option no
  # other build turns on) with clang -Werror, so they cannot rot unseen.
  log "fuzz (clang + libFuzzer, ${FUZZ_SECONDS}s per target)"
  if CC=clang CXX=clang++ setup_build build-fuzz -Dwerror=true -Dfuzz=enabled -Db_sanitize=address,undefined \
       -Db_lundef=false -Dtests=disabled -Dbenchmarks=disabled -Dgstreamer=enabled -Dtools=disabled \
       -Dexamples=disabled -Dhotpath-probes=true && ninja -C build-fuzz -j"$JOBS"; then
    if tools/run-fuzz.sh build-fuzz "$FUZZ_SECONDS"; then passed=$((passed + 1)); else step_fail "a fuzz target found a crash"; fi
  else
    step_fail "fuzz build failed"
  fi
fi

log "summary"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
for d in "${failed_dirs[@]}"; do
  echo "failing tests in $d:"
  python3 tools/failed-tests.py "$d" 40
done
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
