// SPDX-License-Identifier: MIT OR Apache-2.0
// Helper process for the multi-process IPC tests: well-behaved publishers and subscribers, and
// hostile peers that speak the protocol badly. Exit codes: 0 = as expected, others = failure.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "base/futex.h"
#include "ipc/os.h"
#include "ipc/wire.h"
#include "ipc_test_util.h"
#include "parallax/ipc.h"

using namespace parallax;
using namespace parallax::link;
using namespace std::chrono_literals;

namespace {

int usage() {
  std::fprintf(stderr,
               "ipc_peer subscribe PATH N [policy] [delay_us]\n"
               "ipc_peer hold PATH\n"
               "ipc_peer hoard PATH\n"
               "ipc_peer race-bind PATH\n"
               "ipc_peer stall PATH\n"
               "ipc_peer publish PATH SIZE [interval_us]\n"
               "ipc_peer setuid-connect PATH UID\n"
               "ipc_peer hostile-sub PATH MODE\n"
               "ipc_peer publish-n PATH N\n"
               "ipc_peer recv-drop PATH\n"
               "ipc_peer hostile-pub PATH MODE\n");
  return 64;
}

// Receives N buffers (then eos), checking order and checksums. Prints the count.
int subscribe(const std::string& path, long n, const char* policy, long delay_us) {
  SubscriberOptions so;
  so.connect_timeout = 5s;
  if (policy != nullptr) so.policy = policy_from_string(policy).value();
  auto sub = IpcSubscriber::connect(path, so);
  if (!sub) {
    std::fprintf(stderr, "connect: %s\n", sub.error().to_string().c_str());
    return 2;
  }
  long got = 0;
  std::int64_t last = -1;
  for (;;) {
    auto r = sub->recv();
    if (!r) {
      std::fprintf(stderr, "recv: %s\n", r.error().to_string().c_str());
      return 3;
    }
    if (!*r) break;
    const memory::Buffer& b = **r;
    if (auto bad = ipc_test::check_payload(b); !bad.empty()) {
      std::fprintf(stderr, "buffer %ld: %s\n", got, bad.c_str());
      return 4;
    }
    const auto seq = static_cast<std::int64_t>(b.metadata().sequence);
    if (seq <= last) {
      std::fprintf(stderr, "order broken: %lld after %lld\n", static_cast<long long>(seq),
                   static_cast<long long>(last));
      return 5;
    }
    if ((policy == nullptr || std::string(policy) == "block") && seq != last + 1) {
      std::fprintf(stderr, "gap: %lld after %lld\n", static_cast<long long>(seq),
                   static_cast<long long>(last));
      return 5;
    }
    last = seq;
    ++got;
    if (delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
  }
  if (!sub->format() || *sub->format() != "test/x-checksummed") {
    std::fprintf(stderr, "format not received\n");
    return 6;
  }
  std::printf("%ld\n", got);
  if (n >= 0 && got != n) {
    std::fprintf(stderr, "received %ld of %ld\n", got, n);
    return 7;
  }
  return 0;
}

// Receives forever and holds up to 8 buffers (so it dies with leases out). Prints "ready".
int hold(const std::string& path) {
  SubscriberOptions so;
  so.connect_timeout = 5s;
  auto sub = IpcSubscriber::connect(path, so);
  if (!sub) return 2;
  std::printf("ready\n");
  std::fflush(stdout);
  std::vector<memory::Buffer> held;
  for (;;) {
    auto r = sub->recv();
    if (!r || !*r) return 0;
    held.push_back(std::move(**r));
    if (held.size() > 8) held.erase(held.begin());
  }
}

// Connects (drop-newest: the publisher never waits for it), prints "ready" and keeps every
// buffer it receives, never returning one: a subscriber hoarding the pool. Prints the number
// held each time it grows; killed by the test.
int hoard(const std::string& path) {
  SubscriberOptions so;
  so.connect_timeout = 5s;
  so.policy = Policy::drop_newest;
  auto sub = IpcSubscriber::connect(path, so);
  if (!sub) {
    std::fprintf(stderr, "connect: %s\n", sub.error().to_string().c_str());
    return 2;
  }
  std::printf("ready %u\n", sub->stats().quota);
  std::fflush(stdout);
  std::vector<memory::Buffer> held;
  for (;;) {
    auto r = sub->recv();
    if (!r || !*r) break;
    held.push_back(std::move(**r));
  }
  for (;;)
    ::pause();
}

// Connects, prints "ready" and never reads again, without dying: a consumer that stopped
// (the publisher's `block` policy waits for it forever). Killed by the test.
int stall(const std::string& path) {
  SubscriberOptions so;
  so.connect_timeout = 5s;
  so.policy = Policy::block;
  auto sub = IpcSubscriber::connect(path, so);
  if (!sub) return 2;
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;)
    ::pause();
}

int publish(const std::string& path, std::size_t size, long interval_us) {
  PublisherOptions po;
  po.slot_size = std::max<std::size_t>(size, 64);
  po.slot_count = 64;
  po.default_policy = Policy::drop_oldest;
  auto pub = IpcPublisher::bind(path, po);
  if (!pub) {
    std::fprintf(stderr, "bind: %s\n", pub.error().to_string().c_str());
    return 2;
  }
  (void)pub->set_format("test/x-checksummed");
  for (std::uint64_t i = 0;; ++i) {
    auto l = pub->loan();
    if (!l) return 3;
    ipc_test::fill_payload(*l, i, size);
    if (auto s = pub->send(std::move(*l)); !s) return 4;
    if (interval_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(interval_us));
  }
}

// Publishes N buffers to whoever is connected (block policy, block_timeout 300 ms), then
// closes. Exits 0 when all of that returned; a publisher a peer can block never gets there.
int publish_n(const std::string& path, long n) {
  PublisherOptions po;
  po.slot_size = 4096;
  po.slot_count = 16;
  po.max_leases_per_subscriber = 4;
  po.default_policy = Policy::block;
  po.block_timeout = 300ms;
  po.loan_timeout = 2s;
  auto pub = IpcPublisher::bind(path, po);
  if (!pub) return 2;
  std::printf("ready\n");
  std::fflush(stdout);
  if (!pub->wait_for_subscribers(1, 5s)) return 3;
  std::this_thread::sleep_for(200ms);  // the peer settles (a hostile one sets its traps)
  for (long i = 0; i < n; ++i) {
    auto l = pub->loan();
    if (!l) return 4;
    ipc_test::fill_payload(*l, static_cast<std::uint64_t>(i), 1024);
    if (!pub->send(std::move(*l))) return 5;
  }
  (void)pub->send_eos();  // may be refused by nobody: the stream just ends
  pub->close();
  return 0;
}

// Receives one buffer, drops it (its lease goes back: a wake-up for a waiting publisher),
// waits a little more, closes. Exits 0 when all of that returned.
int recv_drop(const std::string& path) {
  SubscriberOptions so;
  so.connect_timeout = 3s;
  auto sub = IpcSubscriber::connect(path, so);
  if (!sub) {
    std::fprintf(stderr, "connect: %s\n", sub.error().to_string().c_str());
    return 2;
  }
  {
    auto b = sub->recv_for(3s);
    if (!b || !*b) {
      std::fprintf(stderr, "recv: %s\n", b ? "end of stream" : b.error().to_string().c_str());
      return 3;
    }
  }  // dropped here
  (void)sub->recv_for(300ms);
  sub->close();
  return 0;
}

// Receives N buffers, keeps them, closes the subscriber ("closed"), waits for a line on stdin,
// checks the kept buffers ("intact" or "corrupt"), waits for another line, drops them
// ("dropped") and stays alive until killed: the publisher must keep the slots out of its pool
// exactly until the buffers are dropped.
int keep_after_close(const std::string& path, long n) {
  SubscriberOptions so;
  so.connect_timeout = 5s;
  auto sub = IpcSubscriber::connect(path, so);
  if (!sub) return 2;
  std::vector<memory::Buffer> kept;
  while (static_cast<long>(kept.size()) < n) {
    auto r = sub->recv_for(5s);
    if (!r || !*r) return 3;
    kept.push_back(std::move(**r));
  }
  sub->close();
  auto line = [] {
    char c;
    while (::read(0, &c, 1) == 1 && c != '\n') {
    }
  };
  std::printf("closed\n");
  std::fflush(stdout);
  line();
  bool ok = true;
  for (const auto& b : kept)
    ok = ok && ipc_test::check_payload(b).empty();
  std::printf("%s\n", ok ? "intact" : "corrupt");
  std::fflush(stdout);
  line();
  kept.clear();
  std::printf("dropped\n");
  std::fflush(stdout);
  for (;;)
    ::pause();
}

// connect() with connect_timeout = ms against a publisher that will not complete it: exits
// 0 when it fails (with the code printed) within ms + 1 s.
int connect_within(const std::string& path, long ms) {
  SubscriberOptions so;
  so.connect_timeout = std::chrono::milliseconds(ms);
  const auto t0 = std::chrono::steady_clock::now();
  auto sub = IpcSubscriber::connect(path, so);
  const auto took = std::chrono::steady_clock::now() - t0;
  std::printf(
      "%s %lld ms\n", sub ? "connected" : sub.error().to_string().c_str(),
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  std::fflush(stdout);
  if (sub) return 1;
  return took < std::chrono::milliseconds(ms + 1000) ? 0 : 2;
}

// IpcPublisher::bind() on a path where a live listener never accepts: exits 0 when it
// answers already_exists (promptly: the test bounds the wait).
int bind_taken(const std::string& path) {
  auto pub = IpcPublisher::bind(path);
  if (pub) return 1;
  std::printf("%s\n", pub.error().to_string().c_str());
  return pub.error().code == Errc::already_exists ? 0 : 2;
}

// One side of a bind race: waits for a line on stdin (the test releases every racer at once),
// binds PATH, and prints "taken" when refused, or "bound N" when bound, N = 1 when a subscriber
// connecting to PATH 100 ms later reaches this process (0: another racer replaced our socket,
// which is the bug). Then waits for stdin to close.
int race_bind(const std::string& path) {
  char line[16];
  if (std::fgets(line, sizeof line, stdin) == nullptr) return 2;
  auto pub = IpcPublisher::bind(path);
  if (!pub) {
    std::printf("taken %s\n", pub.error().to_string().c_str());
    std::fflush(stdout);
    return pub.error().code == Errc::already_exists ? 0 : 3;
  }
  std::this_thread::sleep_for(100ms);  // the other racers have bound or given up by then
  SubscriberOptions so;
  so.connect_timeout = 2s;
  auto sub = IpcSubscriber::connect(path, so);
  const bool mine = sub && sub->stats().publisher_pid == ::getpid();
  std::printf("bound %d\n", mine ? 1 : 0);
  std::fflush(stdout);
  while (std::fgets(line, sizeof line, stdin) != nullptr) {
  }
  return 0;
}

// The soak publisher (tests/ipc/soak.sh): sends checksummed 4 KiB buffers for `seconds`
// (block policy by default, block_timeout 500 ms, quota 8 of 128 slots), printing one line of
// figures a second; then eos, a drain of up to 5 s, and the final figures once every
// subscriber is gone. Exits 0 when no send() took longer than block_timeout + 250 ms and the
// pool came back to empty.
int soak_pub(const std::string& path, long seconds, long wait_subs) {
  PublisherOptions po;
  po.slot_size = 4096;
  po.slot_count = 128;  // quotas of 8 for the 8 subscribers, hostile joins and quarantined ones
  po.max_leases_per_subscriber = 8;
  po.max_subscribers = 32;
  po.default_policy = Policy::block;
  po.block_timeout = 500ms;
  po.loan_timeout = 2s;
  auto pub = IpcPublisher::bind(path, po);
  if (!pub) {
    std::fprintf(stderr, "bind: %s\n", pub.error().to_string().c_str());
    return 2;
  }
  (void)pub->set_format("test/x-checksummed");
  auto rss_kb = [] {
    long pages = 0, resident = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
      std::fclose(f);
    }
    return resident * (::sysconf(_SC_PAGESIZE) / 1024);
  };
  auto line = [&](const char* tag, double t, std::uint64_t n, double max_ms) {
    pub->collect_returns();
    const auto st = pub->stats();
    std::printf(
        "%s t=%.0f sent=%llu subs=%zu fds=%zu rss_kb=%ld pool_in_use=%zu quarantined=%llu "
        "connections=%llu disconnects=%llu protocol_errors=%llu refused=%llu max_send_ms=%.1f\n",
        tag, t, static_cast<unsigned long long>(n), st.subscribers.size(), os::count_open_fds(),
        rss_kb(), pub->pool()->in_use(), static_cast<unsigned long long>(st.quarantined_slots),
        static_cast<unsigned long long>(st.connections),
        static_cast<unsigned long long>(st.disconnects),
        static_cast<unsigned long long>(st.protocol_errors),
        static_cast<unsigned long long>(st.refused), max_ms);
    std::fflush(stdout);
  };
  std::printf("ready\n");
  std::fflush(stdout);
  // The steady subscribers check that they miss nothing from sequence 0 on.
  if (wait_subs > 0 && !pub->wait_for_subscribers(static_cast<std::size_t>(wait_subs), 10s))
    return 5;
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto next_line = t0 + 1s;
  double max_ms = 0;
  std::uint64_t seq = 0;
  while (Clock::now() - t0 < std::chrono::seconds(seconds)) {
    const auto s0 = Clock::now();
    auto l = pub->loan();
    if (!l) {
      std::fprintf(stderr, "loan: %s\n", l.error().to_string().c_str());
      return 3;
    }
    ipc_test::fill_payload(*l, seq++, 4096);
    if (auto r = pub->send(std::move(*l)); !r) {
      std::fprintf(stderr, "send: %s\n", r.error().to_string().c_str());
      return 4;
    }
    max_ms = std::max(max_ms, std::chrono::duration<double, std::milli>(Clock::now() - s0).count());
    std::this_thread::sleep_for(200us);
    if (Clock::now() >= next_line) {
      line("soak", std::chrono::duration<double>(Clock::now() - t0).count(), seq, max_ms);
      next_line += 1s;
    }
  }
  (void)pub->send_eos();
  for (int i = 0; i < 500 && pub->subscriber_count() > 0; ++i)
    std::this_thread::sleep_for(10ms);
  for (int i = 0; i < 500 && pub->stats().quarantined_slots > 0; ++i)
    std::this_thread::sleep_for(10ms);
  pub->collect_returns();
  line("final", std::chrono::duration<double>(Clock::now() - t0).count(), seq, max_ms);
  const bool ok = max_ms <= 750.0 && pub->pool()->in_use() == 0;
  pub->close();
  return ok ? 0 : 1;
}

int setuid_connect(const std::string& path, uid_t uid) {
  if (::setgid(uid) != 0 || ::setuid(uid) != 0) {
    std::perror("setuid");
    return 2;
  }
  auto sub = IpcSubscriber::connect(path);
  if (sub) return 1;  // must be refused
  std::fprintf(stderr, "refused as expected: %s\n", sub.error().to_string().c_str());
  return sub.error().code == Errc::permission_denied ? 0 : 3;
}

// ---- hostile subscriber ---------------------------------------------------------------------

int raw_connect(const std::string& path) {
  auto addr = os::make_addr(path).value();
  for (int i = 0; i < 500; ++i) {
    int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    ::close(fd);
    std::this_thread::sleep_for(10ms);
  }
  return -1;
}

// True when the publisher closes the connection within 3 s.
bool closed_by_peer(int fd) {
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      char buf[600];
      ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN)) return true;
      // other messages (welcome, segments, refuse) are skipped
    }
  }
  return false;
}

struct RawSession {
  int fd{-1};
  wire::Welcome w;
  memory::Segment ring, ack;
  std::vector<UniqueFd> wake;  // the wake-up fds of the welcome (whatever this version uses)
};

bool is_socket(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

// The attack on a wake-up fd shared with the peer: clear O_NONBLOCK on the open file
// description (shared through SCM_RIGHTS) and make the peer's next wake-up block if it can:
// an eventfd's counter filled to its maximum, a socket's queue filled from our side.
void jam(int fd, int fill_from) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  if (!is_socket(fd)) {
    const std::uint64_t v = 0xfffffffffffffffeull;
    (void)!::write(fd, &v, sizeof v);
    return;
  }
  if (fill_from < 0) return;
  const char b = 0;
  while (::send(fill_from, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1) {
  }
}

bool raw_handshake(RawSession& s, const std::string& path) {
  s.fd = raw_connect(path);
  if (s.fd < 0) return false;
  auto hello = wire::encode_hello({});
  if (!os::send_msg(s.fd, hello)) return false;
  std::byte buf[wire::kMaxMsgSize];
  pollfd p{s.fd, POLLIN, 0};
  ::poll(&p, 1, 3000);
  auto r = os::recv_msg(s.fd, buf, true);
  if (!r || r->fds.size() != static_cast<std::size_t>(wire::kWelcomeFds)) return false;
  auto m = wire::decode_publisher_msg(std::span<const std::byte>(buf, r->size));
  if (!m || !std::holds_alternative<wire::Welcome>(*m)) return false;
  s.w = std::get<wire::Welcome>(*m);
  auto ring = memory::Segment::import(std::move(r->fds[0]), memory::Access::read_only,
                                      s.w.ring_map_size, "raw-ring", {.read_only_fd = true});
  auto ack = memory::Segment::import(std::move(r->fds[1]), memory::Access::read_write,
                                     s.w.ack_map_size, "raw-ack");
  if (!ring || !ack) return false;
  s.ring = std::move(*ring);
  s.ack = std::move(*ack);
  for (std::size_t i = 2; i < r->fds.size(); ++i)
    s.wake.push_back(std::move(r->fds[i]));
  return true;
}

void push_return(RawSession& s, std::uint64_t token) {
  auto* ah = reinterpret_cast<wire::AckHeader*>(s.ack.writable_data());
  auto* rets = reinterpret_cast<std::atomic<std::uint64_t>*>(s.ack.writable_data() +
                                                             sizeof(wire::AckHeader));
  const std::uint64_t w = ah->ret_write.load();
  rets[w & (s.w.return_capacity - 1)].store(token);
  ah->ret_write.store(w + 1);
}

// Waits for the first buffer record and takes it; returns its token (or 0).
std::uint64_t take_first_buffer(RawSession& s) {
  auto* rh = reinterpret_cast<const wire::RingHeader*>(s.ring.data());
  auto* ah = reinterpret_cast<wire::AckHeader*>(s.ack.writable_data());
  const std::byte* data = s.ring.data() + sizeof(wire::RingHeader);
  const auto until = std::chrono::steady_clock::now() + 3s;
  std::uint64_t r = ah->read_pos.load();
  while (std::chrono::steady_clock::now() < until) {
    if (rh->write_pos.load() == r) {
      std::this_thread::sleep_for(1ms);
      continue;
    }
    wire::RecordHeader h;
    std::memcpy(&h, data + (r & (s.w.ring_bytes - 1)), sizeof h);
    std::uint64_t token = 0;
    if (h.type == static_cast<std::uint16_t>(wire::RecordType::buffer)) {
      wire::BufferRecord br;
      std::memcpy(&br, data + (r & (s.w.ring_bytes - 1)), sizeof br);
      token = br.token;
    }
    r += h.size;
    ah->read_pos.store(r);
    if (token != 0) return token;
  }
  return 0;
}

int hostile_sub(const std::string& path, const std::string& mode) {
  if (mode == "garbage" || mode == "version" || mode == "fds" || mode == "toomanyfds") {
    int fd = raw_connect(path);
    if (fd < 0) return 2;
    std::vector<std::byte> msg;
    if (mode == "garbage") {
      msg.resize(40);
      for (std::size_t i = 0; i < msg.size(); ++i)
        msg[i] = std::byte(i * 37 + 11);
    } else {
      msg = wire::encode_hello({});
    }
    if (mode == "version") msg[4] = std::byte{99};
    std::vector<int> fds;
    if (mode == "fds") fds.push_back(::memfd_create("x", MFD_CLOEXEC));
    if (mode == "toomanyfds") {
      // More fds than the publisher's control buffer: MSG_CTRUNC; it must close all of them.
      struct msghdr mh {};
      iovec iov{msg.data(), msg.size()};
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      constexpr int kN = 32;
      alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * kN)] = {};
      mh.msg_control = ctrl;
      mh.msg_controllen = sizeof ctrl;
      cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * kN);
      int many[kN];
      for (int& f : many)
        f = ::dup(1);
      std::memcpy(CMSG_DATA(c), many, sizeof many);
      if (::sendmsg(fd, &mh, MSG_NOSIGNAL) < 0) return 3;
    } else if (!os::send_msg(fd, msg, fds)) {
      return 3;
    }
    return closed_by_peer(fd) ? 0 : 1;
  }
  RawSession s;
  if (!raw_handshake(s, path)) return 2;
  if (mode == "never-leased") {
    push_return(s, 0xdead0000beefull);
  } else if (mode == "double-release") {
    std::uint64_t tok = take_first_buffer(s);
    if (tok == 0) return 4;
    push_return(s, tok);
    push_return(s, tok);
  } else if (mode == "bad-read-pos") {
    auto* ah = reinterpret_cast<wire::AckHeader*>(s.ack.writable_data());
    ah->read_pos.store(ah->read_pos.load() + (1u << 20));
  } else if (mode == "bad-return-index") {
    auto* ah = reinterpret_cast<wire::AckHeader*>(s.ack.writable_data());
    ah->ret_write.store(1u << 30);
  } else if (mode == "jam-wakeups") {
    // Blocks the publisher's wake-up writes if it can, says it sleeps so that the publisher
    // wakes it on every buffer (on the wake socket, on the futex, and with a value no sleep
    // uses, in turn), then never reads and stays alive (killed by the test).
    for (auto& fd : s.wake)
      jam(fd.get(), fd.get());  // a socket end: fills what the publisher reads... and our own
    auto* ah = reinterpret_cast<wire::AckHeader*>(s.ack.writable_data());
    const std::uint32_t how[] = {wire::kSleepSocket, wire::kSleepFutex, 0xdeadbeefu};
    ah->sub_sleeping.store(how[0]);
    std::printf("ready\n");
    std::fflush(stdout);
    for (unsigned i = 0;; ++i) {
      ah->sub_sleeping.store(how[i % 3]);
      std::this_thread::sleep_for(1ms);
    }
  } else if (mode == "talk-after-hello") {
    auto hello = wire::encode_hello({});
    if (!os::send_msg(s.fd, hello)) return 3;
  } else {
    return usage();
  }
  return closed_by_peer(s.fd) ? 0 : 1;
}

// ---- hostile publisher ----------------------------------------------------------------------

int hostile_pub(const std::string& path, const std::string& mode) {
  auto addr = os::make_addr(path).value();
  ::unlink(path.c_str());
  UniqueFd lfd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (::bind(lfd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return 2;
  if (::listen(lfd.get(), 4) != 0) return 2;
  std::printf("ready\n");
  std::fflush(stdout);
  UniqueFd c(::accept4(lfd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!c) return 2;
  std::byte buf[wire::kMaxMsgSize];
  auto hello = os::recv_msg(c.get(), buf, false);
  if (!hello) return 2;
  if (mode == "silent") {  // accepts, reads the hello, never answers
    std::this_thread::sleep_for(10s);
    return 0;
  }
  int rc = 0;
  auto finish = [&] {
    // The subscriber must close the connection; give it 3 s.
    int ret = closed_by_peer(c.get()) ? rc : 1;
    ::unlink(path.c_str());
    return ret;
  };
  if (mode == "garbage") {
    std::byte junk[48];
    for (std::size_t i = 0; i < sizeof junk; ++i)
      junk[i] = std::byte(i * 13 + 5);
    (void)os::send_msg(c.get(), junk);
    return finish();
  }
  wire::Welcome w{16384,
                  static_cast<std::uint32_t>(sizeof(wire::RingHeader) + 16384),
                  static_cast<std::uint32_t>(sizeof(wire::AckHeader) + 8 * 8),
                  8,
                  8,
                  Policy::block,
                  static_cast<std::uint64_t>(::getpid()),
                  1};
  auto ring = memory::SharedMemorySegment::create("hostile-ring", w.ring_map_size).value();
  auto ack = memory::SharedMemorySegment::create("hostile-ack", w.ack_map_size).value();
  auto* rh = new (ring.writable_data()) wire::RingHeader{};
  rh->magic = wire::kRingMagic;
  rh->version = wire::kVersion;
  rh->header_size = sizeof(wire::RingHeader);
  rh->capacity = w.ring_bytes;
  auto* ah = new (ack.writable_data()) wire::AckHeader{};
  ah->magic = wire::kAckMagic;
  ah->version = wire::kVersion;
  ah->header_size = sizeof(wire::AckHeader);
  ah->return_capacity = w.return_capacity;
  // The wake-up fds this wire version carries: [data, return] eventfds (version 1) or one
  // end of a socket pair (we keep `mine`).
  std::vector<UniqueFd> wake;
  UniqueFd mine;
  if constexpr (wire::kWelcomeFds == 4) {
    wake.push_back(os::make_eventfd().value());
    wake.push_back(os::make_eventfd().value());
  } else {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) return 2;
    mine.reset(sv[0]);
    wake.emplace_back(sv[1]);
  }
  // How this wire version wakes a sleeping subscriber: a futex wake on sub_sleeping when it
  // sleeps there (3), else a byte on the wake socket (2, 3), or the data eventfd (1).
  auto wake_peer = [&] {
    if constexpr (wire::kVersion >= 3) {
      if (ah->sub_sleeping.exchange(0) == wire::kSleepFutex) {
        base::futex_wake_one(ah->sub_sleeping, base::FutexScope::shared);
        return;
      }
    }
    if (mine) {
      const char b = 1;
      (void)::send(mine.get(), &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
      os::signal_eventfd(wake[0].get());
    }
  };
  // Version 3: every control message sent after the welcome is counted in ctl_sent (a
  // subscriber asleep on its futex reads its socket when the count changes). The modes below
  // follow the protocol in that, whatever else they break.
  auto count_control = [&] {
    if constexpr (wire::kVersion >= 3) rh->ctl_sent.store(rh->ctl_sent.load() + 1);
  };
  auto ring_ro = ring.export_fd(memory::Access::read_only).value();
  auto ack_rw = ack.export_fd(memory::Access::read_write).value();
  auto msg = wire::encode_welcome(w);
  if (mode == "version") msg[4] = std::byte{7};
  if (mode == "writable-ring") ring_ro = ring.export_fd(memory::Access::read_write).value();
  std::vector<int> fds = {ring_ro.get(), ack_rw.get()};
  for (auto& f : wake)
    fds.push_back(f.get());
  if (!os::send_msg(c.get(), msg, mode == "welcome-no-fds" ? std::span<const int>() : fds))
    return 2;
  if (mode == "version" || mode == "writable-ring" || mode == "welcome-no-fds") return finish();

  if (mode == "late-retire") {
    // Once the subscriber sleeps on its futex: a control message it must refuse (the retirement
    // of a segment never announced), counted in ctl_sent with the futex woken, as a publisher
    // does for every control message. Nothing is ever written to the ring.
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (ah->sub_sleeping.load() != wire::kSleepFutex && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(100us);
    std::this_thread::sleep_for(5ms);
    if (!os::send_msg(c.get(), wire::encode_segment_retired({43}))) return 2;
    count_control();
    if (ah->sub_sleeping.exchange(0) == wire::kSleepFutex)
      base::futex_wake_one(ah->sub_sleeping, base::FutexScope::shared);
    return finish();
  }

  if (mode == "many-segments" || mode == "huge-segments") {
    // Announcements without end (each a real sealed memfd of the announced size): 4 KiB ones
    // until the subscriber's socket is full, or 1 TiB ones (sparse).
    const std::uint64_t size = mode == "huge-segments" ? (std::uint64_t{1} << 40) : 4096;
    for (std::uint64_t id = 100; id < 100 + 300; ++id) {
      UniqueFd f = base::make_memfd("hostile-many").value();
      if (::ftruncate(f.get(), static_cast<off_t>(size)) != 0) return 2;
      if (!base::add_seals(f.get(), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) return 2;
      UniqueFd ro = base::reopen_read_only(f.get()).value();
      auto m = wire::encode_segment({id, size});
      int one[1] = {ro.get()};
      if (!os::send_msg(c.get(), m, one)) break;  // its socket is full (or it hung up)
      count_control();
    }
    return finish();
  }
  // A segment of 4096 bytes, then a descriptor.
  // hugetlb-unsealed: a hugetlbfs memfd (one 2 MiB huge page) sealed against shrink and grow but
  // not against writes: the publisher could punch a hole into it and make the subscriber's next
  // read fault in a huge page the system may not have (SIGBUS).
  const std::size_t seg_size = mode == "hugetlb-unsealed" ? std::size_t{2} << 20 : 4096;
  UniqueFd seg_fd;
  if (mode == "hugetlb-unsealed") {
    auto huge = base::make_memfd("hostile-huge", MFD_HUGETLB);
    if (!huge) {
      std::fprintf(stderr, "%s\n", huge.error().message.c_str());
      return 2;
    }
    if (::ftruncate(huge->get(), static_cast<off_t>(seg_size)) != 0) return 2;
    if (!base::add_seals(huge->get(), F_SEAL_SHRINK | F_SEAL_GROW)) return 2;
    // Sent read-only, as an honest publisher does (the hostile part is the missing write seal).
    auto ro = base::reopen_read_only(huge->get());
    if (!ro) return 2;
    seg_fd = std::move(ro).value();
  } else if (mode == "unsealed") {
    seg_fd.reset(::memfd_create("unsealed", MFD_CLOEXEC));
    if (::ftruncate(seg_fd.get(), seg_size) != 0) return 2;
  } else {
    auto seg = memory::SharedMemorySegment::create("hostile-seg", seg_size).value();
    seg_fd =
        seg.export_fd(mode == "writable" ? memory::Access::read_write : memory::Access::read_only)
            .value();
  }
  auto smsg = wire::encode_segment({42, seg_size});
  int sfd[1] = {seg_fd.get()};
  if (mode == "truncated") {
    // Segment announcement without its fd.
    if (!os::send_msg(c.get(), smsg)) return 2;
  } else if (!os::send_msg(c.get(), smsg, sfd)) {
    return 2;
  }
  count_control();
  // Retirements the subscriber must refuse: of a segment never announced, and of one that a
  // descriptor then still names.
  if (mode == "retire-unknown" || mode == "retire-then-use") {
    if (!os::send_msg(c.get(),
                      wire::encode_segment_retired({mode == "retire-unknown" ? 43u : 42u})))
      return 2;
    count_control();
  }
  wire::BufferDesc d;
  d.token = 1;
  d.segment_id = mode == "retire-unknown" ? 44 : 42;
  d.offset = mode == "oob" ? 4000 : 0;
  d.length = mode == "oob" ? 1000 : 100;
  std::vector<std::uint64_t> rec;
  wire::encode_buffer(rec, d);
  if (mode == "bad-record") rec[0] = 0xffff000000000011ull;  // odd size, unknown type
  std::memcpy(ring.writable_data() + sizeof(wire::RingHeader), rec.data(), rec.size() * 8);
  std::uint64_t wp = rec.size() * 8;
  if (mode == "bad-write-pos") wp = 1u << 30;
  if (mode == "jam-wakeups") {
    // The subscriber's return wake-up: jam it (its fd shares our open file description), and
    // ask for a wake-up on the first return.
    ah->wake_ret.store(0);
    ah->wake_read.store(UINT64_MAX);
    ah->pub_waiting.store(1);
    jam(wake.back().get(), wake.back().get());
  }
  rh->write_pos.store(wp);
  wake_peer();
  if (mode == "jam-wakeups") {
    // Keep the jam in place (a subscriber that read it would only unjam a socket queue).
    const auto until = std::chrono::steady_clock::now() + 8s;
    while (std::chrono::steady_clock::now() < until) {
      ah->pub_waiting.store(1);
      if (closed_by_peer(c.get())) break;
    }
    ::unlink(path.c_str());
    return 0;
  }
  if (mode == "oob" || mode == "unsealed" || mode == "writable" || mode == "truncated" ||
      mode == "hugetlb-unsealed" || mode == "bad-record" || mode == "bad-write-pos" ||
      mode == "retire-unknown" || mode == "retire-then-use")
    return finish();
  return usage();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string cmd = argv[1];
  const std::string path = argv[2];
  if (cmd == "subscribe")
    return subscribe(path, argc > 3 ? std::atol(argv[3]) : -1, argc > 4 ? argv[4] : nullptr,
                     argc > 5 ? std::atol(argv[5]) : 0);
  if (cmd == "hold") return hold(path);
  if (cmd == "hoard") return hoard(path);
  if (cmd == "publish-n") return publish_n(path, argc > 3 ? std::atol(argv[3]) : 50);
  if (cmd == "recv-drop") return recv_drop(path);
  if (cmd == "soak-pub")
    return soak_pub(path, argc > 3 ? std::atol(argv[3]) : 60, argc > 4 ? std::atol(argv[4]) : 0);
  if (cmd == "connect-within") return connect_within(path, argc > 3 ? std::atol(argv[3]) : 300);
  if (cmd == "bind-taken") return bind_taken(path);
  if (cmd == "race-bind") return race_bind(path);
  if (cmd == "keep-after-close") return keep_after_close(path, argc > 3 ? std::atol(argv[3]) : 4);
  if (cmd == "stall") return stall(path);
  if (cmd == "publish")
    return publish(path, argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 4096,
                   argc > 4 ? std::atol(argv[4]) : 100);
  if (cmd == "setuid-connect")
    return setuid_connect(path, argc > 3 ? static_cast<uid_t>(std::atol(argv[3])) : 65534);
  if (cmd == "hostile-sub" && argc > 3) return hostile_sub(path, argv[3]);
  if (cmd == "hostile-pub" && argc > 3) return hostile_pub(path, argv[3]);
  return usage();
}
