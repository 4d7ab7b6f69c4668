// SPDX-License-Identifier: MIT OR Apache-2.0
// Loan and Buffer: reference counting over BufferCore, heap-backed cores, slicing.
#include "parallax/buffer.h"

#include <cstring>
#include <string>

namespace parallax::memory {
namespace {

// A core that owns its bytes on the heap (Buffer::copy_from / from_vector).
struct HeapCore : detail::BufferCore {
  std::vector<std::byte> storage;
};

void release_heap(detail::BufferCore* c) noexcept {
  delete static_cast<HeapCore*>(c);
}

Buffer make_heap(std::vector<std::byte>&& bytes, Metadata meta) {
  auto* c = new HeapCore;
  c->storage = std::move(bytes);
  c->data = c->storage.data();
  c->capacity = c->storage.size();
  c->release = &release_heap;
  c->meta = std::move(meta);
  c->refs.store(1, std::memory_order_relaxed);
  return Buffer::adopt(c, 0, c->capacity);
}

// Drops one reference. When ours is provably the only one (refs == 1 seen with acquire: nobody
// else holds a reference, so nobody can add one), the slot is released without an atomic RMW.
inline void unref(detail::BufferCore* c) noexcept {
  if (c->refs.load(std::memory_order_acquire) == 1) {
    c->release(c);
    return;
  }
  detail::core_unref(c);
}

}  // namespace

// ---- Loan ----

std::span<std::byte> Loan::data() noexcept {
  return core_ ? std::span<std::byte>(core_->data, len_) : std::span<std::byte>();
}

std::size_t Loan::capacity() const noexcept {
  return core_ ? core_->capacity : 0;
}

Result<void> Loan::set_size(std::size_t n) noexcept {
  if (core_ == nullptr) return err(Errc::failed_precondition, "empty loan");
  if (n > core_->capacity)
    return err(Errc::out_of_range, "loan size " + std::to_string(n) + " exceeds the slot's " +
                                       std::to_string(core_->capacity) + " bytes");
  len_ = n;
  return {};
}

Metadata& Loan::metadata() noexcept {
  return core_->meta;
}

Buffer Loan::freeze() && {
  detail::BufferCore* c = std::exchange(core_, nullptr);
  const std::size_t n = std::exchange(len_, 0);
  return c ? Buffer::adopt(c, 0, n) : Buffer();
}

// ---- Buffer ----

Buffer Buffer::adopt(detail::BufferCore* core, std::size_t offset, std::size_t len) noexcept {
  Buffer b;
  b.core_ = core;
  b.off_ = offset;
  b.len_ = len;
  return b;
}

Buffer::Buffer(const Buffer& o) noexcept : core_(o.core_), off_(o.off_), len_(o.len_) {
  if (core_ != nullptr) core_->refs.fetch_add(1, std::memory_order_relaxed);
}

Buffer& Buffer::operator=(const Buffer& o) noexcept {
  if (this != &o) {
    if (o.core_ != nullptr) o.core_->refs.fetch_add(1, std::memory_order_relaxed);
    if (core_ != nullptr) unref(core_);
    core_ = o.core_;
    off_ = o.off_;
    len_ = o.len_;
  }
  return *this;
}

Buffer::Buffer(Buffer&& o) noexcept
    : core_(std::exchange(o.core_, nullptr)),
      off_(std::exchange(o.off_, 0)),
      len_(std::exchange(o.len_, 0)) {}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    if (core_ != nullptr) unref(core_);
    core_ = std::exchange(o.core_, nullptr);
    off_ = std::exchange(o.off_, 0);
    len_ = std::exchange(o.len_, 0);
  }
  return *this;
}

Buffer::~Buffer() {
  if (core_ != nullptr) unref(core_);
}

Buffer Buffer::copy_from(std::span<const std::byte> bytes, Metadata meta) {
  return make_heap(std::vector<std::byte>(bytes.begin(), bytes.end()), std::move(meta));
}

Buffer Buffer::copy_from(std::string_view text, Metadata meta) {
  return copy_from(std::as_bytes(std::span<const char>(text.data(), text.size())), std::move(meta));
}

Buffer Buffer::from_vector(std::vector<std::byte>&& bytes, Metadata meta) {
  return make_heap(std::move(bytes), std::move(meta));
}

Result<Buffer> Buffer::slice(std::size_t offset, std::size_t len) const {
  if (offset > len_ || len > len_ - offset)
    return err(Errc::out_of_range, "slice [" + std::to_string(offset) + ", +" +
                                       std::to_string(len) + ") outside a buffer of " +
                                       std::to_string(len_) + " bytes");
  if (core_ == nullptr) return Buffer();
  Buffer b(*this);
  b.off_ = off_ + offset;
  b.len_ = len;
  return b;
}

std::span<const std::byte> Buffer::data() const noexcept {
  return core_ ? std::span<const std::byte>(core_->data + off_, len_)
               : std::span<const std::byte>();
}

const Metadata& Buffer::metadata() const noexcept {
  static const Metadata kEmpty{};
  return core_ ? core_->meta : kEmpty;
}

Result<Metadata*> Buffer::metadata_mut() noexcept {
  if (core_ == nullptr) return err(Errc::failed_precondition, "empty buffer has no metadata");
  if (core_->refs.load(std::memory_order_acquire) != 1)
    return err(Errc::failed_precondition, "metadata is shared with other references");
  return &core_->meta;
}

std::uint32_t Buffer::use_count() const noexcept {
  return core_ ? core_->refs.load(std::memory_order_relaxed) : 0;
}
const Segment* Buffer::segment() const noexcept {
  return core_ ? core_->segment : nullptr;
}
std::size_t Buffer::segment_offset() const noexcept {
  return core_ ? core_->segment_offset + off_ : 0;
}
std::uint32_t Buffer::slot_index() const noexcept {
  return core_ ? core_->slot : UINT32_MAX;
}
std::uint64_t Buffer::pool_id() const noexcept {
  return core_ ? core_->pool_id : 0;
}

}  // namespace parallax::memory
