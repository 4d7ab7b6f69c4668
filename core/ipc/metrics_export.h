// SPDX-License-Identifier: MIT OR Apache-2.0
// Publishers and subscribers in the process-wide MetricsRegistry: one collector each, turning
// their existing stats structs into labelled samples at export time (no second set of counters).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "parallax/ipc.h"
#include "parallax/metrics.h"

namespace parallax::link::detail {

/// Registers a publisher listening on `socket`; `stats` is called from the exporting thread
/// (IpcPublisher::stats() is thread-safe). Also starts PARALLAX_METRICS_FILE's exporter.
[[nodiscard]] observe::MetricsRegistry::Registration register_publisher_metrics(
    std::string socket, std::function<PublisherStats()> stats);

/// Registers a subscriber of `socket`; `snapshot` returns its latest published stats
/// (std::nullopt: none yet). Also starts PARALLAX_METRICS_FILE's exporter.
[[nodiscard]] observe::MetricsRegistry::Registration register_subscriber_metrics(
    std::string socket, std::function<std::optional<SubscriberStats>()> snapshot);

}  // namespace parallax::link::detail
