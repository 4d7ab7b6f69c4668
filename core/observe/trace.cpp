// SPDX-License-Identifier: MIT OR Apache-2.0
// The span recorder: per-thread single-producer rings drained by flush() into a Chrome trace
// event JSON file (one per process) that stays a complete document after every flush.
#include "parallax/trace.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <new>
#include <string_view>
#include <vector>

#include "parallax/log.h"

namespace parallax::observe {

namespace trace_detail {
std::atomic<std::uint8_t> g_state{kUnknown};
}  // namespace trace_detail

using trace_detail::g_state;
using trace_detail::kOff;
using trace_detail::kOn;
using trace_detail::kUnknown;

namespace {

struct Event {
  const char* name;
  const char* category;
  const char* arg_key;  // nullptr: no argument
  std::int64_t arg;
  std::uint64_t begin_ns;
  std::uint64_t end_ns;
};

// One thread's events. The owner thread is the only writer of `head` and of the slots between
// tail and head; flush() (under State::mu) is the only writer of `tail`. Rings are never freed
// (a thread may still hold its pointer during exit); a retired ring is reused by a new thread
// once flush() drained it.
struct Ring {
  std::unique_ptr<Event[]> events;
  std::uint64_t mask{0};
  std::atomic<std::uint64_t> head{0};
  std::atomic<std::uint64_t> tail{0};
  std::atomic<std::uint64_t> dropped{0};
  // Under State::mu:
  int tid{0};
  std::string thread_name;
  bool named{false};    // its thread_name metadata is in the current file
  bool retired{false};  // its thread exited
};

struct State {
  std::mutex mu;  // the ring list, the file, the fields below
  std::vector<std::unique_ptr<Ring>> rings;
  std::size_t events_per_thread{Tracer::kDefaultEventsPerThread};
  std::string pattern;  // as given (env or start())
  bool add_pid{false};  // the environment's form: out.json -> out.<pid>.json
  std::string path;     // the current file
  int fd{-1};
  int file_pid{0};            // the process the file belongs to (a forked child makes its own)
  std::uint64_t body_end{0};  // where the trailer starts
  std::atomic<std::uint64_t> dropped_no_ring{0};
  bool hooks_installed{false};  // atexit and pthread_atfork
};

State& state() {
  static State* s = new State;  // never destroyed: spans may end during static destruction
  return *s;
}

thread_local Ring* tl_ring = nullptr;
thread_local bool tl_exited = false;

// Retires the thread's ring when the thread exits (constructed on the thread's first event).
struct RingOwner {
  bool armed{false};
  ~RingOwner() {
    tl_exited = true;
    if (!armed || tl_ring == nullptr) return;
    State& s = state();
    std::lock_guard lk(s.mu);
    tl_ring->retired = true;
    tl_ring = nullptr;
  }
};
thread_local RingOwner tl_owner;

std::uint64_t round_up_pow2(std::size_t n) {
  std::uint64_t p = 1;
  while (p < n)
    p <<= 1;
  return p;
}

// ---- JSON writing (by hand: the core has no JSON library) ----

// Length of the valid UTF-8 sequence at s[i] (lead byte >= 0x80), 0 when it is not one.
std::size_t utf8_len(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (b(k) < 0x80 || b(k) > 0xBF) return 0;
  return n;
}

// A JSON string: quotes, backslashes and control characters escaped, invalid UTF-8 replaced
// by U+FFFD (thread and process names are arbitrary bytes).
void append_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else if (const std::size_t n = utf8_len(s, i); n != 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
}

// Nanoseconds as microseconds with three decimals, exactly (no floating-point rounding).
void append_us(std::string& out, std::uint64_t ns) {
  out += std::to_string(ns / 1000);
  const auto frac = static_cast<unsigned>(ns % 1000);
  out += '.';
  out += static_cast<char>('0' + frac / 100);
  out += static_cast<char>('0' + frac / 10 % 10);
  out += static_cast<char>('0' + frac % 10);
}

void append_metadata(std::string& out, const char* what, int pid, int tid, std::string_view name) {
  out += ",\n{\"name\":\"";
  out += what;
  out += "\",\"ph\":\"M\",\"pid\":" + std::to_string(pid) + ",\"tid\":" + std::to_string(tid) +
         ",\"args\":{\"name\":";
  append_string(out, name);
  out += "}}";
}

void append_event(std::string& out, const Event& e, int pid, int tid) {
  out += ",\n{\"name\":";
  append_string(out, e.name);
  out += ",\"cat\":";
  append_string(out, e.category);
  out += ",\"ph\":\"X\",\"ts\":";
  append_us(out, e.begin_ns);
  out += ",\"dur\":";
  append_us(out, e.end_ns >= e.begin_ns ? e.end_ns - e.begin_ns : 0);
  out += ",\"pid\":" + std::to_string(pid) + ",\"tid\":" + std::to_string(tid) + ",\"args\":{";
  if (e.arg_key != nullptr) {
    append_string(out, e.arg_key);
    out += ':' + std::to_string(e.arg);
  }
  out += "}}";
}

std::uint64_t total_dropped_locked(State& s) {
  std::uint64_t n = s.dropped_no_ring.load(std::memory_order_relaxed);
  for (const auto& r : s.rings)
    n += r->dropped.load(std::memory_order_relaxed);
  return n;
}

std::string trailer_locked(State& s) {
  return "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"producer\":\"parallax\","
         "\"dropped_events\":" +
         std::to_string(total_dropped_locked(s)) + "}}\n";
}

Result<void> pwrite_all(int fd, std::string_view data, std::uint64_t at, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(at));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("write trace file " + path);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    at += static_cast<std::uint64_t>(n);
  }
  return {};
}

// Appends `body` (events, each starting with ",\n") and rewrites the trailer after it, so the
// file is a whole JSON document again.
Result<void> append_locked(State& s, const std::string& body) {
  PLX_TRY(pwrite_all(s.fd, body, s.body_end, s.path));
  s.body_end += body.size();
  const std::string tail = trailer_locked(s);
  PLX_TRY(pwrite_all(s.fd, tail, s.body_end, s.path));
  if (::ftruncate(s.fd, static_cast<off_t>(s.body_end + tail.size())) != 0)
    return Error::from_errno("truncate trace file " + s.path);
  return {};
}

std::string expand_path(const std::string& pattern, bool add_pid, int pid) {
  const std::string p = std::to_string(pid);
  if (const auto at = pattern.find("%p"); at != std::string::npos) {
    std::string out;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
      if (pattern.compare(i, 2, "%p") == 0) {
        out += p;
        ++i;
      } else {
        out += pattern[i];
      }
    }
    return out;
  }
  if (!add_pid) return pattern;
  // out.json -> out.<pid>.json; a name without an extension gets .<pid> at the end.
  const auto slash = pattern.rfind('/');
  const auto dot = pattern.rfind('.');
  if (dot != std::string::npos && dot > 0 && (slash == std::string::npos || dot > slash + 1))
    return pattern.substr(0, dot) + "." + p + pattern.substr(dot);
  return pattern + "." + p;
}

std::string process_name() {
  std::string name = program_invocation_short_name != nullptr ? program_invocation_short_name : "";
  return name.empty() ? std::string("parallax") : name;
}

void close_locked(State& s) {
  if (s.fd >= 0) ::close(s.fd);
  s.fd = -1;
}

void flush_at_exit();
void before_fork();
void after_fork_parent();
void after_fork_child();

// Creates the current process's file with the header, the process name and the trailer.
Result<void> open_locked(State& s) {
  const int pid = ::getpid();
  std::string path = expand_path(s.pattern, s.add_pid, pid);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Error::from_errno("create trace file " + path);
  close_locked(s);
  s.fd = fd;
  s.path = std::move(path);
  s.file_pid = pid;
  s.body_end = 0;
  for (auto& r : s.rings)
    r->named = false;
  // The first element is the process name, so every later event starts with ",\n".
  std::string head =
      "{\"traceEvents\":[\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":" + std::to_string(pid) +
      ",\"tid\":" + std::to_string(pid) + ",\"args\":{\"name\":";
  append_string(head, process_name());
  head += "}}";
  if (auto r = append_locked(s, head); !r) {
    close_locked(s);
    return r;
  }
  if (!s.hooks_installed) {
    s.hooks_installed = true;
    std::atexit(flush_at_exit);
    ::pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  }
  return {};
}

// Drains every ring into the file. Returns the number of span events written.
Result<std::size_t> flush_locked(State& s) {
  if (s.fd < 0) return err(Errc::failed_precondition, "tracing was never started");
  if (s.file_pid != ::getpid()) PLX_TRY(open_locked(s));  // a forked child: a file of its own
  const int pid = s.file_pid;
  std::size_t written = 0;
  std::vector<Event> batch;
  std::string body;
  for (auto& rp : s.rings) {
    Ring& r = *rp;
    const std::uint64_t h = r.head.load(std::memory_order_acquire);
    const std::uint64_t t = r.tail.load(std::memory_order_relaxed);
    if (h == t) continue;
    batch.clear();
    for (std::uint64_t i = t; i != h; ++i)
      batch.push_back(r.events[i & r.mask]);
    r.tail.store(h, std::memory_order_release);  // the slots are the owner's again
    // Rings hold spans in the order they ended (an inner span before its outer one): write
    // them in the order they began, outer before inner at equal times.
    std::stable_sort(batch.begin(), batch.end(), [](const Event& a, const Event& b) {
      return a.begin_ns != b.begin_ns ? a.begin_ns < b.begin_ns : a.end_ns > b.end_ns;
    });
    body.clear();
    if (!r.named) {
      append_metadata(body, "thread_name", pid, r.tid, r.thread_name);
      r.named = true;
    }
    for (const Event& e : batch)
      append_event(body, e, pid, r.tid);
    PLX_TRY(append_locked(s, body));
    written += batch.size();
  }
  // The trailer carries the dropped count even when nothing new was recorded.
  PLX_TRY(append_locked(s, std::string()));
  return written;
}

void flush_at_exit() {
  State& s = state();
  std::lock_guard lk(s.mu);
  if (g_state.load(std::memory_order_relaxed) != kOn) return;
  g_state.store(kOff, std::memory_order_relaxed);
  auto r = flush_locked(s);
  if (!r) PLX_LOG(error, "trace", "writing the trace at exit: %s", r.error().message.c_str());
  const std::uint64_t dropped = total_dropped_locked(s);
  if (dropped != 0)
    PLX_LOG(warn, "trace", "%llu trace events were dropped (full per-thread rings); see %s",
            static_cast<unsigned long long>(dropped), s.path.c_str());
  close_locked(s);
}

// fork(): the child must not find the mutex held by a thread that does not exist there, and
// must not write the parent's events or into the parent's file.
void before_fork() {
  state().mu.lock();
}
void after_fork_parent() {
  state().mu.unlock();
}
void after_fork_child() {
  State& s = state();
  for (auto& r : s.rings) {
    r->tail.store(r->head.load(std::memory_order_relaxed), std::memory_order_relaxed);
    r->dropped.store(0, std::memory_order_relaxed);
    r->named = false;
    if (r.get() != tl_ring) r->retired = true;  // those threads do not exist in the child
  }
  s.dropped_no_ring.store(0, std::memory_order_relaxed);
  if (tl_ring != nullptr) tl_ring->tid = static_cast<int>(::gettid());
  // The file is replaced by the child's own at its first flush (file_pid differs).
  s.mu.unlock();
}

// The calling thread's ring, made or reused on its first event.
Ring* attach() noexcept {
  if (tl_exited) return nullptr;
  State& s = state();
  try {
    std::lock_guard lk(s.mu);
    Ring* ring = nullptr;
    const std::uint64_t cap = round_up_pow2(s.events_per_thread);
    for (auto& r : s.rings) {
      // A drained ring of an exited thread, of the size asked for now.
      if (r->retired && r->mask + 1 == cap &&
          r->head.load(std::memory_order_relaxed) == r->tail.load(std::memory_order_relaxed)) {
        ring = r.get();
        break;
      }
    }
    if (ring == nullptr) {
      if (s.rings.size() >= Tracer::kMaxThreads) {
        s.dropped_no_ring.fetch_add(1, std::memory_order_relaxed);
        return nullptr;
      }
      auto r = std::make_unique<Ring>();
      r->events.reset(new Event[cap]);
      r->mask = cap - 1;
      ring = r.get();
      s.rings.push_back(std::move(r));
    }
    ring->retired = false;
    ring->named = false;
    ring->tid = static_cast<int>(::gettid());
    char name[64] = {};
    if (::pthread_getname_np(::pthread_self(), name, sizeof name) != 0) name[0] = '\0';
    ring->thread_name = name[0] != '\0' ? name : "thread " + std::to_string(ring->tid);
    tl_ring = ring;
    tl_owner.armed = true;
    return ring;
  } catch (...) {  // out of memory: the event is lost, and counted
    s.dropped_no_ring.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
}

// Reads PARALLAX_TRACE (and PARALLAX_TRACE_BUFFER) once.
void init_from_env() noexcept {
  State& s = state();
  std::lock_guard lk(s.mu);
  if (g_state.load(std::memory_order_relaxed) != kUnknown) return;
  const char* env = std::getenv("PARALLAX_TRACE");
  if (env == nullptr || *env == '\0') {
    g_state.store(kOff, std::memory_order_release);
    return;
  }
  try {
    if (const char* b = std::getenv("PARALLAX_TRACE_BUFFER"); b != nullptr && *b != '\0') {
      char* end = nullptr;
      errno = 0;
      const unsigned long long n = std::strtoull(b, &end, 10);
      if (errno != 0 || end == b || *end != '\0' || n == 0 || n > (std::uint64_t{1} << 26)) {
        PLX_LOG(error, "trace",
                "PARALLAX_TRACE_BUFFER=%s is not a number of events in 1..67108864: "
                "tracing stays off",
                b);
        g_state.store(kOff, std::memory_order_release);
        return;
      }
      s.events_per_thread = static_cast<std::size_t>(n);
    }
    s.pattern = env;
    s.add_pid = true;
    if (auto r = open_locked(s); !r) {
      PLX_LOG(error, "trace", "PARALLAX_TRACE=%s: %s: tracing stays off", env,
              r.error().message.c_str());
      g_state.store(kOff, std::memory_order_release);
      return;
    }
    PLX_LOG(info, "trace", "tracing into %s", s.path.c_str());
    g_state.store(kOn, std::memory_order_release);
  } catch (...) {
    g_state.store(kOff, std::memory_order_release);
  }
}

}  // namespace

namespace trace_detail {

bool enabled_slow() noexcept {
  std::uint8_t st = g_state.load(std::memory_order_acquire);
  if (st == kUnknown) {
    init_from_env();
    st = g_state.load(std::memory_order_acquire);
  }
  return st == kOn;
}

std::uint64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void record(const char* name, const char* category, std::uint64_t begin_ns, std::uint64_t end_ns,
            const char* arg_key, std::int64_t arg) noexcept {
  if (g_state.load(std::memory_order_relaxed) != kOn) return;
  Ring* r = tl_ring;
  if (r == nullptr) [[unlikely]] {
    r = attach();
    if (r == nullptr) return;
  }
  const std::uint64_t h = r->head.load(std::memory_order_relaxed);
  if (h - r->tail.load(std::memory_order_acquire) > r->mask) {
    r->dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  r->events[h & r->mask] = Event{name, category, arg_key, arg, begin_ns, end_ns};
  r->head.store(h + 1, std::memory_order_release);
}

}  // namespace trace_detail

Result<void> Tracer::start(std::string path, std::size_t events_per_thread) {
  if (path.empty()) return err(Errc::invalid_argument, "trace path is empty");
  if (events_per_thread == 0 || events_per_thread > (std::size_t{1} << 26))
    return err(Errc::invalid_argument, "events_per_thread must be in 1..67108864");
  if (g_state.load(std::memory_order_acquire) == kUnknown) init_from_env();
  State& s = state();
  std::lock_guard lk(s.mu);
  if (g_state.load(std::memory_order_relaxed) == kOn)
    return err(Errc::failed_precondition,
               "tracing is already on (PARALLAX_TRACE or an earlier start()) into " + s.path);
  // Events recorded after an earlier stop() are not part of this trace.
  for (auto& r : s.rings) {
    r->tail.store(r->head.load(std::memory_order_acquire), std::memory_order_release);
    r->dropped.store(0, std::memory_order_relaxed);
  }
  s.dropped_no_ring.store(0, std::memory_order_relaxed);
  s.events_per_thread = events_per_thread;  // for rings made from now on
  s.pattern = std::move(path);
  s.add_pid = false;
  PLX_TRY(open_locked(s));
  g_state.store(kOn, std::memory_order_release);
  return {};
}

Result<std::size_t> Tracer::flush() {
  State& s = state();
  std::lock_guard lk(s.mu);
  if (g_state.load(std::memory_order_relaxed) != kOn)
    return err(Errc::failed_precondition, "tracing is not on");
  return flush_locked(s);
}

Result<std::size_t> Tracer::stop() {
  State& s = state();
  std::lock_guard lk(s.mu);
  if (g_state.load(std::memory_order_relaxed) != kOn)
    return err(Errc::failed_precondition, "tracing is not on");
  g_state.store(kOff, std::memory_order_release);
  auto r = flush_locked(s);
  close_locked(s);
  return r;
}

std::string Tracer::path() {
  State& s = state();
  std::lock_guard lk(s.mu);
  return s.path;
}

std::uint64_t Tracer::dropped() noexcept {
  State& s = state();
  std::lock_guard lk(s.mu);
  return total_dropped_locked(s);
}

}  // namespace parallax::observe
