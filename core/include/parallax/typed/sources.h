// SPDX-License-Identifier: MIT OR Apache-2.0
// Sources of typed pipelines: from_iter (borrowed or owned ranges), range, once, repeat_with,
// merge and zip. Each pushes into a node chain (run) or hands out a pull Cursor (for merge/zip).
#pragma once

#include <parallax/typed/diagnostic.h>
#include <parallax/typed/traits.h>

#include <concepts>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

namespace parallax::typed {

/// Owns a range (from_iter(std::move(v)), from_iter(std::vector{...})): items are moved out.
template <std::ranges::input_range R>
class FromIterOwned : public source_tag {
 public:
  using reference = detail::as_ref_t<std::ranges::range_rvalue_reference_t<R>>;
  using value_type = std::remove_cvref_t<reference>;

  explicit FromIterOwned(R&& r) : r_(std::move(r)) {}

  template <typename Node>
  void run(Node& node) {
    for (auto it = std::ranges::begin(r_); it != std::ranges::end(r_); ++it) {
      if (!node.push(std::ranges::iter_move(it))) return;
    }
  }

  /// Holds an iterator into its own range, so it is neither copied nor moved: it is only ever
  /// created in place (returned as a prvalue, guaranteed elision).
  class Cursor {
   public:
    explicit Cursor(R&& r) : r_(std::move(r)), it_(std::ranges::begin(r_)) {}
    Cursor(const Cursor&) = delete;
    Cursor& operator=(const Cursor&) = delete;
    std::optional<value_type> next() {
      if (it_ == std::ranges::end(r_)) return std::nullopt;
      std::optional<value_type> v(std::ranges::iter_move(it_));
      ++it_;
      return v;
    }

   private:
    R r_;
    std::ranges::iterator_t<R> it_;
  };
  Cursor cursor() && { return Cursor(std::move(r_)); }

 private:
  R r_;
};

/// Borrows a range (from_iter(v) with an lvalue v): items are pushed as const references, so
/// nothing is copied unless a stage copies. The range must outlive run().
template <std::ranges::input_range R>
class FromIterBorrowed : public source_tag {
  using Viewed = std::conditional_t<std::ranges::input_range<const R>, const R, R>;

 public:
  using reference = detail::as_ref_t<std::ranges::range_reference_t<Viewed>>;
  using value_type = std::remove_cvref_t<reference>;

  explicit FromIterBorrowed(Viewed& r) : r_(&r) {}

  template <typename Node>
  void run(Node& node) {
    for (auto&& x : *r_) {
      if (!node.push(std::forward<decltype(x)>(x))) return;
    }
  }

  class Cursor {
   public:
    explicit Cursor(Viewed* r) : r_(r), it_(std::ranges::begin(*r)) {}
    std::optional<value_type> next() {
      if (it_ == std::ranges::end(*r_)) return std::nullopt;
      std::optional<value_type> v(*it_);
      ++it_;
      return v;
    }

   private:
    Viewed* r_;
    std::ranges::iterator_t<Viewed> it_;
  };
  Cursor cursor() && { return Cursor(r_); }

 private:
  Viewed* r_;
};

/// from_iter(range): a source over any input range. An lvalue range is borrowed (it must outlive
/// run(); items flow as `const T&`), an rvalue range is moved in and its items moved out.
template <typename R>
auto from_iter(R&& r) {
  if constexpr (!std::ranges::input_range<std::remove_reference_t<R>>) {
    static_assert(detail::always_false<R>,
                  "parallax::typed::from_iter: the argument is not a range");
  } else if constexpr (std::is_lvalue_reference_v<R>) {
    return FromIterBorrowed<std::remove_const_t<std::remove_reference_t<R>>>(r);
  } else {
    return FromIterOwned<std::remove_cvref_t<R>>(std::move(r));
  }
}
/// from_iter({1, 2, 3}): the list is copied into an owned vector.
template <typename T>
auto from_iter(std::initializer_list<T> il) {
  return FromIterOwned<std::vector<T>>(std::vector<T>(il));
}

/// range(first, last): the integers first, first+1, ..., last-1 (empty when last <= first).
template <std::integral T>
class Range : public source_tag {
 public:
  using reference = T&&;
  using value_type = T;
  Range(T first, T last) : first_(first), last_(last) {}

  template <typename Node>
  void run(Node& node) {
    for (T i = first_; i < last_; ++i) {
      if (!node.push(T(i))) return;
    }
  }
  class Cursor {
   public:
    Cursor(T first, T last) : i_(first), last_(last) {}
    std::optional<T> next() {
      if (!(i_ < last_)) return std::nullopt;
      return i_++;
    }

   private:
    T i_, last_;
  };
  Cursor cursor() && { return Cursor(first_, last_); }

 private:
  T first_, last_;
};
template <std::integral A, std::integral B>
auto range(A first, B last) {
  using T = std::common_type_t<A, B>;
  return Range<T>(static_cast<T>(first), static_cast<T>(last));
}

/// once(v): exactly one item.
template <typename T>
class Once : public source_tag {
 public:
  using reference = T&&;
  using value_type = T;
  explicit Once(T v) : v_(std::move(v)) {}
  template <typename Node>
  void run(Node& node) {
    (void)node.push(std::move(v_));
  }
  class Cursor {
   public:
    explicit Cursor(T&& v) : v_(std::move(v)) {}
    std::optional<T> next() { return std::exchange(v_, std::nullopt); }

   private:
    std::optional<T> v_;
  };
  Cursor cursor() && { return Cursor(std::move(v_)); }

 private:
  T v_;
};
template <typename T>
Once<std::decay_t<T>> once(T&& v) {
  return Once<std::decay_t<T>>(std::forward<T>(v));
}

/// repeat_with(f): f(), f(), f(), ... without end. Bound it with take(n) (or a sink that stops).
template <typename F>
class RepeatWith : public source_tag {
 public:
  using reference = detail::as_ref_t<std::invoke_result_t<F&>>;
  using value_type = std::remove_cvref_t<reference>;
  explicit RepeatWith(F f) : f_(std::move(f)) {}
  template <typename Node>
  void run(Node& node) {
    while (node.push(std::invoke(f_))) {
    }
  }
  class Cursor {
   public:
    explicit Cursor(F&& f) : f_(std::move(f)) {}
    std::optional<value_type> next() { return std::optional<value_type>(std::invoke(f_)); }

   private:
    F f_;
  };
  Cursor cursor() && { return Cursor(std::move(f_)); }

 private:
  F f_;
};
template <typename F>
requires std::invocable < std::decay_t<F>
& > RepeatWith<std::decay_t<F>> repeat_with(F&& f) {
  return RepeatWith<std::decay_t<F>>(std::forward<F>(f));
}

namespace detail {
/// A source built from two others (merge, zip): it pulls items through its Cursor, which takes
/// both sources' cursors; run() pushes what the cursor yields.
template <typename Cursor, typename A, typename B>
class TwoSourceBase : public source_tag {
 public:
  using value_type = typename Cursor::value_type;
  using reference = value_type&&;
  TwoSourceBase(A a, B b) : a_(std::move(a)), b_(std::move(b)) {}

  Cursor cursor() && { return Cursor(std::move(a_), std::move(b_)); }

  template <typename Node>
  void run(Node& node) {
    Cursor c(std::move(a_), std::move(b_));
    while (auto v = c.next()) {
      if (!node.push(std::move(*v))) return;
    }
  }

 private:
  A a_;
  B b_;
};

template <typename A, typename B>
class MergeCursor {
 public:
  using value_type = typename A::value_type;
  MergeCursor(A&& a, B&& b) : ca_(std::move(a).cursor()), cb_(std::move(b).cursor()) {}
  std::optional<value_type> next() {
    for (int tries = 0; tries < 2; ++tries) {
      bool from_a = take_a_;
      if (from_a ? a_done_ : b_done_) {
        take_a_ = !take_a_;
        continue;
      }
      auto v = from_a ? ca_.next() : cb_.next();
      take_a_ = !take_a_;
      if (v) return v;
      (from_a ? a_done_ : b_done_) = true;
    }
    return std::nullopt;
  }

 private:
  decltype(std::declval<A>().cursor()) ca_;
  decltype(std::declval<B>().cursor()) cb_;
  bool take_a_ = true, a_done_ = false, b_done_ = false;
};

template <typename A, typename B>
class ZipCursor {
 public:
  using value_type = std::pair<typename A::value_type, typename B::value_type>;
  ZipCursor(A&& a, B&& b) : ca_(std::move(a).cursor()), cb_(std::move(b).cursor()) {}
  std::optional<value_type> next() {
    auto x = ca_.next();
    if (!x) return std::nullopt;
    auto y = cb_.next();
    if (!y) return std::nullopt;
    return value_type(std::move(*x), std::move(*y));
  }

 private:
  decltype(std::declval<A>().cursor()) ca_;
  decltype(std::declval<B>().cursor()) cb_;
};
}  // namespace detail

/// merge(a, b): items of two sources of the same item type, interleaved one from each while both
/// have items, then the rest of the longer one. Items are taken as values (pulled one by one).
template <Source A, Source B>
class Merge : public detail::TwoSourceBase<detail::MergeCursor<A, B>, A, B> {
 public:
  using Cursor = detail::MergeCursor<A, B>;
  using detail::TwoSourceBase<Cursor, A, B>::TwoSourceBase;
};
template <typename A, typename B>
auto merge(A a, B b) {
  if constexpr (!Source<A> || !Source<B>) {
    static_assert(detail::always_false<A, B>,
                  "parallax::typed::merge: both arguments must be sources");
  } else if constexpr (!std::same_as<typename A::value_type, typename B::value_type>) {
    (void)sizeof(
        diagnostic::merge_item_types_differ<typename A::value_type, typename B::value_type>);
  } else {
    return Merge<A, B>(std::move(a), std::move(b));
  }
}

/// zip(a, b): pairs (a0, b0), (a1, b1), ... until either source ends.
template <Source A, Source B>
class Zip : public detail::TwoSourceBase<detail::ZipCursor<A, B>, A, B> {
 public:
  using Cursor = detail::ZipCursor<A, B>;
  using detail::TwoSourceBase<Cursor, A, B>::TwoSourceBase;
};
template <typename A, typename B>
auto zip(A a, B b) {
  if constexpr (!Source<A> || !Source<B>) {
    static_assert(detail::always_false<A, B>,
                  "parallax::typed::zip: both arguments must be sources");
  } else {
    return Zip<A, B>(std::move(a), std::move(b));
  }
}

}  // namespace parallax::typed
