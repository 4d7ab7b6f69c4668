// SPDX-License-Identifier: MIT OR Apache-2.0
// bench_ipc: native publisher -> subscriber in two processes (this binary re-executes itself
// as the subscriber), payload untouched. Prints buffers/s per size and one-way latency
// percentiles for 4 KiB buffers (sleeping consumer and busy-poll consumer), next to the
// machine's floor for the same pattern: bare eventfd and futex wake-ups and a bare shared-memory
// spin hand-off between two processes, paced the same way (what no transport can beat here).
// The sleeping rows are repeated with a 100 us EEVDF time slice on the receiving thread
// (parallax/sched.h), ours and the floors' alike: a woken receiver then preempts the sender on
// its CPU instead of waiting for it.
//   bench_ipc [--quick] [--latency-only | --throughput-only]
//   env BENCH_IPC_ROWS=sleep,slice,adaptive,busy: only these latency groups (each with its
//   floors; default all), e.g. one mode alone under the hot-path probes
//   env: BENCH_IPC_N (buffers per size), BENCH_IPC_NO_LATENCY, BENCH_IPC_GAP_US (latency pacing),
//   BENCH_IPC_PIN_FLOORS=1 (the floors' sender on CPU 0 and receiver on CPU 1: a wake-up that
//   must cross to the other CPU, which the scheduler avoids when it can)
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "futex_handover.h"
#include "parallax/cpu_relax.h"
#include "parallax/ipc.h"
#include "parallax/sched.h"

using namespace parallax;
using namespace parallax::link;
using namespace std::chrono_literals;

namespace {

std::uint64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + ts.tv_nsec;
}

struct Percentiles {
  std::size_t n{0};
  double p50{0}, p99{0}, p999{0};
  // Latency rows only: means (us) for the breakdown of where one buffer's time goes.
  double mean{0};     // end to end: pts (stamped before loan->send) to recv() returning (a
                      // floor row: its own stamp to the receiver's)
  double transit{0};  // the publisher's send stamp (taken in send() just before the ring
                      // write) to the subscriber having decoded it (SubscriberStats)
  double send{0};     // the publisher's send() call, pts to its return (publisher side)
  // Futex floors: the share of FUTEX_WAKE calls that returned after the receiver had taken the
  // message (it preempted the sender on its CPU, or ran on the other one), in %; -1 elsewhere.
  double taken_in_wake{-1};
};

Percentiles percentiles(std::vector<std::uint64_t> lat) {
  Percentiles p;
  p.n = lat.size();
  if (lat.empty()) return p;
  std::sort(lat.begin(), lat.end());
  double sum = 0;
  for (std::uint64_t v : lat)
    sum += static_cast<double>(v);
  p.mean = sum / static_cast<double>(lat.size()) / 1000.0;
  auto at = [&](double q) {
    return static_cast<double>(lat[static_cast<std::size_t>(q * (lat.size() - 1))]) / 1000.0;
  };
  p.p50 = at(0.5);
  p.p99 = at(0.99);
  p.p999 = at(0.999);
  return p;
}

void sleep_until_ns(std::uint64_t until) {
  const timespec ts{static_cast<time_t>(until / 1'000'000'000ull),
                    static_cast<long>(until % 1'000'000'000ull)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// The floor: the same one-way measurement (stamp, hand over, stamp on the other side, `gap`
// between messages, the sender sleeping in between) with nothing but the hand-over itself.
// socket: the receiver blocks in poll() on its end of an AF_UNIX SOCK_SEQPACKET socketpair and
// the sender sends one byte with MSG_DONTWAIT — the wake-up of wire version 2 (and of a
// sleep past the subscriber's futex window), minus everything else; eventfd: the same with an
// eventfd (the floor issue 16 names; version 1's wake-up); spin: the receiver spins on a
// shared-memory counter (our busy-poll path minus everything else). Both processes share an
// anonymous MAP_SHARED mapping with one send stamp per message, so a message the receiver only
// sees late (it was descheduled) counts with its real latency, as in our own measurement. Like
// our subscriber, the sleeping receivers stamp as soon as poll() returns and read the wake-up
// afterwards.
struct alignas(64) FloorShared {
  std::atomic<std::uint64_t> seq{0};       // the stamps (n + 1 of them) follow on the next line
  std::atomic<std::uint32_t> sleeping{0};  // futex: the receiver's sleep flag and futex word
};

// socket3: the wake socket again, the receiver polling it together with two idle fds (a second
// socket and an eventfd), as the subscriber's socket sleep polls {wake socket, control socket,
// interrupt eventfd}: a diagnostic of what the 3-fd poll itself costs, not a target floor.
// futex: the receiver says it sleeps (a flag in the shared mapping, then a re-check of seq)
// and waits on that flag with FUTEX_WAIT; the sender, after its store of seq, finds the flag
// set, clears it and FUTEX_WAKEs: the wake-up our sleeping path uses since wire version 3.
// spin_lines: the spin hand-off where the sender also writes kRecordLines cache lines (of a
// 64 KiB ring, so the receiver read them a lap ago, as with our ring) that the receiver reads
// before stamping: what a record of that size adds to the hand-over (diagnostic).
// spin_ring: our busy-poll path's shared-memory pattern and nothing else: the sender writes a
// record of our size (14 words, the send stamp its last word, packed end to end like ours in a
// ring of 64 KiB) and then stores the write position on a line of its own (seq_cst, like ours);
// the receiver spins on that position, copies the record out word by word and claims it with a
// CAS of a read position on a third line (the ack area's). What is left of our busy-poll p50
// above this is our code, not the protocol's cache lines (diagnostic).
// spin_one_line: the pattern a record of one cache line with its sequence number inside would
// have (the sender writes the line, the sequence word last; the receiver spins on that word of
// the next record): the most a compact record could take off the protocol (diagnostic).
enum class Floor { eventfd, socket, socket3, futex, spin, spin_lines, spin_ring, spin_one_line };
constexpr std::size_t kRecordLines = 4;
constexpr std::size_t kLinesRing = 64 * 1024;
constexpr std::size_t kRingRecordWords = 14;  // wire::kPlainBufferWords
constexpr std::size_t kRingRecordBytes = kRingRecordWords * 8;
constexpr std::size_t kRingUsed = kLinesRing / kRingRecordBytes * kRingRecordBytes;
volatile std::uint64_t g_sink;

// The receivers' slice in the "100 us slice" rows.
constexpr std::chrono::microseconds kShortSlice{100};

Percentiles floor_latency(Floor kind, int n, std::chrono::microseconds gap,
                          bool short_slice = false) {
  const bool spin = kind == Floor::spin || kind == Floor::spin_lines;
  const bool pattern = kind == Floor::spin_ring || kind == Floor::spin_one_line;
  const std::size_t stamps_size = (8 * static_cast<std::size_t>(n + 1) + 63) & ~std::size_t{63};
  // The last line: the receiver's count of messages taken (futex: read after each FUTEX_WAKE).
  const std::size_t map_size = 64 + stamps_size + kLinesRing + 64;
  void* mem = ::mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) std::abort();
  // Zero-filled: every counter starts at 0.
  auto* sh = static_cast<FloorShared*>(mem);
  auto* stamps = reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<char*>(mem) + 64);
  auto* lines =
      reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<char*>(mem) + 64 + stamps_size);
  auto* taken = reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<char*>(mem) + 64 +
                                                              stamps_size + kLinesRing);
  std::uint64_t wakes = 0, taken_in_wake = 0;
  const bool sock = kind == Floor::socket || kind == Floor::socket3;
  int efd = -1, sv[2] = {-1, -1}, idle[2] = {-1, -1};
  if (sock) {
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
      std::abort();
    if (kind == Floor::socket3) {
      if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, idle) != 0)
        std::abort();
      efd = ::eventfd(0, EFD_CLOEXEC);
      if (efd < 0) std::abort();
    }
  } else if (kind == Floor::eventfd) {
    efd = ::eventfd(0, EFD_CLOEXEC);
    if (efd < 0) std::abort();
  }
  // The receiver's and the sender's wake-up fd.
  const int rx = sock ? sv[1] : efd, tx = sock ? sv[0] : efd;
  int res[2];
  if (::pipe(res) != 0) std::abort();
  // BENCH_IPC_PIN_FLOORS: receiver on CPU 1, sender on CPU 0 (restored afterwards).
  const bool pin = std::getenv("BENCH_IPC_PIN_FLOORS") != nullptr;
  auto pin_to = [](int cpu) {
    cpu_set_t m;
    CPU_ZERO(&m);
    CPU_SET(cpu, &m);
    if (::sched_setaffinity(0, sizeof m, &m) != 0) std::perror("sched_setaffinity");
  };
  cpu_set_t saved;
  if (pin && ::sched_getaffinity(0, sizeof saved, &saved) != 0) std::abort();
  pid_t pid = ::fork();
  if (pid == 0) {
    if (pin) pin_to(1);
    if (short_slice) {
      if (auto r = parallax::sched::set_current_thread_slice(kShortSlice); !r) {
        std::fprintf(stderr, "floor: %s\n", r.error().to_string().c_str());
        ::_exit(2);  // no stamps: the row prints n=0
      }
    }
    ::close(res[0]);
    std::uint64_t sink = 0;
    std::vector<std::uint64_t> lat;
    lat.reserve(static_cast<std::size_t>(n));
    std::uint64_t seen = 0;
    std::uint64_t pos = 0;  // spin_ring: the read position (bytes)
    while (static_cast<int>(seen) < n) {
      if (pattern) {
        std::uint64_t stamp = 0;
        if (kind == Floor::spin_ring) {
          while (sh->seq.load(std::memory_order_acquire) == pos)
            parallax::cpu_relax();
          const auto* rec = lines + (pos % kRingUsed) / 8;
          std::uint64_t words[kRingRecordWords];
          for (std::size_t j = 0; j < kRingRecordWords; ++j)
            words[j] = rec[j].load(std::memory_order_relaxed);
          std::uint64_t expected = pos;
          // The only claimer here, so it always succeeds: what is timed is its cache line.
          taken->compare_exchange_strong(expected, pos + kRingRecordBytes,
                                         std::memory_order_seq_cst);
          pos += kRingRecordBytes;
          sink += words[1];
          stamp = words[kRingRecordWords - 1];
        } else {
          const auto* rec = lines + (seen + 1) % (kLinesRing / 64) * 8;
          // <= seen: the line still holds the record of a lap ago. A receiver lapped by the
          // sender (descheduled for a whole lap, 51 ms at the default pacing) finds a later
          // record there and goes on with it rather than waiting for one that is gone.
          while (rec[0].load(std::memory_order_acquire) <= seen)
            parallax::cpu_relax();
          std::uint64_t words[8];
          for (std::size_t j = 0; j < 8; ++j)
            words[j] = rec[j].load(std::memory_order_relaxed);
          sink += words[1];
          stamp = words[7];
        }
        const std::uint64_t t = now_ns();
        lat.push_back(t > stamp ? t - stamp : 0);
        ++seen;
        continue;
      }
      if (spin) {
        while (sh->seq.load(std::memory_order_acquire) == seen)
          parallax::cpu_relax();
      } else if (kind == Floor::socket3) {
        pollfd p[3] = {{rx, POLLIN, 0}, {idle[1], POLLIN, 0}, {efd, POLLIN, 0}};
        (void)::poll(p, 3, -1);
      } else if (kind == Floor::futex) {
        test::futex_sleep_while(sh->sleeping, sh->seq, seen);
      } else {
        pollfd p{rx, POLLIN, 0};
        (void)::poll(&p, 1, -1);
      }
      if (kind == Floor::spin_lines) {
        const std::size_t base = (seen + 1) * kRecordLines % (kLinesRing / 64);
        for (std::size_t j = 0; j < kRecordLines; ++j)
          sink += lines[(base + j) % (kLinesRing / 64) * 8].load(std::memory_order_relaxed);
      }
      const std::uint64_t t = now_ns();
      if (kind == Floor::eventfd) {
        std::uint64_t v;
        (void)!::read(efd, &v, sizeof v);
      } else if (sock) {
        char buf[16];
        while (::recv(rx, buf, sizeof buf, MSG_DONTWAIT) > 0) {
        }
      }
      const std::uint64_t now_seen = sh->seq.load(std::memory_order_acquire);
      // Messages sent after `t` was taken (the sender posted again between the wake-up and the
      // read of seq: a receiver descheduled there, or a spin that saw one message while the
      // next landed) are stamped now, when they are seen: t - stamp would be negative (it was
      // an unsigned wrap-around, printed as 1.8e16 us).
      std::uint64_t late_t = 0;
      for (std::uint64_t k = seen + 1; k <= now_seen; ++k) {
        const std::uint64_t sent = stamps[k].load(std::memory_order_relaxed);
        if (sent > t && late_t == 0) late_t = now_ns();
        lat.push_back((sent > t ? late_t : t) - sent);
      }
      seen = now_seen;
      if (kind == Floor::futex) taken->store(seen, std::memory_order_release);
    }
    g_sink = sink;  // keeps the line reads
    (void)!::write(res[1], lat.data(), lat.size() * sizeof(std::uint64_t));
    ::_exit(0);
  }
  ::close(res[1]);
  if (pin) pin_to(0);
  std::uint64_t write_pos = 0;  // spin_ring
  for (int i = 1; i <= n; ++i) {
    const std::uint64_t t0 = now_ns();
    const auto u = static_cast<std::uint64_t>(i);
    if (kind == Floor::spin_ring) {
      auto* rec = lines + (write_pos % kRingUsed) / 8;
      for (std::size_t j = 0; j + 1 < kRingRecordWords; ++j)
        rec[j].store(u * 31 + j, std::memory_order_relaxed);
      rec[kRingRecordWords - 1].store(t0, std::memory_order_relaxed);
      write_pos += kRingRecordBytes;
      sh->seq.store(write_pos, std::memory_order_seq_cst);
    } else if (kind == Floor::spin_one_line) {
      auto* rec = lines + u % (kLinesRing / 64) * 8;
      for (std::size_t j = 1; j < 7; ++j)
        rec[j].store(u * 31 + j, std::memory_order_relaxed);
      rec[7].store(t0, std::memory_order_relaxed);
      rec[0].store(u, std::memory_order_release);
    } else {
      if (kind == Floor::spin_lines) {
        const std::size_t base = static_cast<std::size_t>(i) * kRecordLines % (kLinesRing / 64);
        for (std::size_t j = 0; j < kRecordLines; ++j)
          lines[(base + j) % (kLinesRing / 64) * 8].store(t0, std::memory_order_relaxed);
      }
      stamps[i].store(t0, std::memory_order_relaxed);
      if (kind == Floor::futex) {
        if (test::futex_post(sh->seq, u, sh->sleeping)) {
          ++wakes;
          taken_in_wake += taken->load(std::memory_order_acquire) >= u ? 1 : 0;
        }
      } else {
        sh->seq.store(u, std::memory_order_release);
        if (kind == Floor::eventfd) {
          const std::uint64_t one = 1;
          (void)!::write(efd, &one, sizeof one);
        } else if (sock) {
          const char one = 1;
          (void)!::send(tx, &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
      }
    }
    sleep_until_ns(t0 + static_cast<std::uint64_t>(gap.count()) * 1000);
  }
  if (pin) (void)::sched_setaffinity(0, sizeof saved, &saved);  // as it was: best effort
  std::vector<std::uint64_t> lat(static_cast<std::size_t>(n));
  std::size_t got = 0;
  auto* bytes = reinterpret_cast<char*>(lat.data());
  ssize_t r;
  while (got < lat.size() * sizeof(std::uint64_t) &&
         (r = ::read(res[0], bytes + got, lat.size() * sizeof(std::uint64_t) - got)) > 0)
    got += static_cast<std::size_t>(r);
  lat.resize(got / sizeof(std::uint64_t));
  ::close(res[0]);
  for (int fd : {efd, sv[0], sv[1], idle[0], idle[1]})
    if (fd >= 0) ::close(fd);
  int st;
  ::waitpid(pid, &st, 0);
  ::munmap(mem, map_size);
  Percentiles p = percentiles(std::move(lat));
  if (wakes != 0)
    p.taken_in_wake = 100.0 * static_cast<double>(taken_in_wake) / static_cast<double>(wakes);
  return p;
}

// Subscriber process: "sub PATH throughput|sleep|sleep-slice|adaptive|busy" (adaptive: the
// default options, a spin of up to 20 us that adapts to the gaps; sleep-slice: sleep with a
// 100 us time slice). Prints a result line.
int run_sub(const std::string& path, const std::string& mode) {
  SubscriberOptions so;
  so.connect_timeout = 5s;
  if (mode == "busy") so.busy_poll = true;
  if (mode == "sleep" || mode == "sleep-slice") so.spin = 0ns;
  if (mode == "sleep-slice") {
    if (auto r = parallax::sched::set_current_thread_slice(kShortSlice); !r) {
      std::fprintf(stderr, "sub: %s\n", r.error().to_string().c_str());
      return 2;
    }
  }
  auto sub = IpcSubscriber::connect(path, so);
  if (!sub) {
    std::fprintf(stderr, "sub: %s\n", sub.error().to_string().c_str());
    return 2;
  }
  std::vector<std::uint64_t> lat;
  lat.reserve(1 << 20);
  std::uint64_t n = 0, first = 0, last = 0;
  for (;;) {
    auto b = sub->recv();
    if (!b) {
      std::fprintf(stderr, "sub: %s\n", b.error().to_string().c_str());
      return 3;
    }
    if (!*b) break;
    const std::uint64_t t = now_ns();
    if (n == 0) first = t;
    last = t;
    ++n;
    if (mode != "throughput" && (*b)->metadata().pts) lat.push_back(t - *(*b)->metadata().pts);
  }
  if (mode == "throughput") {
    const double secs = static_cast<double>(last - first) / 1e9;
    std::printf("%llu %.6f\n", static_cast<unsigned long long>(n), secs);
  } else {
    const SubscriberStats st = sub->stats();
    const double transit = st.latency_count == 0
                               ? 0
                               : static_cast<double>(st.latency_sum_ns) /
                                     static_cast<double>(st.latency_count) / 1000.0;
    const Percentiles p = percentiles(std::move(lat));
    std::printf("%zu %.3f %.3f %.3f %.3f %.3f\n", p.n, p.p50, p.p99, p.p999, p.mean, transit);
  }
  return 0;
}

using test::Child;
using test::finish;

// Throughput: one subscriber, block policy, N buffers of `size` (contents never touched).
double throughput(const char* self, const std::string& path, std::size_t size, std::uint64_t n) {
  PublisherOptions po;
  po.slot_size = std::max<std::size_t>(size, 64);
  po.slot_count = 128;
  po.max_leases_per_subscriber = 64;
  auto pub = IpcPublisher::bind(path, po);
  if (!pub) {
    std::fprintf(stderr, "bind: %s\n", pub.error().to_string().c_str());
    std::exit(2);
  }
  Child c = test::spawn_sub(self, path, "throughput");
  if (!pub->wait_for_subscribers(1, 10s)) std::exit(3);
  for (std::uint64_t i = 0; i < n; ++i) {
    auto l = pub->loan();
    if (!l) std::exit(4);
    (void)l->set_size(size);
    l->metadata().sequence = i;
    if (!pub->send(std::move(*l))) std::exit(5);
  }
  (void)pub->send_eos();
  std::string out = finish(c);
  unsigned long long got = 0;
  double secs = 0;
  if (std::sscanf(out.c_str(), "%llu %lf", &got, &secs) != 2 || got != n || secs <= 0) {
    std::fprintf(stderr, "throughput run failed: '%s'\n", out.c_str());
    return 0;
  }
  return static_cast<double>(got - 1) / secs;
}

// Latency: 4 KiB buffers paced every `gap`, pts = send time.
std::string latency(const char* self, const std::string& path, const char* mode, int n,
                    std::chrono::microseconds gap, double* send_mean_us) {
  PublisherOptions po;
  po.slot_size = 4096;
  po.slot_count = 64;
  auto pub = IpcPublisher::bind(path, po);
  if (!pub) std::exit(2);
  Child c = test::spawn_sub(self, path, mode);
  if (!pub->wait_for_subscribers(1, 10s)) {
    finish(c);   // it said why on stderr
    return "0";  // an empty row (n=0)
  }
  std::this_thread::sleep_for(20ms);
  std::uint64_t send_sum = 0;
  for (int i = 0; i < n; ++i) {
    const auto until = now_ns() + static_cast<std::uint64_t>(gap.count()) * 1000;
    auto l = pub->loan();
    if (!l) std::exit(4);
    (void)l->set_size(4096);
    const std::uint64_t pts = now_ns();
    l->metadata().pts = pts;
    if (!pub->send(std::move(*l))) std::exit(5);
    send_sum += now_ns() - pts;
    // Sleep out the gap (a spinning producer would steal the consumer's core on small boxes).
    sleep_until_ns(until);
  }
  *send_mean_us = static_cast<double>(send_sum) / n / 1000.0;
  (void)pub->send_eos();
  return finish(c);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && std::strcmp(argv[1], "sub") == 0) return run_sub(argv[2], argv[3]);
  bool quick = false, latency_only = false, throughput_only = false;
  for (int i = 1; i < argc; ++i) {
    quick |= std::strcmp(argv[i], "--quick") == 0;
    latency_only |= std::strcmp(argv[i], "--latency-only") == 0;
    throughput_only |= std::strcmp(argv[i], "--throughput-only") == 0;
  }
  char self[4096];
  ssize_t len = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return 1;
  self[len] = 0;
  const std::string path = "/tmp/bench_ipc_" + std::to_string(::getpid()) + ".sock";

  std::printf("bench_ipc: native publisher -> subscriber (two processes, payload untouched)\n");
  if (!latency_only) std::printf("%-10s %14s\n", "size", "buffers/s");
  const std::size_t sizes[] = {64, 4096, 256 * 1024, 1 << 20, 8 << 20};
  const char* names[] = {"64 B", "4 KiB", "256 KiB", "1 MiB", "8 MiB"};
  for (int i = 0; i < 5 && !latency_only; ++i) {
    const char* env_n = std::getenv("BENCH_IPC_N");
    const std::uint64_t n = env_n ? std::strtoull(env_n, nullptr, 10) : (quick ? 20000 : 300000);
    const double rate = throughput(self, path, sizes[i], n);
    std::printf("%-10s %14.0f\n", names[i], rate);
    std::fflush(stdout);
  }
  const int nlat = quick ? 2000 : 20000;
  if (std::getenv("BENCH_IPC_NO_LATENCY") != nullptr || throughput_only) return 0;
  // BENCH_IPC_GAP_US: the pacing of the latency rows (default 50 us; a shorter gap keeps both
  // sides' caches warmer, which shows how much of the path is cold-cache cost).
  const char* env_gap = std::getenv("BENCH_IPC_GAP_US");
  const auto gap = std::chrono::microseconds(env_gap ? std::strtoul(env_gap, nullptr, 10) : 50);
  auto print = [](const char* what, const Percentiles& p) {
    std::printf(
        "latency %-26s (n=%zu): p50 %7.2f us  p99 %8.2f us  p99.9 %8.2f us  mean %7.2f us\n", what,
        p.n, p.p50, p.p99, p.p999, p.mean);
    if (p.taken_in_wake >= 0)
      std::printf(
          "  the receiver had the message before FUTEX_WAKE returned: %.1f %% of wake-ups\n",
          p.taken_in_wake);
    std::fflush(stdout);
  };
  // Each row is followed by its floor from the same run, and the ratio the targets use.
  auto run = [&](const char* mode) {
    double send_mean = 0;
    const std::string out = latency(self, path, mode, nlat, gap, &send_mean);
    Percentiles p;
    std::sscanf(out.c_str(), "%zu %lf %lf %lf %lf %lf", &p.n, &p.p50, &p.p99, &p.p999, &p.mean,
                &p.transit);
    p.send = send_mean;
    return p;
  };
  // Where one buffer's time goes, in means (the percentiles above are not additive). End to
  // end = [pts -> the publisher's send stamp: freeze, encode, locks, sync, lease bookkeeping]
  // + transit [send stamp -> the subscriber's note_transit(): ring write, hand-over (or
  // wake-up), claim, decode, Buffer made] + [the rest of recv() and returning]. The first
  // and last part together are end to end minus transit.
  auto breakdown = [](const char* what, const Percentiles& p) {
    std::printf(
        "  %s means: end to end %.2f us = transit %.2f us + before/after it %.2f us; "
        "publisher send() call %.2f us\n",
        what, p.mean, p.transit, p.mean - p.transit, p.send);
  };
  // The sleeping row with a 100 us slice on the receivers (ours and the floors'); compared
  // with the default-slice rows too when they ran (n > 0).
  auto slice_rows = [&](const Percentiles& sleep, const Percentiles& efd) {
    const Percentiles sleep_s = run("sleep-slice");
    print("4 KiB sleep (spin=0), 100 us slice", sleep_s);
    breakdown("sleep, 100 us slice", sleep_s);
    const Percentiles efd_s = floor_latency(Floor::eventfd, nlat, gap, true);
    print("floor: eventfd, 100 us slice", efd_s);
    const Percentiles fut_s = floor_latency(Floor::futex, nlat, gap, true);
    print("floor: futex, 100 us slice", fut_s);
    if (sleep_s.n == 0 || efd_s.n == 0) {
      std::printf("100 us slice rows: not measured (see the error above; Linux 6.12 or later)\n");
      return;
    }
    std::printf(
        "sleeping, 100 us slice: vs the eventfd floor with the same slice p50 +%.2f us (target "
        "<= +1.5), p99 %.2fx; vs the futex floor with it p50 +%.2f us\n",
        sleep_s.p50 - efd_s.p50, efd_s.p99 > 0 ? sleep_s.p99 / efd_s.p99 : 0.0,
        sleep_s.p50 - fut_s.p50);
    if (sleep.n != 0 && efd.n != 0)
      std::printf(
          "  vs the eventfd floor with the default slice p50 +%.2f us; the slice moved our p50 by "
          "%+.2f us\n",
          sleep_s.p50 - efd.p50, sleep_s.p50 - sleep.p50);
  };
  auto busy_rows = [&] {
    const Percentiles busy = run("busy");
    print("4 KiB busy-poll", busy);
    breakdown("busy-poll", busy);
    const Percentiles spin = floor_latency(Floor::spin, nlat, gap);
    print("floor: shm spin hand-off", spin);
    const Percentiles lines = floor_latency(Floor::spin_lines, nlat, gap);
    print("diag: spin + 4-line record", lines);
    const Percentiles ring = floor_latency(Floor::spin_ring, nlat, gap);
    print("diag: our ring's lines, no code", ring);
    const Percentiles one = floor_latency(Floor::spin_one_line, nlat, gap);
    print("diag: one-line record", one);
    std::printf(
        "busy-poll vs spin floor: p50 %.2fx (target <= 2x); vs the 4-line record: p50 %.2fx; "
        "our ring's lines alone: %.2fx the spin floor, so our code adds %+.2f us\n",
        spin.p50 > 0 ? busy.p50 / spin.p50 : 0.0, lines.p50 > 0 ? busy.p50 / lines.p50 : 0.0,
        spin.p50 > 0 ? ring.p50 / spin.p50 : 0.0, busy.p50 - ring.p50);
  };
  const char* env_rows = std::getenv("BENCH_IPC_ROWS");
  const std::string rows = env_rows != nullptr ? "," + std::string(env_rows) + "," : "";
  auto want = [&](const char* group) {
    return rows.empty() || rows.find("," + std::string(group) + ",") != std::string::npos;
  };
  Percentiles sleep, efd;  // n = 0 unless the sleep group ran
  if (want("sleep")) {
    sleep = run("sleep");
    print("4 KiB sleep (spin=0)", sleep);
    breakdown("sleep", sleep);
    efd = floor_latency(Floor::eventfd, nlat, gap);
    print("floor: eventfd wake-up", efd);
    const Percentiles fut = floor_latency(Floor::futex, nlat, gap);
    print("floor: futex wake-up", fut);
    print("diag: wake socket", floor_latency(Floor::socket, nlat, gap));
    print("diag: wake socket, 3-fd poll", floor_latency(Floor::socket3, nlat, gap));
    std::printf(
        "sleeping vs eventfd floor: p50 +%.2f us (target <= +1.5), p99 %.2fx (target <= 1.5x);"
        " means +%.2f us; vs the futex floor: p50 +%.2f us, p99 %.2fx\n",
        sleep.p50 - efd.p50, efd.p99 > 0 ? sleep.p99 / efd.p99 : 0.0, sleep.mean - efd.mean,
        sleep.p50 - fut.p50, fut.p99 > 0 ? sleep.p99 / fut.p99 : 0.0);
  }
  if (want("slice")) slice_rows(sleep, efd);
  if (want("adaptive")) print("4 KiB sleep (default spin)", run("adaptive"));
  if (want("busy")) busy_rows();
  return 0;
}
