// SPDX-License-Identifier: MIT OR Apache-2.0
// bench_numa: same-node vs cross-node placement. For each (thread node, memory node) pair:
// copy bandwidth (memcpy between two 64 MiB regions bound to the memory node, by a thread
// pinned to the thread node) and hop latency (IpcPublisher with numa_node = memory node ->
// IpcSubscriber on a thread pinned to the thread node; send-to-receive time of 4 KiB buffers).
// On a one-node machine only the same-node pair exists, and it says so. Run by
// tools/bench-numa.sh; numbers are medians of repeated runs.
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "parallax/affinity.h"
#include "parallax/ipc.h"

using namespace parallax;
using namespace std::chrono_literals;

namespace {

std::uint64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + ts.tv_nsec;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// GB/s of memcpy between two regions on `mem`, from a thread on `cpu_node`.
double copy_bandwidth(const topology::Topology& topo, unsigned cpu_node, unsigned mem) {
  constexpr std::size_t kBytes = 64 << 20;
  double result = 0;
  std::thread([&] {
    if (auto r = topology::pin_current_thread(topo.node_cpus(cpu_node).value()); !r) {
      std::fprintf(stderr, "pin: %s\n", r.error().message.c_str());
      return;
    }
    auto* src = static_cast<std::byte*>(
        ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    auto* dst = static_cast<std::byte*>(
        ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    for (auto* p : {src, dst}) {
      if (auto placed = topology::place_memory(p, kBytes, mem); !placed)
        std::fprintf(stderr, "place: %s\n", placed.error().message.c_str());
    }
    std::vector<double> runs;
    for (int i = 0; i < 9; ++i) {
      const auto t0 = now_ns();
      std::memcpy(dst, src, kBytes);
      const auto t1 = now_ns();
      runs.push_back(static_cast<double>(kBytes) / static_cast<double>(t1 - t0));  // B/ns = GB/s
    }
    result = median(runs);
    ::munmap(src, kBytes);
    ::munmap(dst, kBytes);
  }).join();
  return result;
}

struct Latency {
  double p50_us{0}, p99_us{0};
};

Latency hop_latency(const topology::Topology& topo, unsigned cpu_node, unsigned mem) {
  const std::string path = "/tmp/plx-bench-numa-" + std::to_string(::getpid()) + ".sock";
  link::PublisherOptions po;
  po.slot_size = 4096;
  po.slot_count = 64;
  po.numa_node = static_cast<int>(mem);
  auto pub = link::IpcPublisher::bind(path, po);
  if (!pub) {
    std::fprintf(stderr, "publisher: %s\n", pub.error().message.c_str());
    return {};
  }
  constexpr int kN = 3000;
  std::vector<double> lat;
  lat.reserve(kN);
  std::thread consumer([&] {
    (void)topology::pin_current_thread(topo.node_cpus(cpu_node).value());
    auto sub = link::IpcSubscriber::connect(path);
    if (!sub) return;
    for (int i = 0; i < kN; ++i) {
      auto b = sub->recv_for(5s);
      if (!b || !b->has_value()) break;
      std::uint64_t sent = 0;
      std::memcpy(&sent, (*b)->data().data(), sizeof sent);
      lat.push_back(static_cast<double>(now_ns() - sent) / 1000.0);
    }
  });
  if (pub->wait_for_subscribers(1, 5s)) {
    for (int i = 0; i < kN; ++i) {
      auto loan = pub->loan();
      if (!loan) break;
      (void)loan->set_size(64);
      const std::uint64_t t = now_ns();
      std::memcpy(loan->data().data(), &t, sizeof t);
      if (!pub->send(std::move(*loan))) break;
      std::this_thread::sleep_for(50us);  // paced: latency, not throughput
    }
  }
  consumer.join();
  pub->close();
  if (lat.empty()) return {};
  std::sort(lat.begin(), lat.end());
  return {lat[lat.size() / 2], lat[lat.size() * 99 / 100]};
}

}  // namespace

int main() {
  auto topo = topology::Topology::load();
  if (!topo) {
    std::fprintf(stderr, "hwloc: %s\n", topo.error().message.c_str());
    return 1;
  }
  std::printf("machine: %s\n", topo->describe().c_str());
  const unsigned nodes = static_cast<unsigned>(topo->numa_nodes());
  std::vector<std::pair<unsigned, unsigned>> pairs{{0, 0}};
  if (nodes >= 2)
    pairs.emplace_back(0, 1);
  else
    std::printf("one NUMA node: the cross-node half cannot run here; same-node only\n");
  std::printf("%-12s %-12s %14s %14s %14s\n", "thread-node", "memory-node", "copy GB/s",
              "hop p50 us", "hop p99 us");
  for (auto [c, m] : pairs) {
    const double bw = copy_bandwidth(*topo, c, m);
    const Latency l = hop_latency(*topo, c, m);
    std::printf("%-12u %-12u %14.2f %14.1f %14.1f   (%s)\n", c, m, bw, l.p50_us, l.p99_us,
                c == m ? "same node" : "cross node");
  }
  return 0;
}
