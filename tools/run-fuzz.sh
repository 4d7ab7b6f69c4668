#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Runs every fuzz_* target of a -Dfuzz=enabled build for a fixed time on a copy of its corpus
# (tests/<area>/corpus/<target>/, never modified in place). Usage: run-fuzz.sh BUILD_DIR [SECONDS]
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: run-fuzz.sh BUILD_DIR [SECONDS]}
secs=${2:-20}
status=0
found=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
while IFS= read -r exe; do
  name=$(basename "$exe")
  corpus=$(find tests -type d -path "*/corpus/$name" | head -1)
  found=$((found + 1))
  mkdir -p "$work/$name"
  [ -n "$corpus" ] && cp -r "$corpus/." "$work/$name/"
  echo "fuzz: $name for ${secs}s (seed corpus: ${corpus:-none})"
  if ! "$exe" -max_total_time="$secs" -print_final_stats=0 -artifact_prefix="$work/" \
        "$work/$name" >"$work/$name.log" 2>&1; then
    echo "fuzz: $name FAILED"; tail -40 "$work/$name.log"; status=1
  else
    grep -E '^#[0-9]+.*DONE|Done [0-9]+ runs' "$work/$name.log" | tail -1
  fi
done < <(find "$build" -maxdepth 4 -type f -executable -name 'fuzz_*' | sort)
echo "fuzz: $found target(s) run"
exit $status
