// SPDX-License-Identifier: MIT OR Apache-2.0
// Memory segments: one mapped region with an owner and a backend (heap, memfd, huge pages,
// mapped file). Shareable segments export their fd and can be re-created from a received fd.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "parallax/result.h"
#include "parallax/unique_fd.h"

namespace parallax::memory {

enum class Backend : std::uint8_t { heap, memfd, hugepage, file };
enum class Access : std::uint8_t { read_only, read_write };
/// What a HugePageSegment actually got.
enum class HugePages : std::uint8_t { none, hugetlb, transparent };

[[nodiscard]] std::string_view to_string(Backend b) noexcept;
[[nodiscard]] std::string_view to_string(HugePages h) noexcept;

/// Largest segment Parallax will create or import (1 TiB): anything above is treated as a bug
/// or a hostile size, not as a request.
inline constexpr std::size_t kMaxSegmentSize = std::size_t{1} << 40;

/// What Segment::import requires of a received fd beyond its seals and size.
struct ImportRules {
  /// Refuse (data_loss) an fd opened for writing: its sender was to share read-only memory.
  /// The IPC subscriber requires it of every segment and ring it maps read-only.
  bool read_only_fd{false};
};

/// One mapped region. Move-only RAII: unmaps and closes its fd on destruction. Every segment
/// has a process-unique id (the IPC layer names segments by it). Constructed only through the
/// backend factories below.
class Segment {
 public:
  Segment() noexcept = default;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  Segment(Segment&& o) noexcept;
  Segment& operator=(Segment&& o) noexcept;
  ~Segment();

  [[nodiscard]] bool valid() const noexcept { return base_ != nullptr; }
  /// Read-only view of the whole region.
  [[nodiscard]] const std::byte* data() const noexcept { return base_; }
  /// Writable pointer, or nullptr when the segment is mapped read-only.
  [[nodiscard]] std::byte* writable_data() const noexcept {
    return access_ == Access::read_write ? base_ : nullptr;
  }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {base_, size_}; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// Bytes mapped and held by the fd: size() rounded up to the (huge) page size. This is what
  /// an importer must be told (Segment::import checks the fd's size against it).
  [[nodiscard]] std::size_t mapped_size() const noexcept { return map_size_; }
  [[nodiscard]] Backend backend() const noexcept { return backend_; }
  [[nodiscard]] Access access() const noexcept { return access_; }
  [[nodiscard]] HugePages huge_pages() const noexcept { return huge_; }
  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// The backing fd (-1 for heap segments). Still owned by the segment.
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  /// Whether other processes can map this segment (memfd, hugepage, file).
  [[nodiscard]] bool shareable() const noexcept { return fd_.valid(); }

  /// A new fd for the same memory, to send to another process. With Access::read_only the fd
  /// is reopened O_RDONLY, so the receiver cannot map it writable (mprotect included).
  [[nodiscard]] Result<UniqueFd> export_fd(Access access) const;

  /// Maps a segment received from another process. The fd must be a memfd sealed against
  /// shrink and grow (F_SEAL_SHRINK|F_SEAL_GROW) whose size equals `expected_size`, and a
  /// hugetlbfs memfd must also be sealed against writes (its sender could punch holes that
  /// fault as SIGBUS); anything else is refused with data_loss. Access::read_write needs a
  /// writable fd (permission_denied otherwise): a mapping both processes write, such as the
  /// IPC ack area. The segment takes the fd.
  [[nodiscard]] static Result<Segment> import(UniqueFd fd, Access access, std::size_t expected_size,
                                              std::string_view name = "imported",
                                              ImportRules rules = {});

  /// Commits every page of the mapping now (MADV_POPULATE_WRITE, or _READ for a read-only
  /// mapping), so the streaming path takes no page faults later and a segment the system
  /// cannot back (tmpfs or huge-page pool exhausted) fails here with resource_exhausted
  /// instead of a SIGBUS at first touch. Contents are kept. On kernels older than 5.14 it
  /// touches each page instead (a read, and for writable mappings a write of the same byte).
  [[nodiscard]] Result<void> prefault();

  /// Binds the segment's pages to a NUMA node (mbind, bind policy, moving pages already there;
  /// OS node number). topology::place_memory() is the checked hwloc path (prefault + verify).
  [[nodiscard]] Result<void> bind_to_numa_node(unsigned node);

 private:
  friend struct SegmentFactory;
  std::byte* base_{nullptr};
  std::size_t size_{0};
  std::size_t map_size_{0};
  UniqueFd fd_;
  std::string name_;
  std::uint64_t id_{0};
  Backend backend_{Backend::heap};
  Access access_{Access::read_write};
  HugePages huge_{HugePages::none};
};

/// Single-process memory (anonymous mapping, not shareable).
struct HeapSegment {
  [[nodiscard]] static Result<Segment> create(std::size_t size);
};

/// memfd-backed shared memory: MFD_CLOEXEC|MFD_ALLOW_SEALING, sealed against shrink, grow and
/// further sealing once sized. `name` is the memfd's debug name (visible in /proc/PID/fd).
struct SharedMemorySegment {
  [[nodiscard]] static Result<Segment> create(std::string_view name, std::size_t size);
};

/// memfd with MFD_HUGETLB. When the system has no huge pages reserved it falls back to a
/// regular memfd advised MADV_HUGEPAGE (transparent huge pages) and logs which it got;
/// Segment::huge_pages() says the same. The size is rounded up to the huge page size.
/// Returns unsupported when built with -Dhuge-pages=false.
struct HugePageSegment {
  [[nodiscard]] static Result<Segment> create(std::string_view name, std::size_t size);
};

/// A mapped file: persistent (what is written is there after close and reopen), shareable by fd.
struct MappedFileSegment {
  /// Creates (or truncates) `path` to `size` bytes and maps it read-write. Mode 0600.
  [[nodiscard]] static Result<Segment> create(std::string_view path, std::size_t size);
  /// Maps an existing file whole.
  [[nodiscard]] static Result<Segment> open(std::string_view path, Access access);
};

}  // namespace parallax::memory
