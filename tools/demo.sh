#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The main job: installs what is missing, builds Parallax, and runs a real pipeline that spans
# processes with no payload copies, printing what crossed, at what rate, and how many copies.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh
if [ -d build ]; then meson setup --reconfigure build >/dev/null; else meson setup build; fi
ninja -C build -j"${PLX_JOBS:-2}"
echo
echo "=== memory: a memfd pool shared with a second process ==="
build/examples/memory_pool/memory_pool
