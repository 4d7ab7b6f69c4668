// SPDX-License-Identifier: MIT OR Apache-2.0
// parallax-launch and parallax-inspect end to end: the built binaries run as child processes
// (paths from the PARALLAX_LAUNCH / PARALLAX_INSPECT environment set by meson).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../observe/prom_parser.h"
#include "child_process.h"

namespace {

struct ToolRun {
  int exit_code{-1};
  std::string out;
  std::string err;
};

// Runs `tool` with `args`; when `interrupt_after_ms` >= 0, sends SIGINT after that delay.
ToolRun run(const char* env_var, std::vector<std::string> args, int interrupt_after_ms = -1) {
  const char* tool = std::getenv(env_var);
  if (tool == nullptr) {
    ADD_FAILURE() << env_var << " is not set (run through meson test)";
    return {};
  }
  std::vector<std::string> argv{tool};
  argv.insert(argv.end(), args.begin(), args.end());
  parallax::test::SpawnOptions o;
  o.capture_stdout = true;
  o.capture_stderr = true;
  parallax::test::Process p(argv, o);
  if (!p.started()) {
    ADD_FAILURE() << "could not start " << tool;
    return {};
  }
  ToolRun r;
  std::thread err_reader([&] { r.err = p.read_all_stderr(); });
  if (interrupt_after_ms >= 0) {
    // The handler is installed before this line is printed: wait for it, so the signal can
    // never hit the default action on a slow (loaded, sanitized) start.
    char buf[256];
    ssize_t n;
    while (r.out.find("Setting pipeline to PLAYING") == std::string::npos &&
           (n = ::read(p.stdout_fd(), buf, sizeof buf)) > 0)
      r.out.append(buf, static_cast<std::size_t>(n));
    std::this_thread::sleep_for(std::chrono::milliseconds(interrupt_after_ms));
    p.signal(SIGINT);
  }
  r.out += p.read_all_stdout();
  err_reader.join();
  r.exit_code = p.wait(std::chrono::minutes(5));
  return r;
}

bool contains(const std::string& s, const std::string& what) {
  return s.find(what) != std::string::npos;
}

TEST(Launch, RunsToEosAndExitsZero) {
  ToolRun r = run("PARALLAX_LAUNCH", {"nullsource", "num-buffers=100", "!", "nullsink"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "Setting pipeline to PLAYING")) << r.out;
  EXPECT_TRUE(contains(r.out, "Got EOS from element \"pipeline\".")) << r.out;
  EXPECT_TRUE(contains(r.out, "Execution ended after")) << r.out;
}

TEST(Launch, ParseErrorExitsTwoWithCaret) {
  ToolRun r = run("PARALLAX_LAUNCH", {"nullsource ! pasthrough ! nullsink"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err,
                       "ERROR: pipeline could not be constructed: line 1, column 14: unknown "
                       "element 'pasthrough'; did you mean 'passthrough'?\n"
                       "  nullsource ! pasthrough ! nullsink\n"
                       "               ^"))
      << r.err;
}

TEST(Launch, UnlinkedPadIsAnInvalidPipeline) {
  ToolRun r = run("PARALLAX_LAUNCH", {"nullsource ! passthrough"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "pad 'passthrough0.src' is not linked")) << r.err;
}

TEST(Launch, RuntimeErrorExitsOneWithTheElementName) {
  ToolRun r = run("PARALLAX_LAUNCH", {"nullsource ! identity error-after=5 ! nullsink"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(
      contains(r.err, "ERROR: element 'identity0': error-after reached: failing on buffer 6"))
      << r.err;
}

TEST(Launch, BadOptionIsAUsageError) {
  ToolRun r = run("PARALLAX_LAUNCH", {"--no-such-option", "nullsource ! nullsink"});
  EXPECT_EQ(r.exit_code, 2);
  ToolRun none = run("PARALLAX_LAUNCH", {});
  EXPECT_EQ(none.exit_code, 2);
  ToolRun help = run("PARALLAX_LAUNCH", {"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(contains(help.out, "--stats")) << help.out;
}

TEST(Launch, StatsPrintsProgressAndATable) {
  ToolRun r = run("PARALLAX_LAUNCH",
                  {"--stats", "--stats-interval", "0.1",
                   "nullsource num-buffers=400 size=10 ! identity sleep-time=1000 ! nullsink"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "progress: ")) << r.err;
  EXPECT_TRUE(contains(r.err, "nullsink0: ")) << r.err;
  EXPECT_TRUE(contains(r.out, "Statistics (")) << r.out;
  // The table row of the sink: name, factory, buffers, bytes.
  EXPECT_TRUE(contains(r.out, "nullsink0            nullsink                400             4000"))
      << r.out;
}

TEST(Launch, VerbosePrintsEventsAndFormats) {
  ToolRun r = run("PARALLAX_LAUNCH",
                  {"-v", "nullsource num-buffers=2 ! video/x-raw,format=RGBA ! nullsink"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "/pipeline/capsfilter0.src: caps: video/x-raw, format=RGBA"))
      << r.out;
  EXPECT_TRUE(contains(r.out, "/pipeline/nullsource0.src: stream-start")) << r.out;
  EXPECT_TRUE(contains(r.out, "/pipeline/capsfilter0.src: eos")) << r.out;
}

TEST(Launch, InterruptSendsEosAndExitsCleanly) {
  ToolRun r = run("PARALLAX_LAUNCH", {"nullsource ! queue ! nullsink"}, 300);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "Interrupt: sending EOS")) << r.err;
  EXPECT_TRUE(contains(r.out, "Got EOS from element \"pipeline\".")) << r.out;
}

TEST(Launch, AffinityIsAppliedOrIsTheElementsError) {
  ToolRun ok = run("PARALLAX_LAUNCH", {"nullsource", "num-buffers=10", "affinity=0", "!", "queue",
                                       "affinity=pu:0", "!", "nullsink"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_FALSE(contains(ok.err, "WARNING")) << ok.err;
  // An affinity that cannot be applied fails the element (docs/topology.md), saying what exists.
  ToolRun bad = run("PARALLAX_LAUNCH", {"nullsource num-buffers=10 affinity=numa:99 ! nullsink"});
  EXPECT_NE(bad.exit_code, 0) << bad.err;
  EXPECT_TRUE(contains(bad.err, "element 'nullsource0': could not place the streaming thread"))
      << bad.err;
  EXPECT_TRUE(contains(bad.err, "NUMA node 99 does not exist: this machine has")) << bad.err;
  ToolRun lenient = run("PARALLAX_LAUNCH", {"--affinity-best-effort",
                                            "nullsource num-buffers=10 "
                                            "affinity=numa:99 ! nullsink"});
  EXPECT_EQ(lenient.exit_code, 0) << lenient.err;
}

TEST(Inspect, ListsElementsAndPlugins) {
  ToolRun r = run("PARALLAX_INSPECT", {});
  ASSERT_EQ(r.exit_code, 0);
  for (const char* e : {"filesrc", "filesink", "tcpsrc", "tcpsink", "passthrough", "tee", "queue",
                        "capsfilter", "nullsource", "nullsink", "identity"})
    EXPECT_TRUE(contains(r.out, std::string("builtin:  ") + e + ": ")) << e;
  EXPECT_TRUE(contains(r.out, "Total count: 13 elements")) << r.out;
  ToolRun p = run("PARALLAX_INSPECT", {"--plugins"});
  EXPECT_TRUE(contains(p.out, "builtin: 13 elements")) << p.out;
}

TEST(Inspect, ShowsPadsAndProperties) {
  ToolRun r = run("PARALLAX_INSPECT", {"queue"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.out, "SINK template: 'sink'")) << r.out;
  EXPECT_TRUE(contains(r.out, "max-size-buffers")) << r.out;
  EXPECT_TRUE(contains(r.out, "uint64. Range: 0 - 4294967295 Default: 200")) << r.out;
  EXPECT_TRUE(contains(r.out, "(2): downstream")) << r.out;
  ToolRun tee = run("PARALLAX_INSPECT", {"tee"});
  EXPECT_TRUE(contains(tee.out, "SRC template: 'src_%u'\n    Availability: on request")) << tee.out;
}

TEST(Inspect, UnknownElementSuggests) {
  ToolRun r = run("PARALLAX_INSPECT", {"queu"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "No such element or plugin 'queu'; did you mean 'queue'?")) << r.err;
}

std::optional<prom::Parsed> parse_metrics_file(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot open " + path;
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  return prom::parse(text.str(), error);
}

// --metrics FILE: after the run the file holds the final per-element counts, in the strict
// text format.
TEST(LaunchMetrics, FileHoldsTheFinalPerElementCounts) {
  parallax::test::TempDir dir;
  const std::string file = dir.file("launch.prom");
  ToolRun r = run("PARALLAX_LAUNCH",
                  {"--metrics", file, "nullsource", "name=src", "num-buffers=100", "size=1000", "!",
                   "queue", "name=q", "!", "identity", "name=id", "!", "nullsink", "name=sink"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string error;
  auto m = parse_metrics_file(file, &error);
  ASSERT_TRUE(m.has_value()) << error;
  ASSERT_TRUE(m->families.count("parallax_element_buffers_total"));
  EXPECT_EQ(m->families.at("parallax_element_buffers_total").type, "counter");
  for (const char* e : {"src", "q", "id", "sink"}) {
    EXPECT_EQ(m->value("parallax_element_buffers_total", "parallax_element_buffers_total",
                       {{"element", e}}),
              100.0)
        << e;
    EXPECT_EQ(
        m->value("parallax_element_bytes_total", "parallax_element_bytes_total", {{"element", e}}),
        100000.0)
        << e;
  }
  EXPECT_EQ(m->value("parallax_element_buffers_total", "parallax_element_buffers_total",
                     {{"element", "q"}, {"factory", "queue"}}),
            100.0);
  // No temporary file left next to it.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& f : std::filesystem::directory_iterator(dir.path()))
    ++entries;
  EXPECT_EQ(entries, 1u);
}

// While the pipeline runs, the file is rewritten every --metrics-interval: a reader polling it
// always parses a whole file, and sees the source's own pool (parallax_pool_*{element="src"}).
TEST(LaunchMetrics, FileIsRewrittenWhileRunningWithTheSourcePool) {
  parallax::test::TempDir dir;
  const std::string file = dir.file("live.prom");
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, bad_reads{0};
  std::atomic<double> slots{-1}, src_buffers{-1};
  std::string first_error;
  std::thread reader([&] {
    while (!done.load()) {
      std::string error;
      if (std::filesystem::exists(file)) {
        auto m = parse_metrics_file(file, &error);
        ++reads;
        if (!m) {
          if (bad_reads++ == 0) first_error = error;
        } else {
          if (auto v = m->value("parallax_pool_slots", "parallax_pool_slots",
                                {{"element", "src"}, {"pool", "slots"}}))
            slots = *v;
          if (auto v = m->value("parallax_element_buffers_total", "parallax_element_buffers_total",
                                {{"element", "src"}}))
            src_buffers = *v;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  ToolRun r = run("PARALLAX_LAUNCH",
                  {"--metrics", file, "--metrics-interval", "0.02", "nullsource", "name=src",
                   "size=4096", "!", "queue", "!", "nullsink"},
                  400);
  done = true;
  reader.join();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(reads.load(), 5);
  EXPECT_EQ(bad_reads.load(), 0) << first_error;
  EXPECT_EQ(slots.load(), 1024.0) << "nullsource size=4096 carves 1024 slots";
  EXPECT_GT(src_buffers.load(), 0.0);
}

}  // namespace
