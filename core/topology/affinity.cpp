// SPDX-License-Identifier: MIT OR Apache-2.0
// Affinity strings and thread pinning over hwloc.
#include "parallax/affinity.h"

#include <hwloc.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <charconv>
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

Result<CpuSet> Topology::resolve(std::string_view affinity) const {
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
  if (affinity.empty()) return {};
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

}  // namespace parallax::topology
