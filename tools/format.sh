#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Formats every C++ file in the tree with the root .clang-format; --check only reports.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.c' '*.h' '*.hpp' 2>/dev/null; git ls-files --others --exclude-standard '*.cpp' '*.c' '*.h' '*.hpp' 2>/dev/null)
[ ${#files[@]} -eq 0 ] && exit 0
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || { echo "not formatted: $f"; bad=1; }
  done
  exit $bad
fi
clang-format -i "${files[@]}"
