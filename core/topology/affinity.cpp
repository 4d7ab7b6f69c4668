// SPDX-License-Identifier: MIT OR Apache-2.0
// Affinity strings and thread pinning over hwloc.
#include "parallax/affinity.h"

#include <fnmatch.h>
#include <hwloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <mutex>

namespace parallax::topology {

bool CpuSet::contains(unsigned cpu) const noexcept {
  return std::binary_search(cpus.begin(), cpus.end(), cpu);
}

std::string CpuSet::to_string() const {
  std::string out;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1)
      ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) out += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

namespace {

Error list_error(std::string_view list, std::size_t pos, std::string_view expected) {
  return err(Errc::invalid_argument, "bad CPU list '" + std::string(list) + "' at column " +
                                         std::to_string(pos + 1) + ": expected " +
                                         std::string(expected));
}

}  // namespace

Result<CpuSet> parse_cpu_list(std::string_view list) {
  if (list.empty()) return err(Errc::invalid_argument, "empty CPU list");
  std::vector<unsigned> out;
  std::size_t i = 0;
  auto number = [&](unsigned& v) -> bool {
    const char* b = list.data() + i;
    const char* e = list.data() + list.size();
    auto [p, ec] = std::from_chars(b, e, v);
    if (ec != std::errc() || p == b) return false;
    i += static_cast<std::size_t>(p - b);
    return true;
  };
  for (;;) {
    unsigned lo = 0;
    const std::size_t start = i;
    if (!number(lo)) return list_error(list, i, "a CPU number");
    unsigned hi = lo;
    if (i < list.size() && list[i] == '-') {
      ++i;
      if (!number(hi)) return list_error(list, i, "the end of a range");
      if (hi < lo) return list_error(list, start, "a range whose end is not below its start");
    }
    if (hi > kMaxCpu)
      return list_error(list, start, "CPU numbers up to " + std::to_string(kMaxCpu));
    for (unsigned c = lo; c <= hi; ++c)
      out.push_back(c);
    if (i == list.size()) break;
    if (list[i] != ',') return list_error(list, i, "',' or '-'");
    ++i;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return CpuSet{std::move(out)};
}

struct Topology::Impl {
  hwloc_topology_t topo{nullptr};
  ~Impl() {
    if (topo != nullptr) hwloc_topology_destroy(topo);
  }
};

namespace {

CpuSet from_bitmap(hwloc_const_bitmap_t bm) {
  CpuSet s;
  int id = -1;
  while ((id = hwloc_bitmap_next(bm, id)) != -1)
    s.cpus.push_back(static_cast<unsigned>(id));
  return s;
}

struct Bitmap {
  hwloc_bitmap_t bm{hwloc_bitmap_alloc()};
  ~Bitmap() { hwloc_bitmap_free(bm); }
  Bitmap() = default;
  Bitmap(const Bitmap&) = delete;
  Bitmap& operator=(const Bitmap&) = delete;
};

}  // namespace

Result<Topology> Topology::load() {
  auto impl = std::make_unique<Impl>();
  if (hwloc_topology_init(&impl->topo) != 0) return Error::from_errno("hwloc_topology_init");
  if (hwloc_topology_load(impl->topo) != 0) return Error::from_errno("hwloc_topology_load");
  return Topology(impl.release());
}

Result<Topology> Topology::load_synthetic(std::string_view description) {
  auto impl = std::make_unique<Impl>();
  if (hwloc_topology_init(&impl->topo) != 0) return Error::from_errno("hwloc_topology_init");
  const std::string desc(description);
  if (hwloc_topology_set_synthetic(impl->topo, desc.c_str()) != 0)
    return err(Errc::invalid_argument, "bad synthetic topology '" + desc + "'");
  if (hwloc_topology_load(impl->topo) != 0) return Error::from_errno("hwloc_topology_load");
  return Topology(impl.release());
}

Result<Topology> Topology::load_xml(std::string_view path) {
  auto impl = std::make_unique<Impl>();
  if (hwloc_topology_init(&impl->topo) != 0) return Error::from_errno("hwloc_topology_init");
  const std::string p(path);
  if (hwloc_topology_set_xml(impl->topo, p.c_str()) != 0)
    return err(Errc::invalid_argument, "cannot read topology XML '" + p + "'");
  if (hwloc_topology_load(impl->topo) != 0) return Error::from_errno("hwloc_topology_load");
  return Topology(impl.release());
}

Topology::~Topology() {
  delete impl_;
}
Topology::Topology(Topology&& o) noexcept : impl_(std::exchange(o.impl_, nullptr)) {}
Topology& Topology::operator=(Topology&& o) noexcept {
  if (this != &o) {
    delete impl_;
    impl_ = std::exchange(o.impl_, nullptr);
  }
  return *this;
}

namespace {
std::size_t count_of(hwloc_topology_t t, hwloc_obj_type_t type) {
  int n = hwloc_get_nbobjs_by_type(t, type);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}
}  // namespace

std::size_t Topology::numa_nodes() const {
  return count_of(impl_->topo, HWLOC_OBJ_NUMANODE);
}
std::size_t Topology::cores() const {
  return count_of(impl_->topo, HWLOC_OBJ_CORE);
}
std::size_t Topology::l3_caches() const {
  return count_of(impl_->topo, HWLOC_OBJ_L3CACHE);
}
std::size_t Topology::pus() const {
  return count_of(impl_->topo, HWLOC_OBJ_PU);
}

CpuSet Topology::allowed() const {
  return from_bitmap(hwloc_topology_get_allowed_cpuset(impl_->topo));
}

Result<CpuSet> Topology::node_cpus(unsigned node) const {
  PLX_TRY(check_node(node));
  hwloc_obj_t obj = hwloc_get_obj_by_type(impl_->topo, HWLOC_OBJ_NUMANODE, node);
  Bitmap acc;
  if (obj->cpuset != nullptr)
    hwloc_bitmap_and(acc.bm, obj->cpuset, hwloc_topology_get_allowed_cpuset(impl_->topo));
  CpuSet out = from_bitmap(acc.bm);
  if (out.empty())
    return err(Errc::out_of_range, "NUMA node " + std::to_string(node) +
                                       " has no CPU this process may use (allowed CPUs " +
                                       allowed().to_string() + ")");
  return out;
}

Result<void> Topology::check_node(unsigned node) const {
  const std::size_t n = numa_nodes();
  if (node >= n)
    return err(Errc::out_of_range, "NUMA node " + std::to_string(node) +
                                       " does not exist: this machine has " + std::to_string(n) +
                                       " NUMA node(s)");
  return {};
}

Result<unsigned> Topology::node_of(const CpuSet& cpus) const {
  if (cpus.empty()) return err(Errc::invalid_argument, "no CPU given");
  Bitmap want;
  for (unsigned c : cpus.cpus)
    hwloc_bitmap_set(want.bm, c);
  const std::size_t n = numa_nodes();
  for (unsigned i = 0; i < n; ++i) {
    hwloc_obj_t obj = hwloc_get_obj_by_type(impl_->topo, HWLOC_OBJ_NUMANODE, i);
    if (obj != nullptr && obj->cpuset != nullptr && hwloc_bitmap_isincluded(want.bm, obj->cpuset))
      return i;
  }
  return err(Errc::not_found, "CPUs " + cpus.to_string() + " are not all in one NUMA node");
}

Result<CpuSet> Topology::resolve(std::string_view affinity,
                                 std::optional<unsigned> auto_node) const {
  if (affinity == "auto") {
    if (!auto_node)
      return err(Errc::failed_precondition,
                 "affinity 'auto' needs the NUMA node of the memory the thread reads, which is "
                 "not known here (auto is supported by parallaxsrc, GStreamer and native, which "
                 "learns it from the publisher, and by the GStreamer parallaxsink, from its "
                 "numa-node)");
    return node_cpus(*auto_node);
  }
  if (affinity == "none")
    return err(Errc::invalid_argument, "affinity 'none' names no CPU (it means: do not pin)");
  const auto colon = affinity.find(':');
  const CpuSet allow = allowed();
  if (colon == std::string_view::npos) {
    PLX_ASSIGN(CpuSet set, parse_cpu_list(affinity));
    for (unsigned c : set.cpus)
      if (!allow.contains(c))
        return err(Errc::out_of_range, "CPU " + std::to_string(c) +
                                           " is not available; this process may use CPUs " +
                                           allow.to_string());
    return set;
  }
  const std::string_view kind = affinity.substr(0, colon);
  hwloc_obj_type_t type;
  const char* label;
  if (kind == "numa") {
    type = HWLOC_OBJ_NUMANODE;
    label = "NUMA node";
  } else if (kind == "core") {
    type = HWLOC_OBJ_CORE;
    label = "core";
  } else if (kind == "l3") {
    type = HWLOC_OBJ_L3CACHE;
    label = "L3 cache";
  } else if (kind == "l2") {
    type = HWLOC_OBJ_L2CACHE;
    label = "L2 cache";
  } else if (kind == "pu") {
    type = HWLOC_OBJ_PU;
    label = "PU";
  } else {
    return err(Errc::invalid_argument, "unknown topology kind '" + std::string(kind) +
                                           "' in affinity '" + std::string(affinity) +
                                           "': expected numa, core, l3, l2 or pu");
  }
  PLX_ASSIGN(CpuSet indices, parse_cpu_list(affinity.substr(colon + 1)));
  const std::size_t n = count_of(impl_->topo, type);
  Bitmap acc;
  for (unsigned idx : indices.cpus) {
    if (idx >= n)
      return err(Errc::out_of_range, std::string(label) + " " + std::to_string(idx) +
                                         " does not exist: this machine has " + std::to_string(n) +
                                         " " + label + "(s)");
    hwloc_obj_t obj = hwloc_get_obj_by_type(impl_->topo, type, idx);
    if (obj == nullptr || obj->cpuset == nullptr)
      return err(Errc::not_found, std::string(label) + " " + std::to_string(idx) + " has no CPUs");
    hwloc_bitmap_or(acc.bm, acc.bm, obj->cpuset);
  }
  hwloc_bitmap_and(acc.bm, acc.bm, hwloc_topology_get_allowed_cpuset(impl_->topo));
  CpuSet out = from_bitmap(acc.bm);
  if (out.empty())
    return err(Errc::out_of_range,
               "affinity '" + std::string(affinity) + "' names no CPU this process may use");
  return out;
}

std::string Topology::describe() const {
  return std::to_string(numa_nodes()) + " NUMA node(s), " + std::to_string(l3_caches()) +
         " L3 cache(s), " + std::to_string(cores()) + " core(s), " + std::to_string(pus()) +
         " PU(s); allowed CPUs " + allowed().to_string();
}

Result<void> pin_current_thread(const CpuSet& cpus) {
  if (cpus.empty()) return err(Errc::invalid_argument, "cannot pin a thread to no CPU");
  cpu_set_t set;
  CPU_ZERO(&set);
  for (unsigned c : cpus.cpus) {
    if (c >= CPU_SETSIZE) return err(Errc::out_of_range, "CPU " + std::to_string(c) + " too large");
    CPU_SET(c, &set);
  }
  const int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  if (rc != 0) return Error::from_errno("pthread_setaffinity_np(" + cpus.to_string() + ")", rc);
  return {};
}

namespace {
Result<const Topology*> process_topology();
}
Result<const Topology*> Topology::process() {
  return process_topology();
}

namespace {
Result<const Topology*> process_topology() {
  static std::once_flag once;
  static Topology* topo = nullptr;
  static Error error;
  std::call_once(once, [] {
    auto t = Topology::load();
    if (t.ok())
      topo = new Topology(std::move(t).value());  // lives for the process
    else
      error = t.error();
  });
  if (topo == nullptr) return error;
  return static_cast<const Topology*>(topo);
}
}  // namespace

Result<void> pin_current_thread(std::string_view affinity) {
  if (affinity.empty() || affinity == "none") return {};
  PLX_ASSIGN(const Topology* topo, process_topology());
  PLX_ASSIGN(CpuSet set, topo->resolve(affinity));
  return pin_current_thread(set);
}

Result<CpuSet> current_thread_affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int rc = pthread_getaffinity_np(pthread_self(), sizeof set, &set);
  if (rc != 0) return Error::from_errno("pthread_getaffinity_np", rc);
  CpuSet out;
  for (unsigned c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.cpus.push_back(c);
  return out;
}

Result<void> check_affinity_syntax(std::string_view affinity) {
  if (affinity == "auto" || affinity == "none") return {};
  if (affinity.empty()) return err(Errc::invalid_argument, "empty affinity");
  const auto colon = affinity.find(':');
  if (colon == std::string_view::npos) {
    PLX_TRY(parse_cpu_list(affinity));
    return {};
  }
  const std::string_view kind = affinity.substr(0, colon);
  if (kind != "numa" && kind != "core" && kind != "l3" && kind != "l2" && kind != "pu")
    return err(Errc::invalid_argument, "unknown topology kind '" + std::string(kind) +
                                           "' in affinity '" + std::string(affinity) +
                                           "': expected numa, core, l3, l2 or pu");
  PLX_TRY(parse_cpu_list(affinity.substr(colon + 1)));
  return {};
}

namespace {
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}
bool glob_match(const std::string& pattern, std::string_view text) {
  const std::string t(text);
  return ::fnmatch(pattern.c_str(), t.c_str(), 0) == 0;
}
}  // namespace

Result<AffinityRules> AffinityRules::parse(std::string_view text) {
  AffinityRules out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find_first_of(";|", start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view item = trim(text.substr(start, end - start));
    start = end + 1;
    if (item.empty()) continue;
    const auto colon = item.find(':');
    if (colon == std::string_view::npos)
      return err(Errc::invalid_argument, "affinity rule '" + std::string(item) +
                                             "' has no ':': expected PATTERN:AFFINITY, e.g. "
                                             "'queue*:numa:0'");
    const std::string_view pattern = trim(item.substr(0, colon));
    const std::string_view affinity = trim(item.substr(colon + 1));
    if (pattern.empty())
      return err(Errc::invalid_argument, "affinity rule '" + std::string(item) +
                                             "' has an empty pattern (use '*' for every element)");
    if (auto r = check_affinity_syntax(affinity); !r)
      return err(Errc::invalid_argument,
                 "affinity rule '" + std::string(item) + "': " + r.error().message);
    out.rules_.push_back({std::string(pattern), std::string(affinity)});
  }
  return out;
}

const AffinityRule* AffinityRules::match(std::string_view name, std::string_view factory) const {
  for (const AffinityRule& r : rules_)
    if (glob_match(r.pattern, name) || (!factory.empty() && glob_match(r.pattern, factory)))
      return &r;
  return nullptr;
}

Result<void> AffinityRules::check(const Topology& topo) const {
  for (const AffinityRule& r : rules_) {
    if (r.affinity == "auto" || r.affinity == "none") continue;
    if (auto c = topo.resolve(r.affinity); !c)
      return err(c.error().code,
                 "affinity rule '" + r.pattern + ":" + r.affinity + "': " + c.error().message);
  }
  return {};
}

std::string AffinityRules::to_string() const {
  std::string out;
  for (const AffinityRule& r : rules_) {
    if (!out.empty()) out += ';';
    out += r.pattern + ":" + r.affinity;
  }
  return out;
}

Result<Pinned> pin_by_rules(const AffinityRules& rules, std::string_view name,
                            std::string_view factory, std::optional<unsigned> auto_node) {
  Pinned out;
  out.rule = rules.match(name, factory);
  if (out.rule == nullptr || out.rule->affinity == "none") return out;
  PLX_ASSIGN(const Topology* topo, process_topology());
  auto cpus = topo->resolve(out.rule->affinity, auto_node);
  if (!cpus)
    return err(cpus.error().code, "affinity '" + out.rule->affinity + "' (rule '" +
                                      out.rule->pattern + "') for '" + std::string(name) + "': " +
                                      cpus.error().message + "; this machine: " + topo->describe());
  if (auto r = pin_current_thread(*cpus); !r)
    return err(r.error().code, "affinity '" + out.rule->affinity + "' for '" + std::string(name) +
                                   "': " + r.error().message +
                                   "; this machine: " + topo->describe());
  out.cpus = std::move(cpus).value();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Memory placement.

Result<std::optional<unsigned>> parse_node(std::string_view text) {
  text = trim(text);
  if (text == "auto") return std::optional<unsigned>{};
  unsigned v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || v > kMaxCpu)
    return err(Errc::invalid_argument,
               "bad NUMA node '" + std::string(text) + "': expected a node number or 'auto'");
  return std::optional<unsigned>{v};
}

Result<unsigned> current_thread_node() {
  PLX_ASSIGN(const Topology* topo, process_topology());
  PLX_ASSIGN(CpuSet mine, current_thread_affinity());
  if (auto n = topo->node_of(mine)) return *n;
  const int cpu = ::sched_getcpu();
  if (cpu < 0) return Error::from_errno("sched_getcpu");
  return topo->node_of(CpuSet{{static_cast<unsigned>(cpu)}});
}

struct TopologyAccess {
  static hwloc_topology_t get(const Topology& t) { return t.impl_->topo; }
};

Result<void> bind_memory(const void* addr, std::size_t len, unsigned node) {
  if (addr == nullptr || len == 0) return err(Errc::invalid_argument, "no memory to bind");
  PLX_ASSIGN(const Topology* topo, process_topology());
  PLX_TRY(topo->check_node(node));
  hwloc_topology_t t = TopologyAccess::get(*topo);
  hwloc_obj_t obj = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, node);
  if (obj == nullptr || obj->nodeset == nullptr)
    return err(Errc::not_found, "NUMA node " + std::to_string(node) + " has no memory");
  if (hwloc_set_area_membind(t, addr, len, obj->nodeset, HWLOC_MEMBIND_BIND,
                             HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_MIGRATE) != 0) {
    const int e = errno;
    return err(errc_from_errno(e), "could not bind " + std::to_string(len) +
                                       " bytes to NUMA node " + std::to_string(node) +
                                       " (hwloc_set_area_membind: " + std::strerror(e) +
                                       "); this machine: " + topo->describe());
  }
  return {};
}

Result<MemoryPlacement> memory_placement(const void* addr, std::size_t len, int node) {
  MemoryPlacement out;
  out.node = node;
  if (addr == nullptr || len == 0) return out;
  PLX_ASSIGN(const Topology* topo, process_topology());
  hwloc_topology_t t = TopologyAccess::get(*topo);
  int os_node = -1;
  if (node >= 0) {
    hwloc_obj_t obj = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(node));
    if (obj != nullptr) os_node = static_cast<int>(obj->os_index);
  }
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const auto base = reinterpret_cast<std::uintptr_t>(addr) & ~(page - 1);
  const std::size_t end = reinterpret_cast<std::uintptr_t>(addr) + len;
  out.pages = (end - base + page - 1) / page;
  // move_pages(2) with no target nodes only reports where each page is (or -ENOENT).
  constexpr std::size_t kBatch = 1024;
  std::vector<void*> pages(kBatch);
  std::vector<int> status(kBatch);
  std::vector<int> seen_os;
  for (std::size_t i = 0; i < out.pages; i += kBatch) {
    const std::size_t n = std::min(kBatch, out.pages - i);
    for (std::size_t j = 0; j < n; ++j)
      pages[j] = reinterpret_cast<void*>(base + (i + j) * page);
    if (::syscall(SYS_move_pages, 0, n, pages.data(), nullptr, status.data(), 0) != 0)
      return Error::from_errno("move_pages");
    for (std::size_t j = 0; j < n; ++j) {
      if (status[j] < 0) continue;  // not present (never touched)
      if (std::find(seen_os.begin(), seen_os.end(), status[j]) == seen_os.end())
        seen_os.push_back(status[j]);
      if (status[j] == os_node)
        ++out.pages_on_node;
      else
        ++out.pages_elsewhere;
    }
  }
  // Nodes as hwloc logical indexes (what numa:N and numa-node=N mean).
  Bitmap where;
  for (int os : seen_os) {
    hwloc_obj_t obj = hwloc_get_numanode_obj_by_os_index(t, static_cast<unsigned>(os));
    if (obj != nullptr) hwloc_bitmap_set(where.bm, obj->logical_index);
  }
  int l = -1;
  while ((l = hwloc_bitmap_next(where.bm, l)) != -1)
    out.nodes.push_back(static_cast<unsigned>(l));
  return out;
}

Result<MemoryPlacement> place_memory(std::byte* addr, std::size_t len, unsigned node) {
  PLX_TRY(bind_memory(addr, len, node));
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  if (::madvise(addr, len, MADV_POPULATE_WRITE) != 0) {
    if (errno != EINVAL) return Error::from_errno("madvise(MADV_POPULATE_WRITE)");
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    for (std::size_t off = 0; off < len; off += page) {
      auto* p = reinterpret_cast<volatile std::byte*>(addr + off);
      *p = *p;
    }
  }
  PLX_ASSIGN(MemoryPlacement placed, memory_placement(addr, len, static_cast<int>(node)));
  if (placed.pages_elsewhere != 0)
    return err(Errc::unavailable,
               std::to_string(placed.pages_elsewhere) + " of " + std::to_string(placed.pages) +
                   " pages are not on NUMA node " + std::to_string(node) +
                   " after binding (the node is out of memory, or they were placed before)");
  return placed;
}

int memory_node(const void* addr, std::size_t len) {
  auto p = memory_placement(addr, len, -1);
  if (!p || p->nodes.size() != 1) return -1;
  return static_cast<int>(p->nodes.front());
}

}  // namespace parallax::topology
