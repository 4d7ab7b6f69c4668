#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Names the failing tests of a meson test run and quotes the lines that say why.

Usage: tools/failed-tests.py BUILD_DIR [MAX_LINES_PER_TEST]
Reads BUILD_DIR/meson-logs/testlog.json (one JSON object per test). tools/check.sh prints this
in its summary, so a CI log whose middle is cut still names what failed and how.
"""
import json
import re
import sys

WHY = re.compile(
    r"\[  FAILED  \]|Failure|Expected|Which is|Value of|Actual|error:|ERROR: |WARNING: ThreadSanitizer|"
    r"runtime error|SUMMARY: |Timeout|timed out|Assertion|terminate called|Aborted|SIGSEGV|"
    r"  #[0-9]+ 0x|^  (Read|Write|Previous|Location|Mutex|Thread) ")


def main() -> int:
    build = sys.argv[1]
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    try:
        lines = open(f"{build}/meson-logs/testlog.json", encoding="utf-8", errors="replace")
    except OSError as e:
        print(f"  (no testlog.json in {build}: {e})")
        return 0
    for raw in lines:
        try:
            t = json.loads(raw)
        except ValueError:
            continue
        if t.get("result") not in ("FAIL", "TIMEOUT", "UNEXPECTEDPASS", "ERROR"):
            continue
        print(f"  {t['result']}: {t['name']} (rc {t.get('returncode')}, {t.get('duration', 0):.1f} s)")
        why = [l for l in (t.get("stdout") or "").splitlines() if WHY.search(l)]
        for l in why[:limit]:
            print(f"    | {l[:300]}")
        if len(why) > limit:
            print(f"    | ... {len(why) - limit} more lines in {build}/meson-logs/testlog.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
