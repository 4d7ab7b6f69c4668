// SPDX-License-Identifier: MIT OR Apache-2.0
// Typed IPC (parallax::link): TypedPublisher<T> sends archives of T over the transport, written
// straight into shared-memory slots; TypedSubscriber<T> receives them as validated, read-only
// views (Typed<T>) that live as long as their buffer. Also the archive format string and the
// Typed<T> view shared with the dynamic-pipeline bridge (parallax/typed/dynamic.h).
//
//   struct Point { double x, y; std::string label; };
//   PLX_ARCHIVE(Point, x, y, label);
//
//   // process A
//   auto pub = link::TypedPublisher<Point>::bind("/run/user/1000/points.sock").value();
//   pub.send(Point{1, 2, "a"});                      // serialized in place into a slot
//   // process B
//   auto sub = link::TypedSubscriber<Point>::connect("/run/user/1000/points.sock").value();
//   while (auto p = sub.recv().value()) std::printf("%f %s\n", (*p)->x, (*p)->label.str().c_str());
//
// See docs/archive.md ("Typed IPC") for the stream format and what validation proves.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "parallax/archive.h"
#include "parallax/buffer.h"
#include "parallax/ipc.h"
#include "parallax/result.h"
#include "parallax/trace.h"

namespace parallax::link {

/// Media type of a stream (or pad) whose buffers are archives of one type.
inline constexpr std::string_view kArchiveMediaType = "application/x-parallax-archive";

/// A short name for T in format strings: the PLX_ARCHIVE / PLX_ARCHIVE_ENUM name, "i32",
/// "f64"..., "string", or "value" for composite standard types (the schema hash is what
/// identifies the shape; the name is for people reading errors).
template <typename T>
[[nodiscard]] constexpr std::string_view archive_type_name() {
  if constexpr (archive::detail::UserDeclared<T>) {
    return archive::detail::user_traits_t<T>::name;
  } else if constexpr (archive::detail::Arithmetic<T>) {
    return archive::detail::arithmetic_name<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    return "string";
  } else {
    return "value";
  }
}

/// The schema hash as 16 lowercase hex digits.
[[nodiscard]] inline std::string schema_hex(std::uint64_t h) {
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(h));
  return s;
}

/// The format (caps string, GStreamer syntax) announcing archives of T:
/// `application/x-parallax-archive, type=(string)Point, schema=(string)0123456789abcdef`.
template <typename T>
[[nodiscard]] std::string archive_format() {
  return std::string(kArchiveMediaType) + ", type=(string)" + std::string(archive_type_name<T>()) +
         ", schema=(string)" + schema_hex(archive::schema_hash_v<T>);
}

/// The parts of an archive format string that matter.
struct ArchiveFormat {
  std::string media_type;
  std::string type;    ///< empty when absent
  std::string schema;  ///< 16 hex digits, empty when absent
};

/// Parses a caps string such as the one archive_format() gives: the media type, then
/// `key=value` fields separated by commas; `(string)` casts and double quotes are removed.
/// Only reads the fields it knows; never fails (absent fields stay empty).
[[nodiscard]] inline ArchiveFormat parse_archive_format(std::string_view caps) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
      s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == ';'))
      s.remove_suffix(1);
    return s;
  };
  ArchiveFormat f;
  bool first = true;
  while (!caps.empty()) {
    const std::size_t comma = caps.find(',');
    std::string_view part = trim(caps.substr(0, comma));
    caps = comma == std::string_view::npos ? std::string_view{} : caps.substr(comma + 1);
    if (first) {
      f.media_type = std::string(part);
      first = false;
      continue;
    }
    const std::size_t eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = trim(part.substr(0, eq));
    std::string_view value = trim(part.substr(eq + 1));
    if (value.starts_with("(string)")) value.remove_prefix(8);
    value = trim(value);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    if (key == "type") f.type = std::string(value);
    if (key == "schema") f.schema = std::string(value);
  }
  return f;
}

/// Checks that a format announces archives of T. ok() for archives of T; failed_precondition
/// naming both sides for another media type, another type or another schema. `who` prefixes
/// the message ("typed subscriber", "element 'sink'").
template <typename T>
[[nodiscard]] Result<void> check_archive_format(std::string_view caps, std::string_view who) {
  const ArchiveFormat f = parse_archive_format(caps);
  const std::string want_schema = schema_hex(archive::schema_hash_v<T>);
  if (f.media_type != kArchiveMediaType || f.schema != want_schema) {
    return err(Errc::failed_precondition, std::string(who) + ": the stream carries '" +
                                              std::string(caps) + "', expected archives of " +
                                              std::string(archive_type_name<T>()) + " (schema " +
                                              want_schema + "): refusing to read it as " +
                                              std::string(archive_type_name<T>()));
  }
  return ok();
}

/// A validated archive of T inside a Buffer: `->` and `*` read the Archived<T> in place (no
/// copy). The view lives exactly as long as this object, which holds the Buffer (and so, for
/// a received buffer, the lease on the publisher's slot). Copying clones the Buffer (one atomic
/// increment) and shares the same validated bytes; moving leaves the source empty.
template <typename T>
class Typed {
 public:
  using value_type = T;
  using archived_type = archive::Archived<T>;

  Typed() noexcept = default;
  Typed(const Typed&) = default;
  Typed& operator=(const Typed&) = default;
  Typed(Typed&& o) noexcept : buf_(std::move(o.buf_)), view_(std::exchange(o.view_, nullptr)) {}
  Typed& operator=(Typed&& o) noexcept {
    if (this != &o) {
      buf_ = std::move(o.buf_);
      view_ = std::exchange(o.view_, nullptr);
    }
    return *this;
  }

  /// Validates `buf` as an archive of T (with the 16-byte header whose schema hash must be
  /// T's, when `opts.header`). data_loss naming the field and byte offset when the bytes are
  /// not a valid archive of T; invalid_argument when the buffer is not 8-byte aligned.
  [[nodiscard]] static Result<Typed> from_buffer(memory::Buffer buf,
                                                 archive::AccessOptions opts = {.header = true}) {
    PLX_ASSIGN(const archived_type* v, archive::access<T>(buf.data(), opts));
    Typed t;
    t.buf_ = std::move(buf);
    t.view_ = v;
    return t;
  }

  [[nodiscard]] bool has_value() const noexcept { return view_ != nullptr; }
  explicit operator bool() const noexcept { return has_value(); }
  /// The archived root (precondition: has_value()).
  [[nodiscard]] const archived_type& operator*() const noexcept { return *view_; }
  [[nodiscard]] const archived_type* operator->() const noexcept { return view_; }
  [[nodiscard]] const archived_type* get() const noexcept { return view_; }
  /// The buffer holding the bytes (metadata: pts, sequence...).
  [[nodiscard]] const memory::Buffer& buffer() const noexcept { return buf_; }
  [[nodiscard]] const Metadata& metadata() const noexcept { return buf_.metadata(); }
  /// An owned T (allocates for strings and vectors).
  [[nodiscard]] T deserialize() const { return archive::deserialize<T>(*view_); }

 private:
  memory::Buffer buf_;
  const archived_type* view_{nullptr};
};

/// Serializes v with the archive header into a loan, so the archive is born in the slot.
/// resource_exhausted names the size needed and the slot size when it does not fit.
template <typename T>
[[nodiscard]] Result<std::size_t> serialize_archive_into(const T& v, memory::Loan& loan) {
  auto r = archive::serialize_into(v, loan, archive::WriteOptions{.header = true});
  if (!r.ok() && r.error().code == Errc::resource_exhausted) {
    return err(Errc::resource_exhausted,
               "an archive of " + std::string(archive_type_name<T>()) + " needs " +
                   std::to_string(archive::serialized_size(v, {.header = true})) +
                   " bytes, the slot holds " + std::to_string(loan.capacity()));
  }
  return r;
}

/// Sends archives of T. Wraps an IpcPublisher (everything in docs/protocol.md holds: late
/// joiners, policies, quotas); the format event announcing T is sent at bind() and is sticky,
/// so every subscriber sees it before the first value. Thread-safety as IpcPublisher: one
/// producer thread at a time.
template <typename T>
class TypedPublisher {
  static_assert(archive::Archivable<T>, "T is not archivable: add PLX_ARCHIVE(T, fields...)");

 public:
  /// Listens on `path` and announces archive_format<T>(). Errors as IpcPublisher::bind().
  [[nodiscard]] static Result<TypedPublisher> bind(std::string_view path,
                                                   PublisherOptions options = {}) {
    PLX_ASSIGN(IpcPublisher pub, IpcPublisher::bind(path, std::move(options)));
    PLX_TRY(pub.set_format(archive_format<T>()));
    TypedPublisher t;
    t.pub_ = std::move(pub);
    return t;
  }

  TypedPublisher() noexcept = default;

  /// Serializes `v` straight into a slot of the shared pool (no copy afterwards) and sends it.
  /// resource_exhausted when the archive is larger than a slot (PublisherOptions::slot_size),
  /// timeout when no slot frees up within loan_timeout; other errors as IpcPublisher::send().
  [[nodiscard]] Result<void> send(const T& v) { return send(v, Metadata{}); }
  /// Same, with metadata (pts, sequence, entries...) travelling with the buffer.
  [[nodiscard]] Result<void> send(const T& v, Metadata meta) {
    PLX_TRACE_SPAN("typed.send");
    PLX_ASSIGN(memory::Loan loan, pub_.loan());
    PLX_TRY(serialize_archive_into(v, loan));
    loan.metadata() = std::move(meta);
    return pub_.send(std::move(loan));
  }
  /// End of stream (subscribers' recv() returns std::nullopt).
  [[nodiscard]] Result<void> send_eos() { return pub_.send_eos(); }
  /// Any other event (segment, custom...). A format event would change what subscribers
  /// expect: it is refused with invalid_argument.
  [[nodiscard]] Result<void> send_event(const Event& ev) {
    if (ev.type == EventType::caps)
      return err(Errc::invalid_argument, "a TypedPublisher's format is archive_format<T>()");
    return pub_.send_event(ev);
  }
  [[nodiscard]] Result<void> wait_for_subscribers(std::size_t n,
                                                  std::chrono::milliseconds timeout) {
    return pub_.wait_for_subscribers(n, timeout);
  }
  [[nodiscard]] std::size_t subscriber_count() const { return pub_.subscriber_count(); }
  [[nodiscard]] PublisherStats stats() const { return pub_.stats(); }
  [[nodiscard]] const std::string& path() const { return pub_.path(); }
  /// The underlying publisher (for its pool, or for loans you fill yourself).
  [[nodiscard]] IpcPublisher& untyped() noexcept { return pub_; }
  /// Clean shutdown (end of stream for every subscriber). Idempotent.
  void close() { pub_.close(); }

 private:
  IpcPublisher pub_;
};

struct TypedSubscriberOptions {
  /// Transport options (policy, connect_timeout, reconnect...).
  SubscriberOptions ipc;
  /// How much each received archive is checked. `full` (default) for any peer; `structural`
  /// skips UTF-8 of strings; `trusted` only for a publisher you trust as yourself.
  archive::Validation validation{archive::Validation::full};
  std::uint32_t max_depth{64};
  /// Refuse buffers that arrive before any format event. Off by default: the per-archive
  /// header still checks the schema hash.
  bool require_format{false};
  /// Copy each received archive into memory of this process (one read of the shared slot)
  /// before validating it, and return the slot's lease at once. Validation proves the bytes
  /// it read; the zero-copy view reads the publisher's slot again later, and a publisher that
  /// keeps writing into a slot it sent (its mapping is writable) can change it under a view:
  /// values change, and a string or vector length rewritten after validation points outside
  /// the archive. With private_copy the view only ever reads the validated private copy, so a
  /// hostile publisher cannot make it read anything else. Costs one copy per message (counted
  /// in TypedSubscriber::private_copies()). Off by default (zero copy).
  bool private_copy{false};
};

/// Receives archives of T. recv() validates each buffer once and hands out a Typed<T> view of
/// the publisher's read-only slot. A buffer that is not a valid archive of T, or a stream whose
/// format announces another type, is an error and **closes the connection**: a peer that sent
/// one malformed archive cannot be trusted for the next, and the transport treats malformed
/// messages the same way. Typed<T> values already received stay valid.
template <typename T>
class TypedSubscriber {
  static_assert(archive::Archivable<T>, "T is not archivable: add PLX_ARCHIVE(T, fields...)");

 public:
  /// Connects (errors as IpcSubscriber::connect()).
  [[nodiscard]] static Result<TypedSubscriber> connect(std::string_view path,
                                                       TypedSubscriberOptions options = {}) {
    PLX_ASSIGN(IpcSubscriber sub, IpcSubscriber::connect(path, options.ipc));
    TypedSubscriber t;
    t.sub_ = std::move(sub);
    t.opts_ = std::move(options);
    return t;
  }

  TypedSubscriber() noexcept = default;

  /// The next value; std::nullopt at end of stream. Errors: data_loss (not a valid archive of
  /// T: the message names the field and byte offset), failed_precondition (the stream's format
  /// is another type or schema), and the transport's (unavailable, cancelled...). After a
  /// data_loss or failed_precondition the connection is closed and every later call returns
  /// the same error.
  [[nodiscard]] Result<std::optional<Typed<T>>> recv() { return next(sub_.recv()); }
  /// Same, failing with timeout after `timeout`.
  [[nodiscard]] Result<std::optional<Typed<T>>> recv_for(std::chrono::nanoseconds timeout) {
    return next(sub_.recv_for(timeout));
  }

  /// The latest format seen (archive_format<T>() from a TypedPublisher).
  [[nodiscard]] const std::optional<std::string>& format() const { return sub_.format(); }
  [[nodiscard]] SubscriberStats stats() const { return sub_.stats(); }
  /// Archives copied out of shared memory (TypedSubscriberOptions::private_copy).
  [[nodiscard]] std::uint64_t private_copies() const noexcept { return private_copies_; }
  [[nodiscard]] bool connected() const { return !broken_ && sub_.connected(); }
  void interrupt() { sub_.interrupt(); }
  void resume() { sub_.resume(); }
  /// The underlying subscriber (events via recv_item(), segment()...).
  [[nodiscard]] IpcSubscriber& untyped() noexcept { return sub_; }
  void close() { sub_.close(); }

 private:
  Result<std::optional<Typed<T>>> fail(Error e) {
    broken_ = e;
    sub_.close();
    return e;
  }

  Result<std::optional<Typed<T>>> next(Result<std::optional<memory::Buffer>> r) {
    PLX_TRACE_SPAN("typed.receive");
    if (broken_) return *broken_;
    if (!r.ok()) return std::move(r).error();
    if (!r->has_value()) return std::optional<Typed<T>>{};
    const auto& fmt = sub_.format();
    if (fmt) {
      if (!checked_format_ || *checked_format_ != *fmt) {
        if (auto c = check_archive_format<T>(*fmt, "typed subscriber"); !c.ok())
          return fail(std::move(c).error());
        checked_format_ = *fmt;
      }
    } else if (opts_.require_format) {
      return fail(Error{Errc::failed_precondition,
                        "typed subscriber: a buffer arrived before any format event"});
    }
    if (opts_.private_copy) {
      // One copy out of the shared slot; the lease goes back with `shared` right here.
      memory::Buffer shared = std::move(**r);
      **r = memory::Buffer::copy_from(shared.data(), shared.metadata());
      ++private_copies_;
    }
    archive::AccessOptions ao;
    ao.level = opts_.validation;
    ao.max_depth = opts_.max_depth;
    ao.header = true;
    auto t = Typed<T>::from_buffer(std::move(**r), ao);
    if (!t.ok()) {
      Error e = std::move(t).error();
      e.message = "typed subscriber: invalid archive of " + std::string(archive_type_name<T>()) +
                  " from the publisher: " + e.message;
      if (e.code != Errc::data_loss) e.code = Errc::data_loss;
      return fail(std::move(e));
    }
    return std::optional<Typed<T>>(std::move(*t));
  }

  IpcSubscriber sub_;
  TypedSubscriberOptions opts_;
  std::uint64_t private_copies_{0};
  std::optional<std::string> checked_format_;
  std::optional<Error> broken_;
};

}  // namespace parallax::link
