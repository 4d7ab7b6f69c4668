// SPDX-License-Identifier: MIT OR Apache-2.0
// Traits<T> for the built-in archivable types: numbers and bools, std::string, std::vector,
// std::array, std::optional, std::variant, std::pair and std::map.
//
// Traits<T>: the operations on one native type T with archived form A = Archived<T>.
//   Resolver serialize(Writer&, const T&)        writes T's out-of-line children
//   void resolve(const T&, const Resolver&, A* out, size_t pos)  fills T's inline bytes at pos
//   bool validate(const A*, ValidateCtx&)         checks A and claims its children
//   T deserialize(const A&)                       an owned copy
//   kPlain: A has T's exact bytes and no pointers (arrays of it are one memcpy)
//   kHasInvariants: validate() has work to do (false: bounds and alignment are the whole check)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "parallax/archive/archived_of.h"
#include "parallax/archive/codec.h"
#include "parallax/archive/format.h"

namespace parallax::archive {

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

}  // namespace parallax::archive
