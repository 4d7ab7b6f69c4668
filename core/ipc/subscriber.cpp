// SPDX-License-Identifier: MIT OR Apache-2.0
// IpcSubscriber: connects to a publisher, maps its ring and segments read-only, and turns ring
// records into Buffers over the publisher's memory. Dropping such a Buffer writes its lease
// token into the ack area's return slots (no syscall unless the publisher is asleep waiting).
//
// The facade over the subscriber's rooms (each file says its owner and locking):
//   subscriber_handshake.{h,cpp}  connect, hello/welcome, the interrupt every wait watches
//   remote_connection.{h,cpp}     one connection: mappings, segment table, lease returns, the
//                                 Buffer cores over the publisher's memory
//   ring_reader.{h,cpp}           the consumer end of the descriptor ring, the sleep handshake
// What stays here: the socket's control messages (segments, refusals), when to spin or sleep,
// the copy threshold, decoding records into items, reconnects, and the statistics.
//
// Threads: recv*() runs on one consumer thread; Buffers may be released from any thread (see
// remote_connection.h); interrupt()/resume() from any thread; the metrics exporter reads a
// snapshot under metrics_mu. The connection outlives the subscriber while any of its Buffers
// lives, so the mappings those Buffers point into stay valid.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include "base/futex.h"
#include "base/wait.h"
#include "ipc/hotpath_probe.h"
#include "ipc/metrics_export.h"
#include "ipc/os.h"
#include "ipc/remote_connection.h"
#include "ipc/ring_reader.h"
#include "ipc/subscriber_handshake.h"
#include "ipc/wire.h"
#include "parallax/cpu_relax.h"
#include "parallax/ipc.h"
#include "parallax/log.h"
#include "parallax/segment.h"
#include "parallax/trace.h"

namespace parallax::link {

namespace {
constexpr const char* kLog = "ipc";
using Clock = std::chrono::steady_clock;
using detail::RemoteConnection;

}  // namespace

struct IpcSubscriber::Impl {
  std::string path;
  SubscriberOptions opts;
  std::shared_ptr<RemoteConnection> conn;
  SubscriberStats st;
  detail::RingReader reader{st.dropped};
  bool hup{false};      // the socket is closed: drain the ring, then end
  bool goodbye{false};  // the publisher closed cleanly
  bool ended{false};    // nothing more will come (clean end)
  std::optional<std::string> format;
  std::optional<StreamSegment> segment;
  detail::SubscriberInterrupt interrupt;
  wire::BufferDesc desc;  // reused for every buffer record (its metadata storage too)
  bool copy_logged{false};

  std::optional<Error> failure;  // why the connection was closed, for the next recv*()

  // Closes the connection for `e` (logged as `why` unless empty); the next recv*() returns it.
  Error close_for(Error e, const std::string& why) {
    if (!why.empty())
      PLX_LOG(warn, kLog, "closing connection to %s: %s", path.c_str(), why.c_str());
    drop_conn();
    failure = std::move(e);
    return *failure;
  }

  Error protocol_error(const std::string& why) {
    return close_for(err(Errc::data_loss, "protocol error from the publisher: " + why), why);
  }

  void drop_conn() {
    if (conn) conn->shut();
    conn.reset();
  }

  // Handles every publisher message waiting on the socket (segment announcements, or a
  // refusal); sets hup when the publisher closed.
  Result<void> drain_socket(RemoteConnection& c) {
    for (;;) {
      std::byte buf[wire::kMaxMsgSize];
      auto r = os::recv_msg(c.sock.get(), buf, true);
      if (!r) return protocol_error(r.error().message);
      if (r->would_block) return {};
      if (r->closed) {
        hup = true;
        return {};
      }
      auto m = wire::decode_publisher_msg(std::span<const std::byte>(buf, r->size));
      if (!m) return protocol_error(m.error().message);
      if (auto* sa = std::get_if<wire::SegmentAnnounce>(&*m)) {
        if (r->fds.size() != 1) return protocol_error("segment message without exactly one fd");
        if (c.segments.count(sa->segment_id) != 0)
          return protocol_error("segment " + std::to_string(sa->segment_id) + " announced twice");
        if (c.segments.size() >= opts.max_segments || sa->size > opts.max_mapped_bytes ||
            c.mapped_bytes + sa->size > opts.max_mapped_bytes) {
          const std::string why =
              "the publisher announced more than " +
              (c.segments.size() >= opts.max_segments
                   ? std::to_string(opts.max_segments) + " segments (max_segments)"
                   : std::to_string(opts.max_mapped_bytes) +
                         " bytes of segments (max_mapped_bytes)");
          return close_for(err(Errc::resource_exhausted, why), why);
        }
        auto seg = memory::Segment::import(std::move(r->fds[0]), memory::Access::read_only,
                                           sa->size, "parallax-ipc-remote", {.read_only_fd = true});
        if (!seg) return protocol_error("refusing segment: " + seg.error().message);
        c.segments.emplace(sa->segment_id,
                           std::make_shared<const memory::Segment>(std::move(seg).value()));
        // The memory's node (for affinity=auto): the one every segment so far is on, if any.
        st.memory_node = st.segments == 0 || sa->numa_node == st.memory_node ? sa->numa_node : -1;
        st.last_segment_node = sa->numa_node;
        c.mapped_bytes += sa->size;
        ++st.segments;
      } else if (auto* sr = std::get_if<wire::SegmentRetired>(&*m)) {
        // No descriptor names it any more: forget it; Buffers over it keep it mapped.
        if (!r->fds.empty()) return protocol_error("segment_retired message with fds");
        auto it = c.segments.find(sr->segment_id);
        if (it == c.segments.end())
          return protocol_error("retired segment " + std::to_string(sr->segment_id) +
                                " was never announced");
        c.mapped_bytes -= it->second->size();
        c.segments.erase(it);
        ++st.segments_retired;
      } else if (auto* rf = std::get_if<wire::Refuse>(&*m)) {
        return close_for(err(rf->code, "publisher closed the connection: " + rf->text), "");
      } else {
        return protocol_error("unexpected welcome after the handshake");
      }
    }
  }

  // `deadline` bounds the connect attempts and the wait for the welcome (subscriber_handshake.h).
  Result<void> handshake(Clock::time_point deadline) {
    PLX_ASSIGN(std::shared_ptr<RemoteConnection> c,
               detail::handshake(path, opts, deadline, interrupt));
    reader.attach(*c);
    conn = std::move(c);
    wake_pending = false;
    failure.reset();
    hup = false;
    goodbye = false;
    ended = false;
    st.quota = conn->welcome.quota;
    st.publisher_pid = static_cast<pid_t>(conn->welcome.publisher_pid);
    publish_report();
    PLX_TRY(drain_socket(*conn));
    return {};
  }

  // Our whole report into a new connection's ack area (the counts are cumulative).
  void publish_report() {
    wire::AckReport& rep = conn->ah->report;
    rep.received.store(st.buffers, std::memory_order_relaxed);
    rep.latency_count.store(st.latency_count, std::memory_order_relaxed);
    rep.latency_max_ns.store(st.latency_max_ns, std::memory_order_relaxed);
    for (std::size_t k = 0; k < wire::kLatencyBuckets; ++k)
      rep.latency_log2[k].store(st.latency_log2[k], std::memory_order_relaxed);
  }

  // Transit latency of one buffer into our histogram, and our report into the ack area (plain
  // stores of our own counts: we are its only writer). A stamp from the future or none at all
  // (0) is not a measurement.
  void note_transit(std::uint64_t send_ns) {
    if (conn) conn->ah->report.received.store(st.buffers, std::memory_order_relaxed);
    if (send_ns == 0) return;
    const std::uint64_t now = wire::mono_ns();
    if (now < send_ns) return;
    const std::uint64_t lat = now - send_ns;
    const std::size_t k = wire::latency_bucket(lat);
    ++st.latency_log2[k];
    ++st.latency_count;
    st.latency_sum_ns += lat;
    if (lat > st.latency_max_ns) st.latency_max_ns = lat;
    if (!conn) return;
    wire::AckReport& rep = conn->ah->report;
    rep.latency_log2[k].store(st.latency_log2[k], std::memory_order_relaxed);
    rep.latency_count.store(st.latency_count, std::memory_order_relaxed);
    rep.latency_max_ns.store(st.latency_max_ns, std::memory_order_relaxed);
  }

  Result<memory::Buffer> make_buffer(wire::BufferDesc& d) {
    std::shared_ptr<RemoteConnection> keep = conn;  // drain_socket() may drop conn
    RemoteConnection& c = *keep;
    auto it = c.segments.find(d.segment_id);
    if (it == c.segments.end()) {
      // Announcements are sent before the first descriptor that uses them.
      PLX_TRY(drain_socket(c));
      it = c.segments.find(d.segment_id);
      if (it == c.segments.end())
        return protocol_error("descriptor for unknown segment " + std::to_string(d.segment_id));
    }
    const memory::Segment& seg = *it->second;
    if (d.offset > seg.size() || d.length > seg.size() - d.offset)
      return protocol_error("descriptor [" + std::to_string(d.offset) + ", +" +
                            std::to_string(d.length) + ") outside its segment of " +
                            std::to_string(seg.size()) + " bytes");
    // With a quota of 1 the effective threshold is 0: every buffer is copied.
    if (opts.copy_threshold != 0 && c.leases() >= copy_threshold()) return copy_out(c, seg, d);
    return detail::make_remote_buffer(std::move(keep), it->second, d);  // the core takes `keep`
  }

  // The effective copy threshold: at most quota - 1 (so the publisher can always send the
  // buffer that we then copy), 0 with copying off.
  std::uint32_t copy_threshold() const {
    if (opts.copy_threshold == 0) return 0;
    const std::uint32_t quota = std::max<std::uint32_t>(1, st.quota);
    const std::uint32_t want = opts.copy_threshold == SubscriberOptions::kCopyThresholdAuto
                                   ? std::max<std::uint32_t>(1, quota / 2)
                                   : opts.copy_threshold;
    return std::min(want, quota - 1);
  }

  // Lease pressure: copies the payload into heap memory and returns the lease at once.
  Result<memory::Buffer> copy_out(RemoteConnection& c, const memory::Segment& seg,
                                  wire::BufferDesc& d) {
    PLX_ASSIGN(memory::Buffer b, detail::copy_remote_buffer(c, seg, d));
    ++st.copies;
    st.bytes_copied += d.length;
    if (!copy_logged) {
      copy_logged = true;
      PLX_LOG(info, kLog,
              "%s: holding %u of %u leases (downstream keeps buffers): copying payloads past "
              "copy_threshold %u so the publisher never stalls on our quota",
              path.c_str(), c.leases(), st.quota, copy_threshold());
    }
    return b;
  }

  // Adaptive spin before sleeping (like glibc's adaptive mutexes): wait() spins up to
  // spin_budget (at most opts.spin), which follows what the last waits needed. A wait that
  // found data within opts.spin restores the full spin (spinning would catch such gaps); a
  // sleep that lasted longer halves it, down to none. A stream whose buffers are further apart
  // than opts.spin (video at any frame rate, a paced sender) soon sleeps at once and spends no
  // CPU spinning per buffer; a burst of close buffers brings the spin back after one sleep.
  std::chrono::nanoseconds spin_budget{0};

  void adapt_spin(Clock::time_point wait_start) {
    if (Clock::now() - wait_start <= opts.spin) {
      spin_budget = opts.spin;
    } else {
      spin_budget /= 2;
      if (spin_budget < std::chrono::microseconds(1)) spin_budget = std::chrono::nanoseconds(0);
    }
  }

  // Sleeps until the ring may have something, the socket speaks, or the deadline.
  void wait(Clock::time_point deadline) {
    const std::shared_ptr<RemoteConnection> keep = conn;  // drain_socket() may drop conn
    RemoteConnection& c = *keep;
    auto has_data = [&] { return reader.has_data(c); };
    if (opts.busy_poll) {
      // The socket (hang-up, segment announcements) is polled once a millisecond, not every
      // N spins: a syscall costs microseconds on some VMs, and a message landing during one
      // would wait for it.
      auto next_socket_check = Clock::now();
      for (unsigned i = 0;; ++i) {
        if (has_data()) {
          PLX_PROBE_BEGIN("receive (from the spin)");
          return;
        }
        if ((i & 255) == 255) {
          publish_metrics();
          if (interrupt.raised.load(std::memory_order_relaxed)) return;
          const auto now = Clock::now();
          if (now >= deadline) return;
          if (now >= next_socket_check) {
            next_socket_check = now + std::chrono::milliseconds(1);
            // A deadline in the past: one poll that does not wait. A failed poll (not
            // expected) is left to drain_socket()'s recv to report.
            const auto polled = base::wait_fd(c.sock.get(), POLLIN, -1, base::Deadline{});
            if (!polled || *polled == base::Wait::ready) {
              // A failure there is the connection's, kept for the next recv*() to return.
              (void)drain_socket(c);
              return;
            }
          }
        }
        parallax::cpu_relax();
      }
    }
    // With no spin at all (spin = 0) the budget stays 0: no clock reads for it, one of them on
    // the path between the wake-up and recv() returning.
    const bool adaptive = opts.spin.count() > 0;
    const auto start = adaptive ? Clock::now() : Clock::time_point{};
    if (spin_budget.count() > 0) {
      const auto until = start + spin_budget;
      unsigned i = 0;
      while (!has_data()) {
        if ((++i & 63) == 0 && Clock::now() >= until) break;
        parallax::cpu_relax();
      }
      if (has_data()) {
        spin_budget = opts.spin;
        return;
      }
    }
    publish_metrics(/*force=*/true);  // about to sleep: the exporter sees where we stopped
    sleep(c, deadline);
    ++st.wakeups;
    if (adaptive) adapt_spin(start);
    PLX_PROBE_AT(1, "wait's end");
  }

  // How long a sleep waits on the futex before it moves to the sockets. A futex wake-up is about
  // half as slow as a socket's here (bench_ipc's floor rows), but a futex wait does not see a
  // publisher that died: within this window one is noticed at its end, after it at once. So a
  // stream with gaps under the window (video down to 20 fps, paced buffers) sleeps on the futex,
  // and an idle connection costs no periodic wake-ups.
  static constexpr std::chrono::milliseconds kFutexWindow{50};
  bool futex_failed{false};  // a futex wait failed (not expected): socket sleeps from then on

  // The sleep itself: first a futex wait on the ack area's sub_sleeping (kSleepFutex since
  // begin_sleep()), which the publisher sets to 0 and wakes after a ring write or a control
  // message, and interrupt() too (it knows the word meanwhile); then, if the window ran out,
  // a poll of the wake socket (the publisher writes a byte when it finds kSleepSocket), the
  // control socket and the interrupt, until the deadline.
  void sleep(RemoteConnection& c, Clock::time_point deadline) {
    PLX_TRACE_SPAN("ipc.sleep");
    if (!futex_failed) {
      if (!reader.begin_sleep(c, wire::kSleepFutex)) return;
      std::atomic<std::uint32_t>* word = &c.ah->sub_sleeping;
      {
        std::lock_guard lk(interrupt.sleep_mu);
        interrupt.sleep_word = word;
      }
      // A failed wait (not expected: the word is ours and mapped) moves to the socket sleep
      // for good.
      Result<base::FutexWait> w = base::FutexWait::woken;
      if (!interrupt.is_raised()) {
        const auto window_end = Clock::now() + kFutexWindow;
        w = base::futex_wait(*word, wire::kSleepFutex, std::min(deadline, window_end),
                             base::FutexScope::shared);
        PLX_PROBE_BEGIN("receive (from the futex wait)");
      }
      {
        std::lock_guard lk(interrupt.sleep_mu);
        interrupt.sleep_word = nullptr;
      }
      if (!w) {
        futex_failed = true;
        PLX_LOG(warn, kLog, "%s: futex wait failed (%s); sleeping on the wake socket from now on",
                path.c_str(), w.error().message.c_str());
      }
      if (w && *w != base::FutexWait::timed_out) {
        detail::RingReader::end_sleep(c);
        PLX_PROBE_AT(0, "end sleep");
        return;
      }
      // The window or the caller's deadline ran out: a publisher that died while we slept
      // cannot have told us, its hang-up is on the sockets. Look without waiting (a caller that
      // waits in short recv_for() slices never gets to the socket sleep below).
      if (Clock::now() >= deadline || interrupt.is_raised()) {
        detail::RingReader::end_sleep(c);
        check_sockets(c);
        return;
      }
    }
    if (wake_pending) {
      wake_pending = false;
      if (!os::drain_wake(c.wake.get())) {
        detail::RingReader::end_sleep(c);
        hup = true;  // the publisher closed its end
        return;
      }
    }
    if (!reader.begin_sleep(c, wire::kSleepSocket)) return;
    // The wake socket, the control socket and the interrupt, until the deadline (none for
    // recv()). An interrupt ends the wait; the revents of the others are handled all the same.
    pollfd p[2] = {{c.wake.get(), POLLIN, 0}, {c.sock.get(), POLLIN, 0}};
    const Result<base::Wait> w = base::wait_fds(p, interrupt.fd.get(), deadline);
    detail::RingReader::end_sleep(c);
    // A failed wait (not expected: our own fds) or a timeout: next() looks again.
    if (!w || *w == base::Wait::timed_out) return;
    on_sockets(c, p);
  }
  // The same two sockets, one look without waiting.
  void check_sockets(RemoteConnection& c) {
    pollfd p[2] = {{c.wake.get(), POLLIN, 0}, {c.sock.get(), POLLIN, 0}};
    const Result<base::Wait> w = base::wait_fds(p, -1, Clock::now());  // past: no wait
    if (w && *w == base::Wait::ready) on_sockets(c, p);
  }
  // What the wake socket (p[0]) and the control socket (p[1]) said.
  void on_sockets(RemoteConnection& c, const pollfd (&p)[2]) {
    if (p[0].revents & POLLIN) wake_pending = true;
    // The publisher closed its end of the wake socket: it dropped the connection, or died (a
    // hostile one may do so without closing the socket; either way nothing will wake us).
    if (p[0].revents & (POLLHUP | POLLERR)) hup = true;
    // A failure there is the connection's, kept for the next recv*() to return.
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) (void)drain_socket(c);
  }
  // The wake socket woke us and was not read yet: drained before the next socket sleep, not
  // right after the wake-up (one syscall less between the publisher's write and recv()
  // returning). Safe because the publisher writes it only after it saw kSleepSocket, which we
  // store after the drain.
  bool wake_pending{false};

  Result<void> reconnect() {
    drop_conn();
    const auto budget =
        opts.connect_timeout.count() > 0 ? opts.connect_timeout : std::chrono::milliseconds(5000);
    const auto deadline = Clock::now() + budget;
    for (;;) {
      auto r = handshake(deadline);
      if (r) {
        ++st.reconnects;
        return {};
      }
      if (r.error().code == Errc::cancelled) return std::move(r).error();
      if (Clock::now() >= deadline)
        return err(Errc::unavailable, "reconnect failed: " + r.error().message);
      if (!detail::nap(interrupt, deadline, std::chrono::milliseconds(10)))
        return err(Errc::cancelled, "subscriber interrupted");
    }
  }

  // What next() found: a Buffer (in `out_buffer`), an event (in `out_event`), or the end of
  // the stream (goodbye). recv() takes the Buffer from there without the Item variant's detour
  // (~220 instructions per buffer less, callgrind on tests/ipc/ipc_loop); recv_item() wraps it.
  enum class Next : std::uint8_t { buffer, event, end };
  memory::Buffer out_buffer;
  Event out_event;

  Result<std::optional<Item>> next_item(Clock::time_point deadline) {
    PLX_ASSIGN(const Next n, next(deadline));
    if (n == Next::buffer) return std::optional<Item>(Item(std::move(out_buffer)));
    if (n == Next::event) return std::optional<Item>(Item(std::move(out_event)));
    return std::optional<Item>();
  }

  Result<Next> next(Clock::time_point deadline) {
    for (;;) {
      if (interrupt.is_raised()) return err(Errc::cancelled, "subscriber interrupted");
      if (ended) return Next::end;
      if (!conn) {
        if (failure) return *failure;
        return err(Errc::unavailable, "not connected to " + path);
      }
      // The publisher sent control messages (or dropped us) since we last read the socket: read
      // them before the next record, which they precede (a futex sleep does not watch the
      // socket; this counter says when to read it). One load of a line the publisher writes
      // only for control messages.
      if (const std::uint32_t ctl = conn->rh->ctl_sent.load(std::memory_order_acquire);
          ctl != conn->ctl_seen) {
        conn->ctl_seen = ctl;
        const std::shared_ptr<RemoteConnection> keep = conn;  // drain_socket() may drop conn
        (void)drain_socket(*keep);  // a failure closes the connection: seen at the loop's top
        continue;
      }
      PLX_PROBE_AT(2, "control check");
      auto got = reader.take(*conn);
      PLX_PROBE_AT(3, "take+claim");
      if (!got) return protocol_error(got.error().message);
      if (*got) {
        PLX_TRACE_SPAN("ipc.receive");
        const std::span<const std::byte> bytes = reader.record();
        if (wire::peek_record_type(bytes) == static_cast<std::uint16_t>(wire::RecordType::buffer)) {
          // The common record, decoded into a reused descriptor (no variant, no allocation).
          if (auto r = wire::decode_buffer(bytes, desc); !r)
            return protocol_error(r.error().message);
          PLX_PROBE_AT(4, "decode");
          const std::uint64_t send_ns = desc.send_ns;
          PLX_ASSIGN(out_buffer, make_buffer(desc));
          PLX_PROBE_AT(5, "make buffer");
          ++st.buffers;
          note_transit(send_ns);
          PLX_PROBE_END(6, "transit stamp");
          return Next::buffer;
        }
        auto rec = wire::decode_record(bytes);
        if (!rec) return protocol_error(rec.error().message);
        if (std::holds_alternative<wire::Pad>(*rec)) continue;
        if (std::holds_alternative<wire::Goodbye>(*rec)) {
          goodbye = true;
          ended = true;
          drop_conn();
          return Next::end;
        }
        if (auto* d = std::get_if<wire::BufferDesc>(&*rec)) {
          const std::uint64_t send_ns = d->send_ns;
          PLX_ASSIGN(out_buffer, make_buffer(*d));
          ++st.buffers;
          note_transit(send_ns);
          return Next::buffer;
        }
        out_event = std::get<Event>(std::move(*rec));
        if (out_event.type == EventType::caps) format = out_event.caps.text();
        if (out_event.type == EventType::segment) segment = out_event.segment;
        ++st.events;
        return Next::event;
      }
      if (hup) {
        // Everything written before the publisher went away has been read.
        drop_conn();
        if (opts.reconnect) {
          PLX_TRY(reconnect());
          continue;
        }
        return err(Errc::unavailable, "publisher on " + path + " went away without a clean close");
      }
      if (Clock::now() >= deadline) return err(Errc::timeout, "nothing received in time");
      wait(deadline);
    }
  }

  // Metrics: `st` belongs to the consumer thread, so the exporter reads a snapshot that the
  // consumer copies on its way out of recv*() when the exporter asked for one (one relaxed
  // load per call otherwise), and always before going to sleep. So the figures of a receiver
  // that waits are exact; those of a busy one lag by up to one export interval.
  std::mutex metrics_mu;
  std::optional<SubscriberStats> metrics_snap;  // metrics_mu
  std::atomic<bool> metrics_want{true};
  void publish_metrics(bool force = false) {
    if (!force && !metrics_want.load(std::memory_order_relaxed)) return;
    SubscriberStats s = st;
    s.copy_threshold = copy_threshold();
    if (conn) s.leases = conn->leases();
    std::lock_guard lk(metrics_mu);
    metrics_snap = std::move(s);
    metrics_want.store(false, std::memory_order_relaxed);
  }
  std::optional<SubscriberStats> metrics_snapshot() {
    std::lock_guard lk(metrics_mu);
    metrics_want.store(true, std::memory_order_relaxed);
    return metrics_snap;
  }
  // The last member: unregistered (waiting for a running export) before the snapshot goes.
  observe::MetricsRegistry::Registration metrics;
};

// ---- public API -----------------------------------------------------------------------------

IpcSubscriber::IpcSubscriber() noexcept = default;
IpcSubscriber::IpcSubscriber(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
IpcSubscriber::IpcSubscriber(IpcSubscriber&&) noexcept = default;
IpcSubscriber& IpcSubscriber::operator=(IpcSubscriber&&) noexcept = default;
IpcSubscriber::~IpcSubscriber() {
  close();
}

Result<IpcSubscriber> IpcSubscriber::connect(std::string_view path, SubscriberOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->path = std::string(path);
  impl->opts = options;
  impl->spin_budget = options.spin;
  PLX_ASSIGN(impl->interrupt.fd, os::make_eventfd());
  PLX_TRY(impl->handshake(Clock::now() + options.connect_timeout));
  impl->publish_metrics();
  Impl* raw = impl.get();
  impl->metrics =
      detail::register_subscriber_metrics(impl->path, [raw] { return raw->metrics_snapshot(); });
  return IpcSubscriber(std::move(impl));
}

namespace {
Clock::time_point deadline_after(std::chrono::nanoseconds t) {
  const auto now = Clock::now();
  if (t > std::chrono::hours(24 * 365)) return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(t);
}
}  // namespace

Result<std::optional<Item>> IpcSubscriber::recv_item() {
  if (!impl_) return err(Errc::failed_precondition, "empty subscriber");
  auto r = impl_->next_item(Clock::time_point::max());
  impl_->publish_metrics();
  return r;
}

Result<std::optional<Item>> IpcSubscriber::recv_item_for(std::chrono::nanoseconds timeout) {
  if (!impl_) return err(Errc::failed_precondition, "empty subscriber");
  auto r = impl_->next_item(deadline_after(timeout));
  impl_->publish_metrics();
  return r;
}

Result<std::optional<memory::Buffer>> IpcSubscriber::recv_for(std::chrono::nanoseconds timeout) {
  if (!impl_) return err(Errc::failed_precondition, "empty subscriber");
  const auto deadline = deadline_after(timeout);
  for (;;) {
    auto next = impl_->next(deadline);
    impl_->publish_metrics();
    PLX_ASSIGN(const Impl::Next n, std::move(next));
    if (n == Impl::Next::buffer) return std::optional<memory::Buffer>(std::move(impl_->out_buffer));
    if (n == Impl::Next::end) return std::optional<memory::Buffer>();
    if (impl_->out_event.type == EventType::eos) return std::optional<memory::Buffer>();
  }
}

Result<std::optional<memory::Buffer>> IpcSubscriber::recv() {
  return recv_for(std::chrono::nanoseconds::max());
}

const std::optional<std::string>& IpcSubscriber::format() const {
  static const std::optional<std::string> none;
  return impl_ ? impl_->format : none;
}

const std::optional<StreamSegment>& IpcSubscriber::segment() const {
  static const std::optional<StreamSegment> none;
  return impl_ ? impl_->segment : none;
}

void IpcSubscriber::interrupt() {
  if (!impl_) return;
  impl_->interrupt.raise();
}

void IpcSubscriber::resume() {
  if (!impl_) return;
  impl_->interrupt.raised.store(false, std::memory_order_release);
  os::drain_eventfd(impl_->interrupt.fd.get());
}

SubscriberStats IpcSubscriber::stats() const {
  if (!impl_) return {};
  SubscriberStats s = impl_->st;
  s.copy_threshold = impl_->copy_threshold();
  if (impl_->conn) s.leases = impl_->conn->leases();
  s.latency_p50_ns = wire::latency_quantile(s.latency_log2, 0.5, s.latency_max_ns);
  s.latency_p99_ns = wire::latency_quantile(s.latency_log2, 0.99, s.latency_max_ns);
  return s;
}

SubscriberStats IpcSubscriber::stats_snapshot() const {
  if (!impl_) return {};
  SubscriberStats s = impl_->metrics_snapshot().value_or(SubscriberStats{});
  s.latency_p50_ns = wire::latency_quantile(s.latency_log2, 0.5, s.latency_max_ns);
  s.latency_p99_ns = wire::latency_quantile(s.latency_log2, 0.99, s.latency_max_ns);
  return s;
}

bool IpcSubscriber::connected() const {
  return impl_ && impl_->conn != nullptr;
}

void IpcSubscriber::close() {
  if (impl_) impl_->drop_conn();
}

}  // namespace parallax::link
