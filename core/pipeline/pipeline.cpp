// SPDX-License-Identifier: MIT OR Apache-2.0
// The pipeline graph: nodes, links, validation (unlinked pads, cycles), DOT export.
#include "parallax/pipeline.h"

#include <algorithm>
#include <functional>

#include "graph.h"
#include "suggest.h"

namespace parallax::pipeline {

std::string ParseError::to_string() const {
  return "line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + what +
         (excerpt.empty() ? "" : "\n" + excerpt);
}

Pipeline::Pipeline() : bus_(std::make_unique<Bus>()) {}
Pipeline::~Pipeline() = default;
Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;

Result<Pipeline> Pipeline::from_string(std::string_view description) {
  Pipeline p;
  PLX_TRY(p.parse(description));
  return p;
}

Result<void> Pipeline::parse(std::string_view description) {
  return parse(description, nullptr);
}

std::string Pipeline::unique_name(std::string_view factory) {
  auto it = name_counters_.find(factory);
  if (it == name_counters_.end()) it = name_counters_.emplace(std::string(factory), 0).first;
  std::string n;
  do {
    n = std::string(factory) + std::to_string(it->second++);
  } while (find(n) != nullptr);
  return n;
}

Result<NodeId> Pipeline::add_node(std::string name, std::unique_ptr<Element> element) {
  if (!element) return err(Errc::invalid_argument, "add_node: element is null");
  if (running_) return err(Errc::failed_precondition, "add_node: the pipeline is running");
  if (element->in_pipeline_)
    return err(Errc::failed_precondition, "element is already in a pipeline");
  if (name.empty())
    name = element->name().empty() ? unique_name(element->factory_name()) : element->name();
  if (find(name) != nullptr)
    return err(Errc::already_exists, "an element named '" + name + "' is already in the pipeline");
  element->name_ = std::move(name);
  element->in_pipeline_ = true;
  nodes_.push_back(std::move(element));
  return NodeId{static_cast<std::uint32_t>(nodes_.size() - 1)};
}

Result<NodeId> Pipeline::add_element(std::string_view factory, std::string name) {
  PLX_ASSIGN(auto e, ElementRegistry::global().create(factory));
  return add_node(std::move(name), std::move(e));
}

Element* Pipeline::element(NodeId id) const noexcept {
  return id.index < nodes_.size() ? nodes_[id.index].get() : nullptr;
}

Element* Pipeline::find(std::string_view name) const noexcept {
  for (const auto& e : nodes_)
    if (e->name() == name) return e.get();
  return nullptr;
}

std::optional<NodeId> Pipeline::node(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i]->name() == name) return NodeId{static_cast<std::uint32_t>(i)};
  return std::nullopt;
}

std::vector<Element*> Pipeline::elements() const {
  std::vector<Element*> out;
  for (const auto& e : nodes_)
    out.push_back(e.get());
  return out;
}

namespace detail {

// A free pad of `e` in direction `dir`: an unlinked static one, else a new request pad.
Result<Pad*> free_pad(Element& e, PadDirection dir) {
  for (Pad* p : dir == PadDirection::src ? e.src_pads() : e.sink_pads())
    if (!p->is_linked() && !p->is_request()) return p;
  for (const auto& t : e.pad_templates())
    if (t.direction == dir && t.presence == PadPresence::request)
      return e.request_pad(t.name_template);
  const char* what = dir == PadDirection::src ? "src" : "sink";
  if (!e.has_pad_template(dir))
    return err(Errc::invalid_argument,
               "element '" + e.name() + "' (" + std::string(e.factory_name()) + ") has no " + what +
                   " pad" + (dir == PadDirection::src ? ": it is a sink" : ": it is a source"));
  return err(Errc::failed_precondition,
             "element '" + e.name() + "' has no free " + what + " pad (all are linked)");
}

// An existing pad by name, or a request pad for that name.
Result<Pad*> named_pad(Element& e, std::string_view name, PadDirection dir, bool& requested) {
  requested = false;
  if (Pad* p = e.pad(name)) {
    if (p->direction() != dir)
      return err(Errc::invalid_argument,
                 "pad '" + p->full_name() + "' is a " +
                     (p->direction() == PadDirection::src ? "src" : "sink") + " pad");
    return p;
  }
  auto r = e.request_pad(name);
  if (!r) {
    std::vector<std::string> names;
    for (Pad* p : e.pads())
      names.push_back(p->name());
    for (const auto& t : e.pad_templates())
      if (t.presence == PadPresence::request) names.push_back(t.name_template);
    std::string hint = detail::did_you_mean(detail::closest_names(name, names));
    return err(Errc::not_found, "element '" + e.name() + "' has no pad '" + std::string(name) +
                                    "'" + (hint.empty() ? "" : "; " + hint));
  }
  if ((*r)->direction() != dir) {
    (void)e.release_pad(*r);
    return err(Errc::invalid_argument,
               "pad '" + e.name() + "." + std::string(name) + "' has the wrong direction");
  }
  requested = true;
  return *r;
}

}  // namespace detail

Result<void> Pipeline::connect(Pad* src, Pad* sink) {
  if (src->is_linked())
    return err(Errc::failed_precondition, "pad '" + src->full_name() + "' is already linked");
  if (sink->is_linked())
    return err(Errc::failed_precondition, "pad '" + sink->full_name() + "' is already linked");
  src->peer_ = sink;
  sink->peer_ = src;
  return ok();
}

void Pipeline::disconnect(Pad* src) {
  if (src->peer_ != nullptr) src->peer_->peer_ = nullptr;
  src->peer_ = nullptr;
}

Result<void> Pipeline::link(NodeId a, NodeId b) {
  Element* ea = element(a);
  Element* eb = element(b);
  if (ea == nullptr || eb == nullptr) return err(Errc::invalid_argument, "link: unknown node id");
  if (running_) return err(Errc::failed_precondition, "link: the pipeline is running");
  PLX_ASSIGN(Pad * src, detail::free_pad(*ea, PadDirection::src));
  auto sink = detail::free_pad(*eb, PadDirection::sink);
  if (!sink) {
    if (src->is_request()) (void)ea->release_pad(src);
    return std::move(sink).error();
  }
  return connect(src, *sink);
}

Result<void> Pipeline::link_pads(NodeId a, std::string_view src_pad, NodeId b,
                                 std::string_view sink_pad) {
  Element* ea = element(a);
  Element* eb = element(b);
  if (ea == nullptr || eb == nullptr)
    return err(Errc::invalid_argument, "link_pads: unknown node id");
  if (running_) return err(Errc::failed_precondition, "link_pads: the pipeline is running");
  bool req_src = false, req_sink = false;
  PLX_ASSIGN(Pad * src, detail::named_pad(*ea, src_pad, PadDirection::src, req_src));
  auto sink = detail::named_pad(*eb, sink_pad, PadDirection::sink, req_sink);
  if (!sink) {
    if (req_src) (void)ea->release_pad(src);
    return std::move(sink).error();
  }
  auto r = connect(src, *sink);
  if (!r) {
    if (req_src) (void)ea->release_pad(src);
    if (req_sink) (void)eb->release_pad(*sink);
  }
  return r;
}

Result<void> Pipeline::link_many(std::initializer_list<NodeId> nodes) {
  const NodeId* prev = nullptr;
  for (const NodeId& n : nodes) {
    if (prev != nullptr) PLX_TRY(link(*prev, n));
    prev = &n;
  }
  return ok();
}

Result<void> Pipeline::validate() const {
  if (nodes_.empty()) return err(Errc::failed_precondition, "the pipeline is empty");
  bool has_source = false;
  for (const auto& e : nodes_) {
    for (Pad* p : e->pads())
      if (!p->is_linked())
        return err(Errc::failed_precondition, "pad '" + p->full_name() + "' is not linked");
    if (!e->is_sink() && e->src_pads().empty())
      return err(Errc::failed_precondition, "element '" + e->name() + "' has no linked src pad");
    if (!e->is_source() && e->sink_pads().empty())
      return err(Errc::failed_precondition, "element '" + e->name() + "' has no linked sink pad");
    if (e->is_source()) has_source = true;
  }
  if (!has_source) return err(Errc::failed_precondition, "the pipeline has no source element");
  // Cycle check: depth-first search along src -> sink links.
  std::map<const Element*, int> mark;  // 1 = on the stack, 2 = done
  std::function<Result<void>(const Element*)> visit = [&](const Element* e) -> Result<void> {
    mark[e] = 1;
    for (Pad* p : e->src_pads()) {
      const Element* next = &p->peer()->element();
      int m = mark[next];
      if (m == 1)
        return err(Errc::failed_precondition,
                   "the pipeline has a cycle through '" + next->name() + "'");
      if (m == 0) PLX_TRY(visit(next));
    }
    mark[e] = 2;
    return ok();
  };
  for (const auto& e : nodes_)
    if (mark[e.get()] == 0) PLX_TRY(visit(e.get()));
  return ok();
}

std::vector<Element*> Pipeline::topological_order() const {
  std::map<const Element*, int> indeg;
  for (const auto& e : nodes_)
    indeg[e.get()] += 0;
  for (const auto& e : nodes_)
    for (Pad* p : e->src_pads())
      if (p->peer()) ++indeg[&p->peer()->element()];
  std::vector<Element*> out, ready;
  for (const auto& e : nodes_)
    if (indeg[e.get()] == 0) ready.push_back(e.get());
  while (!ready.empty()) {
    Element* e = ready.front();
    ready.erase(ready.begin());
    out.push_back(e);
    for (Pad* p : e->src_pads())
      if (p->peer() && --indeg[&p->peer()->element()] == 0) ready.push_back(&p->peer()->element());
  }
  // Elements on a cycle are appended so the caller still sees all of them.
  for (const auto& e : nodes_)
    if (std::find(out.begin(), out.end(), e.get()) == out.end()) out.push_back(e.get());
  return out;
}

std::string Pipeline::to_dot() const {
  auto esc = [](const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == '"' || c == '\\') o.push_back('\\');
      o.push_back(c);
    }
    return o;
  };
  std::string out =
      "digraph pipeline {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n";
  for (const auto& e : nodes_) {
    std::string label = e->name() + "\\n(" + esc(std::string(e->factory_name())) + ")";
    for (const auto& spec : e->properties()) {
      if (!spec.readable() || !spec.writable()) continue;
      auto v = e->property(spec.name);
      if (v && *v != spec.default_value) label += "\\n" + spec.name + "=" + esc(to_string(*v));
    }
    out += "  \"" + esc(e->name()) + "\" [label=\"" + label + "\"];\n";
  }
  for (const auto& e : nodes_)
    for (Pad* p : e->src_pads())
      if (p->peer())
        out += "  \"" + esc(e->name()) + "\" -> \"" + esc(p->peer()->element().name()) +
               "\" [taillabel=\"" + esc(p->name()) + "\", headlabel=\"" + esc(p->peer()->name()) +
               "\"];\n";
  return out + "}\n";
}

}  // namespace parallax::pipeline
