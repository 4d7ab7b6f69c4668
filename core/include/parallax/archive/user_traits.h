// SPDX-License-Identifier: MIT OR Apache-2.0
// Structs and enums made archivable with PLX_ARCHIVE / PLX_ARCHIVE_ENUM. The macro emits, next
// to the type, a traits description D (found by ADL through plx_archive_traits(T*)) and, for
// structs, the archived struct; StructTraits / EnumTraits here do the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "parallax/archive/archived_of.h"
#include "parallax/archive/codec.h"
#include "parallax/archive/for_each.h"
#include "parallax/archive/std_traits.h"

namespace parallax::archive {

namespace detail {

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
