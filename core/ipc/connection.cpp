// SPDX-License-Identifier: MIT OR Apache-2.0
// One subscriber connection of an IpcPublisher (see connection.h): its ring, ack area, leases,
// quota and wake-ups. Every lease is a Buffer reference held here until the subscriber returns
// it through its ack area or the connection ends (then it waits in the quarantine).
#include "ipc/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <new>

#include "base/futex.h"
#include "base/wait.h"
#include "ipc/hotpath_probe.h"
#include "ipc/os.h"
#include "ipc/ring.h"
#include "parallax/cpu_relax.h"
#include "parallax/log.h"
#include "parallax/trace.h"

namespace parallax::link::detail {

namespace {

constexpr const char* kLog = "ipc";
constexpr std::size_t kMaxPendingEvents = 256;
// The longest a publisher sleeps on a subscriber before it looks again (block_timeout, a lost
// wake-up).
constexpr std::chrono::milliseconds kWaitSlice{100};

std::uint32_t next_pow2(std::uint32_t v) {
  std::uint32_t p = 1;
  while (p < v)
    p <<= 1;
  return p;
}

}  // namespace

Connection::Connection(const ConnectionShared& shared, std::uint64_t conn_id, UniqueFd socket,
                       const ucred& peer)
    : id(conn_id),
      sock(std::move(socket)),
      cred(peer),
      accepted_at(std::chrono::steady_clock::now()),
      sh_(shared) {}

// ---- handshake --------------------------------------------------------------------------------

Result<void> Connection::setup(const wire::Hello& hello, std::uint32_t quota,
                               const memory::MemoryPool& pool) {
  const PublisherOptions& opts = sh_.opts;
  quota_ = quota;
  policy_ = hello.policy == wire::kPolicyDefault ? opts.default_policy
                                                 : static_cast<Policy>(hello.policy);
  if (quota_ == 0) quota_ = opts.max_leases_per_subscriber;
  cap_ = opts.ring_bytes;
  ret_cap_ = next_pow2(quota_);
  PLX_ASSIGN(ring_region_, memory::SharedMemorySegment::create("parallax-ipc-ring",
                                                               sizeof(wire::RingHeader) + cap_));
  PLX_ASSIGN(ack_region_, memory::SharedMemorySegment::create(
                              "parallax-ipc-ack", sizeof(wire::AckHeader) + 8ull * ret_cap_));
  rh_ = new (ring_region_.writable_data()) wire::RingHeader{};
  rh_->magic = wire::kRingMagic;
  rh_->version = wire::kVersion;
  rh_->header_size = sizeof(wire::RingHeader);
  rh_->capacity = cap_;
  rdata_ = ring_region_.writable_data() + sizeof(wire::RingHeader);
  ah_ = new (ack_region_.writable_data()) wire::AckHeader{};
  ah_->magic = wire::kAckMagic;
  ah_->version = wire::kVersion;
  ah_->header_size = sizeof(wire::AckHeader);
  ah_->return_capacity = ret_cap_;
  rets_ = reinterpret_cast<std::atomic<std::uint64_t>*>(ack_region_.writable_data() +
                                                        sizeof(wire::AckHeader));
  PLX_ASSIGN(os::WakePair wake_pair, os::make_wake_pair());
  wake_ = std::move(wake_pair.first);
  PLX_ASSIGN(UniqueFd ring_ro, ring_region_.export_fd(memory::Access::read_only));
  PLX_ASSIGN(UniqueFd ack_rw, ack_region_.export_fd(memory::Access::read_write));
  wire::Welcome w{cap_,
                  static_cast<std::uint32_t>(ring_region_.size()),
                  static_cast<std::uint32_t>(ack_region_.size()),
                  ret_cap_,
                  quota_,
                  policy_,
                  static_cast<std::uint64_t>(::getpid()),
                  id};
  auto msg = wire::encode_welcome(w);
  int fds[wire::kWelcomeFds] = {ring_ro.get(), ack_rw.get(), wake_pair.second.get()};
  PLX_TRY(os::send_msg(sock.get(), msg, fds));
  for (std::size_t i = 0; i < pool.segment_count(); ++i)
    PLX_TRY(announce_segment(pool.segment(i)));
  info_.id = id;
  info_.pid = cred.pid;
  info_.uid = cred.uid;
  info_.gid = cred.gid;
  info_.policy = policy_;
  info_.max_leases = quota_;
  active = true;
  return {};
}

void Connection::write_sticky(const std::vector<std::uint64_t>& rec) {
  write(rec.data(), rec.size() * 8, Kind::event, 0);
  ++info_.events_sent;
}

Result<void> Connection::announce_segment(const memory::Segment& seg) {
  if (seg.id() == last_segment_) return {};  // the usual case: the same segment again
  if (segments_sent_.count(seg.id()) != 0) {
    last_segment_ = seg.id();
    return {};
  }
  PLX_ASSIGN(int fd, sh_.exporter.fd(seg));
  // The fd holds mapped_size() bytes (a huge-page segment is rounded up): the importer
  // checks the memfd's size against what we announce.
  auto msg = wire::encode_segment({seg.id(), seg.mapped_size(), sh_.exporter.node_of(seg)});
  int fds[1] = {fd};
  PLX_TRY(os::send_msg(sock.get(), msg, fds));
  note_control_sent();
  segments_sent_.insert(seg.id());
  last_segment_ = seg.id();
  return {};
}

// ---- ring state -------------------------------------------------------------------------------

void Connection::kill(const char* why, bool protocol_error) {
  if (dead) return;
  dead = true;
  if (protocol_error) {
    sh_.counters.protocol_errors.fetch_add(1, std::memory_order_relaxed);
    PLX_LOG(warn, kLog, "closing subscriber %llu (pid %d): %s", static_cast<unsigned long long>(id),
            static_cast<int>(cred.pid), why);
  } else {
    PLX_LOG(info, kLog, "subscriber %llu (pid %d) gone: %s", static_cast<unsigned long long>(id),
            static_cast<int>(cred.pid), why);
  }
  // Its leases can no longer be returned, but it may still read them (Buffers it keeps, records
  // still in its ring): they stay out of the pool until its mappings are gone (quarantine).
  for (Lease& l : leases_) {
    if (l.live && l.buffer.valid()) quarantine_.push_back(std::move(l.buffer));
  }
  leases_.clear();
  free_leases_.clear();
  leases_out_ = 0;
  inflight_.clear();
  pending_.clear();
  // Also wakes a send() asleep on this subscriber: its wait watches the socket.
  if (sock) ::shutdown(sock.get(), SHUT_RDWR);
  note_control_sent();  // and the subscriber asleep on its futex: it finds the hang-up
  if (active) sh_.counters.disconnects.fetch_add(1, std::memory_order_relaxed);
}

bool Connection::release_token(std::uint64_t token) {
  const auto idx = static_cast<std::uint32_t>(token & 0xffffffffu);
  const auto gen = static_cast<std::uint32_t>(token >> 32);
  if (idx >= leases_.size()) return false;
  Lease& l = leases_[idx];
  if (!l.live || l.gen != gen) return false;
  l.live = false;
  l.buffer = memory::Buffer();
  free_leases_.push_back(idx);
  --leases_out_;
  return true;
}

bool Connection::sync() {
  if (dead || !active) return false;
  const std::uint64_t rp = ah_->read_pos.load(std::memory_order_seq_cst);
  if (rp != read_pos_) {
    if (rp < read_pos_ || rp > write_pos_) {
      kill("read position outside the written range", true);
      return false;
    }
    std::uint64_t boundary = read_pos_;
    while (!inflight_.empty() && inflight_.front().end <= rp) {
      boundary = inflight_.front().end;
      inflight_.pop_front();  // taken: a buffer's lease now waits for its return
    }
    if (boundary != rp) {
      kill("read position inside a record", true);
      return false;
    }
    read_pos_ = rp;
  }
  const std::uint64_t w = ah_->ret_write.load(std::memory_order_seq_cst);
  if (w != ret_read_) {
    if (w < ret_read_ || w - ret_read_ > ret_cap_) {
      kill("return index outside its ring", true);
      return false;
    }
    for (std::uint64_t i = ret_read_; i < w; ++i) {
      const std::uint64_t tok = rets_[i & (ret_cap_ - 1)].load(std::memory_order_relaxed);
      if (!release_token(tok)) {
        kill("returned a lease it does not hold (never leased or double release)", true);
        return false;
      }
    }
    ret_read_ = w;
  }
  return true;
}

// Reading the subscriber's counters costs cache misses on every send (it writes them for
// every buffer it takes and returns), so deliver_buffer() syncs only when what they say may
// matter: half the lease quota, half the ring or half the pool used, or events queued, and
// then after its write and wake-up. It always syncs before dropping or waiting, and the
// background thread syncs every 20 ms.
bool Connection::sync_due(const memory::MemoryPool& pool) const {
  return leases_out_ * 2 >= quota_ || (write_pos_ - read_pos_) * 2 >= cap_ || !pending_.empty() ||
         pool.in_use() * 2 >= pool.capacity();
}

std::uint64_t Connection::space_needed(std::size_t bytes) const {
  const std::uint64_t idx = write_pos_ & (cap_ - 1);
  const std::uint64_t contiguous = cap_ - idx;
  return bytes <= contiguous ? bytes : contiguous + bytes;
}

bool Connection::fits(std::size_t bytes) const {
  return space_needed(bytes) <= cap_ - (write_pos_ - read_pos_);
}

void Connection::write(const std::uint64_t* words, std::size_t bytes, Kind kind,
                       std::uint64_t token) {
  PLX_TRACE_SPAN("ipc.ring_write");
  std::uint64_t idx = write_pos_ & (cap_ - 1);
  const std::uint64_t contiguous = cap_ - idx;
  if (bytes > contiguous) {
    std::vector<std::uint64_t> pad;
    wire::encode_simple(pad, wire::RecordType::pad, contiguous);
    ring::store_words(rdata_ + idx, pad.data(), 1);
    write_pos_ += contiguous;
    inflight_.push_back({write_pos_, 0, Kind::pad});
    idx = 0;
  }
  ring::store_words(rdata_ + idx, words, bytes / 8);
  PLX_PROBE_AT(8, "ring copy");
  write_pos_ += bytes;
  inflight_.push_back({write_pos_, token, kind});
  // seq_cst: pairs with the subscriber's seq_cst store of sub_sleeping then load of
  // write_pos (two-flag handshake; no fence needed, and TSan understands it).
  rh_->write_pos.store(write_pos_, std::memory_order_seq_cst);
  PLX_PROBE_AT(9, "publish");
  wake_needed_ = true;
}

// Wakes the subscriber if it announced it sleeps (Dekker with its sleeping flag).
void Connection::wake() {
  if (!wake_needed_ || dead) return;
  wake_needed_ = false;
  if (ah_->sub_sleeping.load(std::memory_order_seq_cst) == 0) return;
  const std::uint32_t how = ah_->sub_sleeping.exchange(0, std::memory_order_seq_cst);
  if (how == 0) return;
  PLX_TRACE_SPAN("ipc.wake");
  PLX_PROBE_END(10, "to the wake call");
  // Anything but kSleepFutex (the subscriber writes the word: any value) gets the socket byte.
  if (how == wire::kSleepFutex)
    base::futex_wake_one(ah_->sub_sleeping, base::FutexScope::shared);
  else
    os::send_wake(wake_.get());
  // Whether the woken subscriber preempted us on this CPU (or ran on another) during the call.
  PLX_PROBE_SHARE(probe_taken_in_wake_,
                  ah_->read_pos.load(std::memory_order_relaxed) >= write_pos_);
}

// A control message went out (or the connection is being dropped): the subscriber's sleep is a
// futex wait, so say so in the ring header, and wake it if it sleeps (it then reads its socket).
void Connection::note_control_sent() {
  if (rh_ == nullptr) return;
  rh_->ctl_sent.store(rh_->ctl_sent.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  // A socket sleeper sees the message (or the hang-up) itself.
  std::uint32_t how = wire::kSleepFutex;
  if (ah_->sub_sleeping.load(std::memory_order_seq_cst) == wire::kSleepFutex &&
      ah_->sub_sleeping.compare_exchange_strong(how, 0, std::memory_order_seq_cst))
    base::futex_wake_one(ah_->sub_sleeping, base::FutexScope::shared);
}

// drop-oldest when the oldest unread record is an event (events are never dropped, and the
// ring is only taken back from its read end): takes back everything the subscriber has not
// read with one CAS of its read position to the write position, drops the oldest buffer
// among it and writes the rest again, in their order. A subscriber reading the old records
// meanwhile fails its claim CAS and follows the moved read position, as for any retraction.
Connection::Compact Connection::compact() {
  struct Saved {
    std::vector<std::uint64_t> words;
    InFlight rec;
  };
  std::vector<Saved> saved;
  bool has_buffer = false;
  std::uint64_t start = read_pos_;
  for (const InFlight& f : inflight_) {
    if (f.kind != Kind::pad) {
      Saved sv{std::vector<std::uint64_t>((f.end - start) / 8), f};
      ring::load_words(sv.words.data(), rdata_ + (start & (cap_ - 1)), sv.words.size());
      has_buffer |= f.kind == Kind::buffer;
      saved.push_back(std::move(sv));
    }
    start = f.end;
  }
  if (!has_buffer) return Compact::nothing;
  std::uint64_t expected = read_pos_;
  if (!ah_->read_pos.compare_exchange_strong(expected, write_pos_, std::memory_order_seq_cst))
    return Compact::raced;  // the subscriber moved: look again
  inflight_.clear();
  read_pos_ = write_pos_;
  bool dropped = false, overflow = false;
  std::deque<std::vector<std::uint64_t>> requeue;
  for (Saved& sv : saved) {
    const bool buffer = sv.rec.kind == Kind::buffer;
    const std::size_t bytes = sv.words.size() * 8;
    // The emptied ring holds what it held, minus a buffer; only the pad a wrap needs could
    // make a record not fit. Then later buffers are dropped too and events queued in order.
    overflow = overflow || !fits(bytes);
    if (buffer && (!dropped || overflow)) {
      (void)release_token(sv.rec.token);  // ours: it was leased when written
      ++info_.dropped_oldest;
      dropped = true;
    } else if (overflow) {
      requeue.push_back(std::move(sv.words));
    } else {
      write(sv.words.data(), bytes, sv.rec.kind, sv.rec.token);
    }
  }
  pending_.insert(pending_.begin(), std::make_move_iterator(requeue.begin()),
                  std::make_move_iterator(requeue.end()));
  return Compact::done;
}

// drop-oldest: takes back the oldest unread buffer record (CAS on the ack's read_pos: if
// the subscriber took it first, it is its own). False when nothing can be retracted.
bool Connection::retract() {
  for (;;) {
    if (!sync() || inflight_.empty()) return false;
    const InFlight front = inflight_.front();
    if (front.kind == Kind::event) {
      const Compact c = compact();
      if (c == Compact::raced) continue;
      return c == Compact::done;
    }
    std::uint64_t expected = read_pos_;
    if (ah_->read_pos.compare_exchange_strong(expected, front.end, std::memory_order_seq_cst)) {
      inflight_.pop_front();
      read_pos_ = front.end;
      if (front.kind == Kind::buffer) {
        (void)release_token(front.token);  // ours: it was leased when written
        ++info_.dropped_oldest;
        return true;
      }
      continue;  // a pad: keep going to a buffer
    }
    // The subscriber moved: sync() validates the new value on the next turn.
  }
}

void Connection::wait_slice(std::span<pollfd> fds,
                            std::chrono::steady_clock::time_point until) const {
  // The caller looks at the revents and the interrupted flag, not at how the wait ended.
  auto woke = base::wait_fds(fds, sh_.interrupt_fd.get(), until);
  if (!woke)  // not expected (EINTR resumes); the revents are 0, the caller looks again
    PLX_LOG(warn, kLog, "waiting for subscriber %llu: %s", static_cast<unsigned long long>(id),
            woke.error().message.c_str());
}

// Waits for this subscriber to consume or return something. Releases the lock while it
// spins or sleeps. First spins up to opts.spin on the shared counters (no syscall), then
// sleeps on the wake socket, asking to be woken only once a batch is there.
Connection::Wait Connection::wait(std::unique_lock<base::FutexMutex>& lk,
                                  std::chrono::steady_clock::time_point deadline) {
  using Clock = std::chrono::steady_clock;
  const PublisherOptions& opts = sh_.opts;
  if (sh_.interrupted.load(std::memory_order_acquire)) return Wait::cancelled;
  const bool need_lease = leases_out_ >= quota_;
  const std::uint64_t want_ret =
      need_lease ? ret_read_ + std::max<std::uint32_t>(1, quota_ / 4) : UINT64_MAX;
  const std::uint64_t want_read = need_lease ? UINT64_MAX : read_pos_ + cap_ / 4;
  wake();  // make sure it is not asleep on a record it has not seen
  if (opts.spin.count() > 0) {
    // The ack area stays mapped while we hold the connection; its counters are atomics, and
    // what a hostile subscriber writes there can only end the spin early (sync() validates).
    auto* ah = ah_;
    lk.unlock();
    const auto until = Clock::now() + opts.spin;
    bool ready = false;
    for (unsigned i = 1;; ++i) {
      if (ah->ret_write.load(std::memory_order_acquire) >= want_ret ||
          ah->read_pos.load(std::memory_order_acquire) >= want_read) {
        ready = true;
        break;
      }
      if ((i & 63) == 0 &&
          (sh_.interrupted.load(std::memory_order_relaxed) || Clock::now() >= until))
        break;
      parallax::cpu_relax();
    }
    lk.lock();
    if (dead) return Wait::gone;
    if (ready) return Wait::progress;
    if (sh_.interrupted.load(std::memory_order_acquire)) return Wait::cancelled;
  }
  if (wake_pending_) {
    wake_pending_ = false;
    if (!os::drain_wake(wake_.get())) {
      kill("connection closed", false);
      return Wait::gone;
    }
  }
  // seq_cst store, then seq_cst loads in sync(): pairs with the subscriber's seq_cst
  // read_pos/ret_write updates followed by its seq_cst load of pub_waiting.
  ah_->wake_ret.store(want_ret, std::memory_order_relaxed);
  ah_->wake_read.store(want_read, std::memory_order_relaxed);
  ah_->pub_waiting.store(1, std::memory_order_seq_cst);
  const std::uint64_t rp = read_pos_, rr = ret_read_;
  if (!sync()) return Wait::gone;
  if (read_pos_ != rp || ret_read_ != rr) {
    ah_->pub_waiting.store(0, std::memory_order_relaxed);
    return Wait::progress;
  }
  wake();
  // The wake socket, the connection socket (a hang-up) and the interrupt; at most one slice,
  // so a lost wake-up costs no more than it.
  pollfd pfd[2] = {{wake_.get(), POLLIN, 0}, {sock.get(), POLLIN, 0}};
  lk.unlock();
  wait_slice(pfd, std::min(deadline, Clock::now() + kWaitSlice));
  lk.lock();
  if (dead) return Wait::gone;
  if (pfd[0].revents & POLLIN) wake_pending_ = true;
  if (pfd[0].revents & (POLLHUP | POLLERR)) {
    kill("wake socket closed", false);
    return Wait::gone;
  }
  ah_->pub_waiting.store(0, std::memory_order_relaxed);
  if (pfd[1].revents & (POLLHUP | POLLERR | POLLIN)) {
    // Any traffic after the handshake, or a hang-up, ends the connection; the background
    // thread would see it too, but we must not wait for a peer that is gone.
    char c;
    ssize_t r = ::recv(sock.get(), &c, 1, MSG_DONTWAIT | MSG_PEEK);
    if (r == 0 || (pfd[1].revents & (POLLHUP | POLLERR))) {
      kill("connection closed", false);
      return Wait::gone;
    }
  }
  if (sh_.interrupted.load(std::memory_order_acquire)) return Wait::cancelled;
  if (Clock::now() >= deadline) {
    kill("blocked the publisher longer than block_timeout", true);
    return Wait::gone;
  }
  return Wait::progress;
}

void Connection::flush_pending() {
  while (!pending_.empty()) {
    auto& rec = pending_.front();
    const std::size_t bytes = rec.size() * 8;
    if (!fits(bytes) && !(policy_ == Policy::drop_oldest && retract() && fits(bytes))) return;
    write(rec.data(), bytes, Kind::event, 0);
    ++info_.events_sent;
    pending_.pop_front();
  }
}

std::chrono::steady_clock::time_point Connection::block_deadline() const {
  if (sh_.opts.block_timeout.count() == 0) return std::chrono::steady_clock::time_point::max();
  return std::chrono::steady_clock::now() + sh_.opts.block_timeout;
}

// Queues an event for a subscriber whose ring has no room now; it is written, in order and
// before any later buffer, as soon as there is room. False when the subscriber was expelled.
bool Connection::queue_event(const std::vector<std::uint64_t>& rec) {
  if (pending_.size() >= kMaxPendingEvents) {
    kill("too far behind to take events", true);
    return false;
  }
  pending_.push_back(rec);
  return true;
}

// ---- sending ----------------------------------------------------------------------------------

bool Connection::deliver_buffer(std::uint64_t* words, std::size_t bytes, memory::Buffer& b,
                                bool take, const memory::MemoryPool& pool) {
  std::unique_lock lk(mu);
  PLX_PROBE_AT(4, "lock");
  if (dead || !active) return true;
  // Our view of the subscriber's progress may be stale, but only ever on the safe side (it
  // has read and returned at least what we last saw): a record that fits that view fits, so
  // it is written at once and the view is brought up to date after the wake-up, off the
  // latency path. Only a record that does not fit syncs first (below).
  bool synced = false;
  if (auto r = announce_segment(*b.segment()); !r) {
    kill(r.error().message.c_str(), r.error().code != Errc::unavailable);
    return true;
  }
  PLX_PROBE_AT(5, "segment");
  auto deadline = std::chrono::steady_clock::time_point::max();
  bool counted_block = false;
  for (;;) {
    flush_pending();
    // Queued events go first: a buffer never overtakes them.
    if (pending_.empty() && leases_out_ < quota_ && fits(bytes)) break;
    if (!synced) {  // our view may be stale: look before dropping or waiting
      if (!sync()) return true;
      synced = true;
      continue;
    }
    if (policy_ != Policy::block) {
      if (pending_.empty() && policy_ == Policy::drop_oldest && retract()) continue;
      if (dead) return true;
      // drop-newest, events waiting, or drop-oldest with nothing left to retract (all
      // leases are in the consumer's hands).
      ++info_.dropped_newest;
      wake();
      return true;
    }
    if (!counted_block) {
      ++info_.blocked_sends;
      counted_block = true;
      deadline = block_deadline();
    }
    const Wait w = wait(lk, deadline);
    if (w == Wait::gone) return true;
    if (w == Wait::cancelled) {
      wake();
      return false;
    }
    if (!sync()) return true;
  }
  PLX_PROBE_AT(6, "room");
  std::uint32_t idx;
  if (!free_leases_.empty()) {
    idx = free_leases_.back();
    free_leases_.pop_back();
  } else {
    idx = static_cast<std::uint32_t>(leases_.size());
    leases_.emplace_back();
  }
  Lease& l = leases_[idx];
  ++l.gen;
  l.live = true;
  const std::size_t size = b.size();
  if (take)
    l.buffer = std::move(b);
  else
    l.buffer = b;
  ++leases_out_;
  const std::uint64_t token = (std::uint64_t{l.gen} << 32) | idx;
  words[1] = token;                            // BufferRecord::token is the second word
  words[wire::kSendNsWord] = wire::mono_ns();  // transit latency stamp (observability)
  PLX_PROBE_AT(7, "lease+stamp");
  write(words, bytes, Kind::buffer, token);
  ++buffers_sent_;
  bytes_sent_ += size;
  wake();
  // After the wake-up, which must not wait for it: collect what the subscriber read and
  // returned when that may matter (sync_due: leases, ring or pool half used) and, for large
  // buffers, always, so the next loan gets the slot returned last (eager_return_bytes).
  if ((sh_.opts.eager_return_bytes != 0 && size >= sh_.opts.eager_return_bytes) ||
      (!synced && sync_due(pool)))
    (void)sync();  // false only when it just died: nothing more to do for it
  return true;
}

bool Connection::deliver_event(const std::vector<std::uint64_t>& rec) {
  std::unique_lock lk(mu);
  if (!sync()) return true;
  const std::size_t bytes = rec.size() * 8;
  flush_pending();
  auto deadline = block_deadline();
  while (!(pending_.empty() && fits(bytes))) {
    if (policy_ == Policy::block) {
      const Wait w = wait(lk, deadline);
      if (w == Wait::gone) return true;
      if (w == Wait::cancelled) {
        if (queue_event(rec)) wake();
        return false;
      }
      if (!sync()) return true;
      flush_pending();
    } else if (!(pending_.empty() && policy_ == Policy::drop_oldest && retract())) {
      break;
    }
  }
  if (pending_.empty() && fits(bytes)) {
    write(rec.data(), bytes, Kind::event, 0);
    ++info_.events_sent;
  } else if (!queue_event(rec)) {
    return true;
  }
  wake();
  return true;
}

// ---- drain at EOS -----------------------------------------------------------------------------

// Sleeps until the subscriber's read position may have reached `until` (its wake-up
// threshold says so), its sockets speak, interrupt(), or `deadline` (at most 100 ms, so a
// lost wake-up costs no more). Unlike wait() it never expels anyone: a subscriber that stays
// behind only makes drain() time out.
void Connection::drain_wait(std::unique_lock<base::FutexMutex>& lk, std::uint64_t until,
                            std::chrono::steady_clock::time_point deadline) {
  if (wake_pending_) {
    wake_pending_ = false;
    if (!os::drain_wake(wake_.get())) {
      kill("connection closed", false);
      return;
    }
  }
  ah_->wake_ret.store(UINT64_MAX, std::memory_order_relaxed);
  ah_->wake_read.store(until, std::memory_order_relaxed);
  ah_->pub_waiting.store(1, std::memory_order_seq_cst);
  const std::uint64_t rp = read_pos_;
  if (!sync() || read_pos_ != rp) {
    if (!dead) ah_->pub_waiting.store(0, std::memory_order_relaxed);
    return;
  }
  wake_needed_ = true;
  wake();
  pollfd pfd[2] = {{wake_.get(), POLLIN, 0}, {sock.get(), POLLIN, 0}};
  lk.unlock();
  wait_slice(pfd, std::min(deadline, std::chrono::steady_clock::now() + kWaitSlice));
  lk.lock();
  if (dead) return;
  if (pfd[0].revents & POLLIN) wake_pending_ = true;
  if ((pfd[0].revents | pfd[1].revents) & (POLLHUP | POLLERR)) {
    kill("connection closed", false);
    return;
  }
  ah_->pub_waiting.store(0, std::memory_order_relaxed);
}

Connection::Drained Connection::drain(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lk(mu);
  for (;;) {
    if (!sync()) return Drained::read_through;  // gone: nothing left to wait for
    flush_pending();
    if (pending_.empty() && read_pos_ == write_pos_) return Drained::read_through;
    if (sh_.interrupted.load(std::memory_order_acquire)) return Drained::cancelled;
    if (std::chrono::steady_clock::now() >= deadline) return Drained::behind;
    drain_wait(lk, write_pos_, deadline);
  }
}

// ---- upkeep -----------------------------------------------------------------------------------

void Connection::tick() {
  if (sync() && !pending_.empty()) {
    flush_pending();
    wake();
  }
}

void Connection::on_socket(short revents) {
  if (revents & (POLLHUP | POLLERR)) {
    kill("connection closed", false);
    return;
  }
  char c[64];
  ssize_t r = ::recv(sock.get(), c, sizeof c, MSG_DONTWAIT);
  if (r == 0)
    kill("connection closed", false);
  else if (r > 0)
    kill("unexpected message after the handshake", true);
}

void Connection::retire_segments(std::span<const std::uint64_t> ids,
                                 std::set<std::uint64_t>& still) {
  if (!sync()) return;
  for (std::uint64_t seg_id : ids) {
    if (segments_sent_.count(seg_id) == 0) continue;
    const bool used = std::any_of(leases_.begin(), leases_.end(), [&](const Lease& l) {
      return l.live && l.buffer.segment() != nullptr && l.buffer.segment()->id() == seg_id;
    });
    if (used) {
      still.insert(seg_id);
      continue;
    }
    auto msg = wire::encode_segment_retired({seg_id});
    auto r = os::send_msg(sock.get(), msg);
    if (!r) {
      if (r.error().code == Errc::resource_exhausted) {
        still.insert(seg_id);  // its socket is full: try again on the next turn
      } else {
        kill(r.error().message.c_str(), r.error().code != Errc::unavailable);
      }
      continue;
    }
    note_control_sent();
    segments_sent_.erase(seg_id);
    if (last_segment_ == seg_id) last_segment_ = UINT64_MAX;
    sh_.counters.segments_retired.fetch_add(1, std::memory_order_relaxed);
  }
}

void Connection::say_goodbye() {
  if (active && !dead && sync()) {
    std::vector<std::uint64_t> rec;
    wire::encode_simple(rec, wire::RecordType::goodbye);
    if (fits(8) || retract()) {
      if (fits(8)) write(rec.data(), 8, Kind::event, 0);
    }
    wake();
  }
  dead = true;
  leases_.clear();
  inflight_.clear();
  if (sock) ::shutdown(sock.get(), SHUT_RDWR);
  note_control_sent();
}

SubscriberInfo Connection::info() const {
  SubscriberInfo info = info_;
  info.buffers_sent = buffers_sent_;
  info.bytes_sent = bytes_sent_;
  info.leases = leases_out_;
  info.ring_capacity = cap_;
  info.ring_used = write_pos_ - read_pos_;
  info.connected_ns =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now() - accepted_at)
                                     .count());
  if (ah_ != nullptr && !dead) {
    const wire::AckReport& rep = ah_->report;
    std::array<std::uint64_t, wire::kLatencyBuckets> b{};
    for (std::size_t k = 0; k < b.size(); ++k)
      b[k] = rep.latency_log2[k].load(std::memory_order_relaxed);
    info.received = rep.received.load(std::memory_order_relaxed);
    info.latency_count = rep.latency_count.load(std::memory_order_relaxed);
    info.latency_max_ns = rep.latency_max_ns.load(std::memory_order_relaxed);
    info.latency_p50_ns = wire::latency_quantile(b, 0.5, info.latency_max_ns);
    info.latency_p99_ns = wire::latency_quantile(b, 0.99, info.latency_max_ns);
  }
  return info;
}

// ---- quarantine -------------------------------------------------------------------------------

bool Connection::release_quarantine(short revents) {
  if (!(revents & (POLLHUP | POLLERR)) && os::drain_wake(wake_.get())) return false;
  PLX_LOG(info, kLog, "subscriber %llu (pid %d) unmapped: %zu quarantined slots back",
          static_cast<unsigned long long>(id), static_cast<int>(cred.pid), quarantine_.size());
  quarantine_.clear();
  wake_.reset();
  return true;
}

}  // namespace parallax::link::detail
