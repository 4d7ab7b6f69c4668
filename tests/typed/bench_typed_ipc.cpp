// SPDX-License-Identifier: MIT OR Apache-2.0
// bench_typed_ipc: small typed messages (archives of 60-140 bytes with their header) from a
// TypedPublisher to a TypedSubscriber in another process (this binary re-executes itself as
// the subscriber), next to native IPC buffers of the same sizes from the same run: runs
// alternate typed / native so both see the same machine. Prints each run's rate, then the
// median and range of each and the typed/native ratio.
//   bench_typed_ipc [--quick] [--runs N]     env: BENCH_TYPED_IPC_N (messages per run)
//   bench_typed_ipc sub PATH typed|native     (the subscriber; prints "count seconds")
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "child_process.h"
#include "parallax/typed_ipc.h"

namespace bench {

// A market-data style tick: two short strings, numbers and a short vector.
struct Tick {
  std::string symbol;
  std::uint64_t seq;
  double price;
  std::uint32_t qty;
  std::vector<std::uint16_t> flags;
  std::string venue;
};
PLX_ARCHIVE(Tick, symbol, seq, price, qty, flags, venue);

}  // namespace bench

namespace {

using namespace parallax;
using namespace parallax::link;
using namespace std::chrono_literals;
using bench::Tick;

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

// Archive sizes cycle through 60-140 bytes: the symbol's and flags' lengths vary with i.
Tick make_tick(std::uint64_t i) {
  Tick t;
  t.symbol.assign(3 + i % 9, static_cast<char>('A' + i % 26));
  t.seq = i;
  t.price = 100.0 + static_cast<double>(i % 1000) / 100.0;
  t.qty = static_cast<std::uint32_t>(i % 500);
  t.flags.assign(i % 25, static_cast<std::uint16_t>(i));
  t.venue = i % 2 ? "XNAS" : "XNYS-ARCA";
  return t;
}

int run_sub(const std::string& path, const std::string& mode) {
  SubscriberOptions so;
  so.connect_timeout = 5s;
  std::uint64_t n = 0, first = 0, last = 0, check = 0;
  if (mode == "typed") {
    TypedSubscriberOptions to;
    to.ipc = so;
    auto sub = TypedSubscriber<Tick>::connect(path, to);
    if (!sub) {
      std::fprintf(stderr, "sub: %s\n", sub.error().to_string().c_str());
      return 2;
    }
    for (;;) {
      auto m = sub->recv();
      if (!m) {
        std::fprintf(stderr, "sub: %s\n", m.error().to_string().c_str());
        return 3;
      }
      if (!*m) break;
      const std::uint64_t t = now_ns();
      if (n == 0) first = t;
      last = t;
      ++n;
      check += (**m)->seq;  // read a field, as a consumer would
    }
  } else {
    auto sub = IpcSubscriber::connect(path, so);
    if (!sub) {
      std::fprintf(stderr, "sub: %s\n", sub.error().to_string().c_str());
      return 2;
    }
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
      check += (*b)->size();
    }
  }
  std::printf("%llu %.6f %llu\n", static_cast<unsigned long long>(n),
              static_cast<double>(last - first) / 1e9, static_cast<unsigned long long>(check));
  return 0;
}

using test::Child;
using test::finish;

PublisherOptions pub_options() {
  PublisherOptions po;
  po.slot_size = 256;
  po.slot_count = 128;
  po.max_leases_per_subscriber = 64;
  return po;
}

double rate_of(const std::string& out, std::uint64_t n) {
  unsigned long long got = 0, check = 0;
  double secs = 0;
  if (std::sscanf(out.c_str(), "%llu %lf %llu", &got, &secs, &check) != 3 || got != n ||
      secs <= 0) {
    std::fprintf(stderr, "run failed: '%s'\n", out.c_str());
    std::exit(6);
  }
  return static_cast<double>(got - 1) / secs;
}

// Typed: serialize each Tick into a loan (TypedPublisher::send), validate each on receipt.
double typed_run(const char* self, const std::string& path, std::uint64_t n, std::size_t& min_size,
                 std::size_t& max_size) {
  auto pub = TypedPublisher<Tick>::bind(path, pub_options());
  if (!pub) {
    std::fprintf(stderr, "bind: %s\n", pub.error().to_string().c_str());
    std::exit(2);
  }
  std::vector<Tick> ticks;
  for (std::uint64_t i = 0; i < 225; ++i) {  // every size combination, built once
    ticks.push_back(make_tick(i));
    const std::size_t s = archive::serialized_size(ticks.back(), {.header = true});
    min_size = std::min(min_size, s);
    max_size = std::max(max_size, s);
  }
  Child c = test::spawn_sub(self, path, "typed");
  if (!pub->wait_for_subscribers(1, 10s)) std::exit(3);
  for (std::uint64_t i = 0; i < n; ++i) {
    Tick& t = ticks[i % ticks.size()];
    t.seq = i;
    if (auto r = pub->send(t); !r) {
      std::fprintf(stderr, "send: %s\n", r.error().to_string().c_str());
      std::exit(4);
    }
  }
  if (!pub->send_eos()) std::exit(5);
  const double r = rate_of(finish(c), n);
  pub->close();
  return r;
}

// Native: loans of the same sizes, payload untouched (bench_ipc's pattern).
double native_run(const char* self, const std::string& path, std::uint64_t n, std::size_t min_size,
                  std::size_t max_size) {
  auto pub = IpcPublisher::bind(path, pub_options());
  if (!pub) {
    std::fprintf(stderr, "bind: %s\n", pub.error().to_string().c_str());
    std::exit(2);
  }
  Child c = test::spawn_sub(self, path, "native");
  if (!pub->wait_for_subscribers(1, 10s)) std::exit(3);
  const std::size_t span = max_size - min_size + 1;
  for (std::uint64_t i = 0; i < n; ++i) {
    auto l = pub->loan();
    if (!l) std::exit(4);
    (void)l->set_size(min_size + i % span);  // within the slot: cannot fail
    l->metadata().sequence = i;
    if (!pub->send(std::move(*l))) std::exit(5);
  }
  if (!pub->send_eos()) std::exit(5);
  const double r = rate_of(finish(c), n);
  pub->close();
  return r;
}

struct Summary {
  double median, lo, hi;
};
Summary summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t k = v.size();
  const double med = k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
  return {med, v.front(), v.back()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && std::strcmp(argv[1], "sub") == 0) return run_sub(argv[2], argv[3]);
  bool quick = false;
  int runs = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    if (std::strcmp(argv[i], "--runs") == 0 && i + 1 < argc) runs = std::atoi(argv[++i]);
  }
  if (quick) runs = std::min(runs, 3);
  if (runs < 1) runs = 1;
  const char* env_n = std::getenv("BENCH_TYPED_IPC_N");
  const std::uint64_t n = env_n ? std::strtoull(env_n, nullptr, 10) : (quick ? 20000 : 300000);
  char self[4096];
  const ssize_t len = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return 1;
  self[len] = 0;
  const std::string path = "/tmp/bench_typed_ipc_" + std::to_string(::getpid()) + ".sock";

  std::size_t min_size = SIZE_MAX, max_size = 0;
  std::vector<double> typed, native;
  std::printf("bench_typed_ipc: %llu messages per run, %d runs alternating (two processes)\n",
              static_cast<unsigned long long>(n), runs);
  for (int r = 0; r < runs; ++r) {
    typed.push_back(typed_run(self, path, n, min_size, max_size));
    native.push_back(native_run(self, path, n, min_size, max_size));
    std::printf("run %d: typed %.0f msgs/s, native %.0f buffers/s\n", r + 1, typed.back(),
                native.back());
    std::fflush(stdout);
  }
  const Summary t = summarize(typed);
  const Summary nt = summarize(native);
  std::printf("archive sizes %zu-%zu bytes (header included)\n", min_size, max_size);
  std::printf("typed  median %10.0f msgs/s     (range %.0f-%.0f)\n", t.median, t.lo, t.hi);
  std::printf("native median %10.0f buffers/s  (range %.0f-%.0f)\n", nt.median, nt.lo, nt.hi);
  std::printf("typed/native %.2f (target: typed >= 1000000 msgs/s median)\n", t.median / nt.median);
  return 0;
}
