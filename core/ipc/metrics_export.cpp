// SPDX-License-Identifier: MIT OR Apache-2.0
// The IPC collectors: PublisherStats / SubscriberStats as Prometheus samples. Names and labels
// are listed in docs/observability.md ("Metrics").
#include "metrics_export.h"

#include <atomic>

namespace parallax::link::detail {

using observe::Exposition;
using observe::Labels;

void pool_samples(Exposition& ex, Labels labels, const memory::PoolStats& p) {
  labels.emplace_back("pool", p.variable_size ? "arena" : "slots");
  const Labels& pl = labels;
  const auto pg = [&](const char* name, const char* help, double v) {
    ex.gauge(name, help, pl, v);
  };
  const auto pc = [&](const char* name, const char* help, std::uint64_t v) {
    ex.counter(name, help, pl, v);
  };
  pg("parallax_pool_capacity_bytes", "Bytes of all the pool's segments",
     static_cast<double>(p.bytes_capacity));
  pg("parallax_pool_in_use_bytes", "Bytes loaned, in flight or held by subscribers",
     static_cast<double>(p.bytes_in_use));
  pg("parallax_pool_high_water_bytes", "Most bytes in use at once",
     static_cast<double>(p.bytes_high_water));
  pg("parallax_pool_segments", "Memory segments of the pool", static_cast<double>(p.segments));
  if (!p.variable_size) {
    pg("parallax_pool_slots", "Slots of the pool", static_cast<double>(p.capacity));
    pg("parallax_pool_slots_in_use", "Slots loaned, in flight or held by subscribers",
       static_cast<double>(p.in_use));
    pg("parallax_pool_slot_size_bytes", "Bytes per slot", static_cast<double>(p.slot_size));
  }
  pc("parallax_pool_loan_waits_total", "Loans that had to wait for memory", p.waits);
  pc("parallax_pool_failed_loans_total", "Loans refused (exhausted, timeout)", p.failed_loans);
  pc("parallax_pool_grows_total", "Segments added after creation", p.grows);
}

namespace {

void publisher_samples(Exposition& ex, const std::string& socket, const PublisherStats& s) {
  const Labels l{{"socket", socket}};
  const auto c = [&](const char* name, const char* help, std::uint64_t v) {
    ex.counter(name, help, l, v);
  };
  const auto g = [&](const char* name, const char* help, double v) { ex.gauge(name, help, l, v); };
  c("parallax_publisher_buffers_sent_total",
    "Buffers sent (send() calls that reached the publisher)", s.buffers_sent);
  c("parallax_publisher_zero_copy_total", "Buffers sent that were already slots of the pool",
    s.zero_copy);
  c("parallax_publisher_copies_total", "Buffers copied once into a slot before sending", s.copies);
  c("parallax_publisher_copied_bytes_total", "Bytes of the copied buffers", s.bytes_copied);
  c("parallax_publisher_events_sent_total", "Events sent", s.events_sent);
  c("parallax_publisher_connections_total", "Subscribers admitted", s.connections);
  c("parallax_publisher_disconnects_total", "Subscribers gone (clean, crashed or expelled)",
    s.disconnects);
  c("parallax_publisher_refused_total", "Connections refused by credentials or limits", s.refused);
  c("parallax_publisher_protocol_errors_total", "Connections closed because the peer misbehaved",
    s.protocol_errors);
  c("parallax_publisher_stats_requests_total", "Stats requests answered", s.stats_requests);
  c("parallax_publisher_pools_replaced_total", "Pools replaced (larger slots, caps changes)",
    s.pools_replaced);
  g("parallax_publisher_subscribers", "Subscribers connected now",
    static_cast<double>(s.subscribers.size()));
  g("parallax_publisher_quarantined_slots", "Slots of gone subscribers kept out of the pool",
    static_cast<double>(s.quarantined_slots));
  g("parallax_publisher_uptime_seconds", "Seconds since bind()",
    static_cast<double>(s.uptime_ns) / 1e9);

  // The pool is the publisher's current one; `socket` names it across processes.
  pool_samples(ex, {{"socket", socket}}, s.pool);

  for (const SubscriberInfo& sub : s.subscribers) {
    const Labels sl{{"socket", socket},
                    {"subscriber_pid", std::to_string(sub.pid)},
                    {"connection", std::to_string(sub.id)},
                    {"policy", std::string(to_string(sub.policy))}};
    const auto sc = [&](const char* name, const char* help, std::uint64_t v) {
      ex.counter(name, help, sl, v);
    };
    const auto sg = [&](const char* name, const char* help, double v) {
      ex.gauge(name, help, sl, v);
    };
    sc("parallax_subscriber_sent_buffers_total", "Buffers sent to this subscriber",
       sub.buffers_sent);
    sc("parallax_subscriber_sent_bytes_total", "Payload bytes sent to this subscriber",
       sub.bytes_sent);
    sc("parallax_subscriber_dropped_oldest_total",
       "Buffers retracted before the subscriber read them (drop-oldest)", sub.dropped_oldest);
    sc("parallax_subscriber_dropped_newest_total",
       "Buffers never written for this subscriber (drop-newest)", sub.dropped_newest);
    sc("parallax_subscriber_blocked_sends_total", "Sends that waited for this subscriber (block)",
       sub.blocked_sends);
    sc("parallax_subscriber_taken_buffers_total",
       "Buffers the subscriber reports it took off its ring (reported by the peer)", sub.received);
    sg("parallax_subscriber_leases", "Buffers the subscriber holds now",
       static_cast<double>(sub.leases));
    sg("parallax_subscriber_lease_quota", "The subscriber's lease quota",
       static_cast<double>(sub.max_leases));
    sg("parallax_subscriber_ring_used_bytes", "Descriptor ring bytes written and not yet taken",
       static_cast<double>(sub.ring_used));
    sg("parallax_subscriber_connected_seconds", "Seconds since the subscriber connected",
       static_cast<double>(sub.connected_ns) / 1e9);
  }
}

void subscriber_samples(Exposition& ex, const std::string& socket, std::uint64_t instance,
                        const SubscriberStats& s) {
  const Labels l{{"socket", socket},
                 {"publisher_pid", std::to_string(s.publisher_pid)},
                 {"instance", std::to_string(instance)}};
  const auto c = [&](const char* name, const char* help, std::uint64_t v) {
    ex.counter(name, help, l, v);
  };
  const auto g = [&](const char* name, const char* help, double v) { ex.gauge(name, help, l, v); };
  c("parallax_receiver_buffers_total", "Buffers received", s.buffers);
  c("parallax_receiver_events_total", "Events received", s.events);
  c("parallax_receiver_dropped_total", "Buffers retracted by drop-oldest before we read them",
    s.dropped);
  c("parallax_receiver_wakeups_total", "Times the receiver slept and was woken", s.wakeups);
  c("parallax_receiver_reconnects_total", "Reconnections to a publisher", s.reconnects);
  c("parallax_receiver_copies_total", "Buffers copied past copy_threshold (lease returned)",
    s.copies);
  c("parallax_receiver_copied_bytes_total", "Bytes of the copied buffers", s.bytes_copied);
  c("parallax_receiver_segments_mapped_total", "Memory segments mapped", s.segments);
  g("parallax_receiver_leases", "Buffers held now", static_cast<double>(s.leases));
  g("parallax_receiver_lease_quota", "The publisher's lease cap for us",
    static_cast<double>(s.quota));
  ex.log2_histogram_seconds("parallax_receiver_transit_latency_seconds",
                            "Receive time minus the publisher's send stamp (CLOCK_MONOTONIC)", l,
                            s.latency_log2, s.latency_sum_ns);
}

}  // namespace

observe::MetricsRegistry::Registration register_publisher_metrics(
    std::string socket, std::function<PublisherStats()> stats) {
  observe::start_metrics_from_env();
  return observe::MetricsRegistry::global().add_collector(
      [socket = std::move(socket), stats = std::move(stats)](Exposition& ex) {
        publisher_samples(ex, socket, stats());
      });
}

observe::MetricsRegistry::Registration register_subscriber_metrics(
    std::string socket, std::function<std::optional<SubscriberStats>()> snapshot) {
  static std::atomic<std::uint64_t> next_instance{1};
  observe::start_metrics_from_env();
  const std::uint64_t instance = next_instance.fetch_add(1, std::memory_order_relaxed);
  return observe::MetricsRegistry::global().add_collector(
      [socket = std::move(socket), snapshot = std::move(snapshot), instance](Exposition& ex) {
        if (auto s = snapshot()) subscriber_samples(ex, socket, instance, *s);
      });
}

observe::MetricsRegistry::Registration register_pool_metrics(
    std::string element, std::weak_ptr<memory::MemoryPool> pool) {
  observe::start_metrics_from_env();
  return observe::MetricsRegistry::global().add_collector(
      [element = std::move(element), pool = std::move(pool)](Exposition& ex) {
        if (auto p = pool.lock()) pool_samples(ex, {{"element", element}}, p->stats());
      });
}

}  // namespace parallax::link::detail
