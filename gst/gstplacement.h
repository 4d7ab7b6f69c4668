// SPDX-License-Identifier: MIT OR Apache-2.0
// Thread and memory placement shared by parallaxsrc and parallaxsink: the `affinity`,
// `numa-node` and `placement-best-effort` properties' checks and the one pinning call each
// element makes from its streaming thread. Errors become element errors (warnings with
// best effort); docs/topology.md.
#pragma once

#include <gst/gst.h>

#include <optional>
#include <string>

namespace parallax::gst {

/// At start(): checks `affinity` (syntax; and, unless it is `auto`, that it names CPUs this
/// machine has). On failure posts an element error (a warning with best_effort) and returns
/// false (true with best_effort).
bool check_affinity(GstElement* element, const std::string& affinity, bool best_effort);

/// At start(): parses `numa-node` ("" none, "auto", or a node) and checks the node exists.
/// Same error rules. Returns the request (nullopt inside = auto) or nullopt when none/failed.
bool check_numa_node(GstElement* element, const std::string& text, bool best_effort,
                     std::optional<std::optional<unsigned>>& out);

/// From the streaming thread: pins it to `affinity` (`auto` = the CPUs of `auto_node`; an
/// unknown auto_node cannot be applied). Logs the CPUs applied (read back from the thread).
/// Returns false after posting an element error (never with best_effort).
bool pin_streaming_thread(GstElement* element, const std::string& affinity,
                          std::optional<unsigned> auto_node, bool best_effort);

/// At start(): `sched-slice` (microseconds) is 0 or within parallax::sched's range; else an
/// element error (whatever best_effort says: it is a bad value, not a machine that lacks
/// something) and false.
bool check_sched_slice(GstElement* element, guint slice_us);

/// From the streaming thread: gives it an EEVDF time slice of `slice_us` (0: nothing to do).
/// Same error rules as pin_streaming_thread() (a kernel before 6.12 cannot apply it).
bool set_streaming_thread_slice(GstElement* element, guint slice_us, bool best_effort);

}  // namespace parallax::gst
