// SPDX-License-Identifier: MIT OR Apache-2.0
// Test helper: a native IpcSubscriber reading a parallaxsink. Prints "caps <format>" on each
// format, one line per buffer "<pts> <sha1>" (checksumsink's format) or, with --where,
// "where <sequence> <segment inode> <segment offset>", and a summary "buffers N bytes B".
// With --stall it connects (block policy), prints "ready" and never reads: a consumer that
// stopped without dying, for the unlock tests (kill it when done).
//   plx_native_sub [--where] [--stall] [--timeout-ms N] SOCKET
#include <unistd.h>

#include <gst/gst.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "parallax/ipc.h"
#include "parallax/segment.h"

int main(int argc, char** argv) {
  bool where = false, stall = false;
  int timeout_ms = 10000;
  const char* path = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--where") == 0)
      where = true;
    else if (std::strcmp(argv[i], "--stall") == 0)
      stall = true;
    else if (std::strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc)
      timeout_ms = std::atoi(argv[++i]);
    else
      path = argv[i];
  }
  if (path == nullptr) {
    std::fprintf(stderr, "usage: %s [--where] [--stall] [--timeout-ms N] SOCKET\n", argv[0]);
    return 2;
  }
  parallax::link::SubscriberOptions opts;
  opts.connect_timeout = std::chrono::milliseconds(timeout_ms);
  if (stall) opts.policy = parallax::link::Policy::block;
  auto sub = parallax::link::IpcSubscriber::connect(path, opts);
  if (!sub) {
    std::fprintf(stderr, "connect: %s\n", sub.error().message.c_str());
    return 1;
  }
  if (stall) {
    std::printf("ready\n");
    std::fflush(stdout);
    for (;;)
      ::pause();
  }
  std::uint64_t buffers = 0, bytes = 0;
  for (;;) {
    auto item = sub->recv_item_for(std::chrono::milliseconds(timeout_ms));
    if (!item) {
      std::fprintf(stderr, "recv: %s\n", item.error().message.c_str());
      return 1;
    }
    if (!item->has_value()) break;
    if (auto* e = std::get_if<parallax::link::Event>(&**item)) {
      if (e->type == parallax::EventType::caps) std::printf("caps %s\n", e->caps.text().c_str());
      if (e->type == parallax::link::EventType::eos) break;
      continue;
    }
    const auto& b = std::get<parallax::memory::Buffer>(**item);
    ++buffers;
    bytes += b.size();
    if (where) {
      struct stat sb {};
      if (b.segment() == nullptr || ::fstat(b.segment()->fd(), &sb) != 0) return 1;
      std::printf("where %llu %llu %zu\n", static_cast<unsigned long long>(b.metadata().sequence),
                  static_cast<unsigned long long>(sb.st_ino), b.segment_offset());
    } else {
      gchar* sum = g_compute_checksum_for_data(
          G_CHECKSUM_SHA1, reinterpret_cast<const guchar*>(b.data().data()), b.size());
      const GstClockTime pts = b.metadata().pts.value_or(GST_CLOCK_TIME_NONE);
      std::printf("%" GST_TIME_FORMAT " %s\n", GST_TIME_ARGS(pts), sum);
      g_free(sum);
    }
  }
  std::printf("buffers %llu bytes %llu\n", static_cast<unsigned long long>(buffers),
              static_cast<unsigned long long>(bytes));
  return 0;
}
