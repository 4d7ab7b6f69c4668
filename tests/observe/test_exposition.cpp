// SPDX-License-Identifier: MIT OR Apache-2.0
// The Prometheus text export (labels, escaping, families, histograms) read back by a strict
// parser of the format (prom_parser.h), and the textfile exporter's atomic rewrite checked by a
// reader that loops while the file is rewritten.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "parallax/metrics.h"
#include "prom_parser.h"

using namespace parallax;
using namespace parallax::observe;
using namespace std::chrono_literals;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct TmpDir {
  std::filesystem::path p;
  TmpDir() {
    char t[] = "/tmp/plx-prom-XXXXXX";
    p = ::mkdtemp(t);
  }
  ~TmpDir() { std::filesystem::remove_all(p); }
};

prom::Parsed parse_ok(const std::string& text) {
  std::string why;
  auto p = prom::parse(text, &why);
  EXPECT_TRUE(p.has_value()) << why << "\n" << text;
  return p.value_or(prom::Parsed{});
}

TEST(Exposition, LabelsAndHelpAreEscapedAndParseBack) {
  MetricsRegistry reg;
  auto r = reg.add_collector([](Exposition& ex) {
    ex.counter("plx_x_total", "help with \\ backslash\nand a second line",
               {{"socket", "/tmp/a \"quoted\"\\path\nnl"}, {"pid", "7"}}, 5);
    ex.counter("plx_x_total", "ignored (first help wins)", {{"socket", "/b"}, {"pid", "8"}}, 6);
    ex.gauge("plx_g", "", {}, 0.25);
  });
  const auto p = parse_ok(reg.prometheus());
  ASSERT_EQ(p.families.count("plx_x_total"), 1u);
  EXPECT_EQ(p.families.at("plx_x_total").type, "counter");
  EXPECT_EQ(p.families.at("plx_x_total").help, "help with \\ backslash\nand a second line");
  EXPECT_EQ(p.value("plx_x_total", "plx_x_total", {{"socket", "/tmp/a \"quoted\"\\path\nnl"}}),
            5.0);
  EXPECT_EQ(p.value("plx_x_total", "plx_x_total", {{"pid", "8"}}), 6.0);
  EXPECT_EQ(p.value("plx_g", "plx_g"), 0.25);
  EXPECT_EQ(p.families.count("parallax_metrics_rejected_samples_total"), 0u);
}

TEST(Exposition, SamplesThatDoNotFitAreRejectedAndCounted) {
  MetricsRegistry reg;
  auto r = reg.add_collector([](Exposition& ex) {
    ex.counter("plx_no_suffix", "", {}, 1);              // counter not *_total
    ex.gauge("plx_a", "", {{"k", "1"}}, 1);              // ok
    ex.gauge("plx_a", "", {{"k", "1"}}, 2);              // duplicate series
    ex.counter("plx_a", "", {{"k", "2"}}, 1);            // type conflict (and no _total)
    ex.gauge("plx_b", "", {{"le", "1"}}, 1);             // reserved label
    ex.gauge("plx_c", "", {{"9bad", "1"}}, 1);           // bad label name
    ex.gauge("bad name", "", {}, 1);                     // bad metric name
    ex.gauge("plx_d", "", {{"k", "1"}, {"k", "2"}}, 1);  // repeated label
    std::array<std::uint64_t, 64> b{};
    ex.log2_histogram_seconds("plx_h_seconds", "", {}, b, 0);  // ok
    ex.gauge("plx_h_seconds_count", "", {}, 1);                // collides with the histogram
  });
  const auto p = parse_ok(reg.prometheus());
  EXPECT_EQ(
      p.value("parallax_metrics_rejected_samples_total", "parallax_metrics_rejected_samples_total"),
      8.0);
  EXPECT_EQ(p.value("plx_a", "plx_a", {{"k", "1"}}), 1.0);
  EXPECT_EQ(p.families.count("plx_no_suffix"), 0u);
}

TEST(Exposition, Log2HistogramInSecondsIsCumulativeWithInfSumAndCount) {
  MetricsRegistry reg;
  std::array<std::uint64_t, 64> b{};
  b[3] = 2;   // [4, 8) ns: below the first exported bound (1.024 us)
  b[11] = 5;  // [1024, 2048) ns
  b[20] = 1;  // ~0.5-1 ms
  b[40] = 1;  // beyond the last exported bound: only in +Inf
  auto r = reg.add_collector([&](Exposition& ex) {
    ex.log2_histogram_seconds("plx_lat_seconds", "latency", {{"socket", "s"}}, b, 3'000'000'000);
  });
  const auto p = parse_ok(reg.prometheus());
  const auto& f = p.families.at("plx_lat_seconds");
  EXPECT_EQ(f.type, "histogram");
  EXPECT_EQ(p.value("plx_lat_seconds", "plx_lat_seconds_bucket", {{"le", "0.000001024"}}), 2.0);
  EXPECT_EQ(p.value("plx_lat_seconds", "plx_lat_seconds_bucket", {{"le", "0.000002048"}}), 7.0);
  EXPECT_EQ(p.value("plx_lat_seconds", "plx_lat_seconds_bucket", {{"le", "0.001048576"}}), 8.0);
  EXPECT_EQ(p.value("plx_lat_seconds", "plx_lat_seconds_bucket", {{"le", "17.179869184"}}), 8.0);
  EXPECT_EQ(p.value("plx_lat_seconds", "plx_lat_seconds_bucket", {{"le", "+Inf"}}), 9.0);
  EXPECT_EQ(p.value("plx_lat_seconds", "plx_lat_seconds_count"), 9.0);
  EXPECT_EQ(p.value("plx_lat_seconds", "plx_lat_seconds_sum"), 3.0);
}

TEST(Exposition, TheParserRejectsMalformedText) {
  std::string why;
  for (const char* bad : {
           "plx_a 1\n",                                 // no TYPE
           "# TYPE plx_a gauge\nplx_a{k=\"v} 1\n",      // unterminated value
           "# TYPE plx_a gauge\nplx_a{k=\"\\x\"} 1\n",  // bad escape
           "# TYPE plx_a gauge\nplx_a one\n",           // bad value
           "# TYPE plx_a gauge\nplx_a 1\n# TYPE plx_b gauge\nplx_b 1\nplx_a 2\n",  // split
           "# TYPE plx_a counter\nplx_a 1\n",         // counter not _total
           "# TYPE plx_a gauge\nplx_a 1\nplx_a 2\n",  // duplicate series
           "# TYPE plx_h histogram\nplx_h_bucket{le=\"1\"} 2\nplx_h_bucket{le=\"+Inf\"} 1\n"
           "plx_h_sum 1\nplx_h_count 1\n",  // not cumulative
           "# TYPE plx_h histogram\nplx_h_bucket{le=\"1\"} 1\nplx_h_sum 1\nplx_h_count 1\n",
           "# TYPE plx_a gauge\nplx_a 1",  // cut (no final line feed)
       }) {
    EXPECT_FALSE(prom::parse(bad, &why).has_value()) << bad;
  }
}

TEST(MetricsRegistryCollectors, RegistrationEndsWithItsOwner) {
  MetricsRegistry reg;
  std::atomic<int> calls{0};
  {
    auto r = reg.add_collector([&](Exposition& ex) {
      ++calls;
      ex.gauge("plx_owned", "", {}, 1);
    });
    EXPECT_NE(reg.prometheus().find("plx_owned"), std::string::npos);
    auto moved = std::move(r);
    EXPECT_FALSE(r.active());
    EXPECT_TRUE(moved.active());
  }
  EXPECT_EQ(reg.prometheus().find("plx_owned"), std::string::npos);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(reg.counter("plx_not_suffixed").error().code, Errc::invalid_argument);
}

TEST(MetricsFile, IntervalParsingAndStartErrors) {
  EXPECT_EQ(parse_metrics_interval("5").value(), 5000ms);
  EXPECT_EQ(parse_metrics_interval("0.25").value(), 250ms);
  for (const char* bad : {"", "0", "-1", "abc", "5s", "nan", "inf", "1e9"})
    EXPECT_EQ(parse_metrics_interval(bad).error().code, Errc::invalid_argument) << bad;
  EXPECT_EQ(MetricsFileExporter::start("", 1s).error().code, Errc::invalid_argument);
  EXPECT_FALSE(MetricsFileExporter::start("/nonexistent-dir/x.prom", 1s).ok());
}

// Many series (~200 KB of text), rewritten every millisecond by the exporter's thread while
// this thread reads and strictly parses the file in a loop: every read is a whole export.
constexpr int kSeries = 2000;

void many_series(Exposition& ex, std::uint64_t gen) {
  for (int i = 0; i < kSeries; ++i)
    ex.counter(
        "plx_rewrite_total", "a family with many series",
        {{"socket", "/run/parallax/a-rather-long-socket-name-" + std::to_string(i) + ".sock"},
         {"generation", "g"}},
        gen);
}

std::size_t samples_of(const prom::Parsed& p) {
  auto it = p.families.find("plx_rewrite_total");
  return it == p.families.end() ? 0 : it->second.samples.size();
}

TEST(MetricsFile, AReaderNeverSeesAPartialFileWhileItIsRewritten) {
  TmpDir dir;
  const std::string path = (dir.p / "x.prom").string();
  MetricsRegistry reg;
  std::atomic<std::uint64_t> gen{0};
  auto r = reg.add_collector([&](Exposition& ex) { many_series(ex, gen.fetch_add(1)); });
  auto exp = MetricsFileExporter::start(path, 1ms, reg);
  ASSERT_TRUE(exp.ok()) << exp.error().to_string();
  int reads = 0;
  // Aims for 20 rewrites seen while reading within 8 s; a loaded machine under TSan may need
  // longer for the minimum of 5 checked below, so the loop goes on up to 30 s for those.
  const auto start = std::chrono::steady_clock::now();
  const auto more = [&] {
    const auto now = std::chrono::steady_clock::now();
    const bool aim = (*exp)->writes() < 20 || reads < 20;
    const bool minimum = (*exp)->writes() < 5 || reads < 5;
    return (aim && now < start + 8s) || (minimum && now < start + 30s);
  };
  while (more()) {
    const std::string text = slurp(path);
    std::string why;
    auto p = prom::parse(text, &why);
    ASSERT_TRUE(p.has_value()) << "read " << reads << ": " << why << " (" << text.size()
                               << " bytes)";
    ASSERT_EQ(samples_of(*p), static_cast<std::size_t>(kSeries)) << "read " << reads;
    // One export: every series has the same generation value.
    const double v = p->families.at("plx_rewrite_total").samples.front().value;
    for (const auto& s : p->families.at("plx_rewrite_total").samples)
      ASSERT_EQ(s.value, v);
    ++reads;
  }
  const std::uint64_t writes = (*exp)->writes();
  exp->reset();  // stops the thread promptly
  // Under ThreadSanitizer on a loaded 2-core machine an export of 2000 series can take
  // ~0.4 s: 5 rewrites overlapping the reads still make every read a race against a rename.
  EXPECT_GE(reads, 5);
  EXPECT_GE(writes, 5u) << "the file was not rewritten while read";
  // No temporary file left behind, and nothing but x.prom in the directory.
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.p)) {
    EXPECT_EQ(e.path().filename(), "x.prom");
    ++files;
  }
  EXPECT_EQ(files, 1u);
}

// The same reader against a writer that truncates and writes in place (what the exporter
// must not do) sees partial files: the check above can fail.
TEST(MetricsFile, TheReaderCatchesANaiveInPlaceRewrite) {
  TmpDir dir;
  const std::string path = (dir.p / "x.prom").string();
  MetricsRegistry reg;
  auto r = reg.add_collector([](Exposition& ex) { many_series(ex, 1); });
  const std::string text = reg.prometheus();
  { std::ofstream(path) << text; }
  std::atomic<bool> stop{false};
  std::thread naive([&] {
    while (!stop.load()) {
      std::ofstream out(path, std::ios::trunc);
      for (std::size_t off = 0; off < text.size(); off += 4096) {
        out.write(text.data() + off,
                  static_cast<std::streamsize>(std::min<std::size_t>(4096, text.size() - off)));
        out.flush();
        std::this_thread::sleep_for(20us);
      }
    }
  });
  bool caught = false;
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (!caught && std::chrono::steady_clock::now() < until) {
    std::string why;
    auto p = prom::parse(slurp(path), &why);
    caught = !p || samples_of(*p) != static_cast<std::size_t>(kSeries);
  }
  stop = true;
  naive.join();
  EXPECT_TRUE(caught);
}

TEST(MetricsFile, StopIsPromptWithALongInterval) {
  TmpDir dir;
  MetricsRegistry reg;
  auto exp = MetricsFileExporter::start((dir.p / "y.prom").string(), 3600s, reg);
  ASSERT_TRUE(exp.ok());
  const auto t0 = std::chrono::steady_clock::now();
  exp->reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  EXPECT_TRUE(std::filesystem::exists(dir.p / "y.prom"));  // the first write, made by start()
}

}  // namespace
