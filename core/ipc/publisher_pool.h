// SPDX-License-Identifier: MIT OR Apache-2.0
// The pool an IpcPublisher makes when PublisherOptions::pool is unset (private to libparallax):
// one transport policy for every producer (IpcPublisher users, both parallaxsink elements):
// backend, prefault, slot sizing, the growth budget and the automatic lease quota. And the
// check that a pool can be published at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "parallax/ipc.h"
#include "parallax/pool.h"
#include "parallax/result.h"

namespace parallax::link::detail {

/// Refuses a pool subscribers could not map: heap memory, or a file-backed segment (not
/// sealable). Only sealed memfds (memfd or hugepage) are published.
[[nodiscard]] Result<void> check_publishable_pool(const memory::MemoryPool& pool);

/// A pool for slots of at least `slot_size` bytes (0: a variable-size pool for blocks of about
/// `block` bytes), by the options' rules (memory, prefault, slot_count, max_pool_bytes).
[[nodiscard]] Result<std::shared_ptr<memory::MemoryPool>> make_pool(const PublisherOptions& o,
                                                                    std::size_t slot_size,
                                                                    std::size_t block);

/// The lease quota per subscriber: max_leases_per_subscriber, or (0) three quarters of the
/// first segment's slots (of slot_count blocks, 64 when automatic, for a variable-size pool).
[[nodiscard]] std::uint32_t resolve_quota(const PublisherOptions& o,
                                          const memory::MemoryPool& pool);

}  // namespace parallax::link::detail
