// SPDX-License-Identifier: MIT OR Apache-2.0
// Loan and Buffer, the parts out of line: heap-backed cores, slicing, set_size and
// metadata_mut (the reference counting and the accessors are inline in buffer.h).
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

}  // namespace

// ---- Loan ----

Result<void> Loan::set_size(std::size_t n) noexcept {
  if (core_ == nullptr) return err(Errc::failed_precondition, "empty loan");
  if (n > core_->capacity)
    return err(Errc::out_of_range, "loan size " + std::to_string(n) + " exceeds the slot's " +
                                       std::to_string(core_->capacity) + " bytes");
  len_ = n;
  return {};
}

// ---- Buffer ----

// Out of line, unlike the moves and copies: inlined, g++ 12 at -O1 (the TSan build) warns that
// the core pointer of a Buffer inside a std::optional "may be used uninitialized" where the
// optional is destroyed (a false positive of -Wmaybe-uninitialized in the user's code, which a
// public header must not cause).
Buffer::~Buffer() {
  if (core_ != nullptr) detail::buffer_unref(core_);
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

const Metadata& detail::empty_metadata() noexcept {
  static const Metadata kEmpty{};
  return kEmpty;
}

Result<Metadata*> Buffer::metadata_mut() noexcept {
  if (core_ == nullptr) return err(Errc::failed_precondition, "empty buffer has no metadata");
  if (core_->refs.load(std::memory_order_acquire) != 1)
    return err(Errc::failed_precondition, "metadata is shared with other references");
  return &core_->meta;
}

}  // namespace parallax::memory
