#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Runs every benchmark in one go against a release build (build-bench/) and prints the figures
# that docs/benchmarks.md quotes. Each benchmark compares against its peer in the same run.
# (-Dwerror=false: g++ 12 at -O3 gives a false -Wrestrict on std::string code in
# core/pipeline/property.cpp, GCC bug 105329.)
# Usage: tools/bench.sh [area...]   (areas: memory typed archive ipc pipeline gst; default all)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh >/dev/null
if [ -d build-bench ]; then meson setup --reconfigure build-bench >/dev/null;
else meson setup build-bench --buildtype=release -Db_ndebug=true -Dwerror=false -Dgstreamer=enabled -Dbenchmarks=enabled >/dev/null; fi
ninja -C build-bench -j"${PLX_JOBS:-2}" >/dev/null
areas=("$@")
[ ${#areas[@]} -eq 0 ] && areas=(memory typed archive ipc pipeline gst)
reps=${PLX_BENCH_REPS:-5}
gbench() { "$1" --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true "${@:2}" 2>&1 | grep -E 'Benchmark|median|^---'; }
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"
for a in "${areas[@]}"; do
  echo
  echo "=== $a ==="
  case $a in
    memory)   gbench build-bench/tests/memory/bench_memory ;;
    typed)    gbench build-bench/tests/typed/bench_typed && build-bench/tests/typed/bench_typed_ipc ;;
    archive)  gbench build-bench/tests/archive/bench_archive
              if command -v valgrind >/dev/null; then  # instructions per validation, load-proof
                valgrind --tool=callgrind --callgrind-out-file=build-bench/callgrind.archive \
                  build-bench/tests/archive/bench_archive --benchmark_filter='BM_log_validate$' \
                  --benchmark_min_time=0.001 >/dev/null 2>&1
                callgrind_annotate --inclusive=yes build-bench/callgrind.archive |
                  grep -m1 'access<plxtest::Logs>' | awk '{print "callgrind: access<Logs> " $1 " instructions (one call)"}' ||
                  echo "callgrind: access<Logs> not found as a function (inlined in this build)"
              fi ;;
    ipc)      build-bench/tests/base/bench_cold_lock && build-bench/tests/ipc/bench_ipc &&
                bash tests/ipc/bench_ipc_vs_shm.sh build-bench ;;
    pipeline) bash tests/pipeline/bench_pipeline.sh build-bench ;;
    gst)      bash tests/gst/bench_gst.sh build-bench ;;
    *) echo "unknown area $a" >&2; exit 2 ;;
  esac
done
