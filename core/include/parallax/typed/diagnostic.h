// SPDX-License-Identifier: MIT OR Apache-2.0
// Diagnostics of typed pipelines. Each struct below exists only to be named in a compiler error:
// g++ and clang print "in instantiation of 'struct parallax::typed::diagnostic::<what>' <Type1,
// Type2>", so the two types that do not fit appear right next to a sentence saying what went
// wrong.
#pragma once

#include <parallax/typed/traits.h>

namespace parallax::typed {

namespace diagnostic {

template <typename Item, typename CallableParameter>
struct map_callable_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::map: the callable cannot be called with the items of the "
                "previous stage. See 'Item' (what flows in) and 'CallableParameter' (what the "
                "callable takes) in the instantiation above.");
};
template <typename Item>
struct map_callable_returns_void {
  static_assert(detail::always_false<Item>,
                "parallax::typed::map: the callable returns void; a map must produce a value "
                "(use inspect() for side effects)");
};
template <typename Item, typename PredicateParameter>
struct filter_predicate_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::filter: the predicate cannot be called with `const Item&` of "
                "the previous stage's items. See 'Item' and 'PredicateParameter' above.");
};
template <typename Item, typename PredicateReturns>
struct filter_predicate_must_return_bool {
  static_assert(detail::always_false<Item>,
                "parallax::typed::filter: the predicate must return bool (or Result<bool>). "
                "See 'PredicateReturns' above.");
};
template <typename Item, typename CallableParameter>
struct filter_map_callable_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::filter_map: the callable cannot be called with the items of "
                "the previous stage. See 'Item' and 'CallableParameter' above.");
};
template <typename Item, typename CallableReturns>
struct filter_map_callable_must_return_optional {
  static_assert(detail::always_false<Item>,
                "parallax::typed::filter_map: the callable must return std::optional<U> (or "
                "Result<std::optional<U>>). See 'CallableReturns' above.");
};
template <typename Item, typename CallableParameter>
struct inspect_callable_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::inspect: the callable cannot be called with `const Item&`. "
                "See 'Item' and 'CallableParameter' above.");
};
template <typename Item>
struct item_cannot_be_copied_into_a_stage_buffer {
  static_assert(detail::always_false<Item>,
                "parallax::typed: batch/parallel/queue store items by value, and this item "
                "cannot be constructed from what flows in (a borrowed move-only item?). Use "
                "from_iter(std::move(container)) so items are moved.");
};
template <typename Item, typename CallableParameter>
struct parallel_callable_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::parallel: the callable cannot be called with an rvalue of the "
                "previous stage's item type, or returns void. See 'Item' and "
                "'CallableParameter' above.");
};
template <typename Item, typename CollectElement>
struct collect_element_type_mismatch {
  static_assert(detail::always_false<Item>,
                "parallax::typed::collect<T>: T must be the item type of the last stage "
                "(and constructible from it). See 'Item' (what flows in) and 'CollectElement' "
                "(the T you asked for) above.");
};
template <typename Item, typename CallableParameter>
struct for_each_callable_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::for_each: the callable cannot be called with the items of the "
                "last stage. See 'Item' and 'CallableParameter' above.");
};
template <typename Item, typename Accumulator>
struct fold_callable_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::fold: the callable must be callable as f(Accumulator, Item) and "
                "return Accumulator (or Result<Accumulator>). See 'Item' and 'Accumulator' above.");
};
template <typename LastItem>
struct pipeline_has_no_sink {
  static_assert(detail::always_false<LastItem>,
                "parallax::typed: this pipeline has no sink. End it with .sink(collect<T>()), "
                ".sink(for_each(f)), .sink(fold(init, f)) or .sink(discard()) before .run().");
};
template <typename Argument>
struct then_needs_a_stage {
  static_assert(detail::always_false<Argument>,
                "parallax::typed: .then() takes an operator (map(f), filter(p), filter_map(f), "
                "take(n), skip(n), inspect(f), batch(n), parallel(n, f), queue(n)); wrap bare "
                "callables, and pass sinks to .sink().");
};
template <typename Argument>
struct sink_needs_a_sink {
  static_assert(detail::always_false<Argument>,
                "parallax::typed: .sink() takes collect<T>(), for_each(f), fold(init, f) or "
                "discard().");
};
template <typename Argument>
struct pipeline_needs_a_source {
  static_assert(detail::always_false<Argument>,
                "parallax::typed::pipeline(): the argument must be a source: from_iter(range), "
                "range(a, b), once(v), repeat_with(f), merge(a, b) or zip(a, b).");
};
template <typename LeftItem, typename RightItem>
struct merge_item_types_differ {
  static_assert(detail::always_false<LeftItem>,
                "parallax::typed::merge: both sources must yield the same item type. See "
                "'LeftItem' and 'RightItem' above.");
};
template <typename Pipeline>
struct pipelines_are_consumed_by_moving {
  static_assert(detail::always_false<Pipeline>,
                "parallax::typed: building or running a pipeline consumes it. Chain the calls in "
                "one expression, or write std::move(p).then(...) / std::move(p).run().");
};

}  // namespace diagnostic

}  // namespace parallax::typed
