// SPDX-License-Identifier: MIT OR Apache-2.0
// Loads a trace file with nlohmann_json and checks it against the Chrome trace event format
// (what ui.perfetto.dev and chrome://tracing need): shared by the tracing tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace plxtest {

inline nlohmann::json load_trace(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);  // throws (fails the test) on anything that is not JSON
}

// Checks every event's fields and types and returns the span events ("X") only.
inline std::vector<nlohmann::json> check_trace(const nlohmann::json& doc) {
  EXPECT_TRUE(doc.is_object());
  EXPECT_TRUE(doc["traceEvents"].is_array());
  EXPECT_EQ(doc["displayTimeUnit"], "ns");
  EXPECT_TRUE(doc["otherData"]["dropped_events"].is_number_unsigned());
  std::vector<nlohmann::json> spans;
  for (const auto& e : doc["traceEvents"]) {
    EXPECT_TRUE(e["name"].is_string()) << e;
    EXPECT_TRUE(e["pid"].is_number_integer()) << e;
    EXPECT_TRUE(e["tid"].is_number_integer()) << e;
    EXPECT_TRUE(e["args"].is_object()) << e;
    EXPECT_TRUE(e["ph"].is_string()) << e;
    const std::string ph = e["ph"].get<std::string>();
    if (ph == "M") {
      EXPECT_TRUE(e["name"] == "process_name" || e["name"] == "thread_name") << e;
      EXPECT_TRUE(e["args"]["name"].is_string()) << e;
      continue;
    }
    EXPECT_EQ(ph, "X") << e;
    EXPECT_TRUE(e["cat"].is_string()) << e;
    EXPECT_TRUE(e["ts"].is_number()) << e;
    EXPECT_TRUE(e["dur"].is_number()) << e;
    EXPECT_GE(e["dur"].get<double>(), 0.0) << e;
    spans.push_back(e);
  }
  return spans;
}

// tid -> name from the thread_name metadata events.
inline std::map<std::int64_t, std::string> trace_thread_names(const nlohmann::json& doc) {
  std::map<std::int64_t, std::string> out;
  for (const auto& e : doc["traceEvents"])
    if (e["ph"] == "M" && e["name"] == "thread_name")
      out[e["tid"].get<std::int64_t>()] = e["args"]["name"].get<std::string>();
  return out;
}

// Within each thread, spans are in the order they began.
inline void expect_monotonic_per_thread(const std::vector<nlohmann::json>& spans) {
  std::map<std::int64_t, double> last;
  for (const auto& e : spans) {
    const auto tid = e["tid"].get<std::int64_t>();
    const double ts = e["ts"].get<double>();
    if (last.count(tid) != 0) {
      EXPECT_GE(ts, last[tid]) << e;
    }
    last[tid] = ts;
  }
}

}  // namespace plxtest
