#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The main job: installs what is missing, builds Parallax (GStreamer plugin included), and runs
# real pipelines that span processes with no payload copies, printing what crossed, at what
# rate, and how many payload copies were made.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh
if [ -d build ]; then meson setup --reconfigure build -Dgstreamer=enabled >/dev/null;
else meson setup build -Dgstreamer=enabled; fi
ninja -C build -j"${PLX_JOBS:-2}"
echo
echo "=== 1. GStreamer -> GStreamer across processes: videotestsrc ! parallaxsink | parallaxsrc ! fakesink ==="
tests/gst/demo_cross_process.sh build
echo
echo "=== 2. native C++ publisher -> native subscriber process (examples/multi_process) ==="
build/examples/multi_process/multi_process
