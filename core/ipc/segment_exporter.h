// SPDX-License-Identifier: MIT OR Apache-2.0
// The publisher's segment exporter: one read-only fd per pool segment (what `segment` messages
// carry), and the NUMA placement of the segments (PublisherOptions::numa_node): bind, prefault
// and verify at bind(), bind segments added later, and the node announced for each. Thread-safe
// (one leaf mutex: never held while taking another lock or doing I/O a peer can influence).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <span>

#include "parallax/pool.h"
#include "parallax/result.h"
#include "parallax/unique_fd.h"

namespace parallax::link::detail {

class SegmentExporter {
 public:
  struct Placement {
    int node{-1};  ///< the node asked for (resolved), -1 none
    std::uint64_t pages{0};
    std::uint64_t pages_on_node{0};
  };

  /// The node segments are placed on (-1: none), before any other call.
  void set_node(int node, bool best_effort) noexcept {
    node_ = node;
    best_effort_ = best_effort;
  }
  [[nodiscard]] int node() const noexcept { return node_; }

  /// The read-only fd of `seg` (exported once, kept until forget()).
  [[nodiscard]] Result<int> fd(const memory::Segment& seg);
  /// Places every segment of `pool` on the node (bind, prefault, verify). Before the first
  /// loan: nobody writes the pool yet. Errors unless best effort.
  [[nodiscard]] Result<void> place(const memory::MemoryPool& pool);
  /// The node announced for a segment: where it was placed, or (no node asked, or a segment
  /// added later, which is bound now) where its pages are if all on one node; -1 otherwise.
  [[nodiscard]] int node_of(const memory::Segment& seg);
  /// Drops the fds of segments no descriptor will name again (a replaced pool's).
  void forget(std::span<const std::uint64_t> ids);
  [[nodiscard]] Placement placement() const;

 private:
  mutable std::mutex mu_;
  std::map<std::uint64_t, UniqueFd> fds_;  // read-only exports, one per segment
  std::map<std::uint64_t, int> nodes_;     // NUMA node announced per segment
  int node_{-1};
  bool best_effort_{false};
  std::uint64_t pages_{0}, pages_on_node_{0};
};

}  // namespace parallax::link::detail
