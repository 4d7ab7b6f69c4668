// SPDX-License-Identifier: MIT OR Apache-2.0
// Test helper: a native IpcPublisher producing I420 frames, for "native producer -> parallaxsrc"
// tests. Prints one checksumsink-style line per frame ("H:MM:SS.nnnnnnnnn sha1") to stdout.
//   plx_native_pub SOCKET FRAMES WIDTH HEIGHT [WIDTH2 HEIGHT2]
// With a second size, the format changes halfway through the stream.
#include <gst/gst.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "parallax/ipc.h"

int main(int argc, char** argv) {
  if (argc != 5 && argc != 7) {
    std::fprintf(stderr, "usage: %s SOCKET FRAMES WIDTH HEIGHT [WIDTH2 HEIGHT2]\n", argv[0]);
    return 2;
  }
  const int frames = std::atoi(argv[2]);
  int w = std::atoi(argv[3]), h = std::atoi(argv[4]);
  const bool change = argc == 7;
  parallax::link::PublisherOptions opts;
  opts.slot_size = static_cast<std::size_t>(w * h * 3 / 2);
  opts.slot_count = 8;
  auto pub = parallax::link::IpcPublisher::bind(argv[1], std::move(opts));
  if (!pub) {
    std::fprintf(stderr, "bind: %s\n", pub.error().message.c_str());
    return 1;
  }
  if (!pub->wait_for_subscribers(1, std::chrono::seconds(10))) {
    std::fprintf(stderr, "no subscriber\n");
    return 1;
  }
  auto set_format = [&] {
    const std::string caps = "video/x-raw,format=I420,width=" + std::to_string(w) +
                             ",height=" + std::to_string(h) + ",framerate=30/1";
    return pub->set_format(caps);
  };
  if (!set_format()) return 1;
  for (int i = 0; i < frames; ++i) {
    if (change && i == frames / 2) {
      w = std::atoi(argv[5]);
      h = std::atoi(argv[6]);
      if (!set_format()) return 1;
    }
    auto loan = pub->loan();
    if (!loan) {
      std::fprintf(stderr, "loan: %s\n", loan.error().message.c_str());
      return 1;
    }
    const std::size_t size = static_cast<std::size_t>(w * h * 3 / 2);
    if (!loan->set_size(size)) return 1;
    auto* p = reinterpret_cast<unsigned char*>(loan->data().data());
    for (std::size_t j = 0; j < size; ++j)
      p[j] = static_cast<unsigned char>((j * 7 + i * 13) & 0xff);
    const std::uint64_t pts = static_cast<std::uint64_t>(i) * GST_SECOND / 30;
    loan->metadata().pts = pts;
    loan->metadata().duration = GST_SECOND / 30;
    gchar* sum = g_compute_checksum_for_data(G_CHECKSUM_SHA1, p, size);
    std::printf("%" GST_TIME_FORMAT " %s\n", GST_TIME_ARGS(pts), sum);
    g_free(sum);
    if (auto r = pub->send(std::move(*loan)); !r) {
      std::fprintf(stderr, "send: %s\n", r.error().message.c_str());
      return 1;
    }
  }
  if (!pub->send_eos()) return 1;
  // Let the subscriber drain before closing (close() also ends the stream cleanly).
  for (int i = 0; i < 500 && pub->pool()->in_use() != 0; ++i) {
    pub->collect_returns();
    g_usleep(10000);
  }
  pub->close();
  return 0;
}
