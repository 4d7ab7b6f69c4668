// SPDX-License-Identifier: MIT OR Apache-2.0
// parallax-launch: runs a pipeline written in gst-launch syntax, like gst-launch-1.0.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "parallax/affinity.h"
#include "parallax/metrics.h"
#include "parallax/pipeline.h"
#include "parallax/placement.h"
#include "parallax/plugin.h"

namespace {

using namespace parallax::pipeline;
using Clock = std::chrono::steady_clock;

std::atomic<int> g_interrupts{0};

extern "C" void on_signal(int) {
  g_interrupts.fetch_add(1);
}

// Exit codes, documented in docs/pipelines.md.
constexpr int kExitError = 1;          // the pipeline failed while running
constexpr int kExitInvalid = 2;        // bad arguments or pipeline description
constexpr int kExitInterrupted = 130;  // stopped hard by a second Ctrl-C

std::string human(double v) {
  char buf[32];
  if (v >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2f G", v / 1e9);
  else if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2f M", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(buf, sizeof buf, "%.2f k", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f ", v);
  return buf;
}

std::string elapsed_string(double s) {
  char buf[96];
  auto whole = static_cast<long long>(s);
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld.%09lld", whole / 3600, whole / 60 % 60,
                whole % 60, static_cast<long long>((s - static_cast<double>(whole)) * 1e9));
  return buf;
}

void print_progress(const std::vector<ElementStats>& now, const std::vector<ElementStats>& before,
                    double dt, double total) {
  std::string line = "progress: " + std::to_string(static_cast<int>(total)) + " s";
  for (std::size_t i = 0; i < now.size(); ++i) {
    const double rate = dt > 0 && i < before.size()
                            ? static_cast<double>(now[i].buffers - before[i].buffers) / dt
                            : 0;
    line += " | " + now[i].name + ": " + human(static_cast<double>(now[i].buffers)) + "buffers, " +
            human(rate) + "buffers/s, " + human(static_cast<double>(now[i].bytes)) + "B";
  }
  std::fprintf(stderr, "%s\n", line.c_str());
}

void print_stats_table(const std::vector<ElementStats>& stats, double seconds) {
  std::printf("Statistics (%.3f s):\n", seconds);
  std::printf("  %-20s %-12s %14s %16s %14s %12s\n", "element", "factory", "buffers", "bytes",
              "buffers/s", "MB/s");
  for (const auto& s : stats) {
    const double bps = seconds > 0 ? static_cast<double>(s.buffers) / seconds : 0;
    const double mbs = seconds > 0 ? static_cast<double>(s.bytes) / seconds / 1e6 : 0;
    std::printf("  %-20s %-12s %14" PRIu64 " %16" PRIu64 " %14.0f %12.2f\n", s.name.c_str(),
                s.factory.c_str(), s.buffers, s.bytes, bps, mbs);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Runs a Parallax pipeline described in gst-launch syntax, e.g.\n"
      "  parallax-launch nullsource num-buffers=1000 ! queue ! nullsink"};
  std::vector<std::string> words;
  bool verbose = false, quiet = false, stats = false;
  double interval = 1.0;
  std::string dot_file;
  app.add_flag("-v,--verbose", verbose,
               "Print every event (stream start, caps, segment, EOS) and state change");
  app.add_flag("-q,--quiet", quiet, "Print only errors (and --stats)");
  app.add_flag("--stats", stats,
               "Print per-element buffers/s and bytes: a progress line while running and a table "
               "at the end");
  app.add_option("--stats-interval", interval, "Seconds between progress lines with --stats")
      ->check(CLI::Range(0.05, 3600.0));
  app.add_option("--dot", dot_file, "Write the pipeline graph (Graphviz DOT) to this file");
  std::vector<std::string> plugin_files;
  app.add_option("--plugin", plugin_files,
                 "Load this plugin file first (repeatable); plugins in $PARALLAX_PLUGIN_PATH are "
                 "always loaded");
  std::string affinity_text;
  bool affinity_best_effort = false;
  app.add_option("--affinity", affinity_text,
                 "Pin streaming threads by rules 'PATTERN:AFFINITY;...' (first match by element "
                 "name or factory, globs; same rules as the parallaxaffinity GstTracer), e.g. "
                 "'src*:numa:0;queue*:core:1'. An element's own affinity property wins");
  app.add_flag("--affinity-best-effort", affinity_best_effort,
               "An affinity that cannot be applied is a warning instead of an error");
  std::string metrics_file;
  double metrics_interval = 5.0;
  app.add_option("--metrics", metrics_file,
                 "Write Prometheus metrics (text format) to this file every --metrics-interval "
                 "seconds, replaced atomically (node_exporter's textfile collector): the "
                 "pipeline's elements and its Parallax publishers, subscribers and pools");
  app.add_option("--metrics-interval", metrics_interval, "Seconds between --metrics rewrites")
      ->check(CLI::Range(0.01, 86400.0));
  app.add_option("pipeline", words, "The pipeline description (may span several arguments)")
      ->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitInvalid;
  }

  auto affinity_rules = parallax::topology::AffinityRules::parse(affinity_text);
  if (!affinity_rules) {
    std::fprintf(stderr, "ERROR: --affinity: %s\n", affinity_rules.error().message.c_str());
    return kExitInvalid;
  }
  if (!affinity_best_effort) {
    // Rules that name what this machine lacks fail before anything runs.
    auto machine = parallax::topology::Topology::process();
    if (!machine) {
      std::fprintf(stderr, "ERROR: --affinity: %s\n", machine.error().message.c_str());
      return kExitInvalid;
    }
    if (auto c = affinity_rules->check(**machine); !c) {
      std::fprintf(stderr, "ERROR: --affinity: %s; this machine: %s\n", c.error().message.c_str(),
                   (*machine)->describe().c_str());
      return kExitInvalid;
    }
  }

  std::vector<std::string> plugin_errors;
  parallax::plugin::load_path("", &plugin_errors);
  for (const auto& e : plugin_errors)
    std::fprintf(stderr, "WARNING: plugin: %s\n", e.c_str());
  for (const auto& f : plugin_files) {
    if (auto r = parallax::plugin::load(f); !r) {
      std::fprintf(stderr, "ERROR: %s\n", r.error().message.c_str());
      return kExitInvalid;
    }
  }

  std::string description;
  for (const auto& w : words)
    description += (description.empty() ? "" : " ") + w;

  Pipeline pipeline;
  if (auto r = pipeline.parse(description); !r) {
    std::fprintf(stderr, "ERROR: pipeline could not be constructed: %s\n",
                 r.error().message.c_str());
    return kExitInvalid;
  }
  if (auto r = pipeline.validate(); !r) {
    std::fprintf(stderr, "ERROR: pipeline could not be constructed: %s\n",
                 r.error().message.c_str());
    return kExitInvalid;
  }
  if (!dot_file.empty()) {
    std::ofstream out(dot_file);
    out << pipeline.to_dot();
    if (!out) {
      std::fprintf(stderr, "ERROR: could not write '%s'\n", dot_file.c_str());
      return kExitInvalid;
    }
  }

  std::mutex print_mu;
  pipeline.bus().set_sync_handler([&](const Message& m) {
    std::lock_guard l(print_mu);
    switch (m.type) {
      case MessageType::error:
        break;  // printed once, from the executor's result
      case MessageType::warning:
        std::fprintf(stderr, "%s\n", m.to_string().c_str());
        break;
      case MessageType::event:
        if (verbose) std::printf("%s\n", m.to_string().c_str());
        break;
      case MessageType::info:
      case MessageType::state_changed:
        if (verbose) std::printf("%s\n", m.to_string().c_str());
        break;
      case MessageType::eos:
        if (!quiet) std::printf("Got EOS from element \"pipeline\".\n");
        break;
    }
  });

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  ExecutorOptions opts;
  opts.trace_events = verbose;
  // Streaming threads of elements with an "affinity" property ("0-3,8", "numa:0", "core:1")
  // are pinned through hwloc; an empty affinity leaves the thread where the OS puts it.
  // --affinity RULES pins the others (first match by name or factory, as the GstTracer
  // parallaxaffinity). A pin that cannot be applied is the element's error (docs/topology.md).
  opts.thread_hook =
      parallax::pipeline::pin_by_rules_hook(std::move(*affinity_rules), {affinity_best_effort});
  PipelineExecutor exec(opts);
  // The elements' counters in the metrics (labels element, factory), read at export time.
  auto element_metrics = parallax::observe::MetricsRegistry::global().add_collector(
      [&exec](parallax::observe::Exposition& ex) {
        for (const auto& e : exec.stats()) {
          const parallax::observe::Labels l{{"element", e.name}, {"factory", e.factory}};
          ex.counter("parallax_element_buffers_total",
                     "Buffers that entered the element (sources: that left it)", l, e.buffers);
          ex.counter("parallax_element_bytes_total", "Bytes of those buffers", l, e.bytes);
        }
      });
  if (!metrics_file.empty()) {
    const auto ms = std::chrono::milliseconds(static_cast<long long>(metrics_interval * 1000));
    if (auto r = parallax::observe::start_process_metrics_file(metrics_file, ms); !r) {
      std::fprintf(stderr, "ERROR: --metrics: %s\n", r.error().message.c_str());
      return kExitInvalid;
    }
  }
  if (!quiet) std::printf("Setting pipeline to PLAYING ...\n");
  std::fflush(stdout);
  const auto t0 = Clock::now();
  if (auto r = exec.start(pipeline); !r) {
    std::fprintf(stderr, "ERROR: %s\n", r.error().message.c_str());
    return kExitError;
  }

  auto last = t0;
  std::vector<ElementStats> last_stats = exec.stats();
  bool eos_sent = false, hard_stop = false;
  Clock::time_point eos_deadline{};
  parallax::Result<void> result;
  for (;;) {
    if (auto r = exec.wait_for(std::chrono::milliseconds(50))) {
      result = *r;
      break;
    }
    const auto now = Clock::now();
    const int interrupts = g_interrupts.load();
    if (interrupts >= 1 && !eos_sent) {
      std::lock_guard l(print_mu);
      std::fprintf(stderr, "Interrupt: sending EOS (Ctrl-C again to stop at once) ...\n");
      exec.send_eos();
      eos_sent = true;
      eos_deadline = now + std::chrono::seconds(5);
    }
    if (interrupts >= 2 || (eos_sent && now > eos_deadline)) {
      {
        std::lock_guard l(print_mu);
        std::fprintf(stderr, "Interrupt: stopping the pipeline\n");
      }
      exec.stop();
      result = exec.wait();
      hard_stop = true;
      break;
    }
    if (stats && std::chrono::duration<double>(now - last).count() >= interval) {
      auto cur = exec.stats();
      std::lock_guard l(print_mu);
      print_progress(cur, last_stats, std::chrono::duration<double>(now - last).count(),
                     std::chrono::duration<double>(now - t0).count());
      last_stats = std::move(cur);
      last = now;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!metrics_file.empty()) {  // the final figures, while the elements still exist
    if (auto r = parallax::observe::write_process_metrics_now(); !r)
      std::fprintf(stderr, "WARNING: --metrics: %s\n", r.error().message.c_str());
  }
  pipeline.bus().set_sync_handler(nullptr);
  if (stats) print_stats_table(exec.stats(), seconds);
  if (hard_stop) {
    std::fprintf(stderr, "Execution stopped after %s\n", elapsed_string(seconds).c_str());
    return kExitInterrupted;
  }
  if (!result) {
    std::fprintf(stderr, "ERROR: %s\n", result.error().message.c_str());
    return kExitError;
  }
  if (!quiet) std::printf("Execution ended after %s\n", elapsed_string(seconds).c_str());
  return 0;
}
