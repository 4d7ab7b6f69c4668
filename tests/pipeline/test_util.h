// SPDX-License-Identifier: MIT OR Apache-2.0
// Helpers shared by the pipeline tests: graph edges as strings, temp dirs, custom elements.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "child_process.h"
#include "parallax/pipeline.h"

namespace plx_test {

using namespace parallax::pipeline;

/// "a.src->b.sink" for every link, sorted.
inline std::vector<std::string> edges(const Pipeline& p) {
  std::vector<std::string> out;
  for (Element* e : p.elements())
    for (Pad* pad : e->src_pads())
      if (pad->peer() != nullptr) out.push_back(pad->full_name() + "->" + pad->peer()->full_name());
  std::sort(out.begin(), out.end());
  return out;
}

using parallax::test::TempDir;  // tests/helpers/child_process.h

/// A sink that records what it receives (thread-safe reads via snapshot()).
class RecordingSink final : public SinkElement {
 public:
  struct Snapshot {
    std::vector<std::uint64_t> sequences;
    std::vector<EventType> events;
    std::vector<std::string> caps;
  };
  [[nodiscard]] Snapshot snapshot() const {
    std::lock_guard l(mu_);
    return snap_;
  }
  bool handle_event(Pad& pad, const Event& ev) override {
    {
      std::lock_guard l(mu_);
      snap_.events.push_back(ev.type);
      if (ev.type == EventType::caps) snap_.caps.push_back(ev.caps.to_string());
    }
    return SinkElement::handle_event(pad, ev);
  }

 protected:
  FlowReturn render(const Buffer& buf) override {
    std::lock_guard l(mu_);
    snap_.sequences.push_back(buf.metadata().sequence);
    return FlowReturn::ok;
  }

 private:
  mutable std::mutex mu_;
  Snapshot snap_;
};

/// A source announcing fixed caps and producing `count` heap buffers.
class CapsSource final : public SourceElement {
 public:
  CapsSource(std::string caps, int count) : caps_(std::move(caps)), left_(count) {}

 protected:
  FlowReturn create(Buffer& out) override {
    if (left_-- <= 0) return FlowReturn::eos;
    out = Buffer::copy_from(std::string_view("data"));
    return FlowReturn::ok;
  }
  std::optional<Caps> source_caps() override { return Caps::parse(caps_).value(); }

 private:
  std::string caps_;
  int left_;
};

/// Two sink pads, one src pad: only used to build cycles and multi-input graphs.
class TwoInputs final : public Element {
 public:
  TwoInputs() {
    add_pad_template({"sink_%u", PadDirection::sink, PadPresence::request, "ANY"});
    add_pad_template({"src", PadDirection::src, PadPresence::always, "ANY"});
  }
};

/// The uint64 property `prop` of element e (a test failure, and 0, when e is null or the property
/// is absent or not a uint64).
inline std::uint64_t u64(const Element* e, const char* prop) {
  EXPECT_NE(e, nullptr) << prop;
  if (e == nullptr) return 0;
  auto v = e->property(prop);
  EXPECT_TRUE(v && std::holds_alternative<std::uint64_t>(*v)) << prop;
  return v && std::holds_alternative<std::uint64_t>(*v) ? std::get<std::uint64_t>(*v) : 0;
}

}  // namespace plx_test
