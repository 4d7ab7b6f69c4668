// SPDX-License-Identifier: MIT OR Apache-2.0
// Loading C-ABI plugins (parallax/plugin_abi.h) into the element registry.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "parallax/element.h"
#include "parallax/plugin_abi.h"
#include "parallax/result.h"

namespace parallax::plugin {

struct PluginInfo {
  std::string name;
  std::string version;
  std::string description;
  std::string license;
  std::string path;
  std::vector<std::string> elements;
};

/// Loads one plugin file and registers its elements. All or nothing: the plugin is validated
/// whole (ABI version, struct sizes, names, callbacks for each kind, property types and
/// defaults, element names free) before anything is registered. Errors: not_found (no file /
/// dlopen failed), invalid_argument (not a Parallax plugin, malformed description),
/// unsupported (ABI mismatch), already_exists (an element or the plugin name is taken).
/// Loaded libraries stay loaded for the life of the process.
[[nodiscard]] Result<PluginInfo> load(
    std::string_view path,
    pipeline::ElementRegistry& registry = pipeline::ElementRegistry::global());

/// Registers a plugin description that is already in memory (a plugin linked statically).
[[nodiscard]] Result<PluginInfo> register_plugin(
    const PlxPlugin* plugin, std::string_view origin,
    pipeline::ElementRegistry& registry = pipeline::ElementRegistry::global());

/// Loads every `*.so` in the colon-separated directories (PARALLAX_PLUGIN_PATH when `dirs` is
/// empty). Files that fail are reported in `errors` ("path: message") and skipped.
std::vector<PluginInfo> load_path(
    std::string_view dirs, std::vector<std::string>* errors,
    pipeline::ElementRegistry& registry = pipeline::ElementRegistry::global());

/// Plugins loaded so far in this process.
[[nodiscard]] std::vector<PluginInfo> loaded();

}  // namespace parallax::plugin
