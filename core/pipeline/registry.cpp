// SPDX-License-Identifier: MIT OR Apache-2.0
// The element registry: factories by name, creation, and "did you mean" suggestions.
#include <algorithm>
#include <cstdio>

#include "parallax/element.h"
#include "suggest.h"

namespace parallax::pipeline {

ElementRegistry& ElementRegistry::global() {
  static ElementRegistry registry;
  return registry;
}

Result<void> ElementRegistry::register_element(ElementInfo info) {
  if (info.name.empty()) return err(Errc::invalid_argument, "element name is empty");
  if (!info.factory)
    return err(Errc::invalid_argument, "element '" + info.name + "' has no factory");
  std::lock_guard l(mu_);
  if (entries_.count(info.name) != 0)
    return err(Errc::already_exists, "element '" + info.name + "' is already registered");
  std::string key = info.name;
  entries_.emplace(std::move(key), std::make_unique<ElementInfo>(std::move(info)));
  return ok();
}

const ElementInfo* ElementRegistry::find(std::string_view name) const {
  std::lock_guard l(mu_);
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second.get();
}

std::vector<const ElementInfo*> ElementRegistry::list() const {
  std::lock_guard l(mu_);
  std::vector<const ElementInfo*> out;
  for (const auto& [k, v] : entries_)
    out.push_back(v.get());
  return out;
}

std::vector<std::string> ElementRegistry::plugins() const {
  std::lock_guard l(mu_);
  std::vector<std::string> out;
  for (const auto& [k, v] : entries_)
    if (std::find(out.begin(), out.end(), v->plugin) == out.end()) out.push_back(v->plugin);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> ElementRegistry::suggest(std::string_view name) const {
  std::vector<std::string> names;
  {
    std::lock_guard l(mu_);
    for (const auto& [k, v] : entries_)
      names.push_back(k);
  }
  return detail::closest_names(name, names);
}

Result<std::unique_ptr<Element>> ElementRegistry::create(std::string_view factory,
                                                         std::string instance_name) const {
  const ElementInfo* info = find(factory);
  if (info == nullptr) {
    std::string hint = detail::did_you_mean(suggest(factory));
    return err(Errc::not_found, "unknown element '" + std::string(factory) + "'" +
                                    (hint.empty() ? "" : "; " + hint));
  }
  std::unique_ptr<Element> e = info->factory();
  if (!e) return err(Errc::internal, "factory of '" + info->name + "' returned nothing");
  e->factory_ = info;
  for (const auto& spec : info->properties)
    if (e->find_property(spec.name) == nullptr) e->install_property(spec);
  e->name_ = std::move(instance_name);
  return e;
}

ElementRegistrar::ElementRegistrar(ElementInfo info) {
  std::string name = info.name;
  auto r = ElementRegistry::global().register_element(std::move(info));
  if (!r)
    std::fprintf(stderr, "parallax: cannot register element '%s': %s\n", name.c_str(),
                 r.error().message.c_str());
}

}  // namespace parallax::pipeline
