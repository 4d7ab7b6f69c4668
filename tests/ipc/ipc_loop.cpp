// SPDX-License-Identifier: MIT OR Apache-2.0
// One thread, one publisher and one busy-poll subscriber on the same socket: N times loan a
// 4 KiB slot, stamp a pts, send it, recv() it and drop it. Not a latency benchmark (nothing
// crosses a core): the program callgrind runs to count the instructions of the per-buffer
// paths, free of the load and cache state a two-process run depends on.
//   valgrind --tool=callgrind --callgrind-out-file=cg.out build-bench/tests/ipc/ipc_loop 32000
//   callgrind_annotate --inclusive=yes cg.out | grep -E
//   'IpcPublisher::send\(|IpcSubscriber::recv\(\)'
// and divide by N (docs/benchmarks.md quotes the figures).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "parallax/ipc.h"

using namespace parallax;
using namespace parallax::link;

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 32000;
  const std::string path = "/tmp/plx-ipc-loop-" + std::to_string(::getpid()) + ".sock";
  PublisherOptions po;
  po.slot_size = 4096;
  po.slot_count = 64;
  auto pub = IpcPublisher::bind(path, po);
  if (!pub) {
    std::fprintf(stderr, "bind: %s\n", pub.error().to_string().c_str());
    return 1;
  }
  SubscriberOptions so;
  so.busy_poll = true;
  auto sub = IpcSubscriber::connect(path, so);
  if (!sub) {
    std::fprintf(stderr, "connect: %s\n", sub.error().to_string().c_str());
    return 1;
  }
  std::uint64_t bytes = 0;
  for (long i = 0; i < n; ++i) {
    auto l = pub->loan();
    if (!l) return 2;
    if (!l->set_size(4096)) return 2;
    l->metadata().pts = static_cast<std::uint64_t>(i);
    if (!pub->send(std::move(*l))) return 3;
    auto b = sub->recv();
    if (!b || !*b) return 4;
    bytes += (*b)->size();
  }
  std::printf("%ld buffers, %llu bytes\n", n, static_cast<unsigned long long>(bytes));
  return 0;
}
