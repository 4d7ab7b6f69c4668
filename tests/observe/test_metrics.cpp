// SPDX-License-Identifier: MIT OR Apache-2.0
// Metrics tests: concurrent updates, quantiles, export formats (tracing: test_trace.cpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "parallax/metrics.h"

using namespace parallax;
using namespace parallax::observe;

namespace {

TEST(Metrics, CountersAreExactUnderConcurrency) {
  MetricsRegistry reg;
  auto c = reg.counter("plx_test_total", "a test counter");
  ASSERT_TRUE(c.ok());
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 100000; ++i)
        (*c)->add();
    });
  for (auto& t : ts)
    t.join();
  EXPECT_EQ((*c)->value(), 400000u);
  // The same name gives the same object.
  EXPECT_EQ(*reg.counter("plx_test_total"), *c);
}

TEST(Metrics, NamesAndKindsAreChecked) {
  MetricsRegistry reg;
  EXPECT_EQ(reg.counter("").error().code, Errc::invalid_argument);
  EXPECT_EQ(reg.counter("9lives").error().code, Errc::invalid_argument);
  EXPECT_EQ(reg.gauge("has space").error().code, Errc::invalid_argument);
  ASSERT_TRUE(reg.gauge("depth").ok());
  auto wrong = reg.counter("depth");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, Errc::already_exists);
}

TEST(Metrics, HistogramQuantilesAreWithinAFactorOfTwo) {
  Histogram h;
  EXPECT_EQ(h.quantile(0.5), 0u);
  for (std::uint64_t v = 1; v <= 1000; ++v)
    h.record(v);
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_EQ(h.sum(), 500500u);
  EXPECT_EQ(h.max(), 1000u);
  const auto p50 = h.quantile(0.5);
  EXPECT_GE(p50, 500u);
  EXPECT_LE(p50, 1023u);
  EXPECT_EQ(h.quantile(1.0), 1000u);  // capped by the observed max
  h.record(0);
  EXPECT_EQ(h.buckets()[0], 1u);
}

TEST(Metrics, PrometheusAndJsonExport) {
  MetricsRegistry reg;
  (*reg.counter("plx_buffers_total", "buffers"))->add(3);
  (*reg.gauge("plx_leases"))->set(-2);
  auto* h = *reg.histogram("plx_latency_ns", "latency");
  h->record(5);
  h->record(100);
  const std::string text = reg.prometheus();
  EXPECT_NE(text.find("# HELP plx_buffers_total buffers\n# TYPE plx_buffers_total "
                      "counter\nplx_buffers_total 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("plx_leases -2\n"), std::string::npos);
  EXPECT_NE(text.find("plx_latency_ns_bucket{le=\"7\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("plx_latency_ns_bucket{le=\"127\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("plx_latency_ns_count 2\n"), std::string::npos);
  auto j = nlohmann::json::parse(reg.json());
  EXPECT_EQ(j["plx_buffers_total"], 3);
  EXPECT_EQ(j["plx_leases"], -2);
  EXPECT_EQ(j["plx_latency_ns"]["count"], 2);
  EXPECT_EQ(j["plx_latency_ns"]["max"], 100);
}

}  // namespace
