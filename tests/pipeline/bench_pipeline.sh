#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Throughput of parallax-launch against gst-launch-1.0 for the same graph shapes:
#   source ! passthrough ! sink        and        source ! queue ! sink
# Usage: tests/pipeline/bench_pipeline.sh BUILD_DIR [RUNS]
# Uses hyperfine when installed, else a bash timing loop; prints medians, buffers/s and ratios.
set -euo pipefail

build=${1:?usage: $0 BUILD_DIR [RUNS]}
runs=${2:-5}
launch="$build/tools/parallax-launch"
[ -x "$launch" ] || { echo "no $launch: build the tools first (ninja -C $build tools/parallax-launch)" >&2; exit 1; }
have_gst=1
command -v gst-launch-1.0 >/dev/null || { echo "gst-launch-1.0 not found: GStreamer figures skipped" >&2; have_gst=0; }

# Buffer counts chosen so every run takes at least a second on a 2-core machine.
N_CHAIN=${N_CHAIN:-20000000}
N_QUEUE=${N_QUEUE:-5000000}
N_GST_CHAIN=${N_GST_CHAIN:-2000000}
N_GST_QUEUE=${N_GST_QUEUE:-1000000}

# median_seconds CMD...: median wall time of `runs` runs of CMD (stdout/stderr discarded).
median_seconds() {
  if command -v hyperfine >/dev/null; then
    local json
    json=$(mktemp)
    hyperfine -N --warmup 1 --runs "$runs" --export-json "$json" -- "$(printf '%q ' "$@")" >/dev/null 2>&1
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$json"
    rm -f "$json"
  else
    local times=() t0 t1
    for ((i = 0; i < runs; i++)); do
      t0=$(date +%s.%N)
      "$@" >/dev/null 2>&1
      t1=$(date +%s.%N)
      times+=("$(echo "$t1 - $t0" | bc -l)")
    done
    printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
  fi
}

rate() { python3 -c "print(f'{$1/$2:.0f}')"; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

echo "machine: $(uname -srm); $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); runs per figure: $runs; timer: $(command -v hyperfine >/dev/null && echo hyperfine || echo bash loop)"
echo

px_chain=$(median_seconds "$launch" -q "nullsource num-buffers=$N_CHAIN size=64 ! passthrough ! nullsink")
px_queue=$(median_seconds "$launch" -q "nullsource num-buffers=$N_QUEUE size=64 ! queue ! nullsink")
px_chain_rate=$(rate "$N_CHAIN" "$px_chain")
px_queue_rate=$(rate "$N_QUEUE" "$px_queue")
printf '%-44s %10s s  %12s buffers/s\n' "parallax chain (N=$N_CHAIN)" "$px_chain" "$px_chain_rate"
printf '%-44s %10s s  %12s buffers/s\n' "parallax queue (N=$N_QUEUE)" "$px_queue" "$px_queue_rate"

if [ "$have_gst" = 1 ]; then
  gst_chain=$(median_seconds gst-launch-1.0 -q fakesrc num-buffers="$N_GST_CHAIN" sizetype=fixed sizemax=64 \
    filltype=nothing ! identity ! fakesink sync=false)
  gst_queue=$(median_seconds gst-launch-1.0 -q fakesrc num-buffers="$N_GST_QUEUE" sizetype=fixed sizemax=64 \
    filltype=nothing ! queue ! fakesink sync=false)
  gst_chain_rate=$(rate "$N_GST_CHAIN" "$gst_chain")
  gst_queue_rate=$(rate "$N_GST_QUEUE" "$gst_queue")
  printf '%-44s %10s s  %12s buffers/s\n' "gst-launch chain (N=$N_GST_CHAIN)" "$gst_chain" "$gst_chain_rate"
  printf '%-44s %10s s  %12s buffers/s\n' "gst-launch queue (N=$N_GST_QUEUE)" "$gst_queue" "$gst_queue_rate"
  echo
  echo "ratio chain: $(ratio "$px_chain_rate" "$gst_chain_rate")x (target >= 5x)"
  echo "ratio queue: $(ratio "$px_queue_rate" "$gst_queue_rate")x (target >= 3x)"
fi
