// SPDX-License-Identifier: MIT OR Apache-2.0
// parallax-inspect: lists elements and plugins, or shows one element's pads and properties.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "parallax/element.h"
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Lists Parallax elements and plugins, or shows the pads and properties of one element"};
  std::string name;
  bool plugins = false;
  app.add_flag("-p,--plugins", plugins, "List the plugins");
  app.add_option("element", name, "An element (or plugin) to inspect");
  std::vector<std::string> plugin_files;
  app.add_option("--plugin", plugin_files,
                 "Load this plugin file too (repeatable); $PARALLAX_PLUGIN_PATH is always scanned");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
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
