// SPDX-License-Identifier: MIT OR Apache-2.0
// Pipeline (a source and its operators), CompletePipeline (with a sink: run()), pipeline(source)
// and the `|` spelling. Type checks happen here, at each .then()/.sink(), naming both types.
#pragma once

#include <parallax/result.h>
#include <parallax/typed/diagnostic.h>
#include <parallax/typed/operators.h>
#include <parallax/typed/run_context.h>
#include <parallax/typed/sinks.h>
#include <parallax/typed/traits.h>

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

namespace parallax::typed {

template <typename Src, typename Ref, typename... Stages>
class Pipeline;
template <typename Src, typename K, typename... Stages>
class CompletePipeline;

namespace detail {

/// What a wrong .then()/.sink() returns after its diagnostic, so that one mistake gives one error
/// rather than a cascade.
struct Poisoned {
  template <typename... A>
  Poisoned then(A&&...) && {
    return {};
  }
  template <typename... A>
  Poisoned sink(A&&...) && {
    return {};
  }
  template <typename... A>
  Poisoned parallel(A&&...) && {
    return {};
  }
  Poisoned run() && { return {}; }
  Poisoned into_inner() && { return {}; }
  Poisoned value() { return {}; }
  bool ok() const { return false; }
  explicit operator bool() const { return false; }
  template <typename A>
  friend Poisoned operator|(Poisoned, A&&) {
    return {};
  }
};

template <typename T>
struct is_pipeline : std::false_type {};
template <typename Src, typename Ref, typename... Stages>
struct is_pipeline<Pipeline<Src, Ref, Stages...>> : std::true_type {};

/// Builds the node chain for stages I.. and the sink, back to front; In is what stage I receives.
template <std::size_t I, typename In, typename Tuple, typename K>
auto build_chain(Tuple& stages, K& sink, RunContext& ctx) {
  if constexpr (I == std::tuple_size_v<Tuple>) {
    return std::move(sink).template bind<In>(ctx);
  } else {
    using S = std::tuple_element_t<I, Tuple>;
    using Out = stage_output_t<S, In>;
    auto next = build_chain<I + 1, Out>(stages, sink, ctx);
    return std::move(std::get<I>(stages)).template bind<In>(std::move(next), ctx);
  }
}

template <typename S>
Result<void> validate_stage(const S& s) {
  if constexpr (requires { s.validate(); }) {
    return s.validate();
  } else {
    return {};
  }
}

}  // namespace detail

/// A source followed by zero or more operators; Ref is the item (reference) type at its end.
/// Give it a sink to make it runnable.
template <typename Src, typename Ref, typename... Stages>
class Pipeline {
 public:
  using reference = Ref;
  using value_type = std::remove_cvref_t<Ref>;

  Pipeline(Src src, std::tuple<Stages...> stages)
      : src_(std::move(src)), stages_(std::move(stages)) {}

  /// Appends an operator. Fails to compile, naming both types, when the operator cannot take
  /// this pipeline's items.
  template <typename S>
  auto then(S stage) && {
    if constexpr (!Stage<S>) {
      (void)sizeof(diagnostic::then_needs_a_stage<S>);
      return detail::Poisoned{};
    } else if constexpr (!StageAccepts<S, Ref>) {
      S::template diagnose<Ref>();
      return detail::Poisoned{};
    } else {
      return Pipeline<Src, stage_output_t<S, Ref>, Stages..., S>(
          std::move(src_), std::tuple_cat(std::move(stages_), std::tuple<S>(std::move(stage))));
    }
  }
  template <typename S>
  auto then(S /*stage*/) & {
    (void)sizeof(
        diagnostic::pipelines_are_consumed_by_moving<std::conditional_t<true, Pipeline, S>>);
    return detail::Poisoned{};
  }

  /// Shorthand for .then(parallel(n, f, depth)).
  template <typename F>
  auto parallel(std::size_t n, F&& f, std::size_t depth = 16) && {
    return std::move(*this).then(typed::parallel(n, std::forward<F>(f), depth));
  }

  /// Ends the pipeline with a sink; the result can run().
  template <typename K>
  auto sink(K k) && {
    if constexpr (!Sink<K>) {
      (void)sizeof(diagnostic::sink_needs_a_sink<K>);
      return detail::Poisoned{};
    } else if constexpr (!SinkAccepts<K, Ref>) {
      K::template diagnose<Ref>();
      return detail::Poisoned{};
    } else {
      return CompletePipeline<Src, K, Stages...>(std::move(src_), std::move(stages_), std::move(k));
    }
  }
  template <typename K>
  auto sink(K /*k*/) & {
    (void)sizeof(
        diagnostic::pipelines_are_consumed_by_moving<std::conditional_t<true, Pipeline, K>>);
    return detail::Poisoned{};
  }

  /// Always a compile error: a pipeline without a sink cannot run.
  template <typename D = void>
  void run() {
    (void)sizeof(diagnostic::pipeline_has_no_sink<std::conditional_t<true, Ref, D>>);
  }

 private:
  Src src_;
  std::tuple<Stages...> stages_;
};

/// A pipeline with its sink. run() consumes it and gives Result<R>, R being the sink's result:
/// std::vector<T> (collect), void (for_each), Acc (fold), std::size_t (discard).
template <typename Src, typename K, typename... Stages>
class CompletePipeline {
 public:
  using result_type = typename K::result_type;

  CompletePipeline(Src src, std::tuple<Stages...> stages, K k)
      : src_(std::move(src)), stages_(std::move(stages)), sink_(std::move(k)) {}

  /// Runs the source to its end (or until a stage stops it, or the first error) on the calling
  /// thread (queue/parallel stages use threads of their own, joined before run() returns).
  Result<result_type> run() && {
    Result<void> valid = std::apply(
        [](const auto&... s) {
          Result<void> r;
          ((r.ok() ? (void)(r = detail::validate_stage(s)) : (void)0), ...);
          return r;
        },
        stages_);
    if (!valid.ok()) return std::move(valid).error();

    RunContext ctx;
    auto chain = detail::build_chain<0, typename Src::reference>(stages_, sink_, ctx);
    if (chain.open()) src_.run(chain);
    chain.finish();
    if (auto e = ctx.take_error()) return std::move(*e);
    if constexpr (std::is_void_v<result_type>) {
      return {};
    } else {
      return chain.sink_node().take();
    }
  }
  template <typename D = void>
  void run() & {
    (void)sizeof(diagnostic::pipelines_are_consumed_by_moving<
                 std::conditional_t<true, CompletePipeline, D>>);
  }

 private:
  Src src_;
  std::tuple<Stages...> stages_;
  K sink_;
};

/// pipeline(source): starts a pipeline.
template <typename Src>
auto pipeline(Src src) {
  if constexpr (!Source<Src>) {
    (void)sizeof(diagnostic::pipeline_needs_a_source<Src>);
    return detail::Poisoned{};
  } else {
    return Pipeline<Src, typename Src::reference>(std::move(src), std::tuple<>());
  }
}

/// `p | stage` is `std::move(p).then(stage)`, `p | sink` is `std::move(p).sink(sink)`; p may also
/// be a bare source: `range(0, 10) | map(f) | collect<int>()`.
template <typename P>
concept PipeLeft = detail::is_pipeline<std::remove_cvref_t<P>>::value || Source<P>;
template <typename S>
concept PipeRight = Stage<S> || Sink<S>;

template <PipeLeft P, PipeRight S>
auto operator|(P&& p, S s) {
  if constexpr (Source<P>) {
    return pipeline(std::remove_cvref_t<P>(std::forward<P>(p))) | std::move(s);
  } else if constexpr (std::is_lvalue_reference_v<P>) {
    (void)sizeof(diagnostic::pipelines_are_consumed_by_moving<std::remove_cvref_t<P>>);
    return detail::Poisoned{};
  } else if constexpr (Stage<S>) {
    return std::remove_cvref_t<P>(std::forward<P>(p)).then(std::move(s));
  } else {
    return std::remove_cvref_t<P>(std::forward<P>(p)).sink(std::move(s));
  }
}

}  // namespace parallax::typed
