// SPDX-License-Identifier: MIT OR Apache-2.0
// Thread pinning by CPU list or by topology object (hwloc): "0-3,8", "numa:0", "core:2-3",
// "l3:1", "pu:0,2". Pipeline streaming threads take such a string as their affinity.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "parallax/result.h"

namespace parallax::topology {

/// A set of OS CPU indices (as in /proc/cpuinfo and taskset), sorted and unique.
struct CpuSet {
  std::vector<unsigned> cpus;
  [[nodiscard]] bool empty() const noexcept { return cpus.empty(); }
  [[nodiscard]] bool contains(unsigned cpu) const noexcept;
  /// Taskset-style text: "0-3,8".
  [[nodiscard]] std::string to_string() const;
  bool operator==(const CpuSet&) const = default;
};

/// The most CPUs an affinity list may name (indices 0..kMaxCpu).
inline constexpr unsigned kMaxCpu = 4095;

/// Parses a taskset-style list ("0-3,8") into CPU indices, without looking at the machine.
/// Errors (invalid_argument) name the position and what was expected.
[[nodiscard]] Result<CpuSet> parse_cpu_list(std::string_view list);

/// The machine's topology, loaded once through hwloc.
class Topology {
 public:
  [[nodiscard]] static Result<Topology> load();
  ~Topology();
  Topology(Topology&&) noexcept;
  Topology& operator=(Topology&&) noexcept;
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  [[nodiscard]] std::size_t numa_nodes() const;
  [[nodiscard]] std::size_t cores() const;
  [[nodiscard]] std::size_t l3_caches() const;
  [[nodiscard]] std::size_t pus() const;  ///< processing units (hardware threads)
  /// CPUs this process may run on.
  [[nodiscard]] CpuSet allowed() const;

  /// Resolves an affinity string: a CPU list ("0-3,8") or `kind:list` with kind one of
  /// numa, core, l3, l2, pu and list a range list of that kind's logical indices ("core:2-3").
  /// The result is checked against the CPUs this process may use: naming a CPU or object that
  /// does not exist is an error (out_of_range) that says how many there are.
  [[nodiscard]] Result<CpuSet> resolve(std::string_view affinity) const;

  /// One line per level: "1 NUMA node(s), 1 L3 cache(s), 2 core(s), 2 PU(s); allowed 0-1".
  [[nodiscard]] std::string describe() const;

  struct Impl;

 private:
  explicit Topology(Impl* impl) noexcept : impl_(impl) {}
  Impl* impl_{nullptr};
};

/// Pins the calling thread to `cpus` (sched_setaffinity through hwloc).
[[nodiscard]] Result<void> pin_current_thread(const CpuSet& cpus);
/// resolve() with a process-wide Topology, then pin_current_thread(). An empty string is a no-op.
[[nodiscard]] Result<void> pin_current_thread(std::string_view affinity);
/// The calling thread's current CPU set.
[[nodiscard]] Result<CpuSet> current_thread_affinity();

}  // namespace parallax::topology
