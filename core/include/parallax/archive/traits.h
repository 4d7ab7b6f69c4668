// SPDX-License-Identifier: MIT OR Apache-2.0
// How each supported type is written, validated and read back: the writer, the validation
// context (rkyv's shrinking allowed range), Traits<T> per type, and the PLX_ARCHIVE macros.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "parallax/archive/for_each.h"
#include "parallax/archive/format.h"

namespace parallax::archive {

// ---------------------------------------------------------------------------------------------
// Archived<T>: the type that T's bytes are read through. Kept apart from Traits<T> so that a
// recursive struct (a Node holding std::vector<Node>) can name its archived form while it is
// still being defined.

template <typename T>
struct ArchivedOf;  // no definition: T is not archivable (use PLX_ARCHIVE / PLX_ARCHIVE_ENUM)

template <typename T>
using Archived = typename ArchivedOf<T>::type;

namespace detail {
template <typename T>
concept Arithmetic = (std::is_integral_v<T> ||
                      std::is_floating_point_v<T>)&&!std::is_same_v<T, long double> &&
                     sizeof(T) <= 8;
template <typename T>
concept UserDeclared = requires(T* p) {
  plx_archive_traits(p);
};
template <typename T>
using user_traits_t = decltype(plx_archive_traits(static_cast<T*>(nullptr)));
}  // namespace detail

template <detail::Arithmetic T>
struct ArchivedOf<T> {
  using type = T;
};
template <detail::UserDeclared T>
struct ArchivedOf<T> {
  using type = typename detail::user_traits_t<T>::Archived;
};
template <>
struct ArchivedOf<std::string> {
  using type = ArchivedString;
};
template <typename T, typename Alloc>
struct ArchivedOf<std::vector<T, Alloc>> {
  using type = ArchivedVec<Archived<T>>;
};
template <typename T, std::size_t N>
struct ArchivedOf<std::array<T, N>> {
  using type = std::array<Archived<T>, N>;
};
template <typename T>
struct ArchivedOf<std::optional<T>> {
  using type = ArchivedOption<Archived<T>>;
};
template <typename... Ts>
struct ArchivedOf<std::variant<Ts...>> {
  using type = ArchivedVariant<Archived<Ts>...>;
};
template <typename A, typename B>
struct ArchivedOf<std::pair<A, B>> {
  using type = ArchivedPair<Archived<A>, Archived<B>>;
};
template <typename K, typename V, typename C, typename Alloc>
struct ArchivedOf<std::map<K, V, C, Alloc>> {
  using type = ArchivedMap<Archived<K>, Archived<V>>;
};

/// True when T can be archived (a supported standard type or declared with PLX_ARCHIVE*).
template <typename T>
concept Archivable = requires {
  typename ArchivedOf<T>::type;
};

// ---------------------------------------------------------------------------------------------
namespace detail {

/// Appends aligned, zero-padded regions. Three modes: grow a std::vector, fill a fixed span
/// (a pool loan) or only count (measuring pass; also what a span writer becomes once full, so
/// the caller can say how many bytes were needed).
class Writer {
 public:
  struct Slot {
    std::size_t pos;
    std::byte* ptr;  // nullptr when counting or out of room: skip writing
  };
  static Writer counting() noexcept { return Writer(nullptr, {}); }
  static Writer into(std::span<std::byte> out) noexcept { return Writer(nullptr, out); }
  static Writer into(std::vector<std::byte>& out) noexcept { return Writer(&out, {}); }

  [[nodiscard]] std::size_t pos() const noexcept { return pos_; }
  [[nodiscard]] bool overflowed() const noexcept { return overflow_; }

  /// Reserves `size` bytes at the next multiple of `align` (a power of two). Padding is
  /// zeroed; the region too unless `zero` is false (the caller overwrites it entirely).
  Slot alloc(std::size_t size, std::size_t align, bool zero = true) {
    const std::size_t p = (pos_ + align - 1) & ~(align - 1);
    const std::size_t end = p + size;
    std::byte* ptr = nullptr;
    if (vec_ != nullptr) {
      vec_->resize(end);  // value-initialises: padding and region are zero
      ptr = vec_->data() + p;
    } else if (!overflow_ && end <= span_.size()) {
      std::memset(span_.data() + pos_, 0, p - pos_);
      ptr = span_.data() + p;
      if (zero) std::memset(ptr, 0, size);
    } else if (!span_.empty()) {
      overflow_ = true;
    }
    pos_ = end;
    return {p, ptr};
  }

 private:
  Writer(std::vector<std::byte>* v, std::span<std::byte> s) noexcept : vec_(v), span_(s) {}
  std::vector<std::byte>* vec_;
  std::span<std::byte> span_;
  std::size_t pos_{0};
  bool overflow_{false};
};

/// Validation state: the buffer, the allowed range [begin, end) for the next claim (rkyv's
/// ArchiveContext), the nesting depth, and the error being reported.
struct ValidateCtx {
  const std::byte* base{nullptr};
  std::size_t len{0};
  std::size_t begin{0};  // nothing before this may be claimed any more (already claimed/skipped)
  std::size_t end{0};    // the start of the object whose children are being checked
  std::uint32_t depth{0};
  std::uint32_t max_depth{64};
  bool check_utf8{true};
  // Pending run of claimed string bytes whose UTF-8 check is deferred (see Traits<string>).
  // When off, each string is checked as it is claimed, so an error names its exact field.
  bool coalesce_utf8{true};
  // Coalesced runs in two flavours. ascii_runs (the first pass): a run must be all ASCII, so
  // no string byte is read while claiming (see Traits<string>); a run that is not sets
  // need_utf8_pass and fails. Otherwise (the second pass, for such archives): each piece's
  // first byte must be a character boundary and the run is checked as UTF-8.
  bool ascii_runs{false};
  bool need_utf8_pass{false};
  std::size_t utf8_begin{0};
  std::size_t utf8_end{0};
  // Error report, filled on the cold path only: what, where, and the path built while unwinding.
  std::string what;
  std::size_t at{0};
  std::vector<std::string> path_rev;

  [[nodiscard]] std::size_t pos_of(const void* p) const noexcept {
    return static_cast<std::size_t>(static_cast<const std::byte*>(p) - base);
  }
  /// Records the error; always returns false so callers can `return c.fail(...)`.
  [[gnu::cold]] bool fail(std::size_t at_byte, std::string message);
  [[gnu::cold]] void push_field(std::string_view name);
  [[gnu::cold]] void push_index(std::size_t i);
  /// Classifies a refused claim (out of bounds, misaligned, aliasing, not a prefix).
  [[gnu::cold]] bool claim_failed(std::size_t field_pos, std::int64_t target, std::uint64_t bytes,
                                  std::size_t align);
  [[gnu::cold]] bool utf8_failed(std::size_t at_byte);
  /// Checks the pending run of string bytes. With ascii_runs, all ASCII passes (every byte is
  /// then a character boundary, so each piece is valid on its own) and anything else fails
  /// with need_utf8_pass set; access() then validates again without ascii_runs.
  bool flush_utf8() {
    if (utf8_end > utf8_begin) {
      if (ascii_runs) {
        if (!ascii_in(base + utf8_begin, utf8_end - utf8_begin)) [[unlikely]]
          return utf8_not_ascii();
      } else {
        std::size_t bad = 0;
        if (!utf8_valid_in(base, utf8_begin, utf8_end - utf8_begin, bad)) [[unlikely]]
          return utf8_failed(utf8_begin + bad);
      }
    }
    utf8_begin = utf8_end;
    return true;
  }
  [[gnu::cold]] bool utf8_not_ascii();
  /// Joined path, e.g. "records[17].request" ("(root)" when empty).
  [[nodiscard]] std::string path() const;

  /// Claims [target, target+bytes) for the relative pointer at `field`: it must lie inside the
  /// allowed range and be aligned. On success `out` is the target position.
  [[gnu::always_inline]] bool claim(const std::int32_t* field, std::uint64_t bytes,
                                    std::size_t align, std::size_t& out) {
    const std::size_t fpos = pos_of(field);
    const std::int64_t t = static_cast<std::int64_t>(fpos) + *field;
    if (t >= static_cast<std::int64_t>(begin) && static_cast<std::uint64_t>(t) + bytes <= end &&
        (static_cast<std::uint64_t>(t) & (align - 1)) == 0) [[likely]] {
      out = static_cast<std::size_t>(t);
      return true;
    }
    return claim_failed(fpos, t, bytes, align);
  }
};

struct Empty {};

constexpr std::uint64_t fnv1a(std::string_view s,
                              std::uint64_t h = 14695981039346656037ULL) noexcept {
  for (char ch : s) {
    h ^= static_cast<unsigned char>(ch);
    h *= 1099511628211ULL;
  }
  return h;
}
constexpr std::uint64_t mix(std::uint64_t h, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) {
    h ^= (v >> (8 * i)) & 0xff;
    h *= 1099511628211ULL;
  }
  return h;
}

/// Schema hashes stop descending after this many levels so recursive types terminate.
inline constexpr int kSchemaDepth = 8;

template <typename T>
constexpr std::string_view arithmetic_name() {
  if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (std::is_same_v<T, float>)
    return "f32";
  else if constexpr (std::is_same_v<T, double>)
    return "f64";
  else if constexpr (std::is_signed_v<T>) {
    constexpr std::string_view n[] = {"", "i8", "i16", "", "i32", "", "", "", "i64"};
    return n[sizeof(T)];
  } else {
    constexpr std::string_view n[] = {"", "u8", "u16", "", "u32", "", "", "", "u64"};
    return n[sizeof(T)];
  }
}

template <typename M>
struct member_of;
template <typename C, typename M>
struct member_of<M C::*> {
  using type = M;
};

/// One field of a PLX_ARCHIVE struct: native member, archived member, name.
template <auto NativeMember, auto ArchivedMember>
struct Field {
  using Native = typename member_of<decltype(NativeMember)>::type;
  static constexpr auto native = NativeMember;
  static constexpr auto archived = ArchivedMember;
  std::string_view name;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Traits<T>: the operations on one native type T with archived form A = Archived<T>.
//   Resolver serialize(Writer&, const T&)        writes T's out-of-line children
//   void resolve(const T&, const Resolver&, A* out, size_t pos)  fills T's inline bytes at pos
//   bool validate(const A*, ValidateCtx&)         checks A and claims its children
//   T deserialize(const A&)                       an owned copy
//   kPlain: A has T's exact bytes and no pointers (arrays of it are one memcpy)
//   kHasInvariants: validate() has work to do (false: bounds and alignment are the whole check)

template <detail::Arithmetic T>
struct Traits<T> {
  using Archived = T;
  using Resolver = detail::Empty;
  static constexpr bool kPlain = true;
  static constexpr bool kHasInvariants = std::is_same_v<T, bool>;
  static Resolver serialize(detail::Writer&, const T&) noexcept { return {}; }
  static void resolve(const T& v, const Resolver&, T* out, std::size_t) noexcept {
    std::memcpy(out, &v, sizeof(T));
  }
  static bool validate(const T* a, detail::ValidateCtx& c) {
    if constexpr (std::is_same_v<T, bool>) {
      const auto byte = *reinterpret_cast<const unsigned char*>(a);
      if (byte > 1) [[unlikely]]
        return c.fail(c.pos_of(a), "invalid bool byte " + std::to_string(byte));
    } else {
      (void)a;
      (void)c;
    }
    return true;
  }
  static T deserialize(const T& a) noexcept { return a; }
  template <int D>
  static constexpr std::uint64_t schema() {
    return detail::fnv1a(detail::arithmetic_name<T>());
  }
};

template <>
struct Traits<std::string> {
  using Archived = ArchivedString;
  using Resolver = std::size_t;  // position of the bytes
  static constexpr bool kPlain = false;
  static constexpr bool kHasInvariants = true;
  static Resolver serialize(detail::Writer& w, const std::string& v) {
    if (v.empty()) return 0;
    const auto slot = w.alloc(v.size(), 1, false);
    if (slot.ptr != nullptr) std::memcpy(slot.ptr, v.data(), v.size());
    return slot.pos;
  }
  static void resolve(const std::string& v, const Resolver& r, ArchivedString* out,
                      std::size_t pos) noexcept {
    out->len_ = static_cast<std::uint32_t>(v.size());
    out->rel_ = v.empty() ? 0 : static_cast<std::int32_t>(static_cast<std::int64_t>(r) - pos);
  }
  [[gnu::always_inline]] static bool validate(const ArchivedString* a, detail::ValidateCtx& c) {
    const std::uint32_t n = a->len_;
    if (n == 0) return true;
    std::size_t t = 0;
    if (!c.claim(&a->rel_, n, 1, t)) return false;
    if (c.check_utf8) {
      // Consecutive strings are usually contiguous (a record's strings, then the next
      // record's): their bytes are checked as one run when it breaks and at the end. A run is
      // valid UTF-8 piece by piece exactly when it is valid as a whole and each piece starts
      // on a character boundary (a byte that is not 10xxxxxx). In the first pass (ascii_runs)
      // runs must be all ASCII, where every byte is a boundary, so no string byte is read
      // here; archives with other text take a second pass that checks the boundaries.
      if (t == c.utf8_end && c.coalesce_utf8 &&
          (c.ascii_runs || (static_cast<unsigned char>(c.base[t]) & 0xC0) != 0x80)) [[likely]] {
        c.utf8_end = t + n;
      } else {
        if (!c.flush_utf8()) return false;
        if (c.coalesce_utf8) {
          c.utf8_begin = t;
          c.utf8_end = t + n;
        } else {
          std::size_t bad = 0;
          if (!detail::utf8_valid_in(c.base, t, n, bad)) [[unlikely]]
            return c.utf8_failed(t + bad);
        }
      }
    }
    c.begin = t + n;
    return true;
  }
  static std::string deserialize(const ArchivedString& a) { return a.str(); }
  template <int D>
  static constexpr std::uint64_t schema() {
    return detail::fnv1a("string");
  }
};

namespace detail {
/// Serializes `n` elements read by `get(i)` as a contiguous array; returns its position.
template <typename T, typename Get>
std::size_t serialize_array(Writer& w, std::size_t n, Get&& get) {
  using Tr = Traits<T>;
  using A = typename Tr::Archived;
  if (n == 0) return 0;
  if constexpr (Tr::kPlain) {
    const auto slot = w.alloc(n * sizeof(A), alignof(A), false);
    if (slot.ptr != nullptr) {
      for (std::size_t i = 0; i < n; ++i)
        std::memcpy(slot.ptr + i * sizeof(A), &get(i), sizeof(A));
    }
    return slot.pos;
  } else {
    std::vector<typename Tr::Resolver> rs;
    rs.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      rs.push_back(Tr::serialize(w, get(i)));
    const auto slot = w.alloc(n * sizeof(A), alignof(A));
    if (slot.ptr != nullptr) {
      A* out = reinterpret_cast<A*>(slot.ptr);
      for (std::size_t i = 0; i < n; ++i)
        Tr::resolve(get(i), rs[i], out + i, slot.pos + i * sizeof(A));
    }
    return slot.pos;
  }
}

/// Validates the array behind a relative pointer: claim it, then (for elements with invariants)
/// check each element with the allowed range narrowed to what precedes the array.
template <typename T, typename A>
bool validate_array(const std::int32_t* rel, std::uint32_t n, ValidateCtx& c) {
  if (n == 0) return true;
  const std::uint64_t bytes = static_cast<std::uint64_t>(n) * sizeof(A);
  std::size_t t = 0;
  if (!c.claim(rel, bytes, alignof(A), t)) return false;
  if constexpr (Traits<T>::kHasInvariants) {
    if (++c.depth > c.max_depth) [[unlikely]]
      return c.fail(t, "nesting deeper than the limit of " + std::to_string(c.max_depth));
    const std::size_t saved_end = c.end;
    c.end = t;  // the elements' children must precede the array
    const A* e = reinterpret_cast<const A*>(detail::rel_target(rel));
    for (std::uint32_t i = 0; i < n; ++i) {
      if (!Traits<T>::validate(e + i, c)) [[unlikely]] {
        c.push_index(i);
        return false;
      }
    }
    c.end = saved_end;
    --c.depth;
  }
  c.begin = static_cast<std::size_t>(t + bytes);
  return true;
}
}  // namespace detail

template <typename T, typename Alloc>
struct Traits<std::vector<T, Alloc>> {
  using Archived = ArchivedVec<archive::Archived<T>>;
  using Resolver = std::size_t;
  static constexpr bool kPlain = false;
  static constexpr bool kHasInvariants = true;
  static Resolver serialize(detail::Writer& w, const std::vector<T, Alloc>& v) {
    if constexpr (std::is_same_v<T, bool>) {  // vector<bool> has no contiguous bools
      return detail::serialize_array<T>(
          w, v.size(), [&](std::size_t i) -> const bool& { return v[i] ? kTrue : kFalse; });
    } else {
      return detail::serialize_array<T>(w, v.size(),
                                        [&](std::size_t i) -> const T& { return v[i]; });
    }
  }
  static void resolve(const std::vector<T, Alloc>& v, const Resolver& r, Archived* out,
                      std::size_t pos) noexcept {
    out->len_ = static_cast<std::uint32_t>(v.size());
    out->rel_ = v.empty() ? 0 : static_cast<std::int32_t>(static_cast<std::int64_t>(r) - pos);
  }
  static bool validate(const Archived* a, detail::ValidateCtx& c) {
    return detail::validate_array<T, archive::Archived<T>>(&a->rel_, a->len_, c);
  }
  static std::vector<T, Alloc> deserialize(const Archived& a) {
    std::vector<T, Alloc> out;
    out.reserve(a.size());
    for (const auto& e : a)
      out.push_back(Traits<T>::deserialize(e));
    return out;
  }
  template <int D>
  static constexpr std::uint64_t schema() {
    if constexpr (D <= 0) {
      return detail::fnv1a("vec");
    } else {
      return detail::mix(detail::fnv1a("vec"), Traits<T>::template schema<D - 1>());
    }
  }

 private:
  static constexpr bool kTrue = true;
  static constexpr bool kFalse = false;
};

template <typename T, std::size_t N>
struct Traits<std::array<T, N>> {
  using Tr = Traits<T>;
  using Archived = std::array<archive::Archived<T>, N>;
  using Resolver =
      std::conditional_t<Tr::kPlain, detail::Empty, std::array<typename Tr::Resolver, N>>;
  static constexpr bool kPlain = Tr::kPlain;
  static constexpr bool kHasInvariants = Tr::kHasInvariants;
  static Resolver serialize(detail::Writer& w, const std::array<T, N>& v) {
    if constexpr (kPlain) {
      return {};
    } else {
      Resolver r{};
      for (std::size_t i = 0; i < N; ++i)
        r[i] = Tr::serialize(w, v[i]);
      return r;
    }
  }
  static void resolve(const std::array<T, N>& v, const Resolver& r, Archived* out,
                      std::size_t pos) noexcept {
    if constexpr (kPlain) {
      (void)r;
      (void)pos;
      std::memcpy(out, v.data(), sizeof(Archived));
    } else {
      for (std::size_t i = 0; i < N; ++i)
        Tr::resolve(v[i], r[i], &(*out)[i], pos + i * sizeof(archive::Archived<T>));
    }
  }
  static bool validate(const Archived* a, detail::ValidateCtx& c) {
    if constexpr (kHasInvariants) {
      for (std::size_t i = 0; i < N; ++i) {
        if (!Tr::validate(&(*a)[i], c)) [[unlikely]] {
          c.push_index(i);
          return false;
        }
      }
    } else {
      (void)a;
      (void)c;
    }
    return true;
  }
  static std::array<T, N> deserialize(const Archived& a) {
    std::array<T, N> out{};
    for (std::size_t i = 0; i < N; ++i)
      out[i] = Tr::deserialize(a[i]);
    return out;
  }
  template <int D>
  static constexpr std::uint64_t schema() {
    if constexpr (D <= 0) {
      return detail::fnv1a("array");
    } else {
      return detail::mix(detail::mix(detail::fnv1a("array"), N), Tr::template schema<D - 1>());
    }
  }
};

template <typename T>
struct Traits<std::optional<T>> {
  using Tr = Traits<T>;
  using Archived = ArchivedOption<archive::Archived<T>>;
  using Resolver = std::optional<typename Tr::Resolver>;
  static constexpr bool kPlain = false;
  static constexpr bool kHasInvariants = true;  // the tag
  static Resolver serialize(detail::Writer& w, const std::optional<T>& v) {
    if (!v) return std::nullopt;
    return Tr::serialize(w, *v);
  }
  static void resolve(const std::optional<T>& v, const Resolver& r, Archived* out,
                      std::size_t pos) noexcept {
    if (!v) return;  // tag and storage stay zero
    out->tag_ = 1;
    Tr::resolve(*v, *r, &out->value_, pos + offsetof(Archived, value_));
  }
  static bool validate(const Archived* a, detail::ValidateCtx& c) {
    if (a->tag_ == 0) return true;
    if (a->tag_ != 1) [[unlikely]]
      return c.fail(c.pos_of(a), "invalid option tag " + std::to_string(a->tag_));
    return Tr::validate(&a->value_, c);
  }
  static std::optional<T> deserialize(const Archived& a) {
    if (!a) return std::nullopt;
    return Tr::deserialize(*a);
  }
  template <int D>
  static constexpr std::uint64_t schema() {
    if constexpr (D <= 0) {
      return detail::fnv1a("option");
    } else {
      return detail::mix(detail::fnv1a("option"), Tr::template schema<D - 1>());
    }
  }
};

template <typename... Ts>
struct Traits<std::variant<Ts...>> {
  using Archived = ArchivedVariant<archive::Archived<Ts>...>;
  using Resolver = std::variant<typename Traits<Ts>::Resolver...>;
  static constexpr bool kPlain = false;
  static constexpr bool kHasInvariants = true;
  static Resolver serialize(detail::Writer& w, const std::variant<Ts...>& v) {
    return serialize_impl(w, v, std::index_sequence_for<Ts...>{});
  }
  static void resolve(const std::variant<Ts...>& v, const Resolver& r, Archived* out,
                      std::size_t pos) noexcept {
    resolve_impl(v, r, out, pos + offsetof(Archived, storage_), std::index_sequence_for<Ts...>{});
  }
  static bool validate(const Archived* a, detail::ValidateCtx& c) {
    if (a->tag_ >= sizeof...(Ts)) [[unlikely]]
      return c.fail(c.pos_of(a), "invalid variant tag " + std::to_string(a->tag_) + " (" +
                                     std::to_string(sizeof...(Ts)) + " alternatives)");
    return validate_impl(a, c, std::index_sequence_for<Ts...>{});
  }
  static std::variant<Ts...> deserialize(const Archived& a) {
    return deserialize_impl(a, std::index_sequence_for<Ts...>{});
  }
  template <int D>
  static constexpr std::uint64_t schema() {
    std::uint64_t h = detail::fnv1a("variant");
    if constexpr (D > 0) ((h = detail::mix(h, Traits<Ts>::template schema<D - 1>())), ...);
    return h;
  }

 private:
  template <std::size_t... I>
  static Resolver serialize_impl(detail::Writer& w, const std::variant<Ts...>& v,
                                 std::index_sequence<I...>) {
    Resolver r;
    (void)((v.index() == I
                ? (r.template emplace<I>(Traits<Ts>::serialize(w, *std::get_if<I>(&v))), true)
                : false) ||
           ...);
    return r;
  }
  template <std::size_t... I>
  static void resolve_impl(const std::variant<Ts...>& v, const Resolver& r, Archived* out,
                           std::size_t storage_pos, std::index_sequence<I...>) noexcept {
    out->tag_ = static_cast<std::uint8_t>(v.index());
    (void)((v.index() == I
                ? (Traits<Ts>::resolve(*std::get_if<I>(&v), *std::get_if<I>(&r),
                                       reinterpret_cast<archive::Archived<Ts>*>(out->storage_),
                                       storage_pos),
                   true)
                : false) ||
           ...);
  }
  template <std::size_t... I>
  static bool validate_impl(const Archived* a, detail::ValidateCtx& c, std::index_sequence<I...>) {
    bool ok = true;
    (void)((a->tag_ == I ? (ok = Traits<Ts>::validate(
                                reinterpret_cast<const archive::Archived<Ts>*>(a->storage_), c),
                            true)
                         : false) ||
           ...);
    return ok;
  }
  template <std::size_t... I>
  static std::variant<Ts...> deserialize_impl(const Archived& a, std::index_sequence<I...>) {
    std::variant<Ts...> out;
    (void)((a.index() == I
                ? (out.template emplace<I>(Traits<Ts>::deserialize(*a.template get_if<I>())), true)
                : false) ||
           ...);
    return out;
  }
};

template <typename A, typename B>
struct Traits<std::pair<A, B>> {
  using Archived = ArchivedPair<archive::Archived<A>, archive::Archived<B>>;
  using Resolver = std::pair<typename Traits<A>::Resolver, typename Traits<B>::Resolver>;
  static constexpr bool kPlain = false;
  static constexpr bool kHasInvariants = Traits<A>::kHasInvariants || Traits<B>::kHasInvariants;
  static Resolver serialize(detail::Writer& w, const std::pair<A, B>& v) {
    auto ra = Traits<A>::serialize(w, v.first);  // first's children before second's
    auto rb = Traits<B>::serialize(w, v.second);
    return {std::move(ra), std::move(rb)};
  }
  static void resolve(const std::pair<A, B>& v, const Resolver& r, Archived* out,
                      std::size_t pos) noexcept {
    Traits<A>::resolve(v.first, r.first, &out->first, pos + offsetof(Archived, first));
    Traits<B>::resolve(v.second, r.second, &out->second, pos + offsetof(Archived, second));
  }
  static bool validate(const Archived* a, detail::ValidateCtx& c) {
    if (!Traits<A>::validate(&a->first, c)) {
      c.push_field("first");
      return false;
    }
    if (!Traits<B>::validate(&a->second, c)) {
      c.push_field("second");
      return false;
    }
    return true;
  }
  static std::pair<A, B> deserialize(const Archived& a) {
    return {Traits<A>::deserialize(a.first), Traits<B>::deserialize(a.second)};
  }
  template <int D>
  static constexpr std::uint64_t schema() {
    std::uint64_t h = detail::fnv1a("pair");
    if constexpr (D > 0) {
      h = detail::mix(h, Traits<A>::template schema<D - 1>());
      h = detail::mix(h, Traits<B>::template schema<D - 1>());
    }
    return h;
  }
};

template <typename K, typename V, typename C, typename Alloc>
struct Traits<std::map<K, V, C, Alloc>> {
  using Entry = std::pair<K, V>;
  using Archived = ArchivedMap<archive::Archived<K>, archive::Archived<V>>;
  using AEntry = typename Archived::Entry;
  using Resolver = std::size_t;
  static constexpr bool kPlain = false;
  static constexpr bool kHasInvariants = true;
  static Resolver serialize(detail::Writer& w, const std::map<K, V, C, Alloc>& m) {
    // std::map iterates in key order: the archived entries come out sorted.
    std::vector<const typename std::map<K, V, C, Alloc>::value_type*> items;
    items.reserve(m.size());
    for (const auto& kv : m)
      items.push_back(&kv);
    if (items.empty()) return 0;
    using PT = Traits<Entry>;
    std::vector<typename PT::Resolver> rs;
    rs.reserve(items.size());
    for (const auto* kv : items) {
      auto rk = Traits<K>::serialize(w, kv->first);
      auto rv = Traits<V>::serialize(w, kv->second);
      rs.emplace_back(std::move(rk), std::move(rv));
    }
    const auto slot = w.alloc(items.size() * sizeof(AEntry), alignof(AEntry));
    if (slot.ptr != nullptr) {
      AEntry* out = reinterpret_cast<AEntry*>(slot.ptr);
      for (std::size_t i = 0; i < items.size(); ++i) {
        const std::size_t p = slot.pos + i * sizeof(AEntry);
        Traits<K>::resolve(items[i]->first, rs[i].first, &out[i].first,
                           p + offsetof(AEntry, first));
        Traits<V>::resolve(items[i]->second, rs[i].second, &out[i].second,
                           p + offsetof(AEntry, second));
      }
    }
    return slot.pos;
  }
  static void resolve(const std::map<K, V, C, Alloc>& m, const Resolver& r, Archived* out,
                      std::size_t pos) noexcept {
    out->entries_.len_ = static_cast<std::uint32_t>(m.size());
    out->entries_.rel_ =
        m.empty() ? 0 : static_cast<std::int32_t>(static_cast<std::int64_t>(r) - pos);
  }
  static bool validate(const Archived* a, detail::ValidateCtx& c) {
    if (!detail::validate_array<Entry, AEntry>(&a->entries_.rel_, a->entries_.len_, c))
      return false;
    if constexpr (requires(const archive::Archived<K>& x) { x < x; }) {
      const AEntry* e = a->entries_.data();
      for (std::size_t i = 1; i < a->size(); ++i) {
        if (!(e[i - 1].first < e[i].first)) [[unlikely]] {
          c.fail(c.pos_of(&e[i]), "map keys not strictly increasing");
          c.push_index(i);
          return false;
        }
      }
    }
    return true;
  }
  static std::map<K, V, C, Alloc> deserialize(const Archived& a) {
    std::map<K, V, C, Alloc> out;
    for (const auto& e : a)
      out.emplace_hint(out.end(), Traits<K>::deserialize(e.first),
                       Traits<V>::deserialize(e.second));
    return out;
  }
  template <int D>
  static constexpr std::uint64_t schema() {
    std::uint64_t h = detail::fnv1a("map");
    if constexpr (D > 0) {
      h = detail::mix(h, Traits<K>::template schema<D - 1>());
      h = detail::mix(h, Traits<V>::template schema<D - 1>());
    }
    return h;
  }
};

// ---------------------------------------------------------------------------------------------
// Structs and enums declared with the macros below. The macro emits, next to the type, a traits
// description D (found by ADL through plx_archive_traits(T*)) and, for structs, the archived
// struct; the generic code here does the rest.

namespace detail {

template <typename D>
struct StructTraits {
  using Native = typename D::Native;
  using Archived = typename D::Archived;
  using FieldList = decltype(D::fields());

  template <typename Tuple>
  struct resolvers;
  template <typename... F>
  struct resolvers<std::tuple<F...>> {
    using type = std::tuple<typename Traits<typename F::Native>::Resolver...>;
    static constexpr bool kInv = (Traits<typename F::Native>::kHasInvariants || ...);
  };

  using Resolver = typename resolvers<FieldList>::type;
  static constexpr bool kPlain = false;
  static constexpr bool kHasInvariants = resolvers<FieldList>::kInv;
  static constexpr std::size_t kFields = std::tuple_size_v<FieldList>;

  static Resolver serialize(Writer& w, const Native& v) {
    return std::apply(
        [&](auto... f) {
          // Braced initialisation evaluates left to right: children land in field order,
          // which validation relies on (claims must be increasing).
          return Resolver{Traits<typename decltype(f)::Native>::serialize(w, v.*(f.native))...};
        },
        D::fields());
  }
  static void resolve(const Native& v, const Resolver& r, Archived* out, std::size_t pos) {
    resolve_impl(v, r, out, pos, std::make_index_sequence<kFields>{});
  }
  static bool validate(const Archived* a, ValidateCtx& c) {
    if constexpr (kHasInvariants) {
      return validate_impl(a, c, std::make_index_sequence<kFields>{});
    } else {
      (void)a;
      (void)c;
      return true;
    }
  }
  static Native deserialize(const Archived& a) {
    Native out{};
    std::apply(
        [&](auto... f) {
          ((out.*(f.native) = Traits<typename decltype(f)::Native>::deserialize(a.*(f.archived))),
           ...);
        },
        D::fields());
    return out;
  }
  template <int Depth>
  static constexpr std::uint64_t schema() {
    std::uint64_t h = fnv1a(D::name, fnv1a("struct"));
    if constexpr (Depth > 0) {
      std::apply(
          [&](auto... f) {
            ((h = mix(fnv1a(f.name, h),
                      Traits<typename decltype(f)::Native>::template schema<Depth - 1>())),
             ...);
          },
          D::fields());
    }
    return h;
  }

 private:
  template <std::size_t I>
  static std::size_t offset_of(const Archived* out) noexcept {
    constexpr auto f = std::get<I>(D::fields());
    return static_cast<std::size_t>(reinterpret_cast<const std::byte*>(&(out->*(f.archived))) -
                                    reinterpret_cast<const std::byte*>(out));
  }
  template <std::size_t... I>
  static void resolve_impl(const Native& v, const Resolver& r, Archived* out, std::size_t pos,
                           std::index_sequence<I...>) {
    constexpr auto fs = D::fields();
    (Traits<typename std::tuple_element_t<I, FieldList>::Native>::resolve(
         v.*(std::get<I>(fs).native), std::get<I>(r), &(out->*(std::get<I>(fs).archived)),
         pos + offset_of<I>(out)),
     ...);
  }
  template <std::size_t I>
  static bool validate_one(const Archived* a, ValidateCtx& c) {
    using F = std::tuple_element_t<I, FieldList>;
    using Tr = Traits<typename F::Native>;
    if constexpr (Tr::kHasInvariants) {
      constexpr auto f = std::get<I>(D::fields());
      if (!Tr::validate(&(a->*(f.archived)), c)) [[unlikely]] {
        c.push_field(f.name);
        return false;
      }
    }
    return true;
  }
  template <std::size_t... I>
  static bool validate_impl(const Archived* a, ValidateCtx& c, std::index_sequence<I...>) {
    return (validate_one<I>(a, c) && ...);
  }
};

template <typename D>
struct EnumTraits {
  using Native = typename D::Native;
  using Archived = Native;
  using U = std::underlying_type_t<Native>;
  static_assert(Arithmetic<U> && !std::is_same_v<U, bool>,
                "enum with a fixed-width underlying type");
  using Resolver = Empty;
  static constexpr bool kPlain = true;
  static constexpr bool kHasInvariants = true;

  static constexpr bool contiguous() {
    U lo = static_cast<U>(D::values[0]);
    for (auto v : D::values)
      lo = static_cast<U>(v) < lo ? static_cast<U>(v) : lo;
    for (std::size_t k = 0; k < std::size(D::values); ++k) {
      bool found = false;
      for (auto v : D::values)
        found = found || static_cast<U>(v) == static_cast<U>(lo + k);
      if (!found) return false;
    }
    return true;
  }
  static constexpr U min_value() {
    U lo = static_cast<U>(D::values[0]);
    for (auto v : D::values)
      lo = static_cast<U>(v) < lo ? static_cast<U>(v) : lo;
    return lo;
  }

  static Resolver serialize(Writer&, const Native&) noexcept { return {}; }
  static void resolve(const Native& v, const Resolver&, Native* out, std::size_t) noexcept {
    std::memcpy(out, &v, sizeof(Native));
  }
  static bool validate(const Native* a, ValidateCtx& c) {
    U raw;
    std::memcpy(&raw, a, sizeof(U));
    bool ok = false;
    if constexpr (contiguous()) {
      ok = raw >= min_value() &&
           static_cast<std::uint64_t>(raw - min_value()) < std::size(D::values);
    } else {
      for (auto v : D::values)
        ok = ok || static_cast<U>(v) == raw;
    }
    if (!ok) [[unlikely]]
      return c.fail(c.pos_of(a), "invalid " + std::string(D::name) + " tag " +
                                     std::to_string(static_cast<std::int64_t>(raw)));
    return true;
  }
  static Native deserialize(const Native& a) noexcept { return a; }
  template <int Depth>
  static constexpr std::uint64_t schema() {
    std::uint64_t h = fnv1a(D::name, fnv1a("enum"));
    h = fnv1a(arithmetic_name<U>(), h);
    for (std::size_t i = 0; i < std::size(D::values); ++i)
      h = mix(fnv1a(D::names[i], h), static_cast<std::uint64_t>(static_cast<U>(D::values[i])));
    return h;
  }
};

}  // namespace detail

template <detail::UserDeclared T>
struct Traits<T> : std::conditional_t<detail::user_traits_t<T>::kIsEnum,
                                      detail::EnumTraits<detail::user_traits_t<T>>,
                                      detail::StructTraits<detail::user_traits_t<T>>> {};

/// A stable 64-bit hash of T's archived shape (type names, field names and order, enum values).
template <typename T>
inline constexpr std::uint64_t schema_hash_v = Traits<T>::template schema<detail::kSchemaDepth>();

}  // namespace parallax::archive

// ---------------------------------------------------------------------------------------------
// The opt-in macros. Use them at namespace scope, in the namespace of the type, after its
// definition.

#define PLX_ARCHIVE_MEMBER_(T, f) ::parallax::archive::Archived<decltype(T::f)> f;
#define PLX_ARCHIVE_FIELD_(T, f)                               \
  ::parallax::archive::detail::Field<&T::f, &Archived##T::f> { \
#f                                                         \
  }

/// Makes struct `T` archivable: `PLX_ARCHIVE(Log, address, identity, code);` lists the fields to
/// archive, in order (1 to 32). Generates `struct ArchivedLog` whose members have the same names
/// (`view.identity`), reachable as `parallax::archive::Archived<Log>`. T must be default
/// constructible for deserialize().
#define PLX_ARCHIVE(T, ...)                                                                 \
  struct Archived##T;                                                                       \
  struct PlxArchiveTraits_##T {                                                             \
    using Native = T;                                                                       \
    using Archived = Archived##T;                                                           \
    static constexpr bool kIsEnum = false;                                                  \
    static constexpr std::string_view name = #T;                                            \
    static constexpr auto fields();                                                         \
  };                                                                                        \
  PlxArchiveTraits_##T plx_archive_traits(T*);                                              \
  struct Archived##T {                                                                      \
    PLX_ARCHIVE_FOR_EACH(PLX_ARCHIVE_MEMBER_, T, __VA_ARGS__)                               \
  };                                                                                        \
  static_assert(                                                                            \
      std::is_standard_layout_v<Archived##T> && std::is_trivially_copyable_v<Archived##T>,  \
      "archived structs must be standard-layout and trivially copyable");                   \
  constexpr auto PlxArchiveTraits_##T::fields() {                                           \
    return std::make_tuple(PLX_ARCHIVE_FOR_EACH_COMMA(PLX_ARCHIVE_FIELD_, T, __VA_ARGS__)); \
  }                                                                                         \
  static_assert(true, "")

#define PLX_ARCHIVE_ENUM_VALUE_(E, v) E::v
#define PLX_ARCHIVE_ENUM_NAME_(E, v) std::string_view(#v)

/// Makes enum `E` archivable with the listed enumerators as its only valid values (validation
/// rejects any other value): `PLX_ARCHIVE_ENUM(Method, get, post, put);`.
#define PLX_ARCHIVE_ENUM(E, ...)                                              \
  struct PlxArchiveTraits_##E {                                               \
    using Native = E;                                                         \
    using Archived = E;                                                       \
    static constexpr bool kIsEnum = true;                                     \
    static constexpr std::string_view name = #E;                              \
    static constexpr E values[] = {                                           \
        PLX_ARCHIVE_FOR_EACH_COMMA(PLX_ARCHIVE_ENUM_VALUE_, E, __VA_ARGS__)}; \
    static constexpr std::string_view names[] = {                             \
        PLX_ARCHIVE_FOR_EACH_COMMA(PLX_ARCHIVE_ENUM_NAME_, E, __VA_ARGS__)};  \
  };                                                                          \
  PlxArchiveTraits_##E plx_archive_traits(E*);                                \
  static_assert(true, "")
