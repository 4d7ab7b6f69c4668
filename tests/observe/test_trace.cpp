// SPDX-License-Identifier: MIT OR Apache-2.0
// Tracing tests in one process: the file is a Chrome trace event document (parsed with
// nlohmann_json) after start, after each flush and after stop; spans of several threads, nesting,
// arguments, bounded rings that drop and count, name escaping, path patterns, fork.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "parallax/trace.h"
#include "trace_check.h"

using namespace parallax;
using namespace parallax::observe;
using nlohmann::json;
using plxtest::check_trace;
using plxtest::load_trace;

namespace {

std::string temp_path(const std::string& leaf) {
  return (std::filesystem::temp_directory_path() /
          ("plx-trace-" + std::to_string(::getpid()) + "-" + leaf))
      .string();
}

TEST(Tracing, OffByDefaultAndNothingToFlush) {
  // The test environment has no PARALLAX_TRACE.
  ASSERT_EQ(std::getenv("PARALLAX_TRACE"), nullptr);
  EXPECT_FALSE(tracing());
  { PLX_TRACE_SPAN("not-recorded"); }
  EXPECT_EQ(Tracer::flush().error().code, Errc::failed_precondition);
  EXPECT_EQ(Tracer::stop().error().code, Errc::failed_precondition);
}

TEST(Tracing, BadArgumentsAreRefused) {
  EXPECT_EQ(Tracer::start("").error().code, Errc::invalid_argument);
  EXPECT_EQ(Tracer::start(temp_path("x.json"), 0).error().code, Errc::invalid_argument);
  auto r = Tracer::start("/nonexistent-dir/plx/trace.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::not_found) << r.error().to_string();
  EXPECT_FALSE(tracing());
}

TEST(Tracing, SpansOfSeveralThreadsAreWrittenAsChromeTraceEvents) {
  const std::string path = temp_path("threads.json");
  ASSERT_TRUE(Tracer::start(path).ok());
  EXPECT_EQ(Tracer::path(), path);  // start() takes the path as given (no %p)
  EXPECT_TRUE(tracing());
  EXPECT_EQ(Tracer::start(path).error().code, Errc::failed_precondition);
  // A valid, empty trace exists from the start.
  EXPECT_TRUE(check_trace(load_trace(path)).empty());

  {
    PLX_TRACE_SPAN("outer");
    { PLX_TRACE_SPAN_ARG("inner", "bytes", 4096); }
    std::thread([] {
      ::pthread_setname_np(::pthread_self(), "plx-worker");
      for (int i = 0; i < 3; ++i) {
        PLX_TRACE_SPAN("in-thread");
      }
    }).join();
  }
  auto n = Tracer::flush();
  ASSERT_TRUE(n.ok()) << n.error().to_string();
  EXPECT_EQ(*n, 5u);
  EXPECT_TRUE(tracing());  // flush() goes on recording

  const json doc = load_trace(path);
  const auto spans = check_trace(doc);
  ASSERT_EQ(spans.size(), 5u);
  std::map<std::string, std::vector<json>> by_name;
  for (const auto& e : spans) {
    EXPECT_EQ(e["pid"], ::getpid());
    EXPECT_EQ(e["cat"], "parallax");
    by_name[e["name"].get<std::string>()].push_back(e);
  }
  ASSERT_EQ(by_name["outer"].size(), 1u);
  ASSERT_EQ(by_name["inner"].size(), 1u);
  ASSERT_EQ(by_name["in-thread"].size(), 3u);
  const json& outer = by_name["outer"][0];
  const json& inner = by_name["inner"][0];
  EXPECT_EQ(inner["args"]["bytes"], 4096);
  EXPECT_TRUE(outer["args"].empty());
  // Nesting: inner lies within outer, on the same thread.
  EXPECT_EQ(inner["tid"], outer["tid"]);
  EXPECT_GE(inner["ts"].get<double>(), outer["ts"].get<double>());
  EXPECT_LE(inner["ts"].get<double>() + inner["dur"].get<double>(),
            outer["ts"].get<double>() + outer["dur"].get<double>() + 0.001);
  EXPECT_NE(by_name["in-thread"][0]["tid"], outer["tid"]);
  plxtest::expect_monotonic_per_thread(spans);  // outer before inner
  // Names: the process, and each thread that recorded.
  const auto names = plxtest::trace_thread_names(doc);
  EXPECT_EQ(names.count(outer["tid"].get<std::int64_t>()), 1u);
  EXPECT_EQ(names.at(by_name["in-thread"][0]["tid"].get<std::int64_t>()), "plx-worker");
  int process_names = 0;
  for (const auto& e : doc["traceEvents"])
    if (e["name"] == "process_name") {
      ++process_names;
      EXPECT_EQ(e["pid"], ::getpid());
      EXPECT_EQ(e["args"]["name"], "test_observe");
    }
  EXPECT_EQ(process_names, 1);

  // A second flush appends to the same, still valid, document.
  { PLX_TRACE_SPAN("later"); }
  auto n2 = Tracer::stop();
  ASSERT_TRUE(n2.ok()) << n2.error().to_string();
  EXPECT_EQ(*n2, 1u);
  EXPECT_FALSE(tracing());
  { PLX_TRACE_SPAN("after-stop"); }
  const auto all = check_trace(load_trace(path));
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all.back()["name"], "later");
  std::filesystem::remove(path);
}

TEST(Tracing, AFullRingDropsAndCountsAndFlushMakesRoom) {
  const std::string path = temp_path("full.json");
  ASSERT_TRUE(Tracer::start(path, 8).ok());
  // This thread's ring already exists (earlier tests) with the default size; a new thread gets
  // a ring of 8 events.
  std::thread([] {
    for (int i = 0; i < 20; ++i) {
      PLX_TRACE_SPAN("burst");
    }
    EXPECT_EQ(Tracer::dropped(), 12u);
    ASSERT_EQ(*Tracer::flush(), 8u);
    for (int i = 0; i < 5; ++i) {
      PLX_TRACE_SPAN("after-flush");
    }
  }).join();
  ASSERT_EQ(*Tracer::stop(), 5u);
  const json doc = load_trace(path);
  EXPECT_EQ(check_trace(doc).size(), 13u);
  EXPECT_EQ(doc["otherData"]["dropped_events"], 12);
  std::filesystem::remove(path);
}

TEST(Tracing, ThreadNamesAreEscapedIntoValidJson) {
  const std::string path = temp_path("names.json");
  ASSERT_TRUE(Tracer::start(path).ok());
  std::thread([] {
    // A quote, a backslash, a control character, a valid two-byte sequence, an invalid byte.
    ::pthread_setname_np(::pthread_self(), "q\"b\\\x01\xc3\xa9\xff");
    PLX_TRACE_SPAN("named");
  }).join();
  ASSERT_TRUE(Tracer::stop().ok());
  const json doc = load_trace(path);
  const auto spans = check_trace(doc);
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(plxtest::trace_thread_names(doc).at(spans[0]["tid"].get<std::int64_t>()),
            "q\"b\\\x01\xc3\xa9\xef\xbf\xbd");
  std::filesystem::remove(path);
}

TEST(Tracing, PercentPIsThePidAndAForkedChildWritesAFileOfItsOwn) {
  const std::string pattern = temp_path("fork-%p.json");
  ASSERT_TRUE(Tracer::start(pattern).ok());
  const std::string parent_path = temp_path("fork-" + std::to_string(::getpid()) + ".json");
  EXPECT_EQ(Tracer::path(), parent_path);
  { PLX_TRACE_SPAN("parent-before-fork"); }  // buffered, not flushed: the child must not write it
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    { PLX_TRACE_SPAN("child"); }
    auto n = Tracer::flush();
    ::_exit(n.ok() && *n == 1 ? 0 : 1);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  ASSERT_EQ(*Tracer::stop(), 1u);

  const std::string child_path = temp_path("fork-" + std::to_string(child) + ".json");
  const auto child_spans = check_trace(load_trace(child_path));
  ASSERT_EQ(child_spans.size(), 1u);
  EXPECT_EQ(child_spans[0]["name"], "child");
  EXPECT_EQ(child_spans[0]["pid"], child);
  EXPECT_EQ(child_spans[0]["tid"], child);  // the forking thread is the child's main thread
  const auto parent_spans = check_trace(load_trace(parent_path));
  ASSERT_EQ(parent_spans.size(), 1u);
  EXPECT_EQ(parent_spans[0]["name"], "parent-before-fork");
  std::filesystem::remove(child_path);
  std::filesystem::remove(parent_path);
}

// Threads record while another flushes: nothing lost or duplicated beyond what is counted as
// dropped (and, under TSan, the ring hand-over is race-free).
TEST(Tracing, ConcurrentRecordingAndFlushingLosesOnlyWhatItCounts) {
  const std::string path = temp_path("concurrent.json");
  ASSERT_TRUE(Tracer::start(path, 256).ok());
  constexpr int kThreads = 4;
  constexpr int kSpans = 5000;
  std::atomic<bool> done{false};
  std::size_t flushed = 0;
  std::thread flusher([&] {
    while (!done.load()) {
      auto n = Tracer::flush();
      ASSERT_TRUE(n.ok());
      flushed += *n;
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([] {
      for (int i = 0; i < kSpans; ++i) {
        PLX_TRACE_SPAN_ARG("work", "i", i);
      }
    });
  for (auto& t : ts)
    t.join();
  done = true;
  flusher.join();
  const std::uint64_t dropped = Tracer::dropped();
  auto last = Tracer::stop();
  ASSERT_TRUE(last.ok());
  flushed += *last;
  EXPECT_EQ(flushed + dropped, std::size_t{kThreads} * kSpans);
  const json doc = load_trace(path);
  EXPECT_EQ(check_trace(doc).size(), flushed);
  EXPECT_EQ(doc["otherData"]["dropped_events"], dropped);
  std::filesystem::remove(path);
}

}  // namespace
