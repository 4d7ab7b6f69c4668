// SPDX-License-Identifier: MIT OR Apache-2.0
// Helpers shared by the built-in elements: heap pools for sources, interruptible slot loans,
// and the common "affinity" property of elements that own a streaming thread.
#pragma once

#include <memory>

#include "parallax/element.h"
#include "parallax/metrics.h"
#include "parallax/pool.h"

namespace parallax::elements {

using pipeline::FlowReturn;

/// A heap-backed pool of `count` slots of `slot_size` bytes (at least 1 byte each).
Result<std::shared_ptr<memory::MemoryPool>> make_heap_pool(std::size_t slot_size,
                                                           std::size_t count);

/// Reports `pool` in the process's metrics (parallax_pool_*{element="<e's name>"}), read at
/// export time only; keep the registration while the pool is the element's (reset it in stop()).
[[nodiscard]] observe::MetricsRegistry::Registration pool_metrics(
    const pipeline::Element& e, const std::shared_ptr<memory::MemoryPool>& pool);

/// Loans a slot, waiting while the pool is empty (that wait is the pipeline's backpressure)
/// but returning flushing as soon as the element is stopping.
FlowReturn loan_slot(pipeline::Element& e, memory::MemoryPool& pool, memory::Loan& out);

/// The "affinity" property of elements with a streaming thread (see ExecutorOptions::thread_hook).
pipeline::PropertySpec affinity_property();

}  // namespace parallax::elements
