// SPDX-License-Identifier: MIT OR Apache-2.0
// IpcSubscriber: connects to a publisher, maps its ring and segments read-only, and turns ring
// records into Buffers over the publisher's memory. Dropping such a Buffer writes its lease
// token into the ack area's return slots (no syscall unless the publisher is asleep waiting).
//
// Threads: recv*() runs on one consumer thread; Buffers may be released from any thread
// (Conn::ret_mu serialises the return slots). Conn outlives the subscriber while any of its
// Buffers lives, so the mappings those Buffers point into stay valid.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "ipc/metrics_export.h"
#include "ipc/os.h"
#include "ipc/ring.h"
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

}  // namespace

struct RemoteCore;

/// The shared state of one connection.
struct Conn {
  UniqueFd sock;
  memory::Segment ring, ack;  // the publisher's sealed memfds: ring read-only, ack shared
  const wire::RingHeader* rh{nullptr};
  const std::byte* rdata{nullptr};
  std::uint32_t cap{0};
  wire::AckHeader* ah{nullptr};
  std::atomic<std::uint64_t>* rets{nullptr};
  std::uint32_t ret_cap{0};
  // Our end of the connection's wake socket: the publisher wakes us through it and we wake
  // it. Held until this Conn is destroyed, i.e. until every Buffer of the connection is gone
  // and its mappings are unmapped: the publisher keeps our leases quarantined until then.
  UniqueFd wake;
  wire::Welcome welcome;
  // Touched by the consumer thread only. An entry is erased when the publisher retires the
  // segment; Buffer cores over it hold a reference, so the mapping goes with the last of them.
  std::map<std::uint64_t, std::shared_ptr<const memory::Segment>> segments;
  std::uint64_t mapped_bytes{0};  // sum of the sizes of the segments mapped (not retired)

  std::mutex ret_mu;
  std::uint64_t ret_write{0};
  bool alive{true};
  std::atomic<std::uint32_t> leases{0};

  // Buffer cores of this connection, recycled instead of a new/delete per received buffer.
  // A dropped Buffer pushes its core onto `returned` (any thread: a lock-free stack, push
  // only); the consumer thread takes the whole stack at once into `spare` when that is empty,
  // so no pop ever races a push (no ABA). Bounded by the most Buffers alive at once. Cores
  // here hold no reference to the Conn (that would be a cycle): ~Conn deletes them.
  std::atomic<RemoteCore*> returned{nullptr};
  RemoteCore* spare{nullptr};  // consumer thread only

  ~Conn();
  RemoteCore* take_core();
  void recycle(RemoteCore* c) noexcept;

  void return_lease(std::uint64_t token) noexcept {
    leases.fetch_sub(1, std::memory_order_relaxed);
    {
      std::lock_guard lk(ret_mu);
      if (!alive) return;
      rets[ret_write & (ret_cap - 1)].store(token, std::memory_order_relaxed);
      ++ret_write;
      ah->ret_write.store(ret_write, std::memory_order_seq_cst);
    }
    poke_publisher();
  }

  // The publisher sleeps only when it waits for us; it says so in the ring header.
  void poke_publisher() noexcept {
    // Our read_pos CAS / ret_write store are seq_cst, so is this load: the publisher either
    // sees our update before sleeping or we see its flag.
    if (ah->pub_waiting.load(std::memory_order_seq_cst) == 0) return;
    const bool enough = ah->ret_write.load(std::memory_order_relaxed) >=
                            ah->wake_ret.load(std::memory_order_relaxed) ||
                        ah->read_pos.load(std::memory_order_relaxed) >=
                            ah->wake_read.load(std::memory_order_relaxed);
    if (enough && ah->pub_waiting.exchange(0, std::memory_order_seq_cst) != 0) {
      PLX_TRACE_SPAN("ipc.wake");
      os::send_wake(wake.get());
    }
  }

  void shut() {
    {
      std::lock_guard lk(ret_mu);
      alive = false;
    }
    if (sock) ::shutdown(sock.get(), SHUT_RDWR);
  }
};

namespace {

void release_remote(memory::detail::BufferCore* c) noexcept;

}  // namespace

struct RemoteCore : memory::detail::BufferCore {
  std::shared_ptr<Conn> conn;                      // empty while recycled
  std::shared_ptr<const memory::Segment> mapping;  // keeps a retired segment mapped
  std::uint64_t token{0};
  RemoteCore* next{nullptr};  // in Conn::returned / Conn::spare
};

Conn::~Conn() {
  RemoteCore* lists[2] = {returned.exchange(nullptr, std::memory_order_acquire), spare};
  for (RemoteCore* c : lists) {
    while (c != nullptr)
      delete std::exchange(c, c->next);
  }
}

RemoteCore* Conn::take_core() {
  if (spare == nullptr) spare = returned.exchange(nullptr, std::memory_order_acquire);
  if (spare == nullptr) {
    auto* c = new RemoteCore;
    c->release = &release_remote;
    c->owner = this;
    return c;
  }
  return std::exchange(spare, spare->next);
}

void Conn::recycle(RemoteCore* c) noexcept {
  c->next = returned.load(std::memory_order_relaxed);
  while (!returned.compare_exchange_weak(c->next, c, std::memory_order_release,
                                         std::memory_order_relaxed)) {
  }
}

namespace {

void release_remote(memory::detail::BufferCore* c) noexcept {
  auto* rc = static_cast<RemoteCore*>(c);
  // The core goes back to its Conn with no reference to it; `conn` keeps the Conn alive until
  // we are done (if it is the last one, ~Conn deletes the core with the rest).
  const std::shared_ptr<Conn> conn = std::move(rc->conn);
  rc->mapping.reset();
  conn->return_lease(rc->token);
  conn->recycle(rc);
}

}  // namespace

struct IpcSubscriber::Impl {
  std::string path;
  SubscriberOptions opts;
  std::shared_ptr<Conn> conn;
  std::uint64_t read_pos{0};
  bool hup{false};      // the socket is closed: drain the ring, then end
  bool goodbye{false};  // the publisher closed cleanly
  bool ended{false};    // nothing more will come (clean end)
  std::optional<std::string> format;
  std::optional<StreamSegment> segment;
  UniqueFd interrupt_efd;
  std::atomic<bool> interrupted{false};
  // The wake socket woke us and was not read yet. It is drained before the next sleep, not
  // right after the wake-up: one syscall less between the publisher's write and recv()
  // returning. Safe because the publisher writes it only after it saw sub_sleeping = 1,
  // which we store after the drain.
  bool wake_pending{false};
  // The record being decoded: copied out of the ring before the claim (the publisher may
  // retract and overwrite it meanwhile under drop-oldest; what we copied is then discarded).
  std::vector<std::uint64_t> scratch;
  wire::BufferDesc desc;  // reused for every buffer record (its metadata storage too)
  SubscriberStats st;
  bool copy_logged{false};

  std::optional<Error> failure;  // why the connection was closed, for the next recv*()

  Error protocol_error(const std::string& why) {
    PLX_LOG(warn, kLog, "closing connection to %s: %s", path.c_str(), why.c_str());
    drop_conn();
    failure = err(Errc::data_loss, "protocol error from the publisher: " + why);
    return *failure;
  }

  void drop_conn() {
    if (conn) conn->shut();
    conn.reset();
  }

  // Sleeps up to `ms` (never past the deadline) unless interrupted; false when interrupted.
  bool nap(Clock::time_point deadline, int ms) {
    if (interrupted.load(std::memory_order_acquire)) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd p{interrupt_efd.get(), POLLIN, 0};
    (void)::poll(&p, 1, static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, ms)));
    return !interrupted.load(std::memory_order_acquire);
  }

  // Non-blocking connect: a Unix socket connects at once or fails at once (EAGAIN when the
  // listener's backlog is full, a listener that never accepts included), so retrying every
  // 10 ms until the deadline, watching interrupt(), bounds the whole thing.
  Result<UniqueFd> connect_socket(const std::string& p, Clock::time_point deadline) {
    PLX_ASSIGN(sockaddr_un addr, os::make_addr(p));
    for (;;) {
      UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      if (!fd) return Error::from_errno("socket");
      if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
      const int e = errno;
      if (e == EINTR) continue;
      const bool retry = e == ENOENT || e == ECONNREFUSED || e == EAGAIN;
      if (!retry || Clock::now() >= deadline) {
        if (e == ENOENT) return err(Errc::not_found, "no publisher socket at " + p);
        if (e == ECONNREFUSED) return err(Errc::unavailable, "nobody is listening on " + p);
        if (e == EAGAIN)
          return err(Errc::timeout, "the publisher on " + p + " does not accept connections");
        return Error::from_errno("connect " + p, e);
      }
      if (!nap(deadline, 10)) return err(Errc::cancelled, "subscriber interrupted");
    }
  }

  // Handles every publisher message waiting on the socket (segment announcements, or a
  // refusal); sets hup when the publisher closed.
  Result<void> drain_socket(Conn& c) {
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
          PLX_LOG(warn, kLog, "closing connection to %s: %s", path.c_str(), why.c_str());
          drop_conn();
          failure = err(Errc::resource_exhausted, why);
          return *failure;
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
        const Errc code = rf->code;
        std::string text = rf->text;
        drop_conn();
        failure = err(code, "publisher closed the connection: " + text);
        return *failure;
      } else {
        return protocol_error("unexpected welcome after the handshake");
      }
    }
  }

  // `deadline` bounds the connect attempts and the wait for the welcome; with connect_timeout
  // 0 (one connect attempt) the welcome is awaited for 5 s.
  Result<void> handshake(Clock::time_point deadline) {
    PLX_ASSIGN(UniqueFd sock, connect_socket(path, deadline));
    const auto welcome_deadline = opts.connect_timeout.count() > 0
                                      ? deadline
                                      : std::max(deadline, Clock::now() + std::chrono::seconds(5));
    wire::Hello hello;
    if (opts.policy) hello.policy = static_cast<std::uint32_t>(*opts.policy);
    // A refused peer may find the connection already closed when it says hello: the refusal
    // waiting in the socket is the answer then.
    auto sent = os::send_msg(sock.get(), wire::encode_hello(hello));
    for (;;) {
      if (interrupted.load(std::memory_order_acquire))
        return err(Errc::cancelled, "subscriber interrupted");
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(welcome_deadline - Clock::now());
      if (left.count() <= 0) return err(Errc::timeout, "no welcome from the publisher on " + path);
      pollfd pfd[2] = {{sock.get(), POLLIN, 0}, {interrupt_efd.get(), POLLIN, 0}};
      const int n = ::poll(pfd, 2, static_cast<int>(std::min<std::int64_t>(left.count() + 1, 100)));
      if (n > 0 && pfd[0].revents != 0) break;
    }
    std::byte buf[wire::kMaxMsgSize];
    PLX_ASSIGN(os::Received r, os::recv_msg(sock.get(), buf, true));
    if (r.closed || r.would_block) {
      if (!sent) return std::move(sent).error();
      return err(Errc::unavailable, "publisher closed the connection during the handshake");
    }
    PLX_ASSIGN(wire::PublisherMsg m,
               wire::decode_publisher_msg(std::span<const std::byte>(buf, r.size)));
    if (auto* rf = std::get_if<wire::Refuse>(&m))
      return err(rf->code, "publisher refused the connection: " + rf->text);
    auto* w = std::get_if<wire::Welcome>(&m);
    if (w == nullptr) return err(Errc::data_loss, "expected a welcome from the publisher");
    if (r.fds.size() != wire::kWelcomeFds)
      return err(Errc::data_loss, "welcome without its three fds");
    auto c = std::make_shared<Conn>();
    c->welcome = *w;
    PLX_ASSIGN(c->ring, memory::Segment::import(std::move(r.fds[0]), memory::Access::read_only,
                                                w->ring_map_size, "parallax-ipc-ring",
                                                {.read_only_fd = true}));
    PLX_ASSIGN(c->ack, memory::Segment::import(std::move(r.fds[1]), memory::Access::read_write,
                                               w->ack_map_size, "parallax-ipc-ack"));
    if (!os::is_wake_socket(r.fds[2].get()))
      return err(Errc::data_loss, "welcome: the wake-up fd is not a Unix seqpacket socket");
    c->wake = std::move(r.fds[2]);
    c->rh = reinterpret_cast<const wire::RingHeader*>(c->ring.data());
    PLX_TRY(wire::check_ring_header(*c->rh, w->ring_bytes));
    c->rdata = c->ring.data() + sizeof(wire::RingHeader);
    c->cap = w->ring_bytes;
    c->ah = reinterpret_cast<wire::AckHeader*>(c->ack.writable_data());
    PLX_TRY(wire::check_ack_header(*c->ah, w->return_capacity));
    c->rets = reinterpret_cast<std::atomic<std::uint64_t>*>(c->ack.writable_data() +
                                                            sizeof(wire::AckHeader));
    c->ret_cap = w->return_capacity;
    c->ret_write = c->ah->ret_write.load(std::memory_order_acquire);
    c->sock = std::move(sock);
    read_pos = c->ah->read_pos.load(std::memory_order_acquire);
    conn = std::move(c);
    wake_pending = false;
    failure.reset();
    hup = false;
    goodbye = false;
    ended = false;
    st.quota = w->quota;
    st.publisher_pid = static_cast<pid_t>(w->publisher_pid);
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

  // The publisher moved our read position (drop-oldest retraction): validate and follow.
  Result<void> follow_retraction(std::uint64_t moved_to, std::uint64_t r) {
    const std::uint64_t w = conn->rh->write_pos.load(std::memory_order_acquire);
    if (moved_to <= r || moved_to > w || (moved_to & 7) != 0)
      return protocol_error("read position moved outside the written range");
    read_pos = moved_to;
    ++st.dropped;
    return {};
  }

  // Takes the next record off the ring; false when the ring is empty.
  Result<bool> take_record() {
    Conn& c = *conn;
    for (;;) {
      const std::uint64_t w = c.rh->write_pos.load(std::memory_order_acquire);
      const std::uint64_t r = read_pos;
      if (w == r) return false;
      if (w < r || w - r > c.cap || (w & 7) != 0) {
        // More than a ring's worth past our position is fine if the publisher retracted what
        // we had not claimed yet (drop-oldest) and wrote on: follow it, then look again.
        const std::uint64_t moved = c.ah->read_pos.load(std::memory_order_seq_cst);
        if (w < r || (w & 7) != 0 || moved == r) return protocol_error("bad ring write position");
        PLX_TRY(follow_retraction(moved, r));
        continue;
      }
      const std::uint64_t idx = r & (c.cap - 1);
      const std::uint64_t size = ring::load_word(c.rdata + idx) & 0xffffffffu;
      const bool sane = size >= 8 && size % 8 == 0 && size <= c.cap - idx && size <= w - r &&
                        size <= wire::kMaxRecordBytes;
      if (sane) {
        scratch.resize(size / 8);
        ring::load_words(scratch.data(), c.rdata + idx, size / 8);
      }
      // Claim it: if the publisher retracted it meanwhile, the CAS fails and what we copied
      // is discarded (it may be torn).
      std::uint64_t expected = r;
      if (!sane) {
        // load_word() is acquire: this re-check cannot move before the header read.
        expected = c.ah->read_pos.load(std::memory_order_seq_cst);
        if (expected == r) return protocol_error("bad record size " + std::to_string(size));
        PLX_TRY(follow_retraction(expected, r));
        continue;
      }
      if (!c.ah->read_pos.compare_exchange_strong(expected, r + size, std::memory_order_seq_cst)) {
        PLX_TRY(follow_retraction(expected, r));
        continue;
      }
      read_pos = r + size;
      c.poke_publisher();
      return true;
    }
  }

  Result<memory::Buffer> make_buffer(wire::BufferDesc& d) {
    std::shared_ptr<Conn> keep = conn;  // drain_socket() may drop conn; the core takes it
    Conn& c = *keep;
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
    if (opts.copy_threshold != 0 && c.leases.load(std::memory_order_relaxed) >= copy_threshold())
      return copy_out(c, seg, d);
    RemoteCore* core = c.take_core();
    core->refs.store(1, std::memory_order_relaxed);
    // The mapping is PROT_READ: Buffer only ever exposes const bytes of it.
    core->data = const_cast<std::byte*>(seg.data()) + d.offset;
    core->capacity = d.length;
    core->segment = &seg;
    core->mapping = it->second;
    core->segment_offset = d.offset;
    std::swap(core->meta, d.meta);  // d.meta gets the old entries' storage back for the next
    core->conn = std::move(keep);
    core->token = d.token;
    c.leases.fetch_add(1, std::memory_order_relaxed);
    return memory::Buffer::adopt(core, 0, d.length);
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
  Result<memory::Buffer> copy_out(Conn& c, const memory::Segment& seg, wire::BufferDesc& d) {
    memory::Buffer b = memory::Buffer::copy_from(
        std::span<const std::byte>(seg.data() + d.offset, d.length), std::move(d.meta));
    c.leases.fetch_add(1, std::memory_order_relaxed);  // return_lease() takes it back
    c.return_lease(d.token);
    ++st.copies;
    st.bytes_copied += d.length;
    if (!copy_logged) {
      copy_logged = true;
      PLX_LOG(info, kLog,
              "%s: holding %u of %u leases (downstream keeps buffers): copying payloads past "
              "copy_threshold %u so the publisher never stalls on our quota",
              path.c_str(), c.leases.load(std::memory_order_relaxed), st.quota, copy_threshold());
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
    const std::shared_ptr<Conn> keep = conn;  // drain_socket() may drop conn
    Conn& c = *keep;
    auto has_data = [&] { return c.rh->write_pos.load(std::memory_order_acquire) != read_pos; };
    if (opts.busy_poll) {
      // The socket (hang-up, segment announcements) is polled once a millisecond, not every
      // N spins: a syscall costs microseconds on some VMs, and a message landing during one
      // would wait for it.
      auto next_socket_check = Clock::now();
      for (unsigned i = 0;; ++i) {
        if (has_data()) return;
        if ((i & 255) == 255) {
          publish_metrics();
          if (interrupted.load(std::memory_order_relaxed)) return;
          const auto now = Clock::now();
          if (now >= deadline) return;
          if (now >= next_socket_check) {
            next_socket_check = now + std::chrono::milliseconds(1);
            pollfd p{c.sock.get(), POLLIN, 0};
            if (::poll(&p, 1, 0) > 0) {
              (void)drain_socket(c);
              return;
            }
          }
        }
        parallax::cpu_relax();
      }
    }
    const auto start = Clock::now();
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
    if (wake_pending) {
      wake_pending = false;
      if (!os::drain_wake(c.wake.get())) {
        hup = true;  // the publisher closed its end
        return;
      }
    }
    c.ah->sub_sleeping.store(1, std::memory_order_seq_cst);
    if (c.rh->write_pos.load(std::memory_order_seq_cst) != read_pos) {
      c.ah->sub_sleeping.store(0, std::memory_order_relaxed);
      return;
    }
    pollfd p[3] = {
        {c.wake.get(), POLLIN, 0}, {c.sock.get(), POLLIN, 0}, {interrupt_efd.get(), POLLIN, 0}};
    int timeout = -1;
    if (deadline != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      timeout = static_cast<int>(std::max<std::int64_t>(0, left.count() + 1));
    }
    PLX_TRACE_SPAN("ipc.sleep");
    int n = ::poll(p, 3, timeout);
    c.ah->sub_sleeping.store(0, std::memory_order_relaxed);
    ++st.wakeups;
    adapt_spin(start);
    if (n <= 0) return;
    if (p[0].revents & POLLIN) wake_pending = true;
    // The publisher closed its end of the wake socket: it dropped the connection (a hostile
    // one may do so without closing the socket; either way nothing will wake us any more).
    if (p[0].revents & (POLLHUP | POLLERR)) hup = true;
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) (void)drain_socket(c);
  }

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
      if (!nap(deadline, 10)) return err(Errc::cancelled, "subscriber interrupted");
    }
  }

  Result<std::optional<Item>> next_item(Clock::time_point deadline) {
    for (;;) {
      if (interrupted.load(std::memory_order_acquire))
        return err(Errc::cancelled, "subscriber interrupted");
      if (ended) return std::optional<Item>();
      if (!conn) {
        if (failure) return *failure;
        return err(Errc::unavailable, "not connected to " + path);
      }
      PLX_ASSIGN(bool got, take_record());
      if (got) {
        PLX_TRACE_SPAN("ipc.receive");
        const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(scratch.data()),
                                               scratch.size() * 8);
        if (wire::peek_record_type(bytes) == static_cast<std::uint16_t>(wire::RecordType::buffer)) {
          // The common record, decoded into a reused descriptor (no variant, no allocation).
          if (auto r = wire::decode_buffer(bytes, desc); !r)
            return protocol_error(r.error().message);
          const std::uint64_t send_ns = desc.send_ns;
          PLX_ASSIGN(memory::Buffer b, make_buffer(desc));
          ++st.buffers;
          note_transit(send_ns);
          return std::optional<Item>(Item(std::move(b)));
        }
        auto rec = wire::decode_record(bytes);
        if (!rec) return protocol_error(rec.error().message);
        if (std::holds_alternative<wire::Pad>(*rec)) continue;
        if (std::holds_alternative<wire::Goodbye>(*rec)) {
          goodbye = true;
          ended = true;
          drop_conn();
          return std::optional<Item>();
        }
        if (auto* d = std::get_if<wire::BufferDesc>(&*rec)) {
          const std::uint64_t send_ns = d->send_ns;
          PLX_ASSIGN(memory::Buffer b, make_buffer(*d));
          ++st.buffers;
          note_transit(send_ns);
          return std::optional<Item>(Item(std::move(b)));
        }
        Event& e = std::get<Event>(*rec);
        if (e.type == EventType::caps) format = e.caps.text();
        if (e.type == EventType::segment) segment = e.segment;
        ++st.events;
        return std::optional<Item>(Item(std::move(e)));
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
    if (conn) s.leases = conn->leases.load(std::memory_order_relaxed);
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
  PLX_ASSIGN(impl->interrupt_efd, os::make_eventfd());
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
    auto next = impl_->next_item(deadline);
    impl_->publish_metrics();
    PLX_ASSIGN(std::optional<Item> item, std::move(next));
    if (!item) return std::optional<memory::Buffer>();
    if (auto* b = std::get_if<memory::Buffer>(&*item))
      return std::optional<memory::Buffer>(std::move(*b));
    if (std::get<Event>(*item).type == EventType::eos) return std::optional<memory::Buffer>();
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
  impl_->interrupted.store(true, std::memory_order_release);
  os::signal_eventfd(impl_->interrupt_efd.get());
}

void IpcSubscriber::resume() {
  if (!impl_) return;
  impl_->interrupted.store(false, std::memory_order_release);
  os::drain_eventfd(impl_->interrupt_efd.get());
}

SubscriberStats IpcSubscriber::stats() const {
  if (!impl_) return {};
  SubscriberStats s = impl_->st;
  s.copy_threshold = impl_->copy_threshold();
  if (impl_->conn) s.leases = impl_->conn->leases.load(std::memory_order_relaxed);
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
