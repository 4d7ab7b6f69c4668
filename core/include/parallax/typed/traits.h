// SPDX-License-Identifier: MIT OR Apache-2.0
// The vocabulary of typed pipelines: the source/stage/sink tags and concepts, what a stage
// accepts and pushes (StageAccepts, stage_output_t), and the type helpers the other parts use.
#pragma once

#include <parallax/result.h>

#include <concepts>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

namespace parallax::typed {

/// Base of every source builder (from_iter, range, once, repeat_with, merge, zip).
struct source_tag {};
/// Base of every operator builder (map, filter, ..., batch, parallel, queue).
struct stage_tag {};
/// Base of every sink builder (collect, for_each, fold, discard).
struct sink_tag {};

namespace detail {

template <typename...>
inline constexpr bool always_false = false;

template <typename T>
struct is_result : std::false_type {};
template <typename T>
struct is_result<Result<T>> : std::true_type {
  using value_type = T;
};
template <typename T>
inline constexpr bool is_result_v = is_result<std::remove_cvref_t<T>>::value;

template <typename T>
struct is_optional : std::false_type {};
template <typename T>
struct is_optional<std::optional<T>> : std::true_type {
  using value_type = T;
};
template <typename T>
inline constexpr bool is_optional_v = is_optional<std::remove_cvref_t<T>>::value;

/// A pushed expression's type as a reference type: a prvalue T travels as T&&.
template <typename R>
using as_ref_t = std::conditional_t<std::is_reference_v<R>, R, R&&>;

/// Result<U> -> U, anything else unchanged.
template <typename R, bool = is_result_v<R>>
struct unwrap_result {
  using type = R;
};
template <typename R>
struct unwrap_result<R, true> {
  using type = typename is_result<std::remove_cvref_t<R>>::value_type;
};
template <typename R>
using unwrap_result_t = typename unwrap_result<R>::type;

/// Marker shown in diagnostics when a callable's parameter type cannot be named (generic lambda,
/// overloaded call operator).
struct generic_or_overloaded_callable {};

template <typename M>
struct member_fn_param {
  using type = generic_or_overloaded_callable;
};
#define PLX_TYPED_MEMBER_PARAM_(QUALS)                        \
  template <typename R, typename C, typename A>               \
  struct member_fn_param<R (C::*)(A) QUALS> {                 \
    using type = A;                                           \
  };                                                          \
  template <typename R, typename C, typename Acc, typename A> \
  struct member_fn_param<R (C::*)(Acc, A) QUALS> {            \
    using type = A;                                           \
  };
PLX_TYPED_MEMBER_PARAM_()
PLX_TYPED_MEMBER_PARAM_(const)
PLX_TYPED_MEMBER_PARAM_(noexcept)
PLX_TYPED_MEMBER_PARAM_(const noexcept)
#undef PLX_TYPED_MEMBER_PARAM_

template <typename F, typename = void>
struct callable_param {
  using type = generic_or_overloaded_callable;
};
template <typename F>
struct callable_param<F, std::void_t<decltype(&F::operator())>>
    : member_fn_param<decltype(&F::operator())> {};
template <typename R, typename A>
struct callable_param<R (*)(A), void> {
  using type = A;
};
/// The (last) parameter type of a non-generic callable, for error messages only.
template <typename F>
using callable_param_t = typename callable_param<std::remove_cvref_t<F>>::type;

/// Calls f with an item, turning an escaping exception into an Error so that nothing throws
/// across a worker thread (where it would terminate the process).
template <typename R, typename F, typename... A>
Result<R> call_caught(F& f, A&&... a) noexcept {
  try {
    if constexpr (is_result_v<std::invoke_result_t<F&, A...>>) {
      return std::invoke(f, std::forward<A>(a)...);
    } else {
      return R(std::invoke(f, std::forward<A>(a)...));
    }
  } catch (...) {
    return Error{Errc::internal, "parallax::typed: a parallel stage's callable threw"};
  }
}

}  // namespace detail

/// Is S a source builder (from_iter, range, once, repeat_with, merge, zip)?
template <typename S>
concept Source = std::derived_from<std::remove_cvref_t<S>, source_tag>;
/// Is S an operator builder (map, filter, filter_map, take, skip, inspect, batch, parallel,
/// queue)?
template <typename S>
concept Stage = std::derived_from<std::remove_cvref_t<S>, stage_tag>;
/// Is K a sink builder (collect, for_each, fold, discard)?
template <typename K>
concept Sink = std::derived_from<std::remove_cvref_t<K>, sink_tag>;

/// Can stage S take items of type In (a value type, or the reference type a stage pushes)?
/// This is what `.then()` checks; use it in your own static_asserts and tests too.
template <typename S, typename In>
concept StageAccepts = Stage<S> && std::remove_cvref_t<S>::template accepts<In>;
/// Can sink K take items of type In?
template <typename K, typename In>
concept SinkAccepts = Sink<K> && std::remove_cvref_t<K>::template accepts<In>;

/// The reference type a stage pushes downstream when it receives In (only for accepted In).
template <typename S, typename In>
using stage_output_t = typename std::remove_cvref_t<S>::template output<In>;

}  // namespace parallax::typed
