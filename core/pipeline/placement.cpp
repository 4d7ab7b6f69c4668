// SPDX-License-Identifier: MIT OR Apache-2.0
// pin_by_rules_hook: the executor's thread hook that pins streaming threads (parallax/placement.h).
#include "parallax/placement.h"

#include <string>
#include <utility>

#include "parallax/log.h"

namespace parallax::pipeline {

namespace {
constexpr const char* kLog = "placement";
}

std::function<Result<void>(Element&, std::string_view)> pin_by_rules_hook(
    topology::AffinityRules rules, PinOptions options) {
  return [rules = std::move(rules), options](Element& e,
                                             std::string_view affinity) -> Result<void> {
    // The element's own property is a rule of its own that matches first.
    Result<topology::AffinityRules> own = topology::AffinityRules{};
    if (!affinity.empty()) own = topology::AffinityRules::parse("*:" + std::string(affinity));
    if (!own) return std::move(own).error();  // the property's own check already refused it
    // `auto` is applied by an element that learns its memory's node (parallaxsrc).
    const topology::AffinityRule* rule =
        (affinity.empty() ? rules : *own).match(e.name(), e.factory_name());
    if (rule != nullptr && rule->affinity == "auto" && e.defer_auto_affinity(options.best_effort)) {
      PLX_LOG(debug, kLog, "%s: affinity auto, applied by the element once it knows the node",
              e.name().c_str());
      return {};
    }
    Result<topology::Pinned> pinned =
        topology::pin_by_rules(affinity.empty() ? rules : *own, e.name(), e.factory_name());
    if (!pinned) {
      if (!options.best_effort) return std::move(pinned).error();
      PLX_LOG(warn, kLog, "%s not pinned (best effort): %s", e.name().c_str(),
              pinned.error().message.c_str());
      return {};
    }
    if (!pinned->cpus.empty())
      PLX_LOG(info, kLog, "pinned %s (%.*s) to CPUs %s by '%s:%s'", e.name().c_str(),
              static_cast<int>(e.factory_name().size()), e.factory_name().data(),
              pinned->cpus.to_string().c_str(), pinned->rule->pattern.c_str(),
              pinned->rule->affinity.c_str());
    return {};
  };
}

}  // namespace parallax::pipeline
