// SPDX-License-Identifier: MIT OR Apache-2.0
// PipelineExecutor: starts the elements, runs one named streaming thread per source and queue,
// collects EOS from the sinks and the first error from the bus, and shuts everything down.
#include <pthread.h>

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "parallax/log.h"
#include "parallax/pipeline.h"

namespace parallax::pipeline {

// Lock order: Impl::mu is a leaf; it is never held while calling into an element or the bus.
struct PipelineExecutor::Impl final : detail::ElementHost {
  explicit Impl(ExecutorOptions o) : opts(std::move(o)) {}

  void post(Message m) override {
    if (m.type == MessageType::error) {
      {
        std::lock_guard l(mu);
        if (!error) error = Error{m.code, "element '" + m.source + "': " + m.text};
        finished = true;
      }
      cv.notify_all();
    }
    if (pipeline != nullptr) pipeline->bus().post(std::move(m));
  }

  void sink_eos(Element& sink) override {
    bool all = false;
    {
      std::lock_guard l(mu);
      if (eos_sinks.insert(&sink).second && eos_sinks.size() == sinks_total) {
        all = true;
        finished = true;
      }
    }
    if (all) {
      Message m;
      m.type = MessageType::eos;
      m.source = "pipeline";
      m.text = "end of stream";
      pipeline->bus().post(std::move(m));
      cv.notify_all();
    }
  }

  [[nodiscard]] bool trace_events() const noexcept override { return opts.trace_events; }

  void post_state(const std::string& source, State from, State to) {
    Message m;
    m.type = MessageType::state_changed;
    m.source = source;
    m.old_state = from;
    m.new_state = to;
    pipeline->bus().post(std::move(m));
  }

  void set_state(Element& e, State to) {
    State from = e.state_.exchange(to, std::memory_order_relaxed);
    if (from != to) post_state(e.name(), from, to);
  }

  void thread_main(Element* e) {
    std::string tname = "plx-" + e->name();
    if (tname.size() > 15) tname.resize(15);  // the kernel's limit (TASK_COMM_LEN - 1)
    pthread_setname_np(pthread_self(), tname.c_str());
    std::string affinity;
    if (const PropertySpec* spec = e->find_property("affinity");
        spec != nullptr && spec->type == PropertyType::string) {
      if (auto v = e->property("affinity")) affinity = std::get<std::string>(*v);
    }
    if (opts.thread_hook) {
      // A placement that cannot be applied fails the element at start (a hook that wants to go
      // on, e.g. pin_by_rules_hook with best_effort, returns ok after logging).
      if (auto r = opts.thread_hook(*e, affinity); !r) {
        e->post_error(r.error().code, "could not place the streaming thread: " + r.error().message);
        return;
      }
    } else if (!affinity.empty()) {
      e->post_warning(
          "affinity '" + affinity +
          "' not applied: this executor has no thread hook (ExecutorOptions::thread_hook)");
    }
    e->run_task();
  }

  // Joins the streaming threads and stops the elements; computes the outcome once.
  Result<void> finish() {
    if (outcome) return *outcome;
    for (Element* e : elements)
      e->stopping_.store(true, std::memory_order_relaxed);
    for (Element* e : elements)
      e->unlock();
    for (auto& t : threads)
      t.join();
    threads.clear();
    std::optional<Error> stop_error;
    for (Element* e : elements) {
      if (e->state() == State::null) continue;
      auto r = e->stop();
      if (!r && !stop_error)
        stop_error = Error{r.error().code, "element '" + e->name() + "': " + r.error().message};
      set_state(*e, State::null);
    }
    post_state("pipeline", State::playing, State::null);
    for (Element* e : elements)
      e->host_ = nullptr;
    pipeline->running_ = false;
    running.store(false);
    std::lock_guard l(mu);
    if (error)
      outcome = Result<void>(*error);
    else if (stopped)
      outcome = Result<void>(err(Errc::cancelled, "the pipeline was stopped"));
    else if (stop_error)
      outcome = Result<void>(*stop_error);
    else
      outcome = Result<void>();
    return *outcome;
  }

  ExecutorOptions opts;
  Pipeline* pipeline{nullptr};
  std::vector<Element*> elements;  // upstream first
  std::vector<std::thread> threads;
  std::mutex mu;
  std::condition_variable cv;
  std::size_t sinks_total{0};
  std::set<const Element*> eos_sinks;
  std::optional<Error> error;
  bool finished{false};
  bool stopped{false};
  std::optional<Result<void>> outcome;
  std::atomic<bool> running{false};
  std::mutex control_mu;  // serializes start/wait/stop callers
};

PipelineExecutor::PipelineExecutor(ExecutorOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

PipelineExecutor::~PipelineExecutor() {
  if (running()) stop();
}

Result<void> PipelineExecutor::run(Pipeline& pipeline) {
  PLX_TRY(start(pipeline));
  return wait();
}

Result<void> PipelineExecutor::start(Pipeline& pipeline) {
  std::lock_guard cl(impl_->control_mu);
  Impl& s = *impl_;
  if (s.running.load()) return err(Errc::failed_precondition, "the executor is already running");
  if (pipeline.running_) return err(Errc::failed_precondition, "the pipeline is already running");
  PLX_TRY(pipeline.validate());
  {
    std::lock_guard l(s.mu);
    s.pipeline = &pipeline;
    s.eos_sinks.clear();
    s.error.reset();
    s.finished = false;
    s.stopped = false;
    s.outcome.reset();
    s.sinks_total = 0;
  }
  s.elements = pipeline.topological_order();
  s.threads.clear();
  for (Element* e : s.elements) {
    e->host_ = &s;
    e->stopping_.store(false);
    e->eos_requested_.store(false);
    for (Pad* p : e->pads())
      p->caps_ = Caps::any();
    if (e->is_sink()) {
      std::lock_guard l(s.mu);
      ++s.sinks_total;
    }
  }
  pipeline.running_ = true;
  s.running.store(true);
  s.post_state("pipeline", State::null, State::ready);
  // Downstream first, as GStreamer does, so a sink is ready before data can reach it.
  for (auto it = s.elements.rbegin(); it != s.elements.rend(); ++it) {
    Element* e = *it;
    auto r = e->start();
    if (!r) {
      Error e2{r.error().code, "element '" + e->name() + "': " + r.error().message};
      Message m;
      m.type = MessageType::error;
      m.source = e->name();
      m.code = r.error().code;
      m.text = r.error().message;
      pipeline.bus().post(std::move(m));
      {
        std::lock_guard l(s.mu);
        s.error = e2;
        s.finished = true;
      }
      (void)s.finish();
      return e2;
    }
    s.set_state(*e, State::ready);
  }
  for (Element* e : s.elements)
    s.set_state(*e, State::playing);
  s.post_state("pipeline", State::ready, State::playing);
  for (Element* e : s.elements)
    if (e->has_task()) s.threads.emplace_back([&s, e] { s.thread_main(e); });
  return ok();
}

std::optional<Result<void>> PipelineExecutor::wait_for(std::chrono::nanoseconds timeout) {
  Impl& s = *impl_;
  {
    std::unique_lock l(s.mu);
    if (s.pipeline == nullptr)
      return Result<void>(err(Errc::failed_precondition, "the executor was never started"));
    if (!s.cv.wait_for(l, timeout, [&] { return s.finished; })) return std::nullopt;
  }
  // The cv wait above holds no control lock, so stop() from another thread is never blocked.
  std::lock_guard cl(s.control_mu);
  return s.finish();
}

Result<void> PipelineExecutor::wait() {
  for (;;) {
    if (auto r = wait_for(std::chrono::hours(1))) return *r;
  }
}

void PipelineExecutor::send_eos() {
  // elements is only rewritten by start(), never while running.
  if (!impl_->running.load()) return;
  for (Element* e : impl_->elements)
    e->request_eos();
}

void PipelineExecutor::stop() {
  Impl& s = *impl_;
  {
    std::lock_guard l(s.mu);
    if (s.pipeline == nullptr) return;
    if (!s.finished) s.stopped = true;
    s.finished = true;
  }
  s.cv.notify_all();
  std::lock_guard cl(s.control_mu);
  (void)s.finish();
}

bool PipelineExecutor::running() const noexcept {
  return impl_->running.load();
}

std::vector<ElementStats> PipelineExecutor::stats() const {
  std::vector<ElementStats> out;
  for (Element* e : impl_->elements) {
    ElementStats st;
    st.name = e->name();
    st.factory = std::string(e->factory_name());
    for (Pad* p : e->is_source() ? e->src_pads() : e->sink_pads()) {
      st.buffers += p->buffers();
      st.bytes += p->bytes();
    }
    out.push_back(std::move(st));
  }
  return out;
}

}  // namespace parallax::pipeline
