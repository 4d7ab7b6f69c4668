// SPDX-License-Identifier: MIT OR Apache-2.0
// GstParallaxAllocator: GstMemory objects that are Parallax pool slots (writable loans on the
// publishing side). GstParallaxFdAllocator (a GstFdAllocator): received read-only Buffers (on
// the subscribing side) as fd memory of their segment's memfd. Both map through the one
// persistent mapping of the segment: map/unmap never call mmap.
#pragma once

#include <gst/allocators/gstfdmemory.h>
#include <gst/gst.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>

#include "parallax/buffer.h"
#include "parallax/pool.h"

G_BEGIN_DECLS

#define GST_TYPE_PARALLAX_ALLOCATOR (gst_parallax_allocator_get_type())
G_DECLARE_FINAL_TYPE(GstParallaxAllocator, gst_parallax_allocator, GST, PARALLAX_ALLOCATOR,
                     GstAllocator)

/// Received buffers: fd memory (gst_is_fd_memory(), gst_fd_memory_get_fd() = the segment's
/// memfd, read-only; GstMemory offset = the bytes' offset in that fd, maxsize = the segment's
/// size). The fd belongs to the segment: valid while the memory lives, never closed by it.
#define GST_TYPE_PARALLAX_FD_ALLOCATOR (gst_parallax_fd_allocator_get_type())
G_DECLARE_FINAL_TYPE(GstParallaxFdAllocator, gst_parallax_fd_allocator, GST, PARALLAX_FD_ALLOCATOR,
                     GstFdAllocator)

/// The GstAllocator mem_type of Parallax memories (of both allocators).
#define GST_PARALLAX_MEMORY_TYPE "ParallaxMemory"

G_END_DECLS

namespace parallax::gst {

/// An allocator handing out slots of `pool` (gst_allocator_alloc loans a slot, waiting up to
/// one second for a free one). Full transfer: the caller owns the returned reference.
GstAllocator* allocator_new(std::shared_ptr<memory::MemoryPool> pool);
/// An allocator that only wraps received Buffers (wrap_buffer); gst_allocator_alloc fails.
/// A GstParallaxFdAllocator: Buffers in a shareable segment become fd memory; Buffers without
/// one (payloads the subscriber copied into the heap) become plain read-only memories of a
/// GstParallaxAllocator it keeps (no fd to offer: gst_is_fd_memory() is false for those).
GstAllocator* allocator_new_readonly();

/// The pool behind a slot allocator (nullptr for a read-only one or another allocator).
[[nodiscard]] const std::shared_ptr<memory::MemoryPool>* allocator_pool(GstAllocator* allocator);

/// A memory of `size` bytes of a slot allocator that holds no slot yet: memory_arm() (or the
/// first map) loans one. For buffer pools, whose preallocation must not wait for slots.
GstMemory* memory_new_unarmed(GstAllocator* allocator, gsize size);

/// Whether `mem` was made by a GstParallaxAllocator or a GstParallaxFdAllocator.
[[nodiscard]] bool is_parallax_memory(GstMemory* mem);

/// A READONLY GstMemory holding `buffer` (no copy). Dropping the memory drops the Buffer, which
/// returns its lease when it was the last reference. With a GstParallaxFdAllocator and a Buffer
/// in a shareable segment: an fd memory (see GST_TYPE_PARALLAX_FD_ALLOCATOR).
GstMemory* wrap_buffer(GstAllocator* allocator, memory::Buffer buffer);

/// Makes sure `mem` (a memory of a slot allocator, exclusively owned by a pooled GstBuffer)
/// holds a fresh writable slot: one it has not shared yet. Waits for a free slot in steps of
/// `step`, asking `cancelled(user_data)` between steps. Returns false when cancelled.
[[nodiscard]] bool memory_arm(GstMemory* mem, bool (*cancelled)(void*), void* user_data,
                              std::chrono::milliseconds step = std::chrono::milliseconds(20));

/// The slot behind `mem` as a Buffer covering exactly mem's [offset, offset+size). A writable
/// slot is frozen on the way (it is shared from now on; a later writable map gets a new slot).
/// When `meta` is given it becomes the slot's metadata; that needs the slot unshared (or the
/// same metadata already there). std::nullopt when `mem` is not a Parallax memory, holds no
/// slot, or the metadata cannot be set (the caller then copies).
[[nodiscard]] std::optional<memory::Buffer> memory_to_buffer(GstMemory* mem,
                                                             const Metadata* meta = nullptr);

/// Counters of an allocator (for the elements' stats and the tests).
struct AllocatorCounters {
  std::uint64_t loans{0};    ///< slots loaned (alloc or re-arm)
  std::uint64_t cow{0};      ///< writable maps of an already shared slot (copied to a new slot)
  std::uint64_t wrapped{0};  ///< received Buffers wrapped
};
[[nodiscard]] AllocatorCounters allocator_counters(GstAllocator* allocator);

}  // namespace parallax::gst
