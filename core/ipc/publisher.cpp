// SPDX-License-Identifier: MIT OR Apache-2.0
// IpcPublisher: listens on a Unix socket, admits subscribers by credentials, and writes buffer
// descriptors and events into one shared-memory ring per subscriber. Each subscriber is a
// detail::Connection (connection.h: its ring, ack area, leases, quota and wake-ups); this file
// keeps the publisher's shared state (the connection lists, sticky events, the pool, counters)
// and its background thread.
//
// Lock order: Impl::mu_ (subscriber list, sticky events) before Connection::mu (one subscriber's
// ring, leases and counters); the segment exporter's lock (exported segment fds) is a leaf.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "base/wait.h"
#include "ipc/acceptor.h"
#include "ipc/connection.h"
#include "ipc/hotpath_probe.h"
#include "ipc/metrics_export.h"
#include "ipc/os.h"
#include "ipc/publisher_pool.h"
#include "ipc/segment_exporter.h"
#include "ipc/wire.h"
#include "parallax/affinity.h"
#include "parallax/ipc.h"
#include "parallax/log.h"
#include "parallax/trace.h"

namespace parallax::link {

namespace {

constexpr const char* kLog = "ipc";
}  // namespace

using detail::Connection;

struct IpcPublisher::Impl {
  PublisherOptions opts;  // opts.pool is dropped after bind(): `pool` is the current one
  std::shared_ptr<memory::MemoryPool> pool;
  bool made_pool{false};   // made from opts (fit() may make larger ones the same way)
  UniqueFd wake_efd;       // stops / pokes the background thread
  UniqueFd interrupt_efd;  // readable while interrupted: wakes a send() asleep on a subscriber
  std::atomic<bool> interrupted{false};
  std::thread thread;
  std::atomic<bool> stopping{false};
  bool closed{false};

  mutable std::mutex mu_;
  std::condition_variable subs_cv_;
  std::vector<std::shared_ptr<Connection>> subs_;  // active ones
  std::vector<std::shared_ptr<Connection>> handshaking_;
  // Gone subscribers whose slots are quarantined until their end of the wake socket closes.
  // They count against max_subscribers (so quarantine is bounded by max_subscribers x quota).
  std::vector<std::shared_ptr<Connection>> zombies_;
  std::atomic<std::uint64_t> subs_version_{1};
  std::optional<Event> sticky_format_, sticky_start_, sticky_segment_;
  bool sticky_eos_{false};
  std::uint64_t next_conn_id_{1};

  detail::SegmentExporter exporter;  // segment fds and NUMA placement (its own leaf lock)

  // Producer-thread cache of subs_ (refreshed when subs_version_ moves).
  std::vector<std::shared_ptr<Connection>> cache_;
  std::uint64_t cache_version_{0};
  std::vector<std::uint64_t> scratch_;

  detail::PublisherCounters counters;
  // What every connection reads (opts, exporter, counters, the interrupt).
  const detail::ConnectionShared shared{opts, exporter, counters, interrupted, interrupt_efd};
  // The listen socket at the path, its lock file, credentials and hellos.
  detail::Acceptor acceptor{opts, counters};
  // Segments of replaced pools that some subscriber may still have mapped (guarded by mu_).
  // `pool` itself is written under mu_ (replace_pool) and read under it off the producer thread.
  std::set<std::uint64_t> retiring_;
  std::chrono::steady_clock::time_point bound_at{std::chrono::steady_clock::now()};

  ~Impl() {
    shutdown();
    acceptor.close();  // bind() may have failed after listening
  }

  // ---- setup ------------------------------------------------------------------------------

  Result<void> drain_all(std::chrono::steady_clock::time_point deadline) {
    std::vector<std::shared_ptr<Connection>> subs;
    {
      std::lock_guard lk(mu_);
      subs = subs_;
    }
    std::size_t behind = 0;
    for (auto& s : subs) {
      switch (s->drain(deadline)) {
        case Connection::Drained::read_through:
          break;
        case Connection::Drained::behind:
          ++behind;
          break;
        case Connection::Drained::cancelled:
          return err(Errc::cancelled, "publisher interrupted while draining");
      }
    }
    if (behind != 0)
      return err(Errc::timeout,
                 std::to_string(behind) + " subscriber(s) had not read through the stream in time");
    return {};
  }

  // Waits for a free slot of the pool until `deadline` or interrupt(). Slots come back when a
  // local Buffer drops (the pool's futex wakes loan_for() at once) or when a subscriber
  // returns a lease (its ack area; collected here every slice, 1 ms). One small function on
  // purpose: a futex-based return path can replace the slice with a wait on the return words.
  // `size`: a sized loan (the form a variable-size pool needs). Errors other than "nothing free
  // now" (a block that can never fit the budget, an unsized loan on an arena) return at once.
  Result<memory::Loan> wait_for_slot(std::chrono::steady_clock::time_point deadline,
                                     std::optional<std::size_t> size = std::nullopt) {
    using namespace std::chrono;
    constexpr auto kSlice = milliseconds(1);
    for (;;) {
      collect_all();
      auto l = size ? pool->try_loan(*size) : pool->try_loan();
      if (l || l.error().code != Errc::resource_exhausted) return l;
      if (interrupted.load(std::memory_order_acquire))
        return err(Errc::cancelled, "publisher interrupted");
      const auto now = steady_clock::now();
      if (now >= deadline)
        return err(Errc::timeout, "no free slot in the publisher's pool within loan_timeout");
      const auto slice = std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::min<steady_clock::duration>(deadline - now, kSlice));
      auto w = size ? pool->loan_for(*size, slice) : pool->loan_for(slice);
      if (w || w.error().code != Errc::timeout) return w;
    }
  }

  void collect_all() {
    std::vector<std::shared_ptr<Connection>> subs;
    {
      std::lock_guard lk(mu_);
      subs = subs_;
    }
    for (auto& s : subs) {
      std::lock_guard sl(s->mu);
      (void)s->sync();  // false: it is gone, and its leases went to the quarantine
    }
  }

  // Sends one buffer of our pool to every subscriber (send()'s second half). `b` is the
  // caller's own reference (a frozen loan, or a copy of the user's Buffer): the last
  // subscriber's lease takes it by move.
  Result<void> deliver_all(memory::Buffer& b) {
    wire::BufferDesc d;
    d.segment_id = b.segment()->id();
    d.offset = b.segment_offset();
    d.length = b.size();
    // The metadata is encoded where it is (no copy). Most buffers carry no entries: their
    // record has a fixed size and is built on the stack, in one pass.
    const Metadata& meta = b.metadata();
    std::uint64_t plain[wire::kPlainBufferWords];
    std::uint64_t* words = plain;
    std::size_t bytes = sizeof plain;
    if (meta.entries.empty()) [[likely]] {
      wire::encode_plain_buffer(plain, d, meta);
    } else {
      wire::encode_buffer(scratch_, d, meta);
      words = scratch_.data();
      bytes = scratch_.size() * 8;
      if (bytes > wire::kMaxRecordBytes || bytes > opts.ring_bytes / 4)
        return err(Errc::invalid_argument, "buffer metadata too large for the transport");
    }
    PLX_PROBE_AT(2, "encode");
    bool complete = true;
    const auto& subs = snapshot();
    PLX_PROBE_AT(3, "snapshot");
    for (std::size_t i = 0; i < subs.size(); ++i)
      complete &= subs[i]->deliver_buffer(words, bytes, b, i + 1 == subs.size(), *pool);
    PLX_PROBE_DROP();  // nobody to wake: the series ended at "publish"
    detail::bump_producer_counter(counters.buffers_sent);
    if (!complete)
      return err(Errc::cancelled, "publisher interrupted while waiting for a subscriber");
    return {};
  }

  const std::vector<std::shared_ptr<Connection>>& snapshot() {
    const std::uint64_t v = subs_version_.load(std::memory_order_acquire);
    if (v != cache_version_) {
      std::lock_guard lk(mu_);
      cache_ = subs_;
      cache_version_ = subs_version_.load(std::memory_order_relaxed);
    }
    return cache_;
  }

  // ---- background thread ------------------------------------------------------------------

  // Takes every waiting connection into the handshake, up to max_subscribers (the handshaking,
  // the subscribers and the quarantined ones together).
  void accept_all() {
    acceptor.accept_all([this](UniqueFd fd, const ucred& c) {
      std::lock_guard lk(mu_);
      if (subs_.size() + handshaking_.size() + zombies_.size() >= opts.max_subscribers) {
        acceptor.refuse(fd.get(), Errc::resource_exhausted, "too many subscribers");
        return;
      }
      auto s = std::make_shared<Connection>(shared, next_conn_id_++, std::move(fd), c);
      // A peer with the wrong credentials is refused when its hello has been read: closing a
      // socket with unread data resets the connection and the peer would lose the reason.
      s->refused = !acceptor.admitted(c);
      handshaking_.push_back(std::move(s));
    });
  }

  // The quota a joining subscriber gets (0: refuse it). Called with mu_ held. For a slot pool,
  // the quotas of the subscribers (active, dead not yet reaped, and quarantined ones) never sum
  // to more than the pool's slots minus the producer's reserve, and a newcomer gets at most three
  // quarters of what is left, so a subscriber that keeps every buffer cannot starve the producer
  // nor the subscribers after it (docs/protocol.md, "Quotas and the pool").
  std::uint32_t grant_quota_locked() const {
    const std::uint32_t want = opts.max_leases_per_subscriber;
    if (pool->variable_size()) return want;  // arenas: bytes vary per buffer, quota only
    const std::size_t slots = pool->capacity();
    const std::size_t reserve =
        opts.pool_reserve != 0 ? opts.pool_reserve : std::max<std::size_t>(1, slots / 8);
    if (slots <= reserve) return 0;
    std::size_t granted = 0;
    for (const auto& o : subs_)
      granted += o->quota();
    for (const auto& z : zombies_)
      granted += z->quota();
    const std::size_t budget = slots - reserve;
    if (granted >= budget) return 0;
    const std::size_t left = budget - granted;
    const std::size_t share = std::max<std::size_t>(1, left - left / 4);
    return static_cast<std::uint32_t>(std::min<std::size_t>(want, share));
  }

  // Fan-out: the quota for a joining subscriber, first growing the slot pool by whole segments
  // while the newcomer would get less than half of max_leases_per_subscriber and the budget
  // (max_pool_bytes, the pool's max_segments) allows. Eager: the segment exists (prefaulted when
  // asked) before the subscriber is admitted, so its quota is backed by slots; subscribers
  // already connected learn about it with the first buffer sent from it (segment message), as
  // for any segment. Called with mu_ held (the handshake runs under it); bounded work: at most
  // the budget's segments, each a memfd made and maybe prefaulted.
  std::uint32_t admit_quota_locked() {
    const std::uint32_t enough = std::max<std::uint32_t>(1, opts.max_leases_per_subscriber / 2);
    for (;;) {
      const std::uint32_t grant = grant_quota_locked();
      if (grant >= enough || pool->variable_size() || !grow_for_admission_locked()) return grant;
    }
  }

  // Adds one segment to the current slot pool if the budget allows. mu_ held.
  bool grow_for_admission_locked() {
    if (opts.max_pool_bytes == 0 || pool->segment_count() >= pool->max_segments()) return false;
    const std::uint64_t seg_bytes =
        std::uint64_t{pool->slots_per_segment()} * std::uint64_t{pool->slot_size()};
    const std::uint64_t have = pool->stats().bytes_capacity;
    if (have + seg_bytes > opts.max_pool_bytes) return false;
    auto grown = pool->grow();
    if (!grown) {
      PLX_LOG(warn, kLog, "%s: could not grow the pool for a new subscriber: %s",
              acceptor.path().c_str(), grown.error().message.c_str());
      return false;
    }
    if (*grown) {
      PLX_LOG(info, kLog,
              "%s: pool grew to %zu slots (%zu segments, %llu bytes) for a new subscriber",
              acceptor.path().c_str(), pool->capacity(), pool->segment_count(),
              static_cast<unsigned long long>(have + seg_bytes));
    }
    return *grown;
  }

  // Called with mu_ held: the handshake and the sticky events happen atomically with respect
  // to send_event(), so a joining subscriber sees each event exactly once.
  void handle_hello(const std::shared_ptr<Connection>& sp) {
    Connection& s = *sp;
    const detail::Acceptor::FirstMessage first = acceptor.read_hello(s);
    if (std::holds_alternative<wire::StatsRequest>(first)) {
      serve_stats(s);
      s.dead = true;  // answered: never a subscriber
      return;
    }
    if (!std::holds_alternative<wire::Hello>(first)) return;  // nothing yet, or refused
    const wire::Hello& hello = std::get<wire::Hello>(first);
    const std::uint32_t grant = admit_quota_locked();
    if (grant == 0) {
      const std::string why =
          "the pool has no room for another subscriber's quota (" +
          std::to_string(pool->capacity()) + " slots, " +
          std::to_string(pool->stats().bytes_capacity) + " bytes" +
          (opts.max_pool_bytes != 0 ? ", growth budget max_pool_bytes " +
                                          std::to_string(opts.max_pool_bytes) + " reached)"
                                    : "; no growth budget: max_pool_bytes is 0)");
      PLX_LOG(warn, kLog, "refusing pid %d: %s", static_cast<int>(s.cred.pid), why.c_str());
      acceptor.refuse(s.sock.get(), Errc::resource_exhausted, why);
      s.dead = true;
      return;
    }
    std::lock_guard sl(s.mu);
    if (auto st = s.setup(hello, grant, *pool); !st) {
      PLX_LOG(warn, kLog, "handshake with pid %d failed: %s", static_cast<int>(s.cred.pid),
              st.error().message.c_str());
      s.dead = true;
      return;
    }
    std::vector<std::uint64_t> rec;
    for (const auto* e : {&sticky_start_, &sticky_format_, &sticky_segment_}) {
      if (!*e) continue;
      if (wire::encode_event(rec, **e)) s.write_sticky(rec);
    }
    if (sticky_eos_ && wire::encode_event(rec, Event::eos())) s.write_sticky(rec);
    s.wake();
    counters.connections.fetch_add(1, std::memory_order_relaxed);
    PLX_LOG(info, kLog, "subscriber %llu joined: pid %d uid %u policy %s",
            static_cast<unsigned long long>(s.id), static_cast<int>(s.cred.pid), s.cred.uid,
            std::string(to_string(s.policy())).c_str());
  }

  // ---- stats (observability) ----------------------------------------------------------------

  // The publisher's own figures and its pool (no subscribers). Needs no lock but reads the
  // sticky format only under mu_ (the caller passes it).
  // `p`: the pool (replace_pool() may swap it: callers pass a reference taken under mu_).
  PublisherStats own_stats(const std::optional<Event>& format, const memory::MemoryPool& p) const {
    PublisherStats st;
    st.buffers_sent = counters.buffers_sent.load(std::memory_order_relaxed);
    st.zero_copy = counters.zero_copy.load(std::memory_order_relaxed);
    st.copies = counters.copies.load(std::memory_order_relaxed);
    st.bytes_copied = counters.bytes_copied.load(std::memory_order_relaxed);
    st.events_sent = counters.events_sent.load(std::memory_order_relaxed);
    st.connections = counters.connections.load(std::memory_order_relaxed);
    st.disconnects = counters.disconnects.load(std::memory_order_relaxed);
    st.refused = counters.refused.load(std::memory_order_relaxed);
    st.protocol_errors = counters.protocol_errors.load(std::memory_order_relaxed);
    st.pools_replaced = counters.pools_replaced.load(std::memory_order_relaxed);
    st.segments_retired = counters.segments_retired.load(std::memory_order_relaxed);
    st.stats_requests = counters.stats_requests.load(std::memory_order_relaxed);
    st.publisher_pid = ::getpid();
    st.uptime_ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                  std::chrono::steady_clock::now() - bound_at)
                                                  .count());
    if (format) st.format = format->caps.text();
    const memory::PoolStats ps = p.stats();
    st.pool = ps;
    st.slot_size = ps.slot_size;
    st.slots = static_cast<std::uint32_t>(ps.capacity);
    st.slots_in_use = static_cast<std::uint32_t>(ps.in_use);
    st.slots_high_water = static_cast<std::uint32_t>(ps.high_water);
    const std::size_t n = p.segment_count();
    for (std::size_t i = 0; i < n; ++i) {
      const memory::Segment& seg = p.segment(i);
      st.segments.push_back(PoolSegmentInfo{seg.id(), seg.mapped_size(),
                                            static_cast<std::uint32_t>(p.slots_per_segment())});
    }
    return st;
  }

  // Answers a stats request (mu_ held, like the rest of the handshake). Every message is a
  // non-blocking send: a requester that does not read loses its answer, nobody waits for it.
  void serve_stats(Connection& req) {
    counters.stats_requests.fetch_add(1, std::memory_order_relaxed);
    PublisherStats st = own_stats(sticky_format_, *pool);
    for (auto& sp : subs_) {
      std::lock_guard sl(sp->mu);
      if (sp->dead || !sp->active) continue;
      (void)sp->sync();  // false only when it just died: skip it then
      if (!sp->dead) st.subscribers.push_back(sp->info());
    }
    std::vector<std::vector<std::byte>> msgs;
    msgs.push_back(wire::encode_stats_publisher(st));
    for (std::size_t i = 0; i < st.segments.size(); ++i)
      msgs.push_back(
          wire::encode_stats_segment({st.segments[i].id, st.segments[i].size,
                                      static_cast<std::uint32_t>(i), st.segments[i].slots}));
    for (const auto& info : st.subscribers)
      msgs.push_back(wire::encode_stats_subscriber(info));
    msgs.push_back(wire::encode_stats_end({static_cast<std::uint32_t>(st.segments.size()),
                                           static_cast<std::uint32_t>(st.subscribers.size())}));
    for (const auto& m : msgs) {
      if (auto r = os::send_msg(req.sock.get(), m); !r) {
        PLX_LOG(info, kLog, "stats request from pid %d: answer not sent: %s",
                static_cast<int>(req.cred.pid), r.error().message.c_str());
        return;
      }
    }
    PLX_LOG(debug, kLog, "answered a stats request from pid %d uid %u",
            static_cast<int>(req.cred.pid), req.cred.uid);
    // Closing a Unix socket with unread data resets it and the peer would lose the answer:
    // discard what else it sent (a bounded number of messages; more is its own loss).
    for (int i = 0; i < 16; ++i) {
      char c[64];
      if (::recv(req.sock.get(), c, sizeof c, MSG_DONTWAIT) <= 0) break;
    }
  }

  void remove_dead_locked() {
    auto dead = [this](const std::shared_ptr<Connection>& s) {
      if (!s->dead) return false;
      std::lock_guard sl(s->mu);
      if (s->quarantined() != 0 && s->wake_fd() >= 0) zombies_.push_back(s);
      return true;
    };
    handshaking_.erase(std::remove_if(handshaking_.begin(), handshaking_.end(), dead),
                       handshaking_.end());
    auto it = std::remove_if(subs_.begin(), subs_.end(), dead);
    if (it != subs_.end()) {
      subs_.erase(it, subs_.end());
      subs_version_.fetch_add(1, std::memory_order_release);
      subs_cv_.notify_all();
    }
  }

  // The background thread: every 20 ms, or sooner when the listen socket, a connection socket
  // or a quarantined subscriber's wake socket speaks, or wake_efd (close()) fires.
  void run() {
    using namespace std::chrono_literals;
    // This thread collects returns (sync) and releases their slots but never loans: straight
    // back to the shared list, where the producer's next loan finds them.
    memory::disable_thread_slot_cache();
    std::vector<pollfd> pfds;
    std::vector<std::shared_ptr<Connection>> polled, zombies;
    while (!stopping.load(std::memory_order_acquire)) {
      pfds.clear();
      polled.clear();
      pfds.push_back({acceptor.fd(), POLLIN, 0});
      {
        std::lock_guard lk(mu_);
        for (auto& s : handshaking_)
          polled.push_back(s);
        for (auto& s : subs_)
          polled.push_back(s);
        zombies = zombies_;
      }
      for (auto& s : polled)
        pfds.push_back({s->sock.get(), POLLIN, 0});
      for (auto& z : zombies)
        pfds.push_back({z->wake_fd(), POLLIN, 0});
      const auto woke =
          base::wait_fds(pfds, wake_efd.get(), std::chrono::steady_clock::now() + 20ms);
      if (!woke) {
        PLX_LOG(error, kLog, "%s", woke.error().message.c_str());
        break;
      }
      if (stopping.load(std::memory_order_acquire)) break;
      if (*woke == base::Wait::interrupted) os::drain_eventfd(wake_efd.get());
      if (pfds[0].revents & POLLIN) accept_all();
      bool changed = false;
      for (std::size_t i = 0; i < polled.size(); ++i) {
        auto& s = polled[i];
        const short re = pfds[i + 1].revents;
        if (re == 0) continue;
        std::unique_lock lk(mu_);
        bool was_active;
        {
          std::lock_guard sl(s->mu);
          was_active = s->active;
        }
        if (!was_active) {
          if (s->dead) continue;
          if (re & (POLLHUP | POLLERR)) {
            s->dead = true;
          } else {
            handle_hello(s);
          }
          if (s->active && !s->dead) {
            std::erase(handshaking_, s);
            subs_.push_back(s);
            subs_version_.fetch_add(1, std::memory_order_release);
            subs_cv_.notify_all();
          }
          changed = true;
          continue;
        }
        lk.unlock();
        // After the handshake a subscriber has nothing to say on the socket: a hang-up is the
        // normal end, anything else is a protocol error.
        std::lock_guard sl(s->mu);
        s->on_socket(re);
        changed = true;
      }
      // Quarantined slots come back when the gone subscriber's end of the wake socket closes.
      bool released = false;
      for (std::size_t i = 0; i < zombies.size(); ++i) {
        const short re = pfds[1 + polled.size() + i].revents;
        if (re == 0) continue;
        Connection& z = *zombies[i];
        std::lock_guard sl(z.mu);
        released |= z.release_quarantine(re);
      }
      if (released) {
        std::lock_guard lk(mu_);
        std::erase_if(zombies_, [](const std::shared_ptr<Connection>& z) {
          std::lock_guard sl(z->mu);
          return z->wake_fd() < 0;
        });
      }
      // Connections that never said hello give their place back.
      {
        const auto now = std::chrono::steady_clock::now();
        std::lock_guard lk(mu_);
        for (auto& s : handshaking_)
          changed |= acceptor.expire(*s, now);
      }
      // Periodic return collection: keeps pool occupancy honest while the producer is idle.
      // Queued events (ring full, or a cancelled send_event) go out as soon as there is room,
      // not only with the producer's next call.
      for (auto& s : polled) {
        std::lock_guard sl(s->mu);
        s->tick();
      }
      if (changed) {
        std::lock_guard lk(mu_);
        remove_dead_locked();
      }
      retire_segments();
    }
  }

  // Tells each subscriber about segments of replaced pools once none of its leases (records in
  // its ring included) names them: no later descriptor can, so it may unmap them. A segment
  // leaves retiring_ when no subscriber has it announced any more.
  void retire_segments() {
    std::vector<std::uint64_t> ids;
    std::vector<std::shared_ptr<Connection>> subs;
    {
      std::lock_guard lk(mu_);
      if (retiring_.empty()) return;
      ids.assign(retiring_.begin(), retiring_.end());
      subs = subs_;
    }
    std::set<std::uint64_t> still;
    for (auto& s : subs) {
      std::lock_guard sl(s->mu);
      s->retire_segments(ids, still);
    }
    std::lock_guard lk(mu_);
    for (std::uint64_t id : ids)
      if (still.count(id) == 0) retiring_.erase(id);
  }

  void shutdown() {
    if (closed) return;
    bool ended;
    {
      std::lock_guard lk(mu_);
      ended = sticky_eos_;
    }
    if (ended && opts.linger.count() > 0) {
      if (auto r = drain_all(std::chrono::steady_clock::now() + opts.linger); !r)
        PLX_LOG(info, kLog, "%s: closing without a full drain: %s", acceptor.path().c_str(),
                r.error().message.c_str());
    }
    closed = true;
    if (thread.joinable()) {
      stopping.store(true, std::memory_order_release);
      os::signal_eventfd(wake_efd.get());
      thread.join();
    }
    std::vector<std::shared_ptr<Connection>> all;
    {
      std::lock_guard lk(mu_);
      all = subs_;
      for (auto& s : handshaking_)
        all.push_back(s);
      subs_.clear();
      handshaking_.clear();
      zombies_.clear();  // a publisher that closes gives every slot back to its pool
      subs_version_.fetch_add(1);
    }
    for (auto& s : all) {
      std::lock_guard sl(s->mu);
      s->say_goodbye();
    }
    cache_.clear();
    acceptor.close();
  }

  // Our collector in the process's MetricsRegistry (reads stats() at export time). The last
  // member: unregistered (waiting for a running export) before anything it reads is destroyed.
  observe::MetricsRegistry::Registration metrics;
};

// ---- public API -----------------------------------------------------------------------------

IpcPublisher::IpcPublisher() noexcept = default;
IpcPublisher::IpcPublisher(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
IpcPublisher::IpcPublisher(IpcPublisher&&) noexcept = default;
IpcPublisher& IpcPublisher::operator=(IpcPublisher&&) noexcept = default;
IpcPublisher::~IpcPublisher() = default;

namespace {
PublisherStats publisher_stats(IpcPublisher::Impl& im);  // stats(), also for the metrics collector

}  // namespace

Result<IpcPublisher> IpcPublisher::bind(std::string_view path, PublisherOptions options) {
  if (options.max_leases_per_subscriber > 4096)
    return err(Errc::invalid_argument, "max_leases_per_subscriber must be 0 (auto) or 1..4096");
  const std::uint32_t rb = options.ring_bytes;
  if (rb < 16 * 1024 || rb > (16u << 20) || (rb & (rb - 1)) != 0)
    return err(Errc::invalid_argument, "ring_bytes must be a power of two in 16 KiB..16 MiB");
  if (options.max_subscribers == 0) return err(Errc::invalid_argument, "max_subscribers is 0");
  if (!options.allowed_policies.empty() &&
      std::find(options.allowed_policies.begin(), options.allowed_policies.end(),
                options.default_policy) == options.allowed_policies.end())
    return err(Errc::invalid_argument, "default_policy is not among allowed_policies");
  if (options.handshake_timeout.count() <= 0)
    return err(Errc::invalid_argument, "handshake_timeout must be positive");
  auto impl = std::make_unique<Impl>();
  impl->closed = true;  // nothing to shut down until fully set up
  if (!options.pool) {
    PLX_ASSIGN(options.pool, detail::make_pool(options, options.slot_size, options.arena_block));
    impl->made_pool = true;
  }
  PLX_TRY(detail::check_publishable_pool(*options.pool));
  options.max_leases_per_subscriber = detail::resolve_quota(options, *options.pool);
  impl->pool = options.pool;
  if (!options.pool->variable_size() && options.pool_reserve >= options.pool->capacity())
    return err(Errc::invalid_argument, "pool_reserve must be below the pool's slot count");
  int numa_node = -1;  // PublisherOptions::numa_node resolved
  if (options.numa_node) {
    if (*options.numa_node == PublisherOptions::kAutoNode) {
      auto node = topology::current_thread_node();
      if (!node) return err(node.error().code, "numa-node auto: " + node.error().message);
      numa_node = static_cast<int>(*node);
    } else if (*options.numa_node < 0) {
      return err(Errc::invalid_argument, "numa_node must be a node number or kAutoNode");
    } else {
      numa_node = *options.numa_node;
    }
  }
  impl->opts = std::move(options);
  impl->exporter.set_node(numa_node, impl->opts.numa_best_effort);
  if (numa_node >= 0) PLX_TRY(impl->exporter.place(*impl->pool));
  PLX_ASSIGN(impl->wake_efd, os::make_eventfd());
  PLX_ASSIGN(impl->interrupt_efd, os::make_eventfd());
  PLX_TRY(impl->acceptor.listen(path));
  impl->closed = false;
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  impl->metrics = detail::register_publisher_metrics(impl->acceptor.path(),
                                                     [raw] { return publisher_stats(*raw); });
  return IpcPublisher(std::move(impl));
}

#define PLX_NEED_IMPL()                                                      \
  do {                                                                       \
    if (!impl_ || impl_->closed)                                             \
      return err(Errc::failed_precondition, "publisher is closed or empty"); \
  } while (0)

Result<memory::Loan> IpcPublisher::try_loan(std::size_t size) {
  PLX_NEED_IMPL();
  auto r = impl_->pool->try_loan(size);
  if (r || r.error().code != Errc::resource_exhausted) return r;
  collect_returns();
  return impl_->pool->try_loan(size);
}

Result<memory::Loan> IpcPublisher::loan(std::size_t size) {
  PLX_NEED_IMPL();
  if (impl_->interrupted.load(std::memory_order_acquire))
    return err(Errc::cancelled, "publisher interrupted");
  auto r = impl_->pool->try_loan(size);
  if (r || r.error().code != Errc::resource_exhausted) return r;
  return impl_->wait_for_slot(std::chrono::steady_clock::now() + impl_->opts.loan_timeout, size);
}

Result<void> IpcPublisher::replace_pool(std::shared_ptr<memory::MemoryPool> pool) {
  PLX_NEED_IMPL();
  if (!pool) return err(Errc::invalid_argument, "replace_pool: null pool");
  PLX_TRY(detail::check_publishable_pool(*pool));
  Impl& im = *impl_;
  std::shared_ptr<memory::MemoryPool> old;
  std::vector<std::uint64_t> old_ids;
  {
    std::lock_guard lk(im.mu_);
    if (pool == im.pool) return {};
    old = std::exchange(im.pool, std::move(pool));
    for (std::size_t i = 0; i < old->segment_count(); ++i) {
      old_ids.push_back(old->segment(i).id());
      im.retiring_.insert(old_ids.back());
    }
  }
  im.exporter.forget(old_ids);  // no descriptor will name these again: nobody needs their fds
  im.counters.pools_replaced.fetch_add(1, std::memory_order_relaxed);
  PLX_LOG(info, kLog, "publisher %s: new pool (%s, %zu bytes per %s); the old one is retired",
          im.acceptor.path().c_str(), im.pool->variable_size() ? "variable-size" : "slots",
          im.pool->slot_size(), im.pool->variable_size() ? "block at most" : "slot");
  // `old` drops here: its memory goes when the last buffer or lease over it is released.
  return {};
}

Result<memory::Loan> IpcPublisher::try_loan() {
  PLX_NEED_IMPL();
  auto r = impl_->pool->try_loan();
  if (r) return r;
  collect_returns();
  return impl_->pool->try_loan();
}

Result<memory::Loan> IpcPublisher::loan() {
  PLX_NEED_IMPL();
  if (impl_->interrupted.load(std::memory_order_acquire))
    return err(Errc::cancelled, "publisher interrupted");
  auto r = impl_->pool->try_loan();
  if (r) return r;
  return impl_->wait_for_slot(std::chrono::steady_clock::now() + impl_->opts.loan_timeout);
}

Result<void> IpcPublisher::drain(std::chrono::milliseconds timeout) {
  PLX_NEED_IMPL();
  return impl_->drain_all(std::chrono::steady_clock::now() + timeout);
}

namespace {
// send()'s body for a Buffer reference of the caller's own: one of our pool goes out as it is
// (zero copy), anything else is copied into a slot of our pool first.
// Inlined into both send()s: out of line it cost ~15 instructions per send (callgrind, ipc_loop).
[[gnu::always_inline]] inline Result<void> send_owned(IpcPublisher& pub, IpcPublisher::Impl& im,
                                                      memory::Buffer& b) {
  PLX_TRACE_SPAN_ARG("ipc.send", "bytes", b.size());
  if (im.interrupted.load(std::memory_order_acquire))
    return err(Errc::cancelled, "publisher interrupted");
  if (b.valid() && b.segment() != nullptr && b.pool_id() == im.pool->id()) {
    detail::bump_producer_counter(im.counters.zero_copy);
    PLX_PROBE_AT(1, "checks");
    return im.deliver_all(b);
  }
  if (b.size() > im.pool->slot_size())
    return err(Errc::invalid_argument, "buffer of " + std::to_string(b.size()) +
                                           " bytes exceeds the slot size " +
                                           std::to_string(im.pool->slot_size()));
  PLX_ASSIGN(memory::Loan l, pub.loan(b.size()));
  if (b.size() != 0) std::memcpy(l.data().data(), b.data().data(), b.size());
  if (b.valid()) l.metadata() = b.metadata();
  detail::bump_producer_counter(im.counters.copies);
  detail::bump_producer_counter(im.counters.bytes_copied, b.size());
  memory::Buffer copy = std::move(l).freeze();
  return im.deliver_all(copy);
}
}  // namespace

Result<void> IpcPublisher::send(memory::Loan&& loan) {
  if (!loan.valid()) return err(Errc::invalid_argument, "empty loan");
  PLX_NEED_IMPL();
  PLX_PROBE_BEGIN("send");
  memory::Buffer b = std::move(loan).freeze();  // ours alone: the last lease takes it
  PLX_PROBE_AT(0, "freeze");
  return send_owned(*this, *impl_, b);
}

Result<void> IpcPublisher::send(const memory::Buffer& buffer) {
  PLX_NEED_IMPL();
  memory::Buffer b = buffer;  // the caller keeps its reference
  return send_owned(*this, *impl_, b);
}

Result<bool> IpcPublisher::fit(std::size_t bytes) {
  PLX_NEED_IMPL();
  Impl& im = *impl_;
  const std::shared_ptr<memory::MemoryPool> cur = im.pool;  // producer thread: stable here
  if (bytes <= cur->slot_size()) return false;
  if (cur->variable_size())
    return err(
        Errc::resource_exhausted,
        "a buffer of " + std::to_string(bytes) + " bytes is larger than the " +
            std::to_string(cur->slot_size()) +
            " bytes the variable-size pool can ever hold within its budget (max_pool_bytes " +
            std::to_string(im.opts.max_pool_bytes) + ")");
  if (!im.made_pool)
    return err(Errc::invalid_argument,
               "a buffer of " + std::to_string(bytes) + " bytes does not fit the " +
                   std::to_string(cur->slot_size()) + "-byte slots of the publisher's pool");
  PLX_ASSIGN(auto pool, detail::make_pool(im.opts, bytes, 0));
  PLX_TRY(replace_pool(std::move(pool)));
  return true;
}

Result<void> IpcPublisher::send_copy(const memory::Buffer& buffer) {
  const auto src = buffer.data();
  return send_copy(
      buffer.size(),
      [&](std::span<std::byte> dst) {
        if (!src.empty()) std::memcpy(dst.data(), src.data(), src.size());
      },
      buffer.valid() ? buffer.metadata() : Metadata{});
}

Result<void> IpcPublisher::send_copy(std::size_t size,
                                     const std::function<void(std::span<std::byte>)>& fill,
                                     const Metadata& meta,
                                     const std::function<bool()>& on_interrupt) {
  PLX_TRACE_SPAN_ARG("ipc.send_copy", "bytes", size);
  PLX_NEED_IMPL();
  Impl& im = *impl_;
  PLX_TRY(fit(size));
  memory::Loan l;
  for (;;) {
    // loan() waits up to loan_timeout for a slot subscribers return; a full pool is
    // backpressure here, so wait again, until interrupt() (and, with on_interrupt, for as
    // long as it says the element goes on: basesink's wait_preroll after a pause).
    auto r = loan(size);
    if (r) {
      l = std::move(*r);
      break;
    }
    if (r.error().code == Errc::timeout) continue;
    if (r.error().code == Errc::cancelled && on_interrupt && on_interrupt()) continue;
    return r.error();
  }
  if (size != 0) fill(l.data().subspan(0, size));
  l.metadata() = meta;
  detail::bump_producer_counter(im.counters.copies);
  detail::bump_producer_counter(im.counters.bytes_copied, size);
  memory::Buffer b = std::move(l).freeze();
  return im.deliver_all(b);
}

Result<void> IpcPublisher::send_event(const Event& event) {
  PLX_NEED_IMPL();
  Impl& im = *impl_;
  if (im.interrupted.load(std::memory_order_acquire))
    return err(Errc::cancelled, "publisher interrupted");
  std::vector<std::uint64_t> rec;
  PLX_TRY(wire::encode_event(rec, event));
  if (rec.size() * 8 > im.opts.ring_bytes / 4)
    return err(Errc::invalid_argument, "event too large for the ring");
  std::vector<std::shared_ptr<Connection>> subs;
  {
    std::lock_guard lk(im.mu_);
    switch (event.type) {
      case EventType::caps:
        im.sticky_format_ = event;
        break;
      case EventType::stream_start:
        im.sticky_start_ = event;
        im.sticky_eos_ = false;
        break;
      case EventType::segment:
        im.sticky_segment_ = event;
        break;
      case EventType::eos:
        im.sticky_eos_ = true;
        break;
      case EventType::flush_stop:
        im.sticky_eos_ = false;
        break;
      default:
        break;
    }
    subs = im.subs_;
  }
  bool complete = true;
  for (auto& s : subs)
    complete &= s->deliver_event(rec);
  im.counters.events_sent.fetch_add(1, std::memory_order_relaxed);
  if (!complete)
    return err(Errc::cancelled,
               "publisher interrupted while waiting for a subscriber (the event stays queued)");
  return {};
}

Result<void> IpcPublisher::set_format(std::string caps) {
  return send_event(Event::make_caps(Caps::from_text(std::move(caps))));
}

Result<void> IpcPublisher::send_eos() {
  return send_event(Event::eos());
}

std::size_t IpcPublisher::subscriber_count() const {
  if (!impl_) return 0;
  std::lock_guard lk(impl_->mu_);
  return impl_->subs_.size();
}

Result<void> IpcPublisher::wait_for_subscribers(std::size_t n, std::chrono::milliseconds timeout) {
  PLX_NEED_IMPL();
  std::unique_lock lk(impl_->mu_);
  impl_->subs_cv_.wait_for(lk, timeout, [&] {
    return impl_->subs_.size() >= n || impl_->interrupted.load(std::memory_order_acquire);
  });
  if (impl_->subs_.size() >= n) return {};
  if (impl_->interrupted.load(std::memory_order_acquire))
    return err(Errc::cancelled, "publisher interrupted");
  return err(Errc::timeout, "only " + std::to_string(impl_->subs_.size()) + " of " +
                                std::to_string(n) + " subscribers connected");
}

void IpcPublisher::interrupt() {
  if (!impl_) return;
  impl_->interrupted.store(true, std::memory_order_release);
  if (impl_->interrupt_efd) os::signal_eventfd(impl_->interrupt_efd.get());
  // Taking mu_ orders the flag with a wait_for_subscribers() about to sleep on the cv.
  std::lock_guard lk(impl_->mu_);
  impl_->subs_cv_.notify_all();
}

void IpcPublisher::resume() {
  if (!impl_) return;
  impl_->interrupted.store(false, std::memory_order_release);
  if (impl_->interrupt_efd) os::drain_eventfd(impl_->interrupt_efd.get());
}

void IpcPublisher::collect_returns() {
  if (!impl_) return;
  std::vector<std::shared_ptr<Connection>> subs;
  {
    std::lock_guard lk(impl_->mu_);
    subs = impl_->subs_;
  }
  for (auto& s : subs) {
    std::lock_guard sl(s->mu);
    (void)s->sync();  // false: it is gone, and its leases went to the quarantine
  }
}

PublisherStats IpcPublisher::stats() const {
  if (!impl_) return {};
  return publisher_stats(*impl_);  // syncs subscribers (under their lock): not logically a change
}

namespace {
PublisherStats publisher_stats(IpcPublisher::Impl& im) {
  PublisherStats st;
  std::vector<std::shared_ptr<Connection>> subs, gone;
  std::optional<Event> format;
  std::shared_ptr<memory::MemoryPool> pool;
  {
    std::lock_guard lk(im.mu_);
    subs = im.subs_;
    gone = im.zombies_;
    format = im.sticky_format_;
    pool = im.pool;
  }
  st = im.own_stats(format, *pool);
  {
    const detail::SegmentExporter::Placement pl = im.exporter.placement();
    st.numa_node = pl.node;
    st.pages = pl.pages;
    st.pages_on_node = pl.pages_on_node;
  }
  for (auto& s : gone) {
    std::lock_guard sl(s->mu);
    st.quarantined_slots += s->quarantined();
    st.quarantined_subscribers += s->quarantined() == 0 ? 0 : 1;
  }
  for (auto& s : subs) {
    std::lock_guard sl(s->mu);
    if (s->quarantined() != 0) {  // expelled, not yet moved to the quarantine list
      st.quarantined_slots += s->quarantined();
      ++st.quarantined_subscribers;
    }
    (void)s->sync();  // leases as the subscriber sees them, not as last synced
    st.subscribers.push_back(s->info());
  }
  return st;
}
}  // namespace

std::shared_ptr<memory::MemoryPool> IpcPublisher::pool() const {
  if (!impl_) return nullptr;
  std::lock_guard lk(impl_->mu_);
  return impl_->pool;
}

const std::string& IpcPublisher::path() const {
  static const std::string none;
  return impl_ ? impl_->acceptor.path() : none;
}

void IpcPublisher::close() {
  if (impl_) impl_->shutdown();
}

}  // namespace parallax::link
