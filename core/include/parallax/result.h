// SPDX-License-Identifier: MIT OR Apache-2.0
// Result<T>: the value-or-error type every fallible Parallax call returns (g++ 12 has no
// std::expected). Error codes follow a small taxonomy modelled on absl::StatusCode.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace parallax {

/// The error taxonomy. Pick the code a caller would branch on, and say the rest in the message.
enum class Errc : int {
  invalid_argument = 1,     ///< the caller passed something wrong (bad size, bad string, ...)
  out_of_range = 2,         ///< an offset/length outside an object's bounds
  resource_exhausted = 3,   ///< a pool is empty, a quota is reached
  unavailable = 4,          ///< the peer is gone, or not there yet
  failed_precondition = 5,  ///< the object is in the wrong state for this call
  permission_denied = 6,    ///< credentials or access mode refused
  not_found = 7,            ///< a named thing (file, element, property) does not exist
  already_exists = 8,       ///< a name is taken
  timeout = 9,              ///< a deadline passed
  data_loss = 10,           ///< malformed or corrupt data (hostile peer, bad archive)
  unsupported = 11,         ///< the system or build lacks a feature
  io = 12,                  ///< an OS call failed for another reason
  internal = 13,            ///< a bug in Parallax
  cancelled = 14,           ///< the operation was interrupted on purpose (shutdown, flush)
};

/// Human-readable name of an error code ("resource_exhausted").
[[nodiscard]] std::string_view to_string(Errc code) noexcept;

/// An error: a code to branch on and a message for people.
struct Error {
  Errc code{Errc::internal};
  std::string message;

  /// Builds an error from errno (or the given errno value), prefixed with what was attempted.
  [[nodiscard]] static Error from_errno(std::string_view what, int err = errno);

  /// "code: message".
  [[nodiscard]] std::string to_string() const;
};

/// Maps an errno value to the taxonomy (ENOENT -> not_found, EACCES -> permission_denied, ...).
[[nodiscard]] Errc errc_from_errno(int err) noexcept;

/// Convenience constructor: `return err(Errc::invalid_argument, "slot size is zero");`
[[nodiscard]] inline Error err(Errc code, std::string message) {
  return Error{code, std::move(message)};
}

namespace detail {
[[noreturn]] void result_panic(const Error& e) noexcept;
}  // namespace detail

/// A value of type T or an Error. Accessing the wrong alternative aborts with the error printed
/// (there is no exception to catch: Parallax code does not throw across its API).
template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  Result(const T& v) requires std::is_copy_constructible_v<T> : v_(std::in_place_index<0>, v) {}
  Result(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}
  template <typename U>
  requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, T> &&
           !std::is_same_v<std::decay_t<U>, Error> && !std::is_same_v<std::decay_t<U>, Result>)
      Result(U&& u)
      : v_(std::in_place_index<0>, T(std::forward<U>(u))) {}
  Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}

  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  [[nodiscard]] T& value() & {
    check();
    return *std::get_if<0>(&v_);
  }
  [[nodiscard]] const T& value() const& {
    check();
    return *std::get_if<0>(&v_);
  }
  [[nodiscard]] T&& value() && {
    check();
    return std::move(*std::get_if<0>(&v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error; only valid when !ok().
  [[nodiscard]] const Error& error() const& {
    if (ok()) detail::result_panic(Error{Errc::internal, "Result::error() on a value"});
    return *std::get_if<1>(&v_);
  }
  [[nodiscard]] Error&& error() && {
    if (ok()) detail::result_panic(Error{Errc::internal, "Result::error() on a value"});
    return std::move(*std::get_if<1>(&v_));
  }

  /// The value, or `fallback` when this holds an error.
  template <typename U>
  [[nodiscard]] T value_or(U&& fallback) const& {
    return ok() ? *std::get_if<0>(&v_) : static_cast<T>(std::forward<U>(fallback));
  }

  /// The original's spelling (`.run()?.into_inner()`): moves the value out.
  [[nodiscard]] T into_inner() && { return std::move(*this).value(); }

 private:
  void check() const {
    if (!ok()) detail::result_panic(*std::get_if<1>(&v_));
  }
  std::variant<T, Error> v_;
};

/// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;
  Result() = default;
  Result(Error e) : e_(std::move(e)), has_error_(true) {}

  [[nodiscard]] bool ok() const noexcept { return !has_error_; }
  explicit operator bool() const noexcept { return ok(); }
  void value() const {
    if (has_error_) detail::result_panic(e_);
  }
  [[nodiscard]] const Error& error() const& {
    if (!has_error_) detail::result_panic(Error{Errc::internal, "Result::error() on a value"});
    return e_;
  }
  [[nodiscard]] Error&& error() && {
    if (!has_error_) detail::result_panic(Error{Errc::internal, "Result::error() on a value"});
    return std::move(e_);
  }

 private:
  Error e_{};
  bool has_error_{false};
};

/// Shorthand for a successful Result<void>.
[[nodiscard]] inline Result<void> ok() {
  return {};
}

}  // namespace parallax

/// Propagates an error from a Result-returning expression: `PLX_TRY(seg.seal());`
#define PLX_TRY(expr)                                           \
  do {                                                          \
    auto&& plx_try_r_ = (expr);                                 \
    if (!plx_try_r_.ok()) return std::move(plx_try_r_).error(); \
  } while (0)

#define PLX_CONCAT_INNER_(a, b) a##b
#define PLX_CONCAT_(a, b) PLX_CONCAT_INNER_(a, b)
/// Declares `lhs` from a Result's value, or returns its error: `PLX_ASSIGN(auto seg, make());`
#define PLX_ASSIGN(lhs, expr) PLX_ASSIGN_IMPL_(PLX_CONCAT_(plx_r_, __LINE__), lhs, expr)
#define PLX_ASSIGN_IMPL_(tmp, lhs, expr)        \
  auto tmp = (expr);                            \
  if (!tmp.ok()) return std::move(tmp).error(); \
  lhs = std::move(tmp).value()
