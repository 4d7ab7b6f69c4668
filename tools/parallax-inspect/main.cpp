// SPDX-License-Identifier: MIT OR Apache-2.0
// parallax-inspect: lists elements and plugins, or shows one element's pads and properties;
// given a publisher's socket, shows that running hop (who is connected, who is behind, what is
// held, transit latency), once, refreshing (--watch) or as JSON (--json). See
// docs/observability.md.
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "parallax/element.h"
#include "parallax/ipc.h"
#include "parallax/plugin.h"

namespace {

using namespace parallax::pipeline;

void list_elements(const std::string& plugin_filter) {
  auto all = ElementRegistry::global().list();
  std::size_t n = 0;
  for (const ElementInfo* info : all) {
    if (!plugin_filter.empty() && info->plugin != plugin_filter) continue;
    std::printf("%s:  %s: %s\n", info->plugin.c_str(), info->name.c_str(),
                info->description.c_str());
    ++n;
  }
  std::printf("\nTotal count: %zu element%s\n", n, n == 1 ? "" : "s");
}

void list_plugins() {
  auto& reg = ElementRegistry::global();
  for (const auto& p : reg.plugins()) {
    std::size_t n = 0;
    for (const ElementInfo* info : reg.list())
      n += info->plugin == p;
    std::printf("%s: %zu element%s%s\n", p.c_str(), n, n == 1 ? "" : "s",
                p == "builtin" ? " (compiled into libparallax)" : "");
  }
  std::printf(
      "\nMore plugins: set PARALLAX_PLUGIN_PATH or pass --plugin FILE (see docs/plugins.md).\n");
}

const char* direction(PadDirection d) {
  return d == PadDirection::src ? "SRC" : "SINK";
}
const char* presence(PadPresence p) {
  return p == PadPresence::always ? "always" : "on request";
}

int inspect(const ElementInfo& info) {
  auto made = ElementRegistry::global().create(info.name, info.name + "0");
  if (!made) {
    std::fprintf(stderr, "ERROR: could not create '%s': %s\n", info.name.c_str(),
                 made.error().message.c_str());
    return 1;
  }
  const Element& e = **made;
  std::printf("Factory Details:\n");
  std::printf("  %-16s %s\n", "Long-name", info.name.c_str());
  std::printf("  %-16s %s\n", "Klass", info.klass.c_str());
  std::printf("  %-16s %s\n", "Description", info.description.c_str());
  std::printf("  %-16s %s\n", "Author", info.author.c_str());
  std::printf("\nPlugin Details:\n  %-16s %s\n", "Name", info.plugin.c_str());
  std::printf("\nPad Templates:\n");
  for (const auto& t : e.pad_templates()) {
    std::printf("  %s template: '%s'\n    Availability: %s\n    Capabilities:\n      %s\n\n",
                direction(t.direction), t.name_template.c_str(), presence(t.presence),
                t.caps.c_str());
  }
  std::printf("Element has a streaming thread: %s\n", e.has_task() ? "yes" : "no");
  std::printf("\nElement Properties:\n");
  std::printf("  %-20s: %s\n", "name", "The name of the object (set with name=...)");
  std::printf("  %-20s  flags: readable, writable\n  %-20s  String. Default: \"%s0\"\n", "", "",
              info.name.c_str());
  for (const auto& p : e.properties()) {
    std::printf("  %-20s: %s\n", p.name.c_str(), p.description.c_str());
    std::string flags = p.readable() ? "readable" : "";
    if (p.writable()) flags += flags.empty() ? "writable" : ", writable";
    if (p.flags & kPropMutablePlaying) flags += ", changeable in PLAYING";
    std::printf("  %-20s  flags: %s\n", "", flags.c_str());
    switch (p.type) {
      case PropertyType::int64:
      case PropertyType::uint64:
      case PropertyType::double_:
        std::printf("  %-20s  %s. Range: %s - %s Default: %s\n", "",
                    std::string(to_string(p.type)).c_str(), to_string(p.min).c_str(),
                    to_string(p.max).c_str(), to_string(p.default_value).c_str());
        break;
      case PropertyType::enumeration:
        std::printf("  %-20s  Enum. Default: \"%s\"\n", "", to_string(p.default_value).c_str());
        for (const auto& v : p.enum_values)
          std::printf("  %-20s     (%lld): %-12s - %s\n", "", static_cast<long long>(v.value),
                      v.nick.c_str(), v.description.c_str());
        break;
      default:
        std::printf("  %-20s  %s. Default: \"%s\"\n", "", std::string(to_string(p.type)).c_str(),
                    to_string(p.default_value).c_str());
    }
  }
  return 0;
}

// ---- a running hop ------------------------------------------------------------------------

namespace hop {

using parallax::link::PublisherStats;
using parallax::link::SubscriberInfo;

bool looks_like_socket(const std::string& name) {
  struct stat st {};
  if (::stat(name.c_str(), &st) == 0) return S_ISSOCK(st.st_mode);
  return name.find('/') != std::string::npos;  // element names never hold a '/'
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char out[32];
  std::snprintf(out, sizeof out, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return out;
}

std::string human_ns(std::uint64_t ns, bool known = true) {
  if (!known) return "-";
  char out[32];
  if (ns < 10'000)
    std::snprintf(out, sizeof out, "%lluns", static_cast<unsigned long long>(ns));
  else if (ns < 1'000'000)
    std::snprintf(out, sizeof out, "%.1fus", static_cast<double>(ns) / 1e3);
  else if (ns < 10'000'000'000ull)
    std::snprintf(out, sizeof out, "%.1fms", static_cast<double>(ns) / 1e6);
  else
    std::snprintf(out, sizeof out, "%.1fs", static_cast<double>(ns) / 1e9);
  return out;
}

std::string human_duration(std::uint64_t ns) {
  const std::uint64_t s = ns / 1'000'000'000ull;
  char out[32];
  if (s < 60)
    std::snprintf(out, sizeof out, "%llus", static_cast<unsigned long long>(s));
  else if (s < 3600)
    std::snprintf(out, sizeof out, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  else
    std::snprintf(out, sizeof out, "%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>((s / 60) % 60));
  return out;
}

// Per-subscriber rates between two samples (keyed by connection id).
struct Rates {
  double buffers_per_s{0}, bytes_per_s{0};
  bool known{false};
};
using RateMap = std::map<std::uint64_t, Rates>;

RateMap rates(const PublisherStats* prev, const PublisherStats& now, double dt) {
  RateMap out;
  if (prev == nullptr || dt <= 0) return out;
  std::map<std::uint64_t, const SubscriberInfo*> old;
  for (const auto& s : prev->subscribers)
    old[s.id] = &s;
  for (const auto& s : now.subscribers) {
    auto it = old.find(s.id);
    if (it == old.end()) continue;
    Rates r;
    r.buffers_per_s = static_cast<double>(s.buffers_sent - it->second->buffers_sent) / dt;
    r.bytes_per_s = static_cast<double>(s.bytes_sent - it->second->bytes_sent) / dt;
    r.known = true;
    out[s.id] = r;
  }
  return out;
}

nlohmann::json to_json(const std::string& path, const PublisherStats& st, const RateMap& rm) {
  nlohmann::json subs = nlohmann::json::array();
  for (const auto& s : st.subscribers) {
    nlohmann::json j = {{"id", s.id},
                        {"pid", s.pid},
                        {"uid", s.uid},
                        {"gid", s.gid},
                        {"policy", std::string(parallax::link::to_string(s.policy))},
                        {"leases", s.leases},
                        {"max_leases", s.max_leases},
                        {"ring_used", s.ring_used},
                        {"ring_capacity", s.ring_capacity},
                        {"buffers_sent", s.buffers_sent},
                        {"bytes_sent", s.bytes_sent},
                        {"events_sent", s.events_sent},
                        {"dropped_oldest", s.dropped_oldest},
                        {"dropped_newest", s.dropped_newest},
                        {"blocked_sends", s.blocked_sends},
                        {"connected_ns", s.connected_ns},
                        {"received", s.received},
                        {"latency_count", s.latency_count},
                        {"latency_p50_ns", s.latency_p50_ns},
                        {"latency_p99_ns", s.latency_p99_ns},
                        {"latency_max_ns", s.latency_max_ns}};
    if (auto it = rm.find(s.id); it != rm.end()) {
      j["buffers_per_s"] = it->second.buffers_per_s;
      j["bytes_per_s"] = it->second.bytes_per_s;
    }
    subs.push_back(std::move(j));
  }
  nlohmann::json segs = nlohmann::json::array();
  for (std::size_t i = 0; i < st.segments.size(); ++i)
    segs.push_back({{"index", i},
                    {"id", st.segments[i].id},
                    {"size", st.segments[i].size},
                    {"slots", st.segments[i].slots}});
  return {{"socket", path},
          {"publisher",
           {{"pid", st.publisher_pid},
            {"uptime_ns", st.uptime_ns},
            {"format", st.format},
            {"format_truncated", st.format_truncated},
            {"buffers_sent", st.buffers_sent},
            {"zero_copy", st.zero_copy},
            {"copies", st.copies},
            {"bytes_copied", st.bytes_copied},
            {"events_sent", st.events_sent},
            {"connections", st.connections},
            {"disconnects", st.disconnects},
            {"refused", st.refused},
            {"protocol_errors", st.protocol_errors},
            {"stats_requests", st.stats_requests}}},
          {"pool",
           {{"slot_size", st.slot_size},
            {"slots", st.slots},
            {"in_use", st.slots_in_use},
            {"high_water", st.slots_high_water},
            {"segments", segs}}},
          {"subscribers", subs}};
}

void print_view(const std::string& path, const PublisherStats& st, const RateMap& rm) {
  std::printf("publisher pid %d on %s, up %s\n", static_cast<int>(st.publisher_pid), path.c_str(),
              human_duration(st.uptime_ns).c_str());
  std::printf("format   %s%s\n", st.format.empty() ? "(none yet)" : st.format.c_str(),
              st.format_truncated ? "..." : "");
  std::printf("pool     %u slots x %s, %u in use (high water %u), %zu segment%s\n", st.slots,
              human_bytes(static_cast<double>(st.slot_size)).c_str(), st.slots_in_use,
              st.slots_high_water, st.segments.size(), st.segments.size() == 1 ? "" : "s");
  for (std::size_t i = 0; i < st.segments.size(); ++i)
    std::printf("         segment %zu: id %llu, %s, %u slots\n", i,
                static_cast<unsigned long long>(st.segments[i].id),
                human_bytes(static_cast<double>(st.segments[i].size)).c_str(),
                st.segments[i].slots);
  std::printf("sent     %llu buffers (%llu zero-copy, %llu copied, %s copied), %llu events\n",
              static_cast<unsigned long long>(st.buffers_sent),
              static_cast<unsigned long long>(st.zero_copy),
              static_cast<unsigned long long>(st.copies),
              human_bytes(static_cast<double>(st.bytes_copied)).c_str(),
              static_cast<unsigned long long>(st.events_sent));
  std::printf(
      "peers    %zu connected (%llu ever), %llu gone, %llu refused, %llu protocol errors\n\n",
      st.subscribers.size(), static_cast<unsigned long long>(st.connections),
      static_cast<unsigned long long>(st.disconnects), static_cast<unsigned long long>(st.refused),
      static_cast<unsigned long long>(st.protocol_errors));
  std::printf("%4s %7s %6s %-11s %7s %5s %8s %10s %8s %8s %8s %8s %7s %8s %8s %7s\n", "ID", "PID",
              "UID", "POLICY", "LEASES", "RING", "BUF/S", "BYTES/S", "SENT", "RECV", "DROP-OLD",
              "DROP-NEW", "BLOCKED", "LAT-P50", "LAT-P99", "SINCE");
  for (const auto& s : st.subscribers) {
    char leases[24], ring[16], bps[24] = "-", Bps[24] = "-";
    std::snprintf(leases, sizeof leases, "%u/%u", s.leases, s.max_leases);
    std::snprintf(
        ring, sizeof ring, "%.0f%%",
        s.ring_capacity ? 100.0 * static_cast<double>(s.ring_used) / s.ring_capacity : 0.0);
    if (auto it = rm.find(s.id); it != rm.end() && it->second.known) {
      std::snprintf(bps, sizeof bps, "%.0f", it->second.buffers_per_s);
      std::snprintf(Bps, sizeof Bps, "%s", human_bytes(it->second.bytes_per_s).c_str());
    }
    const bool lat = s.latency_count != 0;
    std::printf("%4llu %7d %6u %-11s %7s %5s %8s %10s %8llu %8llu %8llu %8llu %7llu %8s %8s %7s\n",
                static_cast<unsigned long long>(s.id), static_cast<int>(s.pid), s.uid,
                std::string(parallax::link::to_string(s.policy)).c_str(), leases, ring, bps, Bps,
                static_cast<unsigned long long>(s.buffers_sent),
                static_cast<unsigned long long>(s.received),
                static_cast<unsigned long long>(s.dropped_oldest),
                static_cast<unsigned long long>(s.dropped_newest),
                static_cast<unsigned long long>(s.blocked_sends),
                human_ns(s.latency_p50_ns, lat).c_str(), human_ns(s.latency_p99_ns, lat).c_str(),
                human_duration(s.connected_ns).c_str());
  }
  if (st.subscribers.empty()) std::printf("  (no subscribers)\n");
}

volatile std::sig_atomic_t g_stop = 0;

int run(const std::string& path, bool watch, bool json, int interval_ms, int iterations) {
  using Clock = std::chrono::steady_clock;
  auto first = parallax::link::query_stats(path);
  if (!first) {
    std::fprintf(stderr, "ERROR: %s: %s\n", path.c_str(), first.error().to_string().c_str());
    return 1;
  }
  if (!watch) {
    if (json)
      std::printf("%s\n", to_json(path, *first, {}).dump().c_str());
    else
      print_view(path, *first, {});
    return 0;
  }
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  PublisherStats prev = std::move(first).value();
  auto prev_t = Clock::now();
  const bool tty = ::isatty(1) != 0 && !json;
  for (int i = 0; (iterations == 0 || i < iterations) && !g_stop; ++i) {
    // Sleep in small steps so Ctrl-C leaves at once.
    const auto until = Clock::now() + std::chrono::milliseconds(interval_ms);
    while (!g_stop && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (g_stop) break;
    auto cur = parallax::link::query_stats(path);
    const auto now = Clock::now();
    if (!cur) {
      std::fprintf(stderr, "ERROR: %s: %s\n", path.c_str(), cur.error().to_string().c_str());
      return 1;
    }
    const double dt = std::chrono::duration<double>(now - prev_t).count();
    const RateMap rm = rates(&prev, *cur, dt);
    if (json) {
      std::printf("%s\n", to_json(path, *cur, rm).dump().c_str());
    } else {
      if (tty) std::printf("\x1b[H\x1b[2J");
      print_view(path, *cur, rm);
      if (!tty) std::printf("\n");
    }
    std::fflush(stdout);
    prev = std::move(cur).value();
    prev_t = now;
  }
  return 0;
}

}  // namespace hop

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Lists Parallax elements and plugins, or shows the pads and properties of one element; "
      "given a publisher's socket, shows that running hop"};
  std::string name;
  bool plugins = false, watch = false, json = false;
  int interval_ms = 1000, iterations = 0;
  app.add_flag("-p,--plugins", plugins, "List the plugins");
  app.add_option("element", name, "An element (or plugin) to inspect, or a publisher's socket");
  app.add_flag("-w,--watch", watch, "SOCKET: refresh every --interval (Ctrl-C to leave)");
  app.add_flag("--json", json, "SOCKET: print JSON (one object per refresh with --watch)");
  app.add_option("-i,--interval", interval_ms, "SOCKET --watch: refresh period in ms")
      ->check(CLI::Range(50, 3600000));
  app.add_option("-n,--iterations", iterations, "SOCKET --watch: stop after N refreshes (0: never)")
      ->check(CLI::NonNegativeNumber);
  std::vector<std::string> plugin_files;
  app.add_option("--plugin", plugin_files,
                 "Load this plugin file too (repeatable); $PARALLAX_PLUGIN_PATH is always scanned");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (!name.empty() && hop::looks_like_socket(name))
    return hop::run(name, watch, json, interval_ms, iterations);
  if (watch || json) {
    std::fprintf(stderr, "--watch and --json apply to a publisher's socket\n");
    return 2;
  }
  std::vector<std::string> plugin_errors;
  parallax::plugin::load_path("", &plugin_errors);
  for (const auto& f : plugin_files)
    if (auto r = parallax::plugin::load(f); !r) plugin_errors.push_back(r.error().message);
  for (const auto& e : plugin_errors)
    std::fprintf(stderr, "WARNING: plugin: %s\n", e.c_str());
  auto& reg = ElementRegistry::global();
  if (plugins) {
    list_plugins();
    return 0;
  }
  if (name.empty()) {
    list_elements({});
    return 0;
  }
  if (const ElementInfo* info = reg.find(name)) return inspect(*info);
  for (const auto& p : reg.plugins())
    if (p == name) {
      list_elements(p);
      return 0;
    }
  std::string hint;
  auto s = reg.suggest(name);
  for (std::size_t i = 0; i < s.size(); ++i)
    hint += (i ? ", '" : "'") + s[i] + "'";
  std::fprintf(stderr, "No such element or plugin '%s'%s\n", name.c_str(),
               hint.empty() ? "" : ("; did you mean " + hint + "?").c_str());
  return 1;
}
