// SPDX-License-Identifier: MIT OR Apache-2.0
// Helpers shared by the built-in elements.
#include "common.h"

#include <algorithm>

#include "ipc/metrics_export.h"
#include "parallax/segment.h"

namespace parallax::elements {

Result<std::shared_ptr<memory::MemoryPool>> make_heap_pool(std::size_t slot_size,
                                                           std::size_t count) {
  slot_size = std::max<std::size_t>(slot_size, 1);
  const std::size_t stride = (slot_size + 63) & ~std::size_t{63};
  PLX_ASSIGN(auto seg, memory::HeapSegment::create(stride * count));
  return memory::MemoryPool::create(std::move(seg), slot_size);
}

observe::MetricsRegistry::Registration pool_metrics(
    const pipeline::Element& e, const std::shared_ptr<memory::MemoryPool>& pool) {
  return link::detail::register_pool_metrics(e.name(), pool);
}

FlowReturn loan_slot(pipeline::Element& e, memory::MemoryPool& pool, memory::Loan& out) {
  auto r = pool.try_loan();
  while (!r) {
    if (e.stopping()) return FlowReturn::flushing;
    if (r.error().code != Errc::resource_exhausted && r.error().code != Errc::timeout) {
      e.post_error(r.error().code, "cannot get a buffer: " + r.error().message);
      return FlowReturn::error;
    }
    // Short waits so that stop() is noticed promptly even if no slot ever comes back.
    r = pool.loan_for(std::chrono::milliseconds(50));
  }
  out = std::move(*r);
  return FlowReturn::ok;
}

pipeline::PropertySpec affinity_property() {
  return pipeline::PropertySpec::string(
      "affinity", "",
      "CPU set for this element's streaming thread (taskset style '0-3,8', 'numa:0', 'core:2-3', "
      "'l3:0', 'pu:4', or 'none'); applied by the executor's thread hook "
      "(pipeline::pin_by_rules_hook in parallax-launch), where it wins over --affinity rules");
}

}  // namespace parallax::elements
