// SPDX-License-Identifier: MIT OR Apache-2.0
#include "ipc/segment_exporter.h"

#include <string>

#include "parallax/affinity.h"
#include "parallax/log.h"

namespace parallax::link::detail {

namespace {
constexpr const char* kLog = "ipc";
}  // namespace

Result<int> SegmentExporter::fd(const memory::Segment& seg) {
  std::lock_guard lk(mu_);
  auto it = fds_.find(seg.id());
  if (it != fds_.end()) return it->second.get();
  PLX_ASSIGN(UniqueFd fd, seg.export_fd(memory::Access::read_only));
  const int raw = fd.get();
  fds_.emplace(seg.id(), std::move(fd));
  return raw;
}

Result<void> SegmentExporter::place(const memory::MemoryPool& pool) {
  std::lock_guard lk(mu_);
  for (std::size_t i = 0; i < pool.segment_count(); ++i) {
    const memory::Segment& seg = pool.segment(i);
    auto placed = topology::place_memory(seg.writable_data(), seg.mapped_size(),
                                         static_cast<unsigned>(node_));
    if (!placed) {
      if (!best_effort_)
        return err(placed.error().code,
                   "numa-node " + std::to_string(node_) + ": " + placed.error().message);
      PLX_LOG(warn, kLog, "numa-node %d not applied (best effort): %s", node_,
              placed.error().message.c_str());
      continue;
    }
    pages_ += placed->pages;
    pages_on_node_ += placed->pages_on_node;
    nodes_[seg.id()] = node_;
    PLX_LOG(info, kLog, "segment %llu: %zu of %zu pages on NUMA node %d",
            static_cast<unsigned long long>(seg.id()), placed->pages_on_node, placed->pages, node_);
  }
  return {};
}

int SegmentExporter::node_of(const memory::Segment& seg) {
  std::lock_guard lk(mu_);
  if (auto it = nodes_.find(seg.id()); it != nodes_.end()) return it->second;
  if (node_ >= 0) {
    // A segment the pool grew after bind(): bind it too (pages already there migrate).
    if (auto r = topology::bind_memory(seg.data(), seg.mapped_size(), static_cast<unsigned>(node_));
        !r)
      PLX_LOG(warn, kLog, "segment %llu not bound to NUMA node %d: %s",
              static_cast<unsigned long long>(seg.id()), node_, r.error().message.c_str());
  }
  const int node = topology::memory_node(seg.data(), seg.mapped_size());
  if (node >= 0) nodes_[seg.id()] = node;  // unknown may become known once touched
  return node;
}

void SegmentExporter::forget(std::span<const std::uint64_t> ids) {
  std::lock_guard lk(mu_);
  for (std::uint64_t id : ids)
    fds_.erase(id);
}

SegmentExporter::Placement SegmentExporter::placement() const {
  std::lock_guard lk(mu_);
  return Placement{node_, pages_, pages_on_node_};
}

}  // namespace parallax::link::detail
