// SPDX-License-Identifier: MIT OR Apache-2.0
// Publishers and subscribers in the process-wide MetricsRegistry: one collector each, turning
// their existing stats structs into labelled samples at export time (no second set of counters).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "parallax/ipc.h"
#include "parallax/metrics.h"
#include "parallax/pool.h"

namespace parallax::link::detail {

/// Registers a publisher listening on `socket`; `stats` is called from the exporting thread
/// (IpcPublisher::stats() is thread-safe). Also starts PARALLAX_METRICS_FILE's exporter.
[[nodiscard]] observe::MetricsRegistry::Registration register_publisher_metrics(
    std::string socket, std::function<PublisherStats()> stats);

/// Registers a subscriber of `socket`; `snapshot` returns its latest published stats
/// (std::nullopt: none yet). Also starts PARALLAX_METRICS_FILE's exporter.
[[nodiscard]] observe::MetricsRegistry::Registration register_subscriber_metrics(
    std::string socket, std::function<std::optional<SubscriberStats>()> snapshot);

/// A pool's figures (parallax_pool_*) with `labels` plus pool="slots"|"arena".
void pool_samples(observe::Exposition& ex, observe::Labels labels, const memory::PoolStats& p);

/// Registers a pool that is not a publisher's (a native element's own pool), labelled
/// element=`element`. The collector holds `pool` weakly: a pool already gone writes nothing.
/// Its stats() are read at export time only. Also starts PARALLAX_METRICS_FILE's exporter.
[[nodiscard]] observe::MetricsRegistry::Registration register_pool_metrics(
    std::string element, std::weak_ptr<memory::MemoryPool> pool);

}  // namespace parallax::link::detail
