// SPDX-License-Identifier: MIT OR Apache-2.0
// Affinity strings: CPU-list parsing (table tests), topology resolution, real thread pinning.
#include <gtest/gtest.h>

#include <thread>

#include "parallax/affinity.h"

using namespace parallax;
using namespace parallax::topology;

namespace {

struct ListCase {
  const char* text;
  std::vector<unsigned> cpus;
};

class ValidLists : public ::testing::TestWithParam<ListCase> {};
TEST_P(ValidLists, Parse) {
  auto r = parse_cpu_list(GetParam().text);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->cpus, GetParam().cpus);
}
INSTANTIATE_TEST_SUITE_P(Affinity, ValidLists,
                         ::testing::Values(ListCase{"0", {0}}, ListCase{"0-3", {0, 1, 2, 3}},
                                           ListCase{"0-3,8", {0, 1, 2, 3, 8}},
                                           ListCase{"8,0-1,1", {0, 1, 8}}, ListCase{"5-5", {5}},
                                           ListCase{"4095", {4095}}));

struct BadCase {
  const char* text;
  const char* message;
};
class InvalidLists : public ::testing::TestWithParam<BadCase> {};
TEST_P(InvalidLists, RejectWithPositionAndExpectation) {
  auto r = parse_cpu_list(GetParam().text);
  ASSERT_FALSE(r.ok()) << GetParam().text;
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_EQ(r.error().message, GetParam().message);
}
INSTANTIATE_TEST_SUITE_P(
    Affinity, InvalidLists,
    ::testing::Values(
        BadCase{"", "empty CPU list"},
        BadCase{"a", "bad CPU list 'a' at column 1: expected a CPU number"},
        BadCase{"1,", "bad CPU list '1,' at column 3: expected a CPU number"},
        BadCase{
            "3-1",
            "bad CPU list '3-1' at column 1: expected a range whose end is not below its start"},
        BadCase{"1-", "bad CPU list '1-' at column 3: expected the end of a range"},
        BadCase{"1;2", "bad CPU list '1;2' at column 2: expected ',' or '-'"},
        BadCase{"-1", "bad CPU list '-1' at column 1: expected a CPU number"},
        BadCase{"4096", "bad CPU list '4096' at column 1: expected CPU numbers up to 4095"},
        BadCase{"99999999999999999999",
                "bad CPU list '99999999999999999999' at column 1: expected a CPU number"},
        BadCase{"0-4096", "bad CPU list '0-4096' at column 1: expected CPU numbers up to 4095"}));

TEST(Affinity, CpuSetPrintsTasksetStyle) {
  EXPECT_EQ((CpuSet{{0, 1, 2, 3, 8}}).to_string(), "0-3,8");
  EXPECT_EQ((CpuSet{{1, 3, 5}}).to_string(), "1,3,5");
  EXPECT_EQ(CpuSet{}.to_string(), "");
}

TEST(Topology, LoadsAndResolvesObjects) {
  auto topo = Topology::load();
  ASSERT_TRUE(topo.ok()) << topo.error().to_string();
  EXPECT_GE(topo->pus(), 1u);
  EXPECT_GE(topo->cores(), 1u);
  EXPECT_FALSE(topo->allowed().empty());
  EXPECT_NE(topo->describe().find("PU(s)"), std::string::npos);
  // numa:0 and core:0 always exist and name allowed CPUs.
  auto numa = topo->resolve("numa:0");
  ASSERT_TRUE(numa.ok()) << numa.error().to_string();
  EXPECT_FALSE(numa->empty());
  auto core = topo->resolve("core:0");
  ASSERT_TRUE(core.ok()) << core.error().to_string();
  for (unsigned c : core->cpus)
    EXPECT_TRUE(topo->allowed().contains(c));
  auto first = topo->resolve(std::to_string(topo->allowed().cpus.front()));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->cpus.size(), 1u);
}

TEST(Topology, NonexistentObjectsAreClearErrors) {
  auto topo = Topology::load();
  ASSERT_TRUE(topo.ok());
  auto numa = topo->resolve("numa:999");
  ASSERT_FALSE(numa.ok());
  EXPECT_EQ(numa.error().code, Errc::out_of_range);
  EXPECT_NE(numa.error().message.find("NUMA node 999 does not exist: this machine has"),
            std::string::npos)
      << numa.error().message;
  auto cpu = topo->resolve("4000");
  ASSERT_FALSE(cpu.ok());
  EXPECT_NE(cpu.error().message.find("CPU 4000 is not available"), std::string::npos);
  auto kind = topo->resolve("socket:0");
  ASSERT_FALSE(kind.ok());
  EXPECT_NE(kind.error().message.find("expected numa, core, l3, l2 or pu"), std::string::npos);
  EXPECT_FALSE(topo->resolve("core:").ok());
}

TEST(Pinning, PinsTheCallingThreadOnly) {
  auto before = current_thread_affinity();
  ASSERT_TRUE(before.ok());
  const unsigned target = before->cpus.back();
  std::thread t([&] {
    auto r = pin_current_thread(std::to_string(target));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    auto now = current_thread_affinity();
    ASSERT_TRUE(now.ok());
    EXPECT_EQ(now->cpus, std::vector<unsigned>{target});
    EXPECT_EQ(static_cast<unsigned>(sched_getcpu()), target);
  });
  t.join();
  auto after = current_thread_affinity();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->cpus, before->cpus);  // the test thread itself was not moved
}

TEST(Pinning, EmptyStringIsANoOpAndBadStringsFail) {
  EXPECT_TRUE(pin_current_thread(std::string_view{}).ok());
  EXPECT_FALSE(pin_current_thread(std::string_view{"l3:77"}).ok());
  EXPECT_FALSE(pin_current_thread(CpuSet{}).ok());
}

}  // namespace
