// SPDX-License-Identifier: MIT OR Apache-2.0
// Hot-path probes (private to libparallax): time stamps at fixed points of the publisher's send
// and the subscriber's receive, for profiling where a buffer's microseconds go when the caches
// are cold (after a sleep), which callgrind's instruction counts cannot show. Compiled in only
// with `meson configure -Dhotpath-probes=true` (PARALLAX_HOTPATH_PROBES); otherwise every macro
// is nothing. Each thread keeps, per step, the time since the previous point of the same series,
// and prints the median of each step (in TSC cycles on x86-64, nanoseconds elsewhere) to stderr
// when it exits:
//   hot-path probe send: freeze 98 | checks 147 | encode 662 | ... (p50 cycles; n=20000)
// A series begins at PLX_PROBE_BEGIN and ends at PLX_PROBE_END (or is dropped at
// PLX_PROBE_DROP); points outside a series record nothing. One point costs ~25 cycles here.
// PLX_PROBE_SHARE_MEMBER(member, "what") declares a counter in an object, PLX_PROBE_SHARE(member,
// condition) counts how often the condition held; the object prints it when it goes:
//   hot-path probe: subscriber took the record before the wake call returned: 49.7 % of 19800
// docs/benchmarks.md ("Where the cold microseconds are") quotes a run.
#pragma once

#if PARALLAX_HOTPATH_PROBES

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#if defined(__x86_64__)
#include <x86intrin.h>
#else
#include <time.h>
#endif

namespace parallax::link::detail::probe {

inline std::uint64_t now() noexcept {
#if defined(__x86_64__)
  return __rdtsc();
#else
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec;
#endif
}

constexpr int kSteps = 16;

struct Series {
  const char* tag{nullptr};
  std::uint64_t last{0};  // 0: no series open
  const char* names[kSteps]{};
  std::vector<std::uint32_t> steps[kSteps];
  ~Series() {
    if (tag == nullptr) return;
    std::size_t n = 0;
    std::fprintf(stderr, "hot-path probe %s:", tag);
    for (int i = 0; i < kSteps; ++i) {
      if (steps[i].empty()) continue;
      std::vector<std::uint32_t>& v = steps[i];
      std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
      std::fprintf(stderr, " %s %u |", names[i], v[v.size() / 2]);
      n = std::max(n, v.size());
    }
#if defined(__x86_64__)
    std::fprintf(stderr, " (p50 TSC cycles; n=%zu)\n", n);
#else
    std::fprintf(stderr, " (p50 ns; n=%zu)\n", n);
#endif
  }
};

struct Share {
  const char* name;
  std::uint64_t yes{0}, n{0};
  explicit Share(const char* what) noexcept : name(what) {}
  ~Share() {
    if (n != 0)
      std::fprintf(stderr, "hot-path probe: %s: %.1f %% of %llu\n", name,
                   100.0 * static_cast<double>(yes) / static_cast<double>(n),
                   static_cast<unsigned long long>(n));
  }
};

inline Series& series() noexcept {
  thread_local Series s;
  return s;
}
inline void begin(const char* tag) noexcept {
  Series& s = series();
  s.tag = tag;
  s.last = now();
}
inline void at(int step, const char* name) noexcept {
  Series& s = series();
  if (s.last == 0) return;
  const std::uint64_t t = now();
  s.names[step] = name;
  s.steps[step].push_back(static_cast<std::uint32_t>(t - s.last));
  s.last = now();  // the point's own cost is not the next step's
}

}  // namespace parallax::link::detail::probe

#define PLX_PROBE_BEGIN(tag) ::parallax::link::detail::probe::begin(tag)
#define PLX_PROBE_AT(step, name) ::parallax::link::detail::probe::at(step, name)
#define PLX_PROBE_END(step, name)                       \
  do {                                                  \
    ::parallax::link::detail::probe::at(step, name);    \
    ::parallax::link::detail::probe::series().last = 0; \
  } while (0)
#define PLX_PROBE_DROP() (::parallax::link::detail::probe::series().last = 0)
#define PLX_PROBE_SHARE_MEMBER(member, what)      \
  ::parallax::link::detail::probe::Share member { \
    what                                          \
  }
#define PLX_PROBE_SHARE(member, condition) \
  do {                                     \
    member.yes += (condition) ? 1 : 0;     \
    ++member.n;                            \
  } while (0)

#else

#define PLX_PROBE_BEGIN(tag) ((void)0)
#define PLX_PROBE_AT(step, name) ((void)0)
#define PLX_PROBE_END(step, name) ((void)0)
#define PLX_PROBE_DROP() ((void)0)
#define PLX_PROBE_SHARE_MEMBER(member, what) static_assert(true, "")
#define PLX_PROBE_SHARE(member, condition) ((void)0)

#endif
