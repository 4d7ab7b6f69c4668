// SPDX-License-Identifier: MIT OR Apache-2.0
// The gst-launch grammar: chains with '!', properties, name=, references (t. / t.src_0),
// caps filters. Errors carry line, column, a caret excerpt and what was expected.
#include <algorithm>
#include <cctype>
#include <optional>

#include "graph.h"
#include "parallax/pipeline.h"
#include "suggest.h"

namespace parallax::pipeline {

namespace {

bool ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '+';
}
bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

// One end of a link: a new element (index into the staged list) or a reference "name.pad".
struct Endpoint {
  enum class Kind { element, reference } kind{Kind::element};
  std::size_t staged{0};
  std::string ref_name;
  std::string ref_pad;
  std::size_t offset{0};
};

struct PendingLink {
  Endpoint from;
  Endpoint to;
};

}  // namespace

class Parser {
 public:
  Parser(Pipeline& p, std::string_view text) : p_(p), s_(text) {}

  Result<void> run(ParseError* out) {
    auto counters = p_.name_counters_;
    auto r = parse();
    if (!r) {
      rollback();
      p_.name_counters_ = std::move(counters);
      staged_.clear();
      if (out != nullptr) *out = error_;
      return std::move(r).error();
    }
    return ok();
  }

 private:
  struct Staged {
    std::unique_ptr<Element> element;
    std::size_t offset;
  };
  struct DoneLink {
    Pad* src;
    Pad* sink;
    bool src_requested;
    bool sink_requested;
  };

  Error fail(std::size_t offset, Errc code, std::string what) {
    error_ = make_error(offset, std::move(what));
    return err(code, error_.to_string());
  }

  ParseError make_error(std::size_t offset, std::string what) const {
    ParseError e;
    offset = std::min(offset, s_.size());
    std::size_t line_start = s_.rfind('\n', offset == 0 ? 0 : offset - 1);
    line_start = (line_start == std::string_view::npos || offset == 0) ? 0 : line_start + 1;
    if (offset > 0 && s_[offset - 1] == '\n') line_start = offset;
    std::size_t line_end = s_.find('\n', offset);
    if (line_end == std::string_view::npos) line_end = s_.size();
    e.line = 1;
    for (std::size_t i = 0; i < line_start; ++i)
      if (s_[i] == '\n') ++e.line;
    e.column = offset - line_start + 1;
    std::string_view line = s_.substr(line_start, line_end - line_start);
    std::string caret;
    for (std::size_t i = line_start; i < offset; ++i)
      caret.push_back(s_[i] == '\t' ? '\t' : ' ');
    e.excerpt = "  " + std::string(line) + "\n  " + caret + "^";
    e.what = std::move(what);
    return e;
  }

  // End of the word starting at `b`: whitespace or '!' outside quotes. Backslash escapes the
  // next character everywhere, quotes included.
  Result<std::size_t> word_end(std::size_t b, bool stop_at_space) {
    std::size_t i = b;
    char quote = 0;
    std::size_t quote_pos = 0;
    while (i < s_.size()) {
      char c = s_[i];
      if (c == '\\') {
        if (i + 1 >= s_.size())
          return fail(i, Errc::invalid_argument, "expected a character after '\\'");
        i += 2;
        continue;
      }
      if (quote != 0) {
        if (c == quote) quote = 0;
        ++i;
        continue;
      }
      if (c == '"' || c == '\'') {
        quote = c;
        quote_pos = i;
        ++i;
        continue;
      }
      if (c == '!' || (stop_at_space && is_space(c))) break;
      ++i;
    }
    if (quote != 0)
      return fail(quote_pos, Errc::invalid_argument,
                  std::string("unterminated quote: expected a closing ") + quote);
    return i;
  }

  static std::string unescape(std::string_view raw) {
    std::string out;
    char quote = 0;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      char c = raw[i];
      if (c == '\\' && i + 1 < raw.size()) {
        out.push_back(raw[++i]);
      } else if (quote == 0 && (c == '"' || c == '\'')) {
        quote = c;
      } else if (quote != 0 && c == quote) {
        quote = 0;
      } else {
        out.push_back(c);
      }
    }
    return out;
  }

  // The first unquoted occurrence of any of `chars` in `w`, or npos.
  static std::size_t find_unquoted(std::string_view w, std::string_view chars) {
    char quote = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      char c = w[i];
      if (c == '\\') {
        ++i;
        continue;
      }
      if (quote != 0) {
        if (c == quote) quote = 0;
        continue;
      }
      if (c == '"' || c == '\'') {
        quote = c;
        continue;
      }
      if (chars.find(c) != std::string_view::npos) return i;
    }
    return std::string_view::npos;
  }

  bool name_taken(std::string_view n) const {
    if (p_.find(n) != nullptr) return true;
    for (const auto& st : staged_)
      if (st.element->name() == n) return true;
    return false;
  }

  std::string auto_name(std::string_view factory) {
    auto it = p_.name_counters_.find(factory);
    if (it == p_.name_counters_.end())
      it = p_.name_counters_.emplace(std::string(factory), 0).first;
    std::string n;
    do {
      n = std::string(factory) + std::to_string(it->second++);
    } while (name_taken(n));
    return n;
  }

  Result<Endpoint> new_element(std::string_view factory, std::size_t offset) {
    auto e = ElementRegistry::global().create(factory);
    if (!e) return fail(offset, e.error().code, e.error().message);
    PLX_TRY((*e)->set_name(auto_name(factory)));
    staged_.push_back({std::move(*e), offset});
    Endpoint ep;
    ep.kind = Endpoint::Kind::element;
    ep.staged = staged_.size() - 1;
    ep.offset = offset;
    return ep;
  }

  Result<void> set_property(Endpoint& target, std::string_view word, std::size_t offset,
                            std::size_t eq) {
    std::string_view key = word.substr(0, eq);
    std::string value = unescape(word.substr(eq + 1));
    const std::size_t value_offset = offset + eq + 1;
    Element& e = *staged_[target.staged].element;
    if (key == "name") {
      if (value.empty())
        return fail(value_offset, Errc::invalid_argument, "expected a name after 'name='");
      if (value.find('.') != std::string::npos)
        return fail(
            value_offset, Errc::invalid_argument,
            "element names cannot contain '.' (it separates element and pad in references)");
      if (name_taken(value) && e.name() != value)
        return fail(value_offset, Errc::already_exists,
                    "an element named '" + value + "' already exists");
      return e.set_name(value);
    }
    if (e.find_property(key) == nullptr) {
      auto r = e.set_property_from_string(key, value);
      return fail(offset, r.error().code, r.error().message);
    }
    auto r = e.set_property_from_string(key, value);
    if (!r) return fail(value_offset, r.error().code, r.error().message);
    return ok();
  }

  Result<void> parse() {
    std::optional<Endpoint> cur;      // the last element/reference of the current chain
    std::optional<std::size_t> bang;  // offset of a '!' still waiting for its right side
    bool cur_is_element = false;      // whether properties may follow
    std::size_t i = 0;
    for (;;) {
      while (i < s_.size() && is_space(s_[i]))
        ++i;
      if (i >= s_.size()) break;
      if (s_[i] == '!') {
        if (bang) return fail(i, Errc::invalid_argument, "expected an element between '!' and '!'");
        if (!cur) return fail(i, Errc::invalid_argument, "expected an element before '!'");
        bang = i;
        ++i;
        continue;
      }
      const std::size_t b = i;
      PLX_ASSIGN(std::size_t e, word_end(b, true));
      std::string_view w = s_.substr(b, e - b);
      if (w[0] == '=')
        return fail(b, Errc::invalid_argument,
                    "unexpected '=': write properties as name=value without spaces");
      const std::size_t sep = find_unquoted(w, ",=");
      const std::size_t slash = w.find('/');
      if (slash != std::string_view::npos && (sep == std::string_view::npos || slash < sep)) {
        // A caps filter runs to the next '!' (spaces after commas allowed, as in gst-launch).
        PLX_ASSIGN(e, word_end(b, false));
        while (e > b && is_space(s_[e - 1]))
          --e;
        w = s_.substr(b, e - b);
        if (!bang)
          return fail(b, Errc::invalid_argument,
                      cur ? "expected '!' before the caps filter '" + std::string(w) + "'"
                          : "expected an element before the caps filter '" + std::string(w) + "'");
        std::size_t caps_err = 0;
        auto caps = Caps::parse(w, &caps_err);
        if (!caps) {
          std::string msg = caps.error().message;
          auto at = msg.rfind(" at offset ");
          if (at != std::string::npos) msg.resize(at);
          return fail(b + caps_err, Errc::invalid_argument, "invalid caps: " + msg);
        }
        PLX_ASSIGN(Endpoint ep, new_element("capsfilter", b));
        PLX_TRY(staged_[ep.staged].element->set_property_from_string("caps", w));
        links_.push_back({*cur, ep});
        bang.reset();
        cur = ep;
        cur_is_element = false;
        i = e;
        continue;
      }
      if (sep != std::string_view::npos && w[sep] == '=') {
        std::string_view key = w.substr(0, sep);
        if (key.empty() || !ident_start(key[0]) ||
            !std::all_of(key.begin(), key.end(), [](char c) { return ident_char(c); }))
          return fail(b, Errc::invalid_argument, "expected a property name before '='");
        if (bang)
          return fail(b, Errc::invalid_argument,
                      "expected an element after '!', got the property '" + std::string(key) + "'");
        if (!cur || !cur_is_element)
          return fail(b, Errc::invalid_argument,
                      "expected an element before the property '" + std::string(key) + "'");
        PLX_TRY(set_property(*cur, w, b, sep));
        i = e;
        continue;
      }
      Endpoint ep;
      const std::size_t dot = find_unquoted(w, ".");
      if (dot != std::string_view::npos) {
        ep.kind = Endpoint::Kind::reference;
        ep.ref_name = std::string(w.substr(0, dot));
        ep.ref_pad = std::string(w.substr(dot + 1));
        ep.offset = b;
        if (ep.ref_name.empty())
          return fail(b, Errc::invalid_argument, "expected an element name before '.'");
        cur_is_element = false;
      } else {
        std::size_t next = e;
        while (next < s_.size() && is_space(s_[next]) && s_[next] != '\n')
          ++next;
        if (next < s_.size() && s_[next] == '=')
          return fail(next, Errc::invalid_argument,
                      "unexpected '=': write properties as name=value without spaces");
        if (!ident_start(w[0]) ||
            !std::all_of(w.begin(), w.end(), [](char c) { return ident_char(c); }))
          return fail(b, Errc::invalid_argument,
                      "expected an element name, got '" + std::string(w) + "'");
        PLX_ASSIGN(ep, new_element(w, b));
        cur_is_element = true;
      }
      if (bang) links_.push_back({*cur, ep});
      bang.reset();
      cur = ep;
      i = e;
    }
    if (bang) return fail(s_.size(), Errc::invalid_argument, "expected an element after '!'");
    if (!cur)
      return fail(0, Errc::invalid_argument, "expected an element: the description is empty");
    PLX_TRY(resolve_links());
    for (auto& st : staged_) {
      std::string name = st.element->name();  // before the move below
      auto r = p_.add_node(std::move(name), std::move(st.element));
      if (!r)
        return fail(st.offset, r.error().code, r.error().message);  // not reached: names checked
    }
    staged_.clear();
    return ok();
  }

  Result<Element*> resolve(const Endpoint& ep) {
    if (ep.kind == Endpoint::Kind::element) return staged_[ep.staged].element.get();
    if (Element* e = p_.find(ep.ref_name)) return e;
    std::vector<std::string> names;
    for (const auto& st : staged_) {
      if (st.element->name() == ep.ref_name) return st.element.get();
      names.push_back(st.element->name());
    }
    for (Element* e : p_.elements())
      names.push_back(e->name());
    std::string hint = detail::did_you_mean(detail::closest_names(ep.ref_name, names));
    return fail(ep.offset, Errc::not_found,
                "no element named '" + ep.ref_name + "'" + (hint.empty() ? "" : "; " + hint));
  }

  Result<Pad*> pad_for(const Endpoint& ep, Element& e, PadDirection dir, bool& requested) {
    requested = false;
    Result<Pad*> r = ep.kind == Endpoint::Kind::reference && !ep.ref_pad.empty()
                         ? detail::named_pad(e, ep.ref_pad, dir, requested)
                         : detail::free_pad(e, dir);
    if (r && ep.ref_pad.empty()) requested = (*r)->is_request();
    if (!r) return fail(ep.offset, r.error().code, r.error().message);
    return r;
  }

  Result<void> resolve_links() {
    for (const auto& l : links_) {
      PLX_ASSIGN(Element * from, resolve(l.from));
      PLX_ASSIGN(Element * to, resolve(l.to));
      bool req_src = false, req_sink = false;
      PLX_ASSIGN(Pad * src, pad_for(l.from, *from, PadDirection::src, req_src));
      auto sink = pad_for(l.to, *to, PadDirection::sink, req_sink);
      if (!sink) {
        if (req_src) (void)from->release_pad(src);
        return std::move(sink).error();
      }
      auto r = Pipeline::connect(src, *sink);
      if (!r) {
        if (req_src) (void)from->release_pad(src);
        if (req_sink) (void)to->release_pad(*sink);
        return fail(l.to.offset, r.error().code, r.error().message);
      }
      done_.push_back({src, *sink, req_src, req_sink});
    }
    return ok();
  }

  // Undoes the links made so far, so existing elements are as they were before parse().
  void rollback() {
    for (auto it = done_.rbegin(); it != done_.rend(); ++it) {
      Pipeline::disconnect(it->src);
      if (it->src_requested) (void)it->src->element().release_pad(it->src);
      if (it->sink_requested) (void)it->sink->element().release_pad(it->sink);
    }
    done_.clear();
  }

  Pipeline& p_;
  std::string_view s_;
  std::vector<Staged> staged_;
  std::vector<PendingLink> links_;
  std::vector<DoneLink> done_;
  ParseError error_;
};

Result<void> Pipeline::parse(std::string_view description, ParseError* error) {
  if (running_) return err(Errc::failed_precondition, "parse: the pipeline is running");
  Parser parser(*this, description);
  return parser.run(error);
}

}  // namespace parallax::pipeline
