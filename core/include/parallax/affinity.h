// SPDX-License-Identifier: MIT OR Apache-2.0
// Thread pinning by CPU list or by topology object (hwloc): "0-3,8", "numa:0", "core:2-3",
// "l3:1", "pu:0,2", "auto". Pipeline streaming threads take such a string as their affinity;
// affinity rules ("queue*:core:1;*:numa:0") pick one per element by name or factory; memory
// placement binds a region's pages to a NUMA node and reports where they are. See
// docs/topology.md.
#pragma once

#include <cstddef>
#include <optional>
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
  /// A synthetic machine from hwloc's description language ("pack:2 numa:2 core:4 pu:2"), for
  /// tests and planning. It is not this system: pinning and memory binding fail on it.
  [[nodiscard]] static Result<Topology> load_synthetic(std::string_view description);
  /// A machine saved by `lstopo FILE.xml` (hwloc XML).
  [[nodiscard]] static Result<Topology> load_xml(std::string_view path);
  /// The process-wide topology (loaded once, on first use; honours HWLOC_SYNTHETIC /
  /// HWLOC_XMLFILE like every hwloc program).
  [[nodiscard]] static Result<const Topology*> process();
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
  /// `auto` resolves to the CPUs of `auto_node` (the NUMA node of the memory the thread
  /// reads); without one it is failed_precondition.
  [[nodiscard]] Result<CpuSet> resolve(std::string_view affinity,
                                       std::optional<unsigned> auto_node = std::nullopt) const;

  /// The allowed CPUs of NUMA node `node` (logical index); out_of_range names how many exist.
  [[nodiscard]] Result<CpuSet> node_cpus(unsigned node) const;
  /// The NUMA node holding every CPU of `cpus`; not_found when they span several nodes or none.
  [[nodiscard]] Result<unsigned> node_of(const CpuSet& cpus) const;
  /// Checks that NUMA node `node` exists (out_of_range says how many there are).
  [[nodiscard]] Result<void> check_node(unsigned node) const;

  /// One line per level: "1 NUMA node(s), 1 L3 cache(s), 2 core(s), 2 PU(s); allowed 0-1".
  [[nodiscard]] std::string describe() const;

  struct Impl;

 private:
  friend struct TopologyAccess;
  explicit Topology(Impl* impl) noexcept : impl_(impl) {}
  Impl* impl_{nullptr};
};

struct TopologyAccess;

/// Pins the calling thread to `cpus` (sched_setaffinity through hwloc).
[[nodiscard]] Result<void> pin_current_thread(const CpuSet& cpus);
/// resolve() with a process-wide Topology, then pin_current_thread(). An empty string is a no-op.
[[nodiscard]] Result<void> pin_current_thread(std::string_view affinity);
/// The calling thread's current CPU set.
[[nodiscard]] Result<CpuSet> current_thread_affinity();

/// Checks an affinity string's syntax without looking at the machine: a CPU list, `kind:list`
/// (numa, core, l3, l2, pu), `auto`, or `none` (leave the thread where it is).
[[nodiscard]] Result<void> check_affinity_syntax(std::string_view affinity);

/// One rule: threads of elements whose name or factory matches `pattern` (shell glob, as
/// fnmatch(3): `*`, `?`, `[...]`) get `affinity`.
struct AffinityRule {
  std::string pattern;
  std::string affinity;
  bool operator==(const AffinityRule&) const = default;
};

/// `pattern:affinity;pattern:affinity;...`, e.g. "parallaxsrc0:numa:1;queue*:core:2-3;*:numa:0".
/// Items are separated by ';' or '|' ('|' in GST_TRACERS, which GStreamer splits at ';').
/// The pattern ends at the first ':'; the rest of the item is the affinity. The first rule
/// that matches an element's name or its factory wins; `none` leaves the thread alone. One
/// parser for the GstTracer `parallaxaffinity(rules=...)` and `parallax-launch --affinity`.
class AffinityRules {
 public:
  /// invalid_argument (with the item and what is wrong) for a malformed string. Empty items
  /// (a trailing ';') are skipped; an empty string is no rule at all.
  [[nodiscard]] static Result<AffinityRules> parse(std::string_view text);
  /// The first rule whose pattern matches `name` or `factory`, or nullptr.
  [[nodiscard]] const AffinityRule* match(std::string_view name, std::string_view factory) const;
  /// Resolves every rule against `topo` (an affinity naming what does not exist is an error),
  /// except `auto` and `none`, which need no machine.
  [[nodiscard]] Result<void> check(const Topology& topo) const;
  [[nodiscard]] const std::vector<AffinityRule>& rules() const noexcept { return rules_; }
  [[nodiscard]] bool empty() const noexcept { return rules_.empty(); }
  /// The canonical text ("a:0;b*:numa:1").
  [[nodiscard]] std::string to_string() const;

 private:
  std::vector<AffinityRule> rules_;
};

/// Where a thread bound by rules went.
struct Pinned {
  const AffinityRule* rule{nullptr};  ///< the rule that matched (nullptr: none did)
  CpuSet cpus;                        ///< CPUs applied (empty: thread left alone)
};

/// Pins the calling thread by the first rule matching (name, factory) on the process
/// topology. No match or `none`: left alone. `auto` needs `auto_node`. An affinity that cannot
/// be applied is an error that says what was asked and what the machine has.
[[nodiscard]] Result<Pinned> pin_by_rules(const AffinityRules& rules, std::string_view name,
                                          std::string_view factory,
                                          std::optional<unsigned> auto_node = std::nullopt);

// ---------------------------------------------------------------------------------------------
// Memory placement.

/// "auto" (the node of the calling thread's CPUs) or a node number; invalid_argument else.
/// std::nullopt in the result stands for auto.
[[nodiscard]] Result<std::optional<unsigned>> parse_node(std::string_view text);

/// The NUMA node of the calling thread: the node holding all the CPUs it may run on, else
/// (its affinity spans nodes) the node of the CPU it runs on now.
[[nodiscard]] Result<unsigned> current_thread_node();

/// Where a region's pages are, counted by asking the kernel (move_pages) after binding.
struct MemoryPlacement {
  int node{-1};          ///< the node asked for (auto resolved); -1 none
  std::size_t pages{0};  ///< pages in the region
  std::size_t pages_on_node{0};
  std::size_t pages_elsewhere{0};  ///< present on another node
  std::vector<unsigned> nodes;     ///< nodes holding at least one page
};

/// Binds [addr, addr+len) to `node` (hwloc_set_area_membind, HWLOC_MEMBIND_BIND, migrating
/// pages already there), then the caller prefaults. Errors say what was asked and what exists.
[[nodiscard]] Result<void> bind_memory(const void* addr, std::size_t len, unsigned node);
/// bind_memory(), then commits every page (MADV_POPULATE_WRITE, or a touch per page on old
/// kernels) so the pages land on `node` now, then memory_placement(). For memory nobody
/// writes concurrently (a pool before its first loan): the touch rewrites each page's first byte.
[[nodiscard]] Result<MemoryPlacement> place_memory(std::byte* addr, std::size_t len, unsigned node);
/// Counts where the pages of [addr, addr+len) are now, asking the kernel page by page
/// (move_pages(2) without a target; pages not yet touched count nowhere).
[[nodiscard]] Result<MemoryPlacement> memory_placement(const void* addr, std::size_t len, int node);
/// The single node holding every present page of the region, or -1 (none present, or several).
[[nodiscard]] int memory_node(const void* addr, std::size_t len);

}  // namespace parallax::topology
