#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Compile-fail test runner: proves a snippet's broken variant (-DPLX_BROKEN=1) does not compile
# *with the expected diagnostic* and that its correct variant does compile, with the same flags.
# usage: compile_check.sh PATTERN SOURCE COMPILER [COMPILER ARGS...]
#   PATTERN  extended regex that the broken variant's diagnostics must match (names both types)
set -u
pattern=$1
src=$2
shift 2

if ! good=$("$@" -fsyntax-only "$src" 2>&1); then
  echo "FAIL: the correct variant of $src does not compile:"
  echo "$good"
  exit 1
fi
if bad=$("$@" -fsyntax-only -DPLX_BROKEN=1 "$src" 2>&1); then
  echo "FAIL: the broken variant of $src compiled"
  exit 1
fi
if ! grep -Eq -- "$pattern" <<<"$bad"; then
  echo "FAIL: the broken variant of $src failed, but without a diagnostic matching: $pattern"
  echo "$bad"
  exit 1
fi
echo "ok: correct variant compiles; broken variant fails with:"
grep -E -- "$pattern|static assertion failed" <<<"$bad" | head -4
exit 0
