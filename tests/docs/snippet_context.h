// SPDX-License-Identifier: MIT OR Apache-2.0
// What the documentation's code fragments take from the text around them: every public Parallax
// header, and small stand-ins for the user's own code (a frame type, fill(), process(), a sink
// element). tests/docs/snippets.py puts it first in a fragment that has no #include of its own.
#pragma once

#include <parallax/affinity.h>
#include <parallax/archive.h>
#include <parallax/element.h>
#include <parallax/ipc.h>
#include <parallax/pipeline.h>
#include <parallax/placement.h>
#include <parallax/plugin.h>
#include <parallax/pool.h>
#include <parallax/result.h>
#include <parallax/typed.h>
#include <parallax/typed_ipc.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

/// A move-only video frame, as the typed docs use it.
struct Frame {
  std::unique_ptr<std::uint8_t[]> pixels;
  int width = 0;
  int height = 0;
};
struct Thumbnail {
  int width = 0;
  int height = 0;
};
inline Thumbnail make_thumbnail(Frame f) {
  return {f.width / 8, f.height / 8};
}

/// The user's code that writes a frame into a slot / reads a received one.
inline void fill(std::span<std::byte> slot) {
  std::memset(slot.data(), 0, slot.size());
}
inline void process(std::span<const std::byte> bytes) {
  std::printf("%zu bytes\n", bytes.size());
}

/// A pool of 64 slots of 4 KiB in a sealed memfd.
inline std::shared_ptr<parallax::memory::MemoryPool> example_pool() {
  auto segment = parallax::memory::SharedMemorySegment::create("docs", 64 * 4096).value();
  return parallax::memory::MemoryPool::create(std::move(segment), 4096).value();
}

/// The user's own sink element (docs/pipelines.md registers one).
class MySink : public parallax::pipeline::SinkElement {
 protected:
  parallax::pipeline::FlowReturn render(const parallax::memory::Buffer& /*buf*/) override {
    return parallax::pipeline::FlowReturn::ok;
  }
};
