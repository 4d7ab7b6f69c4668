// SPDX-License-Identifier: MIT OR Apache-2.0
// The run-time nodes (internal) of the two thread stages: queue() (one consumer thread behind
// an SpscRing) and parallel() (n workers, round-robin in and out, so order is kept).
#pragma once

#include <parallax/spsc_ring.h>
#include <parallax/typed/nodes.h>
#include <parallax/typed/spsc_queue.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace parallax::typed {

namespace detail {

/// Moves everything downstream of it to one consumer thread, through a bounded queue: an
/// SpscRing (one producer, the thread running the stages before it; one consumer), handed
/// over without locks while the stream runs. Either side may close it: the
/// producer at the end of the stream (the consumer drains what is queued), the consumer when
/// downstream wants nothing more (the producer's next push() returns false).
template <typename V, typename Next>
class QueueNode {
  struct State {
    State(std::size_t cap, Next&& n) : limit(cap == 0 ? 1 : cap), ring(limit), next(std::move(n)) {}
    std::size_t limit;  // items queued at most (the ring's capacity is the power of two above)
    SpscRing<std::optional<V>> ring;
    std::atomic<bool> closed{false};
    Next next;       // touched only by the consumer thread until it is joined
    RunContext ctx;  // the consumer side's context, same rule
    std::atomic<bool> upstream_failed{false};
    std::atomic<bool> stopped{false};
    std::jthread consumer;  // last: joined first on destruction

    void close() {
      closed.store(true, std::memory_order_seq_cst);
      ring.wake_all();
    }
    [[nodiscard]] bool is_closed() const { return closed.load(std::memory_order_acquire); }
    // Consumer thread: every item queued, until closed and drained. It sees all published
    // items at once (one look at the producer's index per batch) but frees each slot as its
    // item leaves, so at most `limit` items are queued plus the one downstream is handling.
    void consume() {
      for (;;) {
        std::size_t n = ring.available();
        if (n == 0) {
          if (!ring.wait_readable([&] { return is_closed(); })) {
            n = ring.available();  // closed: drain what was published before
            if (n == 0) return;
          } else {
            n = ring.available();
          }
        }
        for (std::size_t i = 0; i < n; ++i) {
          V v = std::move(*ring.at(0));
          ring.at(0).reset();
          ring.consume(1);
          if (!next.push(std::move(v))) {
            stopped.store(true, std::memory_order_relaxed);
            close();  // unblocks a producer waiting for room; it sees push() == false
            return;
          }
        }
      }
    }
  };

 public:
  QueueNode(std::size_t cap, Next&& next, RunContext& ctx)
      : state_(std::make_unique<State>(cap, std::move(next))), ctx_(&ctx) {
    State* s = state_.get();
    s->consumer = std::jthread([s] {
      s->consume();
      if (s->upstream_failed.load()) s->ctx.abort();
      s->next.finish();
    });
  }
  QueueNode(QueueNode&&) noexcept = default;
  ~QueueNode() {
    if (state_) state_->close();  // the jthread member then joins
  }

  template <typename U>
  bool push(U&& x) {
    State& s = *state_;
    while (!s.ring.writable(s.limit)) {
      if (s.is_closed()) return false;
      if (!s.ring.wait_consumed(s.ring.head_index_cached(), [&] { return s.is_closed(); }))
        return false;
    }
    if (s.is_closed()) return false;
    s.ring.slot().emplace(std::forward<U>(x));
    s.ring.publish();
    return true;
  }
  [[nodiscard]] bool open() const { return !state_->stopped.load(std::memory_order_relaxed); }
  void finish() {
    state_->upstream_failed.store(ctx_->failed());
    state_->close();
    state_->consumer.join();
    // Every item the consumer saw entered the queue before anything upstream failed, so an
    // error downstream of the queue is earlier in stream order and wins.
    if (auto e = state_->ctx.take_error()) {
      (void)ctx_->take_error();
      ctx_->fail(std::move(*e));
    }
  }
  auto& sink_node() { return state_->next.sink_node(); }

 private:
  std::unique_ptr<State> state_;
  RunContext* ctx_;
};

/// Runs f on n worker threads. Item i goes to worker i % n and results are taken back in the
/// same round-robin order, which keeps the stream order with no reordering buffer. At most
/// n * depth items are in flight, which is exactly depth per worker, so neither a worker's input
/// nor its output queue (each of capacity depth) can ever block the other side for good.
template <typename V, typename Out, typename F, typename Next>
class ParallelNode : public NodeBase<Next> {
  struct Worker {
    Worker(std::size_t depth, const F& fn) : in(depth), out(depth), f(fn) {}
    ~Worker() {
      in.close();
      out.close();
    }
    SpscQueue<V> in;             // this thread -> the worker (one producer, one consumer)
    SpscQueue<Result<Out>> out;  // the worker -> this thread
    F f;  // each worker owns a copy, so a stateful callable is never shared between threads
    std::jthread thread;  // last: joined before the queues go
  };

 public:
  ParallelNode(std::size_t n, std::size_t depth, F&& f, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), limit_(n * depth) {
    workers_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      auto w = std::make_unique<Worker>(depth, f);
      Worker* wp = w.get();
      wp->thread = std::jthread([wp] {
        while (auto item = wp->in.pop()) {
          if (!wp->out.push(call_caught<Out>(wp->f, std::move(*item)))) break;
        }
      });
      workers_.push_back(std::move(w));
    }
  }

  template <typename U>
  bool push(U&& x) {
    if (in_flight_ == limit_ && !drain_one()) return false;
    (void)workers_[sent_ % workers_.size()]->in.push(V(std::forward<U>(x)));
    ++sent_;
    ++in_flight_;
    return true;
  }

  void finish() {
    // Items sent before an upstream error were accepted, so they are still delivered (as in a
    // single-threaded run); an error they cause downstream is earlier in stream order and wins.
    std::optional<Error> upstream = this->ctx_->take_error();
    while (!stopped_ && in_flight_ > 0 && drain_one()) {
    }
    if (upstream && !this->ctx_->failed()) {
      this->ctx_->fail(std::move(*upstream));
    }
    workers_.clear();  // closes the queues and joins the threads
    this->next_.finish();
  }

 private:
  bool drain_one() {
    Worker& w = *workers_[received_ % workers_.size()];
    std::optional<Result<Out>> r = w.out.pop();  // present: this worker holds that item
    ++received_;
    --in_flight_;
    if (!r || !r->ok()) {
      this->ctx_->fail(r ? std::move(*r).error()
                         : Error{Errc::internal, "parallax::typed::parallel: worker lost an item"});
      stopped_ = true;
      return false;
    }
    if (!this->next_.push(std::move(*r).value())) {
      stopped_ = true;
      return false;
    }
    return true;
  }

  std::vector<std::unique_ptr<Worker>> workers_;
  std::size_t limit_;
  std::size_t sent_ = 0;
  std::size_t received_ = 0;
  std::size_t in_flight_ = 0;
  bool stopped_ = false;
};

}  // namespace detail

}  // namespace parallax::typed
