// SPDX-License-Identifier: MIT OR Apache-2.0
// Archived<T>: the type that T's bytes are read through, and the Archivable concept. Kept apart
// from Traits<T> so that a recursive struct (a Node holding std::vector<Node>) can name its
// archived form while it is still being defined.
#pragma once

#include <array>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "parallax/archive/format.h"

namespace parallax::archive {

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

}  // namespace parallax::archive
