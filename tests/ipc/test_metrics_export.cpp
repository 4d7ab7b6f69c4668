// SPDX-License-Identifier: MIT OR Apache-2.0
// PARALLAX_METRICS_FILE across processes: a publisher process and a subscriber process each
// write their textfile (docs/observability.md, "Metrics"); the files are read by the strict
// parser of the exposition format while both run, and the figures, labels (socket, pids) and
// the transit latency histogram match what crossed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "../observe/prom_parser.h"
#include "ipc_test_util.h"

using namespace std::chrono_literals;
using ipc_test::Child;
using ipc_test::stats_peer;
using ipc_test::TempDir;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Parses `path` strictly (failing the test on any error) until `done` holds or 10 s pass.
template <typename F>
prom::Parsed read_until(const std::string& path, F done) {
  prom::Parsed last;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < until) {
    const std::string text = slurp(path);
    if (!text.empty()) {
      std::string why;
      auto p = prom::parse(text, &why);
      EXPECT_TRUE(p.has_value()) << path << ": " << why;
      if (!p) return {};
      last = std::move(*p);
      if (done(last)) return last;
    }
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << path << ": expected figures not seen in 10 s";
  return last;
}

TEST(IpcMetricsFile, PublisherAndSubscriberProcessesWriteTheirFigures) {
  TempDir dir;
  const std::string sock = dir.file("m.sock");
  const std::string pub_file = dir.file("pub.prom");
  const std::string sub_file = dir.file("sub.prom");
  Child pub({"/usr/bin/env", "PARALLAX_METRICS_FILE=" + pub_file, "PARALLAX_METRICS_INTERVAL=0.05",
             stats_peer(), "metrics-pub", sock, "20"},
            true, true);
  ASSERT_EQ(pub.read_line(), "bound");
  Child sub({"/usr/bin/env", "PARALLAX_METRICS_FILE=" + sub_file, "PARALLAX_METRICS_INTERVAL=0.05",
             stats_peer(), "metrics-sub", sock, "20"},
            true, true);
  ASSERT_EQ(pub.read_line(), "sent 20");
  ASSERT_EQ(sub.read_line(), "got 20");
  const std::string sub_pid = std::to_string(sub.pid());
  const std::string pub_pid = std::to_string(pub.pid());

  const auto p = read_until(pub_file, [&](const prom::Parsed& m) {
    return m.value("parallax_subscriber_taken_buffers_total",
                   "parallax_subscriber_taken_buffers_total",
                   {{"subscriber_pid", sub_pid}}) == 20.0;
  });
  EXPECT_EQ(p.value("parallax_publisher_buffers_sent_total",
                    "parallax_publisher_buffers_sent_total", {{"socket", sock}}),
            20.0);
  EXPECT_EQ(p.value("parallax_publisher_zero_copy_total", "parallax_publisher_zero_copy_total",
                    {{"socket", sock}}),
            20.0);
  EXPECT_EQ(p.value("parallax_publisher_subscribers", "parallax_publisher_subscribers",
                    {{"socket", sock}}),
            1.0);
  EXPECT_EQ(p.value("parallax_subscriber_sent_bytes_total", "parallax_subscriber_sent_bytes_total",
                    {{"socket", sock}, {"subscriber_pid", sub_pid}, {"policy", "block"}}),
            20.0 * 1000);
  EXPECT_EQ(p.value("parallax_pool_slots", "parallax_pool_slots", {{"socket", sock}}), 32.0);
  ASSERT_EQ(p.families.count("parallax_publisher_buffers_sent_total"), 1u);
  EXPECT_EQ(p.families.at("parallax_publisher_buffers_sent_total").type, "counter");

  const auto s = read_until(sub_file, [&](const prom::Parsed& m) {
    return m.value("parallax_receiver_buffers_total", "parallax_receiver_buffers_total",
                   {{"socket", sock}, {"publisher_pid", pub_pid}}) == 20.0;
  });
  ASSERT_EQ(s.families.count("parallax_receiver_transit_latency_seconds"), 1u);
  EXPECT_EQ(s.families.at("parallax_receiver_transit_latency_seconds").type, "histogram");
  EXPECT_EQ(s.value("parallax_receiver_transit_latency_seconds",
                    "parallax_receiver_transit_latency_seconds_count", {{"socket", sock}}),
            20.0);
  const auto sum = s.value("parallax_receiver_transit_latency_seconds",
                           "parallax_receiver_transit_latency_seconds_sum", {{"socket", sock}});
  ASSERT_TRUE(sum.has_value());
  EXPECT_GT(*sum, 0.0);
  EXPECT_LT(*sum, 20 * 10.0);  // 20 buffers, each well under 10 s in transit
  EXPECT_EQ(s.value("parallax_receiver_leases", "parallax_receiver_leases", {{"socket", sock}}),
            0.0);
  // Each process writes its own side only.
  EXPECT_EQ(s.families.count("parallax_publisher_buffers_sent_total"), 0u);
  EXPECT_EQ(p.families.count("parallax_receiver_buffers_total"), 0u);

  // Normal exit: the exporter stops promptly; the file is whole, no temporary file is left.
  sub.close_stdin();
  EXPECT_EQ(sub.wait(10s), 0);
  pub.close_stdin();
  EXPECT_EQ(pub.wait(10s), 0);
  std::string why;
  EXPECT_TRUE(prom::parse(slurp(pub_file), &why).has_value()) << why;
  EXPECT_TRUE(prom::parse(slurp(sub_file), &why).has_value()) << why;
  EXPECT_FALSE(std::ifstream(pub_file + ".tmp." + pub_pid).good());
  EXPECT_FALSE(std::ifstream(sub_file + ".tmp." + sub_pid).good());
}

TEST(IpcMetricsFile, ABadIntervalIsAnErrorAndTheStreamGoesOn) {
  TempDir dir;
  const std::string sock = dir.file("b.sock");
  const std::string pub_file = dir.file("pub.prom");
  Child pub({"/usr/bin/env", "PARALLAX_METRICS_FILE=" + pub_file, "PARALLAX_METRICS_INTERVAL=5s",
             stats_peer(), "metrics-pub", sock, "5"},
            true, true);
  ASSERT_EQ(pub.read_line(), "bound");
  Child sub({stats_peer(), "metrics-sub", sock, "5"}, true, true);
  EXPECT_EQ(pub.read_line(), "sent 5");
  EXPECT_EQ(sub.read_line(), "got 5");
  EXPECT_FALSE(std::ifstream(pub_file).good()) << "no file is written with a bad interval";
  sub.close_stdin();
  pub.close_stdin();
  EXPECT_EQ(sub.wait(10s), 0);
  EXPECT_EQ(pub.wait(10s), 0);
}

}  // namespace
