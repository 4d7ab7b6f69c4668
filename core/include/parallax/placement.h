// SPDX-License-Identifier: MIT OR Apache-2.0
// Ready-made placement for PipelineExecutor: a thread hook that pins every streaming thread by
// the element's own `affinity` property, else by affinity rules (the same rules as the
// parallaxaffinity GstTracer and `parallax-launch --affinity`). See docs/topology.md.
#pragma once

#include <functional>
#include <string_view>

#include "parallax/affinity.h"
#include "parallax/element.h"
#include "parallax/result.h"

namespace parallax::pipeline {

struct PinOptions {
  /// An affinity that cannot be applied is logged and the thread runs unpinned, instead of
  /// the element failing at start.
  bool best_effort{false};
};

/// For ExecutorOptions::thread_hook. In each streaming thread: a non-empty `affinity`
/// property wins (`none` leaves the thread alone), else the first rule matching the element's
/// name or factory; no match leaves the thread alone. An affinity that cannot be applied
/// returns an error that says what was asked and what the machine has (the executor makes it
/// the element's error) unless best_effort.
[[nodiscard]] std::function<Result<void>(Element&, std::string_view)> pin_by_rules_hook(
    topology::AffinityRules rules = {}, PinOptions options = {});

}  // namespace parallax::pipeline
