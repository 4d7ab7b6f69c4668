// SPDX-License-Identifier: MIT OR Apache-2.0
// Loan (a unique, writable slot) and Buffer (immutable, refcounted, sliceable bytes with
// metadata). Buffers come from pool slots or from the heap; both look the same to users.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "parallax/metadata.h"
#include "parallax/result.h"

namespace parallax::memory {

class Segment;
namespace detail {
struct BufferCore;
}

class Buffer;

/// A unique, writable slot loaned from a MemoryPool. Fill it, set its metadata, then
/// freeze() it into a Buffer. Dropping a Loan without freezing returns the slot.
class Loan {
 public:
  Loan() noexcept = default;
  Loan(const Loan&) = delete;
  Loan& operator=(const Loan&) = delete;
  Loan(Loan&& o) noexcept;
  Loan& operator=(Loan&& o) noexcept;
  ~Loan();

  [[nodiscard]] bool valid() const noexcept { return core_ != nullptr; }
  /// The writable bytes: [0, size()).
  [[nodiscard]] std::span<std::byte> data() noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return len_; }
  /// The slot's full size (the largest size this loan can be set to).
  [[nodiscard]] std::size_t capacity() const noexcept;
  /// Shrinks or regrows the visible length within the slot's capacity.
  [[nodiscard]] Result<void> set_size(std::size_t n) noexcept;
  [[nodiscard]] Metadata& metadata() noexcept;
  /// Makes the slot immutable and shared: the Loan becomes empty.
  [[nodiscard]] Buffer freeze() &&;

 private:
  friend class MemoryPool;
  friend class Buffer;
  Loan(detail::BufferCore* core, std::size_t len) noexcept : core_(core), len_(len) {}
  detail::BufferCore* core_{nullptr};
  std::size_t len_{0};
};

/// Immutable, refcounted bytes with metadata. Copying is cloning: one atomic increment, no byte
/// copied. slice() shares the same memory. A pool slot returns to its pool when the last Buffer
/// (and the last remote lease) referencing it is gone. An empty (default) Buffer has size 0.
class Buffer {
 public:
  Buffer() noexcept = default;
  Buffer(const Buffer& o) noexcept;
  Buffer& operator=(const Buffer& o) noexcept;
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  ~Buffer();

  /// A heap buffer holding a copy of `bytes`.
  [[nodiscard]] static Buffer copy_from(std::span<const std::byte> bytes, Metadata meta = {});
  [[nodiscard]] static Buffer copy_from(std::string_view text, Metadata meta = {});
  /// A heap buffer that takes `bytes` without copying.
  [[nodiscard]] static Buffer from_vector(std::vector<std::byte>&& bytes, Metadata meta = {});

  /// Same as copying: one atomic increment.
  [[nodiscard]] Buffer clone() const noexcept { return *this; }
  /// A buffer sharing bytes [offset, offset+len) of this one; out_of_range if outside.
  [[nodiscard]] Result<Buffer> slice(std::size_t offset, std::size_t len) const;

  [[nodiscard]] bool empty() const noexcept { return len_ == 0; }
  [[nodiscard]] bool valid() const noexcept { return core_ != nullptr; }
  [[nodiscard]] std::span<const std::byte> data() const noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return len_; }
  [[nodiscard]] const Metadata& metadata() const noexcept;
  /// Writable metadata, only while this is the sole reference (failed_precondition otherwise).
  [[nodiscard]] Result<Metadata*> metadata_mut() noexcept;
  /// Number of Buffer references to the underlying memory (remote leases count too).
  [[nodiscard]] std::uint32_t use_count() const noexcept;

  /// Pool provenance (for the IPC layer and zero-copy checks): the segment holding the bytes
  /// (nullptr for heap buffers), the byte offset of data() inside it, and the slot index.
  [[nodiscard]] const Segment* segment() const noexcept;
  [[nodiscard]] std::size_t segment_offset() const noexcept;
  [[nodiscard]] std::uint32_t slot_index() const noexcept;
  /// The id of the owning pool (0 for heap buffers).
  [[nodiscard]] std::uint64_t pool_id() const noexcept;

  /// Internal: wraps a core whose reference the caller transfers (used by pools and by the IPC
  /// layer for foreign memory).
  static Buffer adopt(detail::BufferCore* core, std::size_t offset, std::size_t len) noexcept;
  [[nodiscard]] detail::BufferCore* core() const noexcept { return core_; }

 private:
  friend class Loan;
  detail::BufferCore* core_{nullptr};
  std::size_t off_{0};
  std::size_t len_{0};
};

namespace detail {

/// Shared state of one buffer's memory. Pools preallocate one per slot; heap and foreign
/// buffers allocate one. `release` runs when `refs` reaches zero.
struct BufferCore {
  std::atomic<std::uint32_t> refs{0};
  std::uint32_t slot{UINT32_MAX};
  std::byte* data{nullptr};
  std::size_t capacity{0};
  const Segment* segment{nullptr};
  std::size_t segment_offset{0};
  std::uint64_t pool_id{0};
  void (*release)(BufferCore*) noexcept {nullptr};
  void* owner{nullptr};  ///< the pool, or the foreign owner (released through `release`)
  Metadata meta;
};

inline void core_unref(BufferCore* c) noexcept {
  if (c->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) c->release(c);
}

}  // namespace detail

// Inline: a loan's construction, moves (into and out of Result<Loan>) and drop are on every
// pool loan's fast path.
inline Loan::Loan(Loan&& o) noexcept : core_(o.core_), len_(o.len_) {
  o.core_ = nullptr;
  o.len_ = 0;
}

inline Loan& Loan::operator=(Loan&& o) noexcept {
  if (this != &o) {
    if (core_ != nullptr) core_->release(core_);
    core_ = o.core_;
    len_ = o.len_;
    o.core_ = nullptr;
    o.len_ = 0;
  }
  return *this;
}

// A Loan is the only reference to its slot, so dropping it releases without an atomic RMW.
inline Loan::~Loan() {
  if (core_ != nullptr) core_->release(core_);
}

// Inline too: a Buffer's moves and copies, and the accessors the transport reads, run on every
// IPC send and receive and every pipeline hop. Out of line (in buffer.cpp) each was a call into
// another translation unit, which a path that went cold between two buffers pays as code
// fetched again (docs/benchmarks.md). ~Buffer() stays in buffer.cpp (why: there).
namespace detail {

/// Drops one reference. When ours is provably the only one (refs == 1 seen with acquire:
/// nobody else holds a reference, so nobody can add one), the slot is released without an
/// atomic read-modify-write.
inline void buffer_unref(BufferCore* c) noexcept {
  if (c->refs.load(std::memory_order_acquire) == 1) {
    c->release(c);
    return;
  }
  core_unref(c);
}

/// The metadata of an empty Buffer (all fields unset).
[[nodiscard]] const Metadata& empty_metadata() noexcept;

}  // namespace detail

inline std::span<std::byte> Loan::data() noexcept {
  return core_ ? std::span<std::byte>(core_->data, len_) : std::span<std::byte>();
}

inline std::size_t Loan::capacity() const noexcept {
  return core_ ? core_->capacity : 0;
}

inline Metadata& Loan::metadata() noexcept {
  return core_->meta;
}

inline Buffer Loan::freeze() && {
  detail::BufferCore* c = std::exchange(core_, nullptr);
  const std::size_t n = std::exchange(len_, 0);
  return c ? Buffer::adopt(c, 0, n) : Buffer();
}

inline Buffer Buffer::adopt(detail::BufferCore* core, std::size_t offset,
                            std::size_t len) noexcept {
  Buffer b;
  b.core_ = core;
  b.off_ = offset;
  b.len_ = len;
  return b;
}

inline Buffer::Buffer(const Buffer& o) noexcept : core_(o.core_), off_(o.off_), len_(o.len_) {
  if (core_ != nullptr) core_->refs.fetch_add(1, std::memory_order_relaxed);
}

inline Buffer& Buffer::operator=(const Buffer& o) noexcept {
  if (this != &o) {
    if (o.core_ != nullptr) o.core_->refs.fetch_add(1, std::memory_order_relaxed);
    if (core_ != nullptr) detail::buffer_unref(core_);
    core_ = o.core_;
    off_ = o.off_;
    len_ = o.len_;
  }
  return *this;
}

inline Buffer::Buffer(Buffer&& o) noexcept
    : core_(std::exchange(o.core_, nullptr)),
      off_(std::exchange(o.off_, 0)),
      len_(std::exchange(o.len_, 0)) {}

inline Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    if (core_ != nullptr) detail::buffer_unref(core_);
    core_ = std::exchange(o.core_, nullptr);
    off_ = std::exchange(o.off_, 0);
    len_ = std::exchange(o.len_, 0);
  }
  return *this;
}

inline std::span<const std::byte> Buffer::data() const noexcept {
  return core_ ? std::span<const std::byte>(core_->data + off_, len_)
               : std::span<const std::byte>();
}

inline const Metadata& Buffer::metadata() const noexcept {
  return core_ ? core_->meta : detail::empty_metadata();
}

inline std::uint32_t Buffer::use_count() const noexcept {
  return core_ ? core_->refs.load(std::memory_order_relaxed) : 0;
}
inline const Segment* Buffer::segment() const noexcept {
  return core_ ? core_->segment : nullptr;
}
inline std::size_t Buffer::segment_offset() const noexcept {
  return core_ ? core_->segment_offset + off_ : 0;
}
inline std::uint32_t Buffer::slot_index() const noexcept {
  return core_ ? core_->slot : UINT32_MAX;
}
inline std::uint64_t Buffer::pool_id() const noexcept {
  return core_ ? core_->pool_id : 0;
}

}  // namespace parallax::memory
