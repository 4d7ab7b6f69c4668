// SPDX-License-Identifier: MIT OR Apache-2.0
// Placement checks and the pinning call of parallaxsrc / parallaxsink (see gstplacement.h).
#include "gstplacement.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "parallax/affinity.h"
#include "parallax/sched.h"

GST_DEBUG_CATEGORY_STATIC(parallax_placement_debug);
#define GST_CAT_DEFAULT parallax_placement_debug

namespace parallax::gst {
namespace {

void init_debug() {
  static gsize once = 0;
  if (g_once_init_enter(&once)) {
    GST_DEBUG_CATEGORY_INIT(parallax_placement_debug, "parallaxplacement", 0,
                            "Parallax elements' thread and memory placement");
    g_once_init_leave(&once, 1);
  }
}

bool fail(GstElement* element, bool best_effort, const char* what, const std::string& detail) {
  if (best_effort) {
    GST_ELEMENT_WARNING(element, RESOURCE, SETTINGS, ("%s (best effort: going on)", what),
                        ("%s", detail.c_str()));
    return true;
  }
  GST_ELEMENT_ERROR(element, RESOURCE, SETTINGS, ("%s", what),
                    ("%s (placement-best-effort=true makes this a warning)", detail.c_str()));
  return false;
}

}  // namespace

bool check_affinity(GstElement* element, const std::string& affinity, bool best_effort) {
  init_debug();
  if (affinity.empty()) return true;
  if (auto r = topology::check_affinity_syntax(affinity); !r)
    return fail(element, best_effort, "Invalid affinity", r.error().message);
  if (affinity == "auto" || affinity == "none") return true;
  auto machine = topology::Topology::process();
  if (!machine) return fail(element, best_effort, "No topology", machine.error().message);
  if (auto c = (*machine)->resolve(affinity); !c)
    return fail(element, best_effort, "Affinity cannot be applied",
                "affinity '" + affinity + "': " + c.error().message +
                    "; this machine: " + (*machine)->describe());
  return true;
}

bool check_numa_node(GstElement* element, const std::string& text, bool best_effort,
                     std::optional<std::optional<unsigned>>& out) {
  init_debug();
  out.reset();
  if (text.empty()) return true;
  auto node = topology::parse_node(text);
  if (!node) return fail(element, best_effort, "Invalid numa-node", node.error().message);
  if (*node) {
    auto machine = topology::Topology::process();
    if (!machine) return fail(element, best_effort, "No topology", machine.error().message);
    if (auto c = (*machine)->check_node(**node); !c)
      return fail(element, best_effort, "numa-node cannot be applied",
                  "numa-node " + text + ": " + c.error().message);
  }
  out = *node;
  return true;
}

bool check_sched_slice(GstElement* element, guint slice_us) {
  init_debug();
  auto r = sched::check_slice(std::chrono::microseconds(slice_us));
  if (r) return true;
  GST_ELEMENT_ERROR(element, RESOURCE, SETTINGS, ("Invalid sched-slice"),
                    ("sched-slice=%u: %s", slice_us, r.error().message.c_str()));
  return false;
}

bool set_streaming_thread_slice(GstElement* element, guint slice_us, bool best_effort) {
  init_debug();
  if (slice_us == 0) return true;
  if (auto r = sched::set_current_thread_slice(std::chrono::microseconds(slice_us)); !r)
    return fail(element, best_effort, "Could not set the streaming thread's time slice",
                "sched-slice=" + std::to_string(slice_us) + ": " + r.error().message);
  GST_INFO_OBJECT(element, "streaming thread time slice set to %u us", slice_us);
  return true;
}

bool pin_streaming_thread(GstElement* element, const std::string& affinity,
                          std::optional<unsigned> auto_node, bool best_effort) {
  init_debug();
  if (affinity.empty() || affinity == "none") return true;
  auto machine = topology::Topology::process();
  if (!machine) return fail(element, best_effort, "No topology", machine.error().message);
  if (affinity == "auto" && !auto_node)
    return fail(element, best_effort, "affinity=auto cannot be applied",
                "the NUMA node of the memory is unknown: the publisher announced none (set "
                "numa-node on the producing parallaxsink)");
  auto cpus = (*machine)->resolve(affinity, auto_node);
  if (!cpus)
    return fail(element, best_effort, "Affinity cannot be applied",
                "affinity '" + affinity + "': " + cpus.error().message +
                    "; this machine: " + (*machine)->describe());
  if (auto r = topology::pin_current_thread(*cpus); !r)
    return fail(
        element, best_effort, "Affinity cannot be applied",
        "affinity '" + affinity + "' (CPUs " + cpus->to_string() + "): " + r.error().message);
  auto now = topology::current_thread_affinity();
  GST_INFO_OBJECT(element,
                  "pinned streaming thread %ld to CPUs %s (affinity '%s'%s); "
                  "sched_getaffinity: %s",
                  static_cast<long>(::syscall(SYS_gettid)), cpus->to_string().c_str(),
                  affinity.c_str(),
                  auto_node ? (", node " + std::to_string(*auto_node)).c_str() : "",
                  now ? now->to_string().c_str() : now.error().message.c_str());
  return true;
}

}  // namespace parallax::gst
