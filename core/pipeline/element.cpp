// SPDX-License-Identifier: MIT OR Apache-2.0
// Element base classes: pads, request pads, properties, default event handling, and the
// streaming loop of sources.
#include "parallax/element.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "parallax/log.h"
#include "suggest.h"

namespace parallax::pipeline {
namespace {

// "src_%u" -> prefix "src_"; true when `name` is prefix + decimal digits.
bool matches_template(std::string_view tmpl, std::string_view name) {
  auto pct = tmpl.find("%u");
  if (pct == std::string_view::npos) pct = tmpl.find("%d");
  if (pct == std::string_view::npos) return tmpl == name;
  std::string_view prefix = tmpl.substr(0, pct), suffix = tmpl.substr(pct + 2);
  if (name.size() <= prefix.size() + suffix.size()) return false;
  if (name.substr(0, prefix.size()) != prefix) return false;
  if (name.substr(name.size() - suffix.size()) != suffix) return false;
  auto digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  return std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string expand_template(std::string_view tmpl, unsigned index) {
  auto pct = tmpl.find("%u");
  if (pct == std::string_view::npos) pct = tmpl.find("%d");
  if (pct == std::string_view::npos) return std::string(tmpl);
  return std::string(tmpl.substr(0, pct)) + std::to_string(index) +
         std::string(tmpl.substr(pct + 2));
}

}  // namespace

std::string_view to_string(FlowReturn f) noexcept {
  switch (f) {
    case FlowReturn::ok:
      return "ok";
    case FlowReturn::eos:
      return "eos";
    case FlowReturn::flushing:
      return "flushing";
    case FlowReturn::not_linked:
      return "not-linked";
    case FlowReturn::error:
      return "error";
  }
  return "?";
}

std::string Pad::full_name() const {
  return element_->name() + "." + name_;
}

bool Pad::push_event(const Event& ev) {
  if (ev.type == EventType::caps) caps_ = ev.caps;
  detail::ElementHost* host = element_->host_;
  if (host != nullptr && host->trace_events()) {
    Message m;
    m.type = MessageType::event;
    m.source = element_->name();
    m.pad = name_;
    m.text = ev.to_string();
    host->post(std::move(m));
  }
  Pad* p = peer_;
  if (p == nullptr) return false;
  if (ev.type == EventType::caps) p->caps_ = ev.caps;
  return p->element_->handle_event(*p, ev);
}

Element::~Element() = default;

Result<void> Element::set_name(std::string name) {
  if (in_pipeline_)
    return err(Errc::failed_precondition, "cannot rename '" + name_ + "': it is in a pipeline");
  name_ = std::move(name);
  return ok();
}

std::string_view Element::factory_name() const noexcept {
  return factory_ != nullptr ? std::string_view(factory_->name) : std::string_view("custom");
}

std::vector<Pad*> Element::pads() const {
  std::vector<Pad*> out;
  for (const auto& p : pads_)
    out.push_back(p.get());
  return out;
}

std::vector<Pad*> Element::src_pads() const {
  std::vector<Pad*> out;
  for (const auto& p : pads_)
    if (p->direction() == PadDirection::src) out.push_back(p.get());
  return out;
}

std::vector<Pad*> Element::sink_pads() const {
  std::vector<Pad*> out;
  for (const auto& p : pads_)
    if (p->direction() == PadDirection::sink) out.push_back(p.get());
  return out;
}

Pad* Element::pad(std::string_view name) const noexcept {
  for (const auto& p : pads_)
    if (p->name() == name) return p.get();
  return nullptr;
}

Pad& Element::make_pad(std::string name, PadDirection dir, bool request) {
  pads_.push_back(std::unique_ptr<Pad>(new Pad(this, std::move(name), dir, request)));
  return *pads_.back();
}

Result<Pad*> Element::request_pad(std::string_view name_or_template) {
  for (const auto& t : templates_) {
    if (t.presence != PadPresence::request) continue;
    if (t.name_template == name_or_template) {
      unsigned& next = next_request_index_[t.name_template];
      std::string n;
      do {
        n = expand_template(t.name_template, next++);
      } while (pad(n) != nullptr);
      return &make_pad(std::move(n), t.direction, true);
    }
    if (matches_template(t.name_template, name_or_template)) {
      if (pad(name_or_template) != nullptr)
        return err(Errc::already_exists,
                   "pad '" + name_ + "." + std::string(name_or_template) + "' already exists");
      return &make_pad(std::string(name_or_template), t.direction, true);
    }
  }
  return err(Errc::not_found, "element '" + name_ + "' has no request pad template matching '" +
                                  std::string(name_or_template) + "'");
}

Result<void> Element::release_pad(Pad* p) {
  auto it = std::find_if(pads_.begin(), pads_.end(),
                         [&](const std::unique_ptr<Pad>& x) { return x.get() == p; });
  if (it == pads_.end()) return err(Errc::not_found, "pad does not belong to '" + name_ + "'");
  if (!p->is_request())
    return err(Errc::invalid_argument, "pad '" + p->full_name() + "' is not a request pad");
  if (p->is_linked())
    return err(Errc::failed_precondition, "pad '" + p->full_name() + "' is linked");
  pads_.erase(it);
  return ok();
}

bool Element::has_pad_template(PadDirection dir) const noexcept {
  return std::any_of(templates_.begin(), templates_.end(),
                     [&](const PadTemplate& t) { return t.direction == dir; });
}

void Element::add_pad_template(PadTemplate t) {
  if (t.presence == PadPresence::always) make_pad(t.name_template, t.direction, false);
  templates_.push_back(std::move(t));
}

void Element::install_property(PropertySpec spec) {
  std::lock_guard l(props_mu_);
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    if (specs_[i].name == spec.name) {
      values_[i] = spec.default_value;
      specs_[i] = std::move(spec);
      return;
    }
  }
  values_.push_back(spec.default_value);
  specs_.push_back(std::move(spec));
}

const PropertySpec* Element::find_property(std::string_view name) const noexcept {
  for (const auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

std::string Element::property_list() const {
  if (specs_.empty()) return "(none)";
  std::string out;
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    if (i) out += ", ";
    out += specs_[i].name + " (" + specs_[i].type_description() +
           (specs_[i].writable() ? "" : ", read-only") + ")";
  }
  return out;
}

namespace {
Error unknown_property(const Element& e, std::string_view name) {
  std::vector<std::string> names;
  for (const auto& s : e.properties())
    names.push_back(s.name);
  std::string hint = detail::did_you_mean(detail::closest_names(name, names));
  return err(Errc::not_found, "element '" + std::string(e.factory_name()) + "' has no property '" +
                                  std::string(name) + "'" + (hint.empty() ? "" : "; " + hint) +
                                  "; valid properties: " + e.property_list());
}
}  // namespace

Result<void> Element::set_property(std::string_view name, PropertyValue value) {
  const PropertySpec* spec = find_property(name);
  if (spec == nullptr) return unknown_property(*this, name);
  if (!spec->writable())
    return err(Errc::permission_denied,
               "property '" + spec->name + "' of '" + name_ + "' is read-only");
  if (state() != State::null && (spec->flags & kPropMutablePlaying) == 0)
    return err(Errc::failed_precondition,
               "property '" + spec->name + "' of '" + name_ + "' cannot change while running");
  auto v = spec->coerce(std::move(value));
  if (!v) {
    Error e = std::move(v).error();
    e.message += "; valid properties of '" + std::string(factory_name()) + "': " + property_list();
    return e;
  }
  {
    std::lock_guard l(props_mu_);
    values_[static_cast<std::size_t>(spec - specs_.data())] = *v;
  }
  property_changed(*spec, *v);
  return ok();
}

Result<void> Element::set_property_from_string(std::string_view name, std::string_view text) {
  const PropertySpec* spec = find_property(name);
  if (spec == nullptr) return unknown_property(*this, name);
  auto v = spec->parse(text);
  if (!v) {
    Error e = std::move(v).error();
    e.message += "; valid properties of '" + std::string(factory_name()) + "': " + property_list();
    return e;
  }
  return set_property(name, std::move(*v));
}

Result<PropertyValue> Element::property(std::string_view name) const {
  const PropertySpec* spec = find_property(name);
  if (spec == nullptr) return unknown_property(*this, name);
  if (!spec->readable())
    return err(Errc::permission_denied, "property '" + spec->name + "' is write-only");
  PropertyValue stored = stored_property(name);
  return read_property(*spec, stored);
}

PropertyValue Element::read_property(const PropertySpec&, const PropertyValue& stored) const {
  return stored;
}

PropertyValue Element::stored_property(std::string_view name) const {
  std::lock_guard l(props_mu_);
  for (std::size_t i = 0; i < specs_.size(); ++i)
    if (specs_[i].name == name) return values_[i];
  return PropertyValue{};
}

std::int64_t Element::prop_enum(std::string_view name) const {
  const PropertySpec* spec = find_property(name);
  const PropertyValue v = stored_property(name);
  const std::string* nick = std::get_if<std::string>(&v);
  if (spec != nullptr && spec->type == PropertyType::enumeration && nick != nullptr)
    for (const EnumValue& e : spec->enum_values)
      if (e.nick == *nick) return e.value;
  prop_type_panic(name);
}

void Element::prop_type_panic(std::string_view name) {
  std::fprintf(stderr, "parallax: property '%.*s' read with the wrong type (bug)\n",
               static_cast<int>(name.size()), name.data());
  std::abort();
}

FlowReturn Element::chain(Pad& pad, Buffer&&) {
  post_error(Errc::internal, "pad '" + pad.full_name() + "' received a buffer but '" +
                                 std::string(factory_name()) + "' has no chain function");
  return FlowReturn::error;
}

bool Element::handle_event(Pad&, const Event& ev) {
  if (ev.type == EventType::flush_stop) flush();
  if (is_sink()) {
    if (ev.type == EventType::eos && host_ != nullptr) host_->sink_eos(*this);
    return true;
  }
  return forward_event(ev);
}

bool Element::forward_event(const Event& ev) {
  bool all = true;
  for (const auto& p : pads_)
    if (p->direction() == PadDirection::src) all = p->push_event(ev) && all;
  return all;
}

namespace {
/// A message from element `source`.
Message element_message(MessageType type, const std::string& source, std::string text) {
  Message m;
  m.type = type;
  m.source = source;
  m.text = std::move(text);
  return m;
}
/// Posts m on the bus of the pipeline running the element, or logs it at `level` when there is
/// none (an element used on its own).
void post_or_log(detail::ElementHost* host, log::Level level, Message m) {
  if (host != nullptr) {
    host->post(std::move(m));
  } else if (log::enabled(level)) {
    log::write(level, "pipeline", "%s", m.to_string().c_str());
  }
}
}  // namespace

void Element::post_error(Errc code, std::string text) {
  Message m = element_message(MessageType::error, name_, std::move(text));
  m.code = code;
  post_or_log(host_, log::Level::error, std::move(m));
}

void Element::post_warning(std::string text) {
  post_or_log(host_, log::Level::warn,
              element_message(MessageType::warning, name_, std::move(text)));
}

void Element::post_info(std::string text) {
  post_or_log(host_, log::Level::info, element_message(MessageType::info, name_, std::move(text)));
}

// --- SourceElement ---

SourceElement::SourceElement() {
  add_pad_template({"src", PadDirection::src, PadPresence::always, "ANY"});
  src_ = pad("src");
}

void SourceElement::run_task() {
  FlowReturn fr = FlowReturn::ok;
  src_->push_event(Event::stream_start(name()));
  if (auto caps = source_caps()) {
    if (!src_->push_event(Event::make_caps(std::move(*caps)))) fr = FlowReturn::error;
  }
  if (fr == FlowReturn::ok) src_->push_event(Event::make_segment());
  while (fr == FlowReturn::ok) {
    if (fr = end_requested(); fr != FlowReturn::ok) break;
    Buffer b;
    fr = create(b);
    if (fr != FlowReturn::ok) break;
    fr = src_->push(std::move(b));
  }
  if (fr == FlowReturn::eos) src_->push_event(Event::eos());
  post_flow_end(fr, *src_);
}

void Element::post_flow_end(FlowReturn fr, const Pad& src) {
  switch (fr) {
    case FlowReturn::not_linked:
      post_error(Errc::failed_precondition,
                 "streaming stopped: pad '" + src.full_name() + "' is not linked");
      break;
    case FlowReturn::error:
      // The element that failed posted the real error first; this one only makes sure the
      // executor hears about a failure even from an element that forgot to post.
      post_error(Errc::internal, "streaming stopped, reason error");
      break;
    default:
      break;
  }
}

// --- SinkElement / TransformElement ---

SinkElement::SinkElement() {
  add_pad_template({"sink", PadDirection::sink, PadPresence::always, "ANY"});
}

FlowReturn SinkElement::chain(Pad&, Buffer&& buf) {
  return render(buf);
}

TransformElement::TransformElement() {
  add_pad_template({"sink", PadDirection::sink, PadPresence::always, "ANY"});
  add_pad_template({"src", PadDirection::src, PadPresence::always, "ANY"});
  src_ = pad("src");
}

FlowReturn TransformElement::chain(Pad&, Buffer&& buf) {
  bool drop = false;
  FlowReturn fr = transform(buf, drop);
  if (fr != FlowReturn::ok || drop) return fr;
  return src_->push(std::move(buf));
}

}  // namespace parallax::pipeline
