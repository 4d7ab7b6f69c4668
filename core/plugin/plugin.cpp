// SPDX-License-Identifier: MIT OR Apache-2.0
// The plugin loader: validates a C-ABI plugin description whole, then registers one adapter
// element per class. The adapters own their plugin instance and a pool for output buffers.
#include "parallax/plugin.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

#include "parallax/log.h"
#include "parallax/pool.h"

namespace parallax::plugin {

using pipeline::Caps;
using pipeline::Element;
using pipeline::FlowReturn;
using pipeline::PropertySpec;
using pipeline::PropertyValue;

namespace {

constexpr std::size_t kMaxOutputSize = std::size_t{1} << 30;
constexpr std::uint32_t kMaxElements = 1024;
constexpr std::uint32_t kMaxProperties = 256;
constexpr std::size_t kOutputSlots = 8;

std::mutex g_mu;
std::vector<PluginInfo>& registry_of_plugins() {
  static std::vector<PluginInfo> v;
  return v;
}

bool valid_name(const char* s) {
  if (s == nullptr || *s == '\0' || std::strlen(s) > 64) return false;
  for (const char* p = s; *p; ++p)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
      return false;
  return true;
}

std::string text(const char* s) {
  return s ? std::string(s) : std::string();
}

// Reads the plugin's error text; the buffer is always NUL-terminated by us.
std::string message(const char* err) {
  std::string m(err, strnlen(err, PLX_ERROR_LEN));
  return m.empty() ? std::string("(the plugin gave no message)") : m;
}

Result<PropertySpec> spec_from(const PlxPropertyDesc& d) {
  PropertySpec s;
  const std::string name = text(d.name);
  const std::string desc = text(d.description);
  switch (d.type) {
    case PLX_PROP_BOOL:
      s = PropertySpec::boolean(name, false, desc);
      break;
    case PLX_PROP_INT:
      s = PropertySpec::int64(name, 0, static_cast<std::int64_t>(std::max(d.min, -9.2e18)),
                              static_cast<std::int64_t>(std::min(d.max, 9.2e18)), desc);
      break;
    case PLX_PROP_UINT:
      s = PropertySpec::uint64(name, 0, static_cast<std::uint64_t>(std::max(d.min, 0.0)),
                               static_cast<std::uint64_t>(std::min(d.max, 1.8e19)), desc);
      break;
    case PLX_PROP_DOUBLE:
      s = PropertySpec::number(name, 0.0, d.min, d.max, desc);
      break;
    case PLX_PROP_STRING:
      s = PropertySpec::string(name, std::string(), desc);
      break;
    default:
      return err(Errc::invalid_argument,
                 "property '" + name + "' has unknown type " + std::to_string(d.type));
  }
  auto def = s.parse(text(d.default_value));
  if (!def.ok())
    return err(Errc::invalid_argument, "property '" + name + "' has an invalid default '" +
                                           text(d.default_value) + "': " + def.error().message);
  s.default_value = std::move(def).value();
  return s;
}

PlxMeta to_plx(const Metadata& m) {
  PlxMeta p{};
  p.pts = m.pts.value_or(PLX_NONE);
  p.dts = m.dts.value_or(PLX_NONE);
  p.duration = m.duration.value_or(PLX_NONE);
  p.offset = m.offset.value_or(PLX_NONE);
  p.offset_end = m.offset_end.value_or(PLX_NONE);
  p.sequence = m.sequence;
  p.flags = m.flags;
  return p;
}

void from_plx(const PlxMeta& p, Metadata& m) {
  auto opt = [](std::uint64_t v) {
    return v == PLX_NONE ? std::nullopt : std::optional<std::uint64_t>(v);
  };
  m.pts = opt(p.pts);
  m.dts = opt(p.dts);
  m.duration = opt(p.duration);
  m.offset = opt(p.offset);
  m.offset_end = opt(p.offset_end);
  m.sequence = p.sequence;
  m.flags = p.flags;
}

// What every adapter shares: the class, the instance, properties pushed at start, the pool.
class Instance {
 public:
  Instance(const PlxElementClass* cls, std::string plugin) : cls_(cls), plugin_(std::move(plugin)) {
    self_ = cls_->create();
  }
  ~Instance() {
    if (self_ != nullptr) cls_->destroy(self_);
  }
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  std::string where(const Element& e) const {
    return "plugin '" + plugin_ + "', element '" + e.name() + "'";
  }

  Result<void> start(const Element& e) {
    if (self_ == nullptr) return err(Errc::internal, where(e) + ": create() returned NULL");
    for (std::uint32_t i = 0; i < cls_->n_properties; ++i) {
      const char* name = cls_->properties[i].name;
      auto v = e.property(name);
      if (!v.ok()) return std::move(v).error();
      const std::string value = pipeline::to_string(*v);
      char buf[PLX_ERROR_LEN] = {};
      if (cls_->set_property(self_, name, value.c_str(), buf, sizeof buf - 1) != PLX_OK)
        return err(Errc::invalid_argument,
                   where(e) + ": property '" + name + "' = '" + value + "': " + message(buf));
    }
    if (cls_->start != nullptr) {
      char buf[PLX_ERROR_LEN] = {};
      if (cls_->start(self_, buf, sizeof buf - 1) != PLX_OK)
        return err(Errc::failed_precondition, where(e) + ": start failed: " + message(buf));
    }
    if (cls_->kind != PLX_ELEMENT_SINK) {
      PLX_ASSIGN(memory::Segment seg,
                 memory::HeapSegment::create(cls_->max_output_size * kOutputSlots + 4096));
      PLX_ASSIGN(pool_, memory::MemoryPool::create(std::move(seg), cls_->max_output_size));
    }
    return {};
  }

  void stop() {
    if (self_ != nullptr && cls_->stop != nullptr) cls_->stop(self_);
    pool_.reset();
  }

  // A loan for the next output; waits (backpressure) while downstream holds every slot.
  std::optional<memory::Loan> loan(const Element& e) {
    while (!e.stopping()) {
      auto l = pool_->loan_for(std::chrono::milliseconds(50));
      if (l.ok()) return std::move(l).value();
    }
    return std::nullopt;
  }

  const PlxElementClass* cls_;
  void* self_{nullptr};
  std::string plugin_;
  std::shared_ptr<memory::MemoryPool> pool_;
};

void install(Element& e, const PlxElementClass* cls, void (*installer)(Element&, PropertySpec)) {
  for (std::uint32_t i = 0; i < cls->n_properties; ++i)
    installer(e, std::move(spec_from(cls->properties[i])).value());  // validated at load
}

class PluginSource final : public pipeline::SourceElement {
 public:
  PluginSource(const PlxElementClass* cls, std::string plugin) : inst_(cls, std::move(plugin)) {
    install(*this, cls, [](Element& e, PropertySpec s) {
      static_cast<PluginSource&>(e).install_property(std::move(s));
    });
  }
  Result<void> start() override { return inst_.start(*this); }
  Result<void> stop() override {
    inst_.stop();
    return {};
  }

 protected:
  FlowReturn create(memory::Buffer& out) override {
    auto loan = inst_.loan(*this);
    if (!loan) return FlowReturn::flushing;
    PlxBufferOut o{};
    o.data = reinterpret_cast<std::uint8_t*>(loan->data().data());
    o.capacity = loan->capacity();
    o.meta = to_plx(Metadata{});
    char buf[PLX_ERROR_LEN] = {};
    const PlxStatus st = inst_.cls_->produce(inst_.self_, &o, buf, sizeof buf - 1);
    if (st == PLX_EOS) return FlowReturn::eos;
    if (st != PLX_OK) {
      post_error(Errc::io, inst_.where(*this) + ": " + message(buf));
      return FlowReturn::error;
    }
    if (o.size > o.capacity) {
      post_error(Errc::out_of_range, inst_.where(*this) + ": produced " + std::to_string(o.size) +
                                         " bytes into a buffer of " + std::to_string(o.capacity));
      return FlowReturn::error;
    }
    (void)loan->set_size(o.size);
    from_plx(o.meta, loan->metadata());
    out = std::move(*loan).freeze();
    return FlowReturn::ok;
  }
  std::optional<Caps> source_caps() override {
    if (inst_.cls_->caps == nullptr) return std::nullopt;
    auto c = Caps::parse(inst_.cls_->caps);
    return c.ok() ? std::optional<Caps>(std::move(c).value()) : std::nullopt;
  }

 private:
  Instance inst_;
};

class PluginTransform final : public pipeline::TransformElement {
 public:
  PluginTransform(const PlxElementClass* cls, std::string plugin) : inst_(cls, std::move(plugin)) {
    install(*this, cls, [](Element& e, PropertySpec s) {
      static_cast<PluginTransform&>(e).install_property(std::move(s));
    });
  }
  Result<void> start() override { return inst_.start(*this); }
  Result<void> stop() override {
    inst_.stop();
    return {};
  }

 protected:
  FlowReturn transform(memory::Buffer& buf, bool& drop) override {
    drop = false;
    auto loan = inst_.loan(*this);
    if (!loan) return FlowReturn::flushing;
    PlxBufferIn in{reinterpret_cast<const std::uint8_t*>(buf.data().data()), buf.size(),
                   to_plx(buf.metadata())};
    PlxBufferOut o{};
    o.data = reinterpret_cast<std::uint8_t*>(loan->data().data());
    o.capacity = loan->capacity();
    o.meta = in.meta;
    char ebuf[PLX_ERROR_LEN] = {};
    if (inst_.cls_->transform(inst_.self_, &in, &o, ebuf, sizeof ebuf - 1) != PLX_OK) {
      post_error(Errc::io, inst_.where(*this) + ": " + message(ebuf));
      return FlowReturn::error;
    }
    if (o.passthrough != 0) return FlowReturn::ok;  // the input goes on, not copied
    if (o.size > o.capacity) {
      post_error(Errc::out_of_range, inst_.where(*this) + ": wrote " + std::to_string(o.size) +
                                         " bytes into a buffer of " + std::to_string(o.capacity));
      return FlowReturn::error;
    }
    (void)loan->set_size(o.size);
    from_plx(o.meta, loan->metadata());
    buf = std::move(*loan).freeze();
    return FlowReturn::ok;
  }

 private:
  Instance inst_;
};

class PluginSink final : public pipeline::SinkElement {
 public:
  PluginSink(const PlxElementClass* cls, std::string plugin) : inst_(cls, std::move(plugin)) {
    install(*this, cls, [](Element& e, PropertySpec s) {
      static_cast<PluginSink&>(e).install_property(std::move(s));
    });
  }
  Result<void> start() override { return inst_.start(*this); }
  Result<void> stop() override {
    inst_.stop();
    return {};
  }

 protected:
  FlowReturn render(const memory::Buffer& buf) override {
    PlxBufferIn in{reinterpret_cast<const std::uint8_t*>(buf.data().data()), buf.size(),
                   to_plx(buf.metadata())};
    char ebuf[PLX_ERROR_LEN] = {};
    if (inst_.cls_->consume(inst_.self_, &in, ebuf, sizeof ebuf - 1) != PLX_OK) {
      post_error(Errc::io, inst_.where(*this) + ": " + message(ebuf));
      return FlowReturn::error;
    }
    return FlowReturn::ok;
  }

 private:
  Instance inst_;
};

Result<void> validate_class(const PlxElementClass* c, std::uint32_t index) {
  const std::string at = "element #" + std::to_string(index);
  if (c == nullptr) return err(Errc::invalid_argument, at + " is NULL");
  if (c->struct_size < sizeof(PlxElementClass))
    return err(Errc::unsupported, at + ": PlxElementClass of " + std::to_string(c->struct_size) +
                                      " bytes, this Parallax needs " +
                                      std::to_string(sizeof(PlxElementClass)));
  if (!valid_name(c->name))
    return err(Errc::invalid_argument,
               at + ": name '" + text(c->name) + "' is empty or not [a-z0-9_-]{1,64}");
  const std::string el = "element '" + std::string(c->name) + "'";
  if (c->create == nullptr || c->destroy == nullptr)
    return err(Errc::invalid_argument, el + ": create and destroy are required");
  switch (c->kind) {
    case PLX_ELEMENT_SOURCE:
      if (c->produce == nullptr)
        return err(Errc::invalid_argument, el + ": a source needs produce");
      break;
    case PLX_ELEMENT_TRANSFORM:
      if (c->transform == nullptr)
        return err(Errc::invalid_argument, el + ": a transform needs transform");
      break;
    case PLX_ELEMENT_SINK:
      if (c->consume == nullptr) return err(Errc::invalid_argument, el + ": a sink needs consume");
      break;
    default:
      return err(Errc::invalid_argument, el + ": unknown kind " + std::to_string(c->kind));
  }
  if (c->kind != PLX_ELEMENT_SINK &&
      (c->max_output_size == 0 || c->max_output_size > kMaxOutputSize))
    return err(Errc::invalid_argument, el + ": max_output_size must be in 1..1 GiB");
  if (c->n_properties > kMaxProperties || (c->n_properties > 0 && c->properties == nullptr))
    return err(Errc::invalid_argument, el + ": bad property table");
  if (c->n_properties > 0 && c->set_property == nullptr)
    return err(Errc::invalid_argument, el + ": has properties but no set_property");
  std::set<std::string> names;
  for (std::uint32_t i = 0; i < c->n_properties; ++i) {
    const PlxPropertyDesc& d = c->properties[i];
    if (!valid_name(d.name))
      return err(Errc::invalid_argument, el + ": property #" + std::to_string(i) + " name '" +
                                             text(d.name) + "' is not [a-z0-9_-]{1,64}");
    if (!names.insert(d.name).second || std::string_view(d.name) == "name")
      return err(Errc::invalid_argument,
                 el + ": property '" + text(d.name) + "' is duplicated or reserved");
    auto s = spec_from(d);
    if (!s.ok()) return err(s.error().code, el + ": " + s.error().message);
  }
  if (c->caps != nullptr && !Caps::parse(c->caps).ok())
    return err(Errc::invalid_argument, el + ": caps '" + std::string(c->caps) + "' do not parse");
  return {};
}

}  // namespace

namespace {

// Validates and registers; `registered` tells whether any element made it into the registry
// (then the library must stay loaded even though the call failed).
Result<PluginInfo> register_checked(const PlxPlugin* p, std::string_view origin,
                                    pipeline::ElementRegistry& registry, bool& registered) {
  registered = false;
  const std::string from(origin);
  if (p == nullptr) return err(Errc::invalid_argument, from + ": the entry point returned NULL");
  if (p->abi_version != PLX_PLUGIN_ABI_VERSION)
    return err(Errc::unsupported, from + ": built for plugin ABI " +
                                      std::to_string(p->abi_version) + ", this Parallax speaks " +
                                      std::to_string(PLX_PLUGIN_ABI_VERSION));
  if (p->struct_size < sizeof(PlxPlugin))
    return err(Errc::unsupported, from + ": PlxPlugin struct too small");
  if (!valid_name(p->name))
    return err(Errc::invalid_argument,
               from + ": plugin name '" + text(p->name) + "' is empty or not [a-z0-9_-]{1,64}");
  if (p->n_elements == 0 || p->n_elements > kMaxElements || p->elements == nullptr)
    return err(Errc::invalid_argument,
               from + ": a plugin declares 1.." + std::to_string(kMaxElements) + " elements");
  std::set<std::string> names;
  for (std::uint32_t i = 0; i < p->n_elements; ++i) {
    auto v = validate_class(p->elements[i], i);
    if (!v.ok()) return err(v.error().code, from + ": " + v.error().message);
    const std::string n = p->elements[i]->name;
    if (!names.insert(n).second)
      return err(Errc::invalid_argument, from + ": element '" + n + "' declared twice");
    if (registry.find(n) != nullptr)
      return err(Errc::already_exists, from + ": element '" + n +
                                           "' is already registered (by plugin '" +
                                           registry.find(n)->plugin + "')");
  }
  std::lock_guard lock(g_mu);
  for (const auto& info : registry_of_plugins())
    if (info.name == p->name)
      return err(Errc::already_exists,
                 from + ": plugin '" + info.name + "' is already loaded from " + info.path);
  PluginInfo out{p->name, text(p->version), text(p->description), text(p->license), from, {}};
  for (std::uint32_t i = 0; i < p->n_elements; ++i) {
    const PlxElementClass* c = p->elements[i];
    pipeline::ElementInfo info;
    info.name = c->name;
    info.klass = text(c->klass).empty() ? "Generic" : text(c->klass);
    info.description = text(c->description);
    info.plugin = p->name;
    info.author = text(p->license).empty() ? "plugin" : "plugin (" + text(p->license) + ")";
    const std::string plugin_name = p->name;
    info.factory = [c, plugin_name]() -> std::unique_ptr<Element> {
      switch (c->kind) {
        case PLX_ELEMENT_SOURCE:
          return std::make_unique<PluginSource>(c, plugin_name);
        case PLX_ELEMENT_TRANSFORM:
          return std::make_unique<PluginTransform>(c, plugin_name);
        default:
          return std::make_unique<PluginSink>(c, plugin_name);
      }
    };
    // Names were checked free above; a concurrent registration could still take one.
    auto r = registry.register_element(std::move(info));
    if (!r.ok()) return err(r.error().code, from + ": " + r.error().message);
    registered = true;
    out.elements.push_back(c->name);
  }
  registry_of_plugins().push_back(out);
  PLX_LOG(info, "plugin", "loaded plugin '%s' %s from %s (%zu elements)", out.name.c_str(),
          out.version.c_str(), from.c_str(), out.elements.size());
  return out;
}

}  // namespace

Result<PluginInfo> register_plugin(const PlxPlugin* p, std::string_view origin,
                                   pipeline::ElementRegistry& registry) {
  bool registered = false;
  return register_checked(p, origin, registry, registered);
}

Result<PluginInfo> load(std::string_view path, pipeline::ElementRegistry& registry) {
  const std::string p(path);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(p, ec))
    return err(Errc::not_found, p + ": no such plugin file");
  // RTLD_LOCAL: plugins do not see each other's symbols. Never dlclose()d: element factories
  // and instances point into the library.
  void* handle = ::dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return err(Errc::not_found, p + ": " + text(::dlerror()));
  auto entry = reinterpret_cast<PlxPluginEntryFn>(::dlsym(handle, PLX_PLUGIN_ENTRY_SYMBOL));
  if (entry == nullptr) {
    ::dlclose(handle);
    return err(Errc::invalid_argument,
               p + ": not a Parallax plugin (no " PLX_PLUGIN_ENTRY_SYMBOL " symbol)");
  }
  bool registered = false;
  auto r = register_checked(entry(), p, registry, registered);
  if (!r.ok() && !registered) ::dlclose(handle);  // nothing points into it: safe to unload
  return r;
}

std::vector<PluginInfo> load_path(std::string_view dirs, std::vector<std::string>* errors,
                                  pipeline::ElementRegistry& registry) {
  std::string list(dirs);
  if (list.empty()) {
    const char* env = std::getenv("PARALLAX_PLUGIN_PATH");
    if (env != nullptr) list = env;
  }
  std::vector<PluginInfo> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t end = std::min(list.find(':', start), list.size());
    const std::string dir = list.substr(start, end - start);
    start = end + 1;
    if (dir.empty()) continue;
    std::error_code ec;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
      if (entry.is_regular_file() && entry.path().extension() == ".so")
        files.push_back(entry.path());
    if (ec && errors != nullptr) errors->push_back(dir + ": " + ec.message());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      auto r = load(f.string(), registry);
      if (r.ok())
        out.push_back(std::move(r).value());
      else if (errors != nullptr)
        errors->push_back(r.error().message);
    }
  }
  return out;
}

std::vector<PluginInfo> loaded() {
  std::lock_guard lock(g_mu);
  return registry_of_plugins();
}

}  // namespace parallax::plugin
