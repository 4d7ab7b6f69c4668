// SPDX-License-Identifier: MIT OR Apache-2.0
// GstParallaxAllocator: GstMemory over Parallax slots. Each memory holds a SlotRef (a loan while
// it is privately writable, a frozen Buffer once it has been shared), so the bytes stay valid
// exactly as long as a GstMemory or a remote lease needs them.
// GstParallaxFdAllocator: received Buffers as GstFdMemory of their segment's memfd (made by
// gst_fd_allocator_alloc, so gst_fd_memory_get_fd works), holding the Buffer as qdata.
#include "parallax-gst/allocator.h"

#include "parallax/segment.h"

#include <atomic>
#include <cstring>
#include <new>
#include <utility>

GST_DEBUG_CATEGORY_STATIC(gst_parallax_allocator_debug);
#define GST_CAT_DEFAULT gst_parallax_allocator_debug

namespace {

using parallax::memory::Buffer;
using parallax::memory::Loan;
using parallax::memory::MemoryPool;

// What a GstParallaxMemory points at. Exactly one of loan / frozen is set when armed.
struct SlotRef {
  Loan loan;      // privately writable (never sent, never shared)
  Buffer frozen;  // shared: sent to subscribers, shared with a sub-memory, or received
  std::byte* data{nullptr};

  [[nodiscard]] bool armed() const noexcept { return data != nullptr; }
  void freeze() {
    if (loan.valid()) {
      // The visible length of the frozen buffer is the whole slot: GstMemory's offset and
      // size select the part in use.
      (void)loan.set_size(loan.capacity());
      frozen = std::move(loan).freeze();
    }
  }
};

// One allocation per memory (the SlotRef lives inside it): wrapping a received buffer is on
// parallaxsrc's per-buffer path. Allocated with new, freed with delete in free_fn.
struct GstParallaxMemory {
  GstMemory mem;
  SlotRef* slot;  // points at storage
  SlotRef storage;
};

struct AllocatorState {
  std::shared_ptr<MemoryPool> pool;  // null: read-only allocator
  std::atomic<std::uint64_t> loans{0}, cow{0}, wrapped{0};
};

}  // namespace

struct _GstParallaxAllocator {
  GstAllocator parent;
  AllocatorState* state;
};

G_DEFINE_TYPE(GstParallaxAllocator, gst_parallax_allocator, GST_TYPE_ALLOCATOR)

namespace {
struct FdAllocatorState {
  GstAllocator* plain{nullptr};  // read-only GstParallaxAllocator for Buffers without a segment
  std::atomic<std::uint64_t> wrapped{0};
};
}  // namespace

struct _GstParallaxFdAllocator {
  GstFdAllocator parent;
  FdAllocatorState* state;
};

G_DEFINE_TYPE(GstParallaxFdAllocator, gst_parallax_fd_allocator, GST_TYPE_FD_ALLOCATOR)

namespace {

GstParallaxMemory* new_memory(GstAllocator* allocator, GstMemory* parent, GstMemoryFlags flags,
                              gsize maxsize, gsize offset, gsize size) {
  auto* m = new (std::nothrow) GstParallaxMemory{};
  if (m == nullptr) return nullptr;
  m->slot = &m->storage;
  gst_memory_init(GST_MEMORY_CAST(m), flags, allocator, parent, maxsize, 63, offset, size);
  return m;
}

AllocatorState* state_of(GstAllocator* a) {
  return GST_IS_PARALLAX_ALLOCATOR(a) ? GST_PARALLAX_ALLOCATOR(a)->state : nullptr;
}

// Gives `slot` a fresh writable slot (block of `size` bytes in a variable-size pool; a whole
// slot otherwise) of `st`'s pool, waiting at most `timeout`.
bool loan_into(AllocatorState* st, SlotRef* slot, gsize size, std::chrono::nanoseconds timeout) {
  if (!st->pool) return false;
  auto l =
      st->pool->variable_size() ? st->pool->loan_for(size, timeout) : st->pool->loan_for(timeout);
  if (!l) return false;
  slot->frozen = Buffer();
  slot->loan = std::move(*l);
  (void)slot->loan.set_size(slot->loan.capacity());
  slot->data = slot->loan.data().data();
  st->loans.fetch_add(1, std::memory_order_relaxed);
  return true;
}

GstMemory* alloc_fn(GstAllocator* allocator, gsize size, GstAllocationParams* params) {
  AllocatorState* st = state_of(allocator);
  if (st == nullptr || !st->pool) return nullptr;
  const gsize prefix = params ? params->prefix : 0;
  const gsize padding = params ? params->padding : 0;
  const gsize slot_size = st->pool->slot_size();
  if (size > slot_size || prefix > slot_size - size || padding > slot_size - size - prefix) {
    GST_WARNING_OBJECT(allocator,
                       "%" G_GSIZE_FORMAT " bytes (+%" G_GSIZE_FORMAT
                       " prefix) do not fit a slot of %" G_GSIZE_FORMAT " bytes",
                       size, prefix, slot_size);
    return nullptr;
  }
  const auto flags = params ? params->flags : static_cast<GstMemoryFlags>(0);
  // A variable-size pool gives a block of exactly what is asked (encoders asking for each
  // frame's size get ~the frame, not a slot); a slot pool gives a slot.
  const gsize maxsize = st->pool->variable_size() ? prefix + size + padding : slot_size;
  GstParallaxMemory* m = new_memory(allocator, nullptr, flags, maxsize, prefix, size);
  if (m == nullptr) return nullptr;
  if (!loan_into(st, m->slot, maxsize, std::chrono::seconds(1))) {
    GST_WARNING_OBJECT(allocator, "no free slot within 1 s");
    gst_memory_unref(GST_MEMORY_CAST(m));
    return nullptr;
  }
  return GST_MEMORY_CAST(m);
}

void free_fn(GstAllocator*, GstMemory* mem) {
  auto* m = reinterpret_cast<GstParallaxMemory*>(mem);
  delete m;  // the SlotRef returns the loan or drops the Buffer reference
}

gpointer map_fn(GstMemory* mem, gsize, GstMapFlags flags) {
  auto* m = reinterpret_cast<GstParallaxMemory*>(mem);
  SlotRef* s = m->slot;
  AllocatorState* st = state_of(mem->allocator);
  if (!s->armed()) {
    // A pooled memory whose slot was not loaned yet (the pool arms on acquire).
    if (st == nullptr || !loan_into(st, s, mem->maxsize, std::chrono::seconds(1))) return nullptr;
  }
  if ((flags & GST_MAP_WRITE) && !s->loan.valid()) {
    // The slot is shared (subscribers may be reading it): copy on write into a fresh slot.
    // GstMemory's lock guarantees no other map is active now.
    if (st == nullptr || !st->pool || mem->parent != nullptr) return nullptr;
    Buffer old = std::move(s->frozen);
    if (!loan_into(st, s, mem->maxsize, std::chrono::seconds(1))) {
      s->frozen = std::move(old);
      return nullptr;
    }
    std::memcpy(s->data, old.data().data(), std::min(old.size(), s->loan.capacity()));
    st->cow.fetch_add(1, std::memory_order_relaxed);
    GST_DEBUG_OBJECT(mem->allocator, "copy-on-write of a shared slot");
  }
  return s->data;
}

void unmap_fn(GstMemory*) {}

GstMemory* copy_fn(GstMemory* mem, gssize offset, gssize size) {
  if (size == -1) size = static_cast<gssize>(mem->size) > offset ? mem->size - offset : 0;
  GstMemory* copy = gst_allocator_alloc(nullptr, static_cast<gsize>(size), nullptr);
  if (copy == nullptr) return nullptr;
  GstMapInfo src, dst;
  if (!gst_memory_map(mem, &src, GST_MAP_READ)) {
    gst_memory_unref(copy);
    return nullptr;
  }
  if (gst_memory_map(copy, &dst, GST_MAP_WRITE)) {
    std::memcpy(dst.data, src.data + offset, static_cast<gsize>(size));
    gst_memory_unmap(copy, &dst);
  }
  gst_memory_unmap(mem, &src);
  return copy;
}

GstMemory* share_fn(GstMemory* mem, gssize offset, gssize size) {
  auto* m = reinterpret_cast<GstParallaxMemory*>(mem);
  if (!m->slot->armed()) return nullptr;
  if (size == -1) size = static_cast<gssize>(mem->size) - offset;
  // Sharing freezes the slot: from now on it can be seen by two memories.
  m->slot->freeze();
  GstMemory* parent = mem->parent ? mem->parent : mem;
  GstParallaxMemory* sub =
      new_memory(mem->allocator, parent,
                 static_cast<GstMemoryFlags>(GST_MINI_OBJECT_FLAGS(parent) |
                                             GST_MINI_OBJECT_FLAG_LOCK_READONLY),
                 mem->maxsize, mem->offset + offset, static_cast<gsize>(size));
  if (sub == nullptr) return nullptr;
  sub->slot->frozen = m->slot->frozen;
  sub->slot->data = m->slot->data;
  return GST_MEMORY_CAST(sub);
}

gboolean is_span_fn(GstMemory* mem1, GstMemory* mem2, gsize* offset) {
  auto* a = reinterpret_cast<GstParallaxMemory*>(mem1);
  auto* b = reinterpret_cast<GstParallaxMemory*>(mem2);
  if (a->slot->data == nullptr || a->slot->data != b->slot->data) return FALSE;
  if (mem1->offset + mem1->size != mem2->offset) return FALSE;
  if (offset != nullptr) *offset = mem1->offset - (mem1->parent ? mem1->parent->offset : 0);
  return TRUE;
}

}  // namespace

static void gst_parallax_allocator_finalize(GObject* object) {
  auto* self = GST_PARALLAX_ALLOCATOR(object);
  delete std::exchange(self->state, nullptr);
  G_OBJECT_CLASS(gst_parallax_allocator_parent_class)->finalize(object);
}

static void gst_parallax_allocator_class_init(GstParallaxAllocatorClass* klass) {
  auto* gobject_class = G_OBJECT_CLASS(klass);
  auto* allocator_class = GST_ALLOCATOR_CLASS(klass);
  gobject_class->finalize = gst_parallax_allocator_finalize;
  allocator_class->alloc = alloc_fn;
  allocator_class->free = free_fn;
  GST_DEBUG_CATEGORY_INIT(gst_parallax_allocator_debug, "parallaxallocator", 0,
                          "Parallax slot allocator");
}

static void gst_parallax_allocator_init(GstParallaxAllocator* self) {
  auto* alloc = GST_ALLOCATOR_CAST(self);
  self->state = new AllocatorState;
  alloc->mem_type = GST_PARALLAX_MEMORY_TYPE;
  alloc->mem_map = map_fn;
  alloc->mem_unmap = unmap_fn;
  alloc->mem_copy = copy_fn;
  alloc->mem_share = share_fn;
  alloc->mem_is_span = is_span_fn;
  // Not a general-purpose allocator: never becomes the default or registered by name.
  GST_OBJECT_FLAG_SET(self, GST_ALLOCATOR_FLAG_CUSTOM_ALLOC);
}

namespace {

// What an fd memory holds (as qdata of the root memory; shares reach it through their parent):
// the received Buffer, whose reference keeps the lease and the segment (mapping and fd) alive.
struct FdRef {
  Buffer buffer;
  const std::byte* base;  // the segment's persistent mapping: GstMemory offset 0 = fd offset 0
  gsize origin;           // offset of buffer.data() in the segment (the root memory's offset)
};

GQuark fd_ref_quark() {
  static const GQuark q = g_quark_from_static_string("parallax-fd-ref");
  return q;
}

void fd_ref_free(gpointer p) {
  delete static_cast<FdRef*>(p);
}

FdRef* fd_ref_of(GstMemory* mem) {
  GstMemory* root = mem->parent != nullptr ? mem->parent : mem;
  return static_cast<FdRef*>(gst_mini_object_get_qdata(GST_MINI_OBJECT_CAST(root), fd_ref_quark()));
}

// GstFdAllocator would mmap the whole segment for every memory on first map: the segment is
// mapped already, so map returns that mapping (GstMemory adds mem->offset).
gpointer fd_map_fn(GstMemory* mem, gsize, GstMapFlags flags) {
  if ((flags & GST_MAP_WRITE) != 0) return nullptr;  // the publisher's pages are PROT_READ here
  FdRef* r = fd_ref_of(mem);
  return r != nullptr ? const_cast<std::byte*>(r->base) : nullptr;
}

void fd_unmap_fn(GstMemory*) {}

GstMemory* fd_alloc_fn(GstAllocator* allocator, gsize, GstAllocationParams*) {
  GST_WARNING_OBJECT(allocator, "a read-only allocator: it only wraps received buffers");
  return nullptr;
}

}  // namespace

static void gst_parallax_fd_allocator_finalize(GObject* object) {
  auto* self = GST_PARALLAX_FD_ALLOCATOR(object);
  if (self->state != nullptr && self->state->plain != nullptr) gst_object_unref(self->state->plain);
  delete std::exchange(self->state, nullptr);
  G_OBJECT_CLASS(gst_parallax_fd_allocator_parent_class)->finalize(object);
}

static void gst_parallax_fd_allocator_class_init(GstParallaxFdAllocatorClass* klass) {
  G_OBJECT_CLASS(klass)->finalize = gst_parallax_fd_allocator_finalize;
  // free stays GstFdAllocator's: it frees the GstFdMemory and, with DONT_CLOSE and nothing
  // mapped by it, neither closes the fd nor unmaps (the qdata's Buffer owns both).
  GST_ALLOCATOR_CLASS(klass)->alloc = fd_alloc_fn;
}

static void gst_parallax_fd_allocator_init(GstParallaxFdAllocator* self) {
  auto* alloc = GST_ALLOCATOR_CAST(self);
  self->state = new FdAllocatorState;
  alloc->mem_type = GST_PARALLAX_MEMORY_TYPE;
  alloc->mem_map = fd_map_fn;
  alloc->mem_unmap = fd_unmap_fn;
  // mem_share stays GstFdAllocator's (a read-only GstFdMemory of the same fd whose parent is the
  // root: our map finds the Buffer there); mem_copy / mem_is_span: GstAllocator's fallbacks.
}

namespace parallax::gst {

GstAllocator* allocator_new(std::shared_ptr<memory::MemoryPool> pool) {
  auto* a = static_cast<GstParallaxAllocator*>(g_object_new(GST_TYPE_PARALLAX_ALLOCATOR, nullptr));
  gst_object_ref_sink(a);
  a->state->pool = std::move(pool);
  return GST_ALLOCATOR_CAST(a);
}

GstAllocator* allocator_new_readonly() {
  auto* plain =
      static_cast<GstParallaxAllocator*>(g_object_new(GST_TYPE_PARALLAX_ALLOCATOR, nullptr));
  gst_object_ref_sink(plain);
  auto* a =
      static_cast<GstParallaxFdAllocator*>(g_object_new(GST_TYPE_PARALLAX_FD_ALLOCATOR, nullptr));
  gst_object_ref_sink(a);
  a->state->plain = GST_ALLOCATOR_CAST(plain);
  return GST_ALLOCATOR_CAST(a);
}

const std::shared_ptr<memory::MemoryPool>* allocator_pool(GstAllocator* allocator) {
  AllocatorState* st = allocator ? state_of(allocator) : nullptr;
  return st && st->pool ? &st->pool : nullptr;
}

GstMemory* memory_new_unarmed(GstAllocator* allocator, gsize size) {
  AllocatorState* st = state_of(allocator);
  if (st == nullptr || !st->pool || size > st->pool->slot_size()) return nullptr;
  const gsize maxsize = st->pool->variable_size() ? size : st->pool->slot_size();
  GstParallaxMemory* m =
      new_memory(allocator, nullptr, static_cast<GstMemoryFlags>(0), maxsize, 0, size);
  return m ? GST_MEMORY_CAST(m) : nullptr;
}

bool is_parallax_memory(GstMemory* mem) {
  return mem != nullptr && mem->allocator != nullptr &&
         (GST_IS_PARALLAX_ALLOCATOR(mem->allocator) ||
          GST_IS_PARALLAX_FD_ALLOCATOR(mem->allocator));
}

GstMemory* wrap_buffer(GstAllocator* allocator, memory::Buffer buffer) {
  if (allocator != nullptr && GST_IS_PARALLAX_FD_ALLOCATOR(allocator)) {
    FdAllocatorState* fst = GST_PARALLAX_FD_ALLOCATOR(allocator)->state;
    const memory::Segment* seg = buffer.segment();
    if (seg == nullptr || !seg->shareable()) return wrap_buffer(fst->plain, std::move(buffer));
    // One GstFdMemory over the whole segment (maxsize), showing this buffer's bytes (offset and
    // size relative to the fd). DONT_CLOSE: the segment owns the fd.
    const gsize origin = buffer.segment_offset();
    const gsize size = buffer.size();
    if (origin > seg->size() || size > seg->size() - origin) return nullptr;
    GstMemory* mem =
        gst_fd_allocator_alloc(allocator, seg->fd(), seg->size(), GST_FD_MEMORY_FLAG_DONT_CLOSE);
    if (mem == nullptr) return nullptr;
    mem->offset = origin;
    mem->size = size;
    GST_MINI_OBJECT_FLAG_SET(mem, GST_MEMORY_FLAG_READONLY);
    auto* ref = new (std::nothrow) FdRef{Buffer(), seg->data(), origin};
    if (ref == nullptr) {
      gst_memory_unref(mem);
      return nullptr;
    }
    ref->buffer = std::move(buffer);
    gst_mini_object_set_qdata(GST_MINI_OBJECT_CAST(mem), fd_ref_quark(), ref, fd_ref_free);
    fst->wrapped.fetch_add(1, std::memory_order_relaxed);
    return mem;
  }
  const gsize size = buffer.size();
  GstParallaxMemory* m = new_memory(allocator, nullptr, GST_MEMORY_FLAG_READONLY, size, 0, size);
  if (m == nullptr) return nullptr;
  // Read-only view: GST_MEMORY_FLAG_READONLY keeps writable maps away from the PROT_READ pages.
  m->slot->data = const_cast<std::byte*>(buffer.data().data());
  m->slot->frozen = std::move(buffer);
  if (m->slot->data == nullptr) m->slot->data = reinterpret_cast<std::byte*>(m);  // empty buffer
  if (AllocatorState* st = state_of(allocator)) st->wrapped.fetch_add(1, std::memory_order_relaxed);
  return GST_MEMORY_CAST(m);
}

bool memory_arm(GstMemory* mem, bool (*cancelled)(void*), void* user_data,
                std::chrono::milliseconds step) {
  if (!is_parallax_memory(mem)) return true;
  auto* m = reinterpret_cast<GstParallaxMemory*>(mem);
  if (m->slot->loan.valid()) return true;  // still private and writable: reuse as is
  AllocatorState* st = state_of(mem->allocator);
  if (st == nullptr || !st->pool) return true;
  // Drop our reference to the shared slot first: remote leases keep it alive as long as needed.
  m->slot->frozen = Buffer();
  m->slot->data = nullptr;
  const bool sized = st->pool->variable_size();
  if (auto l = sized ? st->pool->try_loan(mem->maxsize) : st->pool->try_loan()) {
    m->slot->loan = std::move(*l);
  } else {
    for (;;) {
      if (cancelled != nullptr && cancelled(user_data)) return false;
      auto w = sized ? st->pool->loan_for(mem->maxsize, step) : st->pool->loan_for(step);
      if (w) {
        m->slot->loan = std::move(*w);
        break;
      }
    }
  }
  (void)m->slot->loan.set_size(m->slot->loan.capacity());
  m->slot->data = m->slot->loan.data().data();
  st->loans.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::optional<memory::Buffer> memory_to_buffer(GstMemory* mem, const Metadata* meta) {
  if (!is_parallax_memory(mem)) return std::nullopt;
  if (GST_IS_PARALLAX_FD_ALLOCATOR(mem->allocator)) {
    FdRef* r = fd_ref_of(mem);
    if (r == nullptr || mem->offset < r->origin) return std::nullopt;
    if (meta != nullptr) {
      if (auto w = r->buffer.metadata_mut()) {
        **w = *meta;
      } else if (!(r->buffer.metadata() == *meta)) {
        return std::nullopt;
      }
    }
    auto s = r->buffer.slice(mem->offset - r->origin, mem->size);
    if (!s) return std::nullopt;
    return std::move(*s);
  }
  auto* m = reinterpret_cast<GstParallaxMemory*>(mem);
  if (!m->slot->armed()) return std::nullopt;
  m->slot->freeze();
  Buffer& whole = m->slot->frozen;
  if (!whole.valid()) return std::nullopt;
  if (meta != nullptr) {
    // Metadata lives with the slot: writable only while nobody else can see it.
    if (auto w = whole.metadata_mut()) {
      **w = *meta;
    } else if (!(whole.metadata() == *meta)) {
      return std::nullopt;
    }
  }
  // The frozen buffer starts at the slot (or received view) start: mem->offset is relative to it.
  auto r = whole.slice(mem->offset, mem->size);
  if (!r) return std::nullopt;
  return std::move(*r);
}

AllocatorCounters allocator_counters(GstAllocator* allocator) {
  AllocatorCounters c;
  if (allocator != nullptr && GST_IS_PARALLAX_FD_ALLOCATOR(allocator)) {
    const FdAllocatorState* fst = GST_PARALLAX_FD_ALLOCATOR(allocator)->state;
    c = allocator_counters(fst->plain);
    c.wrapped += fst->wrapped.load();
    return c;
  }
  if (AllocatorState* st = allocator ? state_of(allocator) : nullptr) {
    c.loans = st->loans.load();
    c.cow = st->cow.load();
    c.wrapped = st->wrapped.load();
  }
  return c;
}

}  // namespace parallax::gst
