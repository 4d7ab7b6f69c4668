// SPDX-License-Identifier: MIT OR Apache-2.0
// parallax::archive: validated zero-copy archives in rkyv's model. serialize() writes a value
// once (children before parents, 32-bit relative offsets, root at the end); access() validates
// the bytes in one O(size) pass and returns an in-place view; deserialize() gives back a T.
//
//   struct Log { Address address; std::string identity; std::uint16_t code; };
//   PLX_ARCHIVE(Log, address, identity, code);
//
//   PLX_ASSIGN(auto bytes, archive::serialize(log));          // std::vector<std::byte>
//   PLX_ASSIGN(const auto* view, archive::access<Log>(bytes));  // const Archived<Log>*
//   if (view->code == 200 && view->identity == "frank") ...
//
// See docs/archive.md for the format, the validation levels and what validation proves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "parallax/archive/format.h"
#include "parallax/archive/traits.h"
#include "parallax/buffer.h"
#include "parallax/result.h"
#include "parallax/trace.h"

namespace parallax::archive {

/// How much access() checks.
enum class Validation : std::uint8_t {
  /// Everything: bounds, alignment, ordered non-overlapping claims, tags, bools, UTF-8, depth.
  full,
  /// As full, but string bytes are not checked for UTF-8 (ArchivedString::utf8() checks one
  /// string on demand). Memory safety is the same as full.
  structural,
  /// Only the root's size and alignment. For bytes this process wrote itself or received from
  /// a peer it trusts; reading hostile bytes at this level is undefined behaviour.
  trusted,
};

struct AccessOptions {
  Validation level{Validation::full};
  /// Most nested levels of pointers to elements with invariants (vectors of strings, of structs
  /// holding vectors...). Guards the validator's recursion against hostile nesting.
  std::uint32_t max_depth{64};
  /// The bytes start with an ArchiveHeader whose schema hash must match T's.
  bool header{false};
};

struct WriteOptions {
  /// Prepend a 16-byte ArchiveHeader (magic, version, schema hash of T).
  bool header{false};
};

/// Largest archive: relative offsets are signed 32-bit.
inline constexpr std::size_t kMaxArchiveSize = 0x7fffffff;

namespace detail {
[[nodiscard]] Error validation_error(const ValidateCtx& c);
[[nodiscard]] Error size_error(std::size_t size);
[[nodiscard]] Error header_error(std::span<const std::byte> bytes, std::uint64_t expected);
[[nodiscard]] Error root_error(std::span<const std::byte> bytes, std::size_t body_begin,
                               std::size_t root_size, std::size_t root_align);

/// Writes the whole archive of `v` through `w`; returns its size (w may have overflowed).
template <typename T>
std::size_t write_archive(Writer& w, const T& v, const WriteOptions& opts) {
  using Tr = Traits<T>;
  using A = typename Tr::Archived;
  if (opts.header) {
    const auto slot = w.alloc(sizeof(ArchiveHeader), alignof(ArchiveHeader));
    if (slot.ptr != nullptr) {
      const ArchiveHeader h{kArchiveMagic, kArchiveVersion, 0, schema_hash_v<T>};
      std::memcpy(slot.ptr, &h, sizeof h);
    }
  }
  auto r = Tr::serialize(w, v);
  const auto slot = w.alloc(sizeof(A), alignof(A));
  if (slot.ptr != nullptr) Tr::resolve(v, r, reinterpret_cast<A*>(slot.ptr), slot.pos);
  return w.pos();
}
}  // namespace detail

/// The exact number of bytes serialize(v, opts) produces (a measuring pass, no allocation of
/// the output).
template <typename T>
[[nodiscard]] std::size_t serialized_size(const T& v, WriteOptions opts = {}) {
  auto w = detail::Writer::counting();
  return detail::write_archive(w, v, opts);
}

/// Serializes `v` into `out` (cleared first; its capacity is reused). invalid_argument when the
/// archive would exceed kMaxArchiveSize.
template <typename T>
[[nodiscard]] Result<void> serialize_into(const T& v, std::vector<std::byte>& out,
                                          WriteOptions opts = {}) {
  static_assert(Archivable<T>, "T is not archivable: add PLX_ARCHIVE(T, fields...)");
  out.clear();
  auto w = detail::Writer::into(out);
  const std::size_t n = detail::write_archive(w, v, opts);
  if (n > kMaxArchiveSize) return detail::size_error(n);
  return ok();
}

/// Serializes `v` into a new byte vector.
template <typename T>
[[nodiscard]] Result<std::vector<std::byte>> serialize(const T& v, WriteOptions opts = {}) {
  std::vector<std::byte> out;
  PLX_TRY(serialize_into(v, out, opts));
  return out;
}

/// Serializes `v` into the start of a fixed span (which must be kBufferAlignment-aligned) and
/// returns the archive's size. resource_exhausted (naming the size needed) when it does not
/// fit; the span's contents are then unspecified.
template <typename T>
[[nodiscard]] Result<std::size_t> serialize_into(const T& v, std::span<std::byte> out,
                                                 WriteOptions opts = {}) {
  static_assert(Archivable<T>, "T is not archivable: add PLX_ARCHIVE(T, fields...)");
  if (reinterpret_cast<std::uintptr_t>(out.data()) % kBufferAlignment != 0)
    return err(Errc::invalid_argument, "archive output buffer is not 8-byte aligned");
  auto w = detail::Writer::into(out);
  const std::size_t n = detail::write_archive(w, v, opts);
  if (w.overflowed() || n > out.size())
    return err(Errc::resource_exhausted, "archive needs " + std::to_string(n) +
                                             " bytes, the buffer has " +
                                             std::to_string(out.size()));
  if (n > kMaxArchiveSize) return detail::size_error(n);
  return n;
}

/// Serializes `v` into a pool loan, so the archive is born in (shared) memory, and sets the
/// loan's size to the archive's. resource_exhausted when the slot is too small.
template <typename T>
[[nodiscard]] Result<std::size_t> serialize_into(const T& v, memory::Loan& loan,
                                                 WriteOptions opts = {}) {
  if (!loan.valid()) return err(Errc::failed_precondition, "serialize into an empty Loan");
  PLX_TRY(loan.set_size(loan.capacity()));
  auto r = serialize_into(v, loan.data(), opts);
  if (!r.ok()) {
    (void)loan.set_size(0);
    return std::move(r).error();
  }
  PLX_TRY(loan.set_size(*r));
  return *r;
}

/// Validates `bytes` as an archive of T and returns its root, read in place. Errors are
/// data_loss with the field path and byte offset ("records[17].request: invalid UTF-8 at byte
/// 40213"). The buffer must be kBufferAlignment-aligned and outlive the view.
template <typename T>
[[nodiscard]] Result<const Archived<T>*> access(std::span<const std::byte> bytes,
                                                AccessOptions opts = {}) {
  static_assert(Archivable<T>, "T is not archivable: add PLX_ARCHIVE(T, fields...)");
  PLX_TRACE_SPAN_ARG("archive.validate", "bytes", bytes.size());
  using A = Archived<T>;
  std::size_t body = 0;
  if (opts.header) {
    ArchiveHeader h;
    if (bytes.size() < sizeof h) return detail::header_error(bytes, schema_hash_v<T>);
    std::memcpy(&h, bytes.data(), sizeof h);
    if (h.magic != kArchiveMagic || h.version != kArchiveVersion ||
        h.schema_hash != schema_hash_v<T>)
      return detail::header_error(bytes, schema_hash_v<T>);
    body = sizeof h;
  }
  if (bytes.size() > kMaxArchiveSize || bytes.size() < body + sizeof(A) ||
      reinterpret_cast<std::uintptr_t>(bytes.data()) % kBufferAlignment != 0 ||
      (bytes.size() - sizeof(A)) % alignof(A) != 0) [[unlikely]]
    return detail::root_error(bytes, body, sizeof(A), alignof(A));
  const std::size_t root = bytes.size() - sizeof(A);
  const A* view = reinterpret_cast<const A*>(bytes.data() + root);
  if (opts.level == Validation::trusted) return view;
  // Passes: ASCII runs (the common case, cheapest), UTF-8 runs (text that is not all ASCII),
  // then string by string (to name the field of the first error).
  enum class Pass { ascii_runs, utf8_runs, each_string };
  auto run = [&](detail::ValidateCtx& c, Pass pass) {
    c.base = bytes.data();
    c.len = bytes.size();
    c.begin = body;
    c.end = root;  // the root's children precede it
    c.max_depth = opts.max_depth;
    c.check_utf8 = opts.level == Validation::full;
    c.coalesce_utf8 = pass != Pass::each_string;
    c.ascii_runs = pass == Pass::ascii_runs;
    return Traits<T>::validate(view, c) && c.flush_utf8();
  };
  detail::ValidateCtx c;
  if (!run(c, Pass::ascii_runs)) [[unlikely]] {
    if (c.need_utf8_pass) {
      c = detail::ValidateCtx{};
      if (run(c, Pass::utf8_runs)) return view;
    }
    // Cold path: validate again checking each string as it is claimed, so the error names the
    // field and byte of the first problem in archive order.
    detail::ValidateCtx precise;
    return detail::validation_error(run(precise, Pass::each_string) ? c : precise);
  }
  return view;
}

/// No checks at all: the root of bytes that this process produced itself. Spelled so nobody
/// uses it by accident; hostile bytes read through it are undefined behaviour.
template <typename T>
[[nodiscard]] const Archived<T>& access_unchecked_i_know_this_is_trusted(
    std::span<const std::byte> bytes) noexcept {
  return *reinterpret_cast<const Archived<T>*>(bytes.data() + bytes.size() - sizeof(Archived<T>));
}

/// An owned T from its archived form.
template <typename T>
[[nodiscard]] T deserialize(const Archived<T>& archived) {
  return Traits<T>::deserialize(archived);
}

/// access() then deserialize(): validated bytes to an owned T.
template <typename T>
[[nodiscard]] Result<T> from_bytes(std::span<const std::byte> bytes, AccessOptions opts = {}) {
  PLX_ASSIGN(const Archived<T>* view, access<T>(bytes, opts));
  return Traits<T>::deserialize(*view);
}

}  // namespace parallax::archive
