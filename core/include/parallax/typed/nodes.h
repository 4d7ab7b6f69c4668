// SPDX-License-Identifier: MIT OR Apache-2.0
// The run-time nodes (internal) that run() chains together, each holding the next by value:
// the single-thread operator nodes (map, filter, filter_map, inspect, take, skip, batch) and the
// sink nodes (collect, for_each, fold, discard). Protocol: see parallax/typed.h.
#pragma once

#include <parallax/typed/run_context.h>
#include <parallax/typed/traits.h>

#include <cstddef>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

namespace parallax::typed {

namespace detail {

/// For the Result a callable returned: records its error in ctx (the first error wins) and says
/// whether there was one, so the node can stop the stream (push() returns false).
template <typename R>
bool failed(R& r, RunContext& ctx) {
  if (r.ok()) return false;
  ctx.fail(std::move(r).error());
  return true;
}

/// Common parts of every non-sink node: open/finish/sink_node forward to the next node.
template <typename Next>
class NodeBase {
 public:
  explicit NodeBase(Next&& next, RunContext& ctx) : next_(std::move(next)), ctx_(&ctx) {}
  [[nodiscard]] bool open() const { return next_.open(); }
  void finish() { next_.finish(); }
  auto& sink_node() { return next_.sink_node(); }

 protected:
  Next next_;
  RunContext* ctx_;
};

template <typename F, typename Next>
class MapNode : public NodeBase<Next> {
 public:
  MapNode(F&& f, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), f_(std::move(f)) {}
  template <typename U>
  bool push(U&& x) {
    if constexpr (is_result_v<std::invoke_result_t<F&, U&&>>) {
      auto r = std::invoke(f_, std::forward<U>(x));
      if (failed(r, *this->ctx_)) return false;
      return this->next_.push(std::move(r).value());
    } else {
      return this->next_.push(std::invoke(f_, std::forward<U>(x)));
    }
  }

 private:
  F f_;
};

template <typename P, typename Next>
class FilterNode : public NodeBase<Next> {
 public:
  FilterNode(P&& p, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), p_(std::move(p)) {}
  template <typename U>
  bool push(U&& x) {
    const std::remove_cvref_t<U>& view = x;
    if constexpr (is_result_v<std::invoke_result_t<P&, decltype(view)>>) {
      auto r = std::invoke(p_, view);
      if (failed(r, *this->ctx_)) return false;
      if (!r.value()) return true;
    } else {
      if (!std::invoke(p_, view)) return true;
    }
    return this->next_.push(std::forward<U>(x));
  }

 private:
  P p_;
};

template <typename F, typename Next>
class FilterMapNode : public NodeBase<Next> {
 public:
  FilterMapNode(F&& f, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), f_(std::move(f)) {}
  template <typename U>
  bool push(U&& x) {
    if constexpr (is_result_v<std::invoke_result_t<F&, U&&>>) {
      auto r = std::invoke(f_, std::forward<U>(x));
      if (failed(r, *this->ctx_)) return false;
      auto& o = r.value();
      if (!o) return true;
      return this->next_.push(std::move(*o));
    } else {
      auto o = std::invoke(f_, std::forward<U>(x));
      if (!o) return true;
      return this->next_.push(std::move(*o));
    }
  }

 private:
  F f_;
};

template <typename F, typename Next>
class InspectNode : public NodeBase<Next> {
 public:
  InspectNode(F&& f, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), f_(std::move(f)) {}
  template <typename U>
  bool push(U&& x) {
    const std::remove_cvref_t<U>& view = x;
    if constexpr (is_result_v<std::invoke_result_t<F&, decltype(view)>>) {
      auto r = std::invoke(f_, view);
      if (failed(r, *this->ctx_)) return false;
    } else {
      std::invoke(f_, view);
    }
    return this->next_.push(std::forward<U>(x));
  }

 private:
  F f_;
};

template <typename Next>
class TakeNode : public NodeBase<Next> {
 public:
  TakeNode(std::size_t n, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), left_(n) {}
  template <typename U>
  bool push(U&& x) {
    if (left_ == 0) return false;
    --left_;
    // Say "stop" right after the n-th item, so the source does not produce an n+1-th.
    return this->next_.push(std::forward<U>(x)) && left_ > 0;
  }
  [[nodiscard]] bool open() const { return left_ > 0 && this->next_.open(); }

 private:
  std::size_t left_;
};

template <typename Next>
class SkipNode : public NodeBase<Next> {
 public:
  SkipNode(std::size_t n, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), left_(n) {}
  template <typename U>
  bool push(U&& x) {
    if (left_ > 0) {
      --left_;
      return true;
    }
    return this->next_.push(std::forward<U>(x));
  }

 private:
  std::size_t left_;
};

template <typename V, typename Next>
class BatchNode : public NodeBase<Next> {
 public:
  BatchNode(std::size_t n, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), n_(n) {
    buf_.reserve(n_);
  }
  template <typename U>
  bool push(U&& x) {
    buf_.emplace_back(std::forward<U>(x));
    if (buf_.size() < n_) return true;
    std::vector<V> full = std::exchange(buf_, {});
    buf_.reserve(n_);
    if (!this->next_.push(std::move(full))) {
      downstream_done_ = true;
      return false;
    }
    return true;
  }
  void finish() {
    // The last, partial batch goes out only when the stream really ended: not after an error,
    // not when downstream already said it wants nothing more.
    if (!buf_.empty() && !downstream_done_ && !this->ctx_->failed()) {
      (void)this->next_.push(std::move(buf_));
    }
    this->next_.finish();
  }

 private:
  std::size_t n_;
  std::vector<V> buf_;
  bool downstream_done_ = false;
};

// ----- sink nodes -----

/// Shared by sink nodes: the end of the chain.
template <typename Self>
class SinkNodeBase {
 public:
  [[nodiscard]] bool open() const { return true; }
  void finish() {}
  Self& sink_node() { return static_cast<Self&>(*this); }
};

template <typename T>
class CollectNode : public SinkNodeBase<CollectNode<T>> {
 public:
  template <typename U>
  bool push(U&& x) {
    out_.emplace_back(std::forward<U>(x));
    return true;
  }
  std::vector<T> take() { return std::move(out_); }

 private:
  std::vector<T> out_;
};

template <typename F>
class ForEachNode : public SinkNodeBase<ForEachNode<F>> {
 public:
  ForEachNode(F&& f, RunContext& ctx) : f_(std::move(f)), ctx_(&ctx) {}
  template <typename U>
  bool push(U&& x) {
    if constexpr (is_result_v<std::invoke_result_t<F&, U&&>>) {
      auto r = std::invoke(f_, std::forward<U>(x));
      if (failed(r, *ctx_)) return false;
    } else {
      std::invoke(f_, std::forward<U>(x));
    }
    return true;
  }
  void take() {}

 private:
  F f_;
  RunContext* ctx_;
};

template <typename Acc, typename F>
class FoldNode : public SinkNodeBase<FoldNode<Acc, F>> {
 public:
  FoldNode(Acc&& init, F&& f, RunContext& ctx)
      : acc_(std::move(init)), f_(std::move(f)), ctx_(&ctx) {}
  template <typename U>
  bool push(U&& x) {
    if constexpr (is_result_v<std::invoke_result_t<F&, Acc&&, U&&>>) {
      auto r = std::invoke(f_, std::move(acc_), std::forward<U>(x));
      if (failed(r, *ctx_)) return false;
      acc_ = std::move(r).value();
    } else {
      acc_ = std::invoke(f_, std::move(acc_), std::forward<U>(x));
    }
    return true;
  }
  Acc take() { return std::move(acc_); }

 private:
  Acc acc_;
  F f_;
  RunContext* ctx_;
};

class DiscardNode : public SinkNodeBase<DiscardNode> {
 public:
  template <typename U>
  bool push(U&& /*x*/) {
    ++count_;
    return true;
  }
  std::size_t take() const { return count_; }

 private:
  std::size_t count_ = 0;
};

}  // namespace detail

}  // namespace parallax::typed
