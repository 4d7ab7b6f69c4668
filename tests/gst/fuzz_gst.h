// SPDX-License-Identifier: MIT OR Apache-2.0
// Included once by each GStreamer fuzz target: it defines LLVMFuzzerInitialize and the
// sanitizer hooks the targets share.
// GLib interns every structure and field name of a caps string as a GQuark for the life of the
// process, and when its quark table grows it leaks the previous array on purpose (quark.c:
// lock-free lookups). Fuzzed caps text grows the table, so LeakSanitizer reports those arrays.
// Only those are suppressed: GLib has no frame pointers, so malloc stacks are unwound the slow
// way (DWARF) to see quark_new / g_quark_from_string above g_malloc; any other leak still fails.
// Also suppressed: GStreamer 1.22's caps parser leaks a GValue's 208 bytes when a list fails
// to parse ("b={ 1 2, }"; found by fuzz_caps_text): a leak inside gst_caps_from_string on text
// it refuses, once per refused caps event (parallaxsrc then stops with an element error); the
// same for a nested array it refuses ("a=<<<...(s)\"x"; 7.9 KB).
#pragma once

#include <gst/gst.h>

#include <cstdlib>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Only libgstreamer (and libgstvideo) are used: no plugin registry to scan.
  setenv("GST_REGISTRY_DISABLE", "yes", 1);
  gst_init(nullptr, nullptr);
  // A CRITICAL (a g_return_if_fail in GStreamer) means the validation passed it bad arguments.
  // A target whose input GStreamer parses itself may define PLX_FUZZ_CRITICALS_FATAL 0 (see
  // fuzz_caps_text.cpp for why).
#if !defined(PLX_FUZZ_CRITICALS_FATAL) || PLX_FUZZ_CRITICALS_FATAL
  g_log_set_always_fatal(static_cast<GLogLevelFlags>(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL));
#endif
  return 0;
}

// malloc_context_size: GStreamer's value parser recurses (two frames per nesting level, up to
// the 32 levels bridge/convert.cpp lets through), so the default 30 frames can end before
// gst_caps_from_string and the suppression below would not see it (a nested-array leak found
// by fuzz_caps_text at 3.5 M executions was reported for that reason).
extern "C" const char* __asan_default_options() {
  return "fast_unwind_on_malloc=0:malloc_context_size=128";
}

extern "C" const char* __lsan_default_suppressions() {
  return "leak:quark_new\nleak:g_quark_from_string\nleak:g_quark_from_static_string\n"
         "leak:gst_caps_from_string\n"
         // GLib's first quark array is allocated by its library constructor (glib_init).
         "leak:_dl_init\n"
         // glibc 2.36 + ASan: the attribute extension of a running thread's pthread_getattr_np
         // (ASan's own thread start), not the program's.
         "leak:__pthread_attr_extension\n";
}
