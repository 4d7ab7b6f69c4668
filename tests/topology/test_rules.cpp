// SPDX-License-Identifier: MIT OR Apache-2.0
// Affinity rules and placement on synthetic 2- and 4-node machines (hwloc synthetic topologies):
// rule parsing and first-match, `auto`, node lookups, and the errors users see.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <thread>

#include "parallax/affinity.h"

using namespace parallax;
using namespace parallax::topology;

namespace {

// 2 packages x 1 node x 8 PUs, and 2 packages x 2 nodes x 8 PUs.
constexpr const char* kTwoNodes = "pack:2 numa:1 l3:1 core:4 pu:2";
constexpr const char* kFourNodes = "pack:2 numa:2 l3:1 core:4 pu:2";

Topology synthetic(const char* desc) {
  auto t = Topology::load_synthetic(desc);
  EXPECT_TRUE(t.ok()) << t.error().to_string();
  return std::move(t).value();
}

TEST(Rules, ParseKeepsOrderAndTrims) {
  auto r = AffinityRules::parse(" parallaxsrc0:numa:1 ; queue*:core:2-3;*:numa:0;");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->rules(), (std::vector<AffinityRule>{
                            {"parallaxsrc0", "numa:1"}, {"queue*", "core:2-3"}, {"*", "numa:0"}}));
  EXPECT_EQ(r->to_string(), "parallaxsrc0:numa:1;queue*:core:2-3;*:numa:0");
  auto bars = AffinityRules::parse("parallaxsrc0:numa:1|queue*:core:2-3;*:numa:0");
  ASSERT_TRUE(bars.ok());
  EXPECT_EQ(bars->rules(), r->rules());
  auto empty = AffinityRules::parse("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(Rules, FirstMatchWinsByNameOrFactory) {
  auto r = AffinityRules::parse("parallaxsrc0:numa:1;queue?:core:2-3;x264*:none;*:numa:0");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->match("parallaxsrc0", "parallaxsrc")->affinity, "numa:1");
  EXPECT_EQ(r->match("parallaxsrc1", "parallaxsrc")->affinity, "numa:0");
  EXPECT_EQ(r->match("queue1", "queue")->affinity, "core:2-3");
  EXPECT_EQ(r->match("q12", "queue")->affinity, "numa:0");  // queue? needs exactly one char
  EXPECT_EQ(r->match("enc", "x264enc")->affinity, "none");  // by factory
  auto no_default = AffinityRules::parse("queue*:0");
  ASSERT_TRUE(no_default.ok());
  EXPECT_EQ(no_default->match("fakesink0", "fakesink"), nullptr);
}

struct BadRule {
  const char* text;
  const char* message;
};
class BadRules : public ::testing::TestWithParam<BadRule> {};
TEST_P(BadRules, ClearError) {
  auto r = AffinityRules::parse(GetParam().text);
  ASSERT_FALSE(r.ok()) << GetParam().text;
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_EQ(r.error().message, GetParam().message);
}
INSTANTIATE_TEST_SUITE_P(
    Rules, BadRules,
    ::testing::Values(
        BadRule{"queue0",
                "affinity rule 'queue0' has no ':': expected PATTERN:AFFINITY, e.g. "
                "'queue*:numa:0'"},
        BadRule{":numa:0",
                "affinity rule ':numa:0' has an empty pattern (use '*' for every "
                "element)"},
        BadRule{"q:", "affinity rule 'q:': empty affinity"},
        BadRule{"q:socket:1",
                "affinity rule 'q:socket:1': unknown topology kind 'socket' in "
                "affinity 'socket:1': expected numa, core, l3, l2 or pu"},
        BadRule{"a:0;b:numa:x",
                "affinity rule 'b:numa:x': bad CPU list 'x' at column 1: expected a CPU number"}));

TEST(Synthetic, TwoAndFourNodeLayouts) {
  Topology two = synthetic(kTwoNodes);
  EXPECT_EQ(two.numa_nodes(), 2u);
  EXPECT_EQ(two.pus(), 16u);
  EXPECT_EQ(two.node_cpus(1)->to_string(), "8-15");
  Topology four = synthetic(kFourNodes);
  EXPECT_EQ(four.numa_nodes(), 4u);
  EXPECT_EQ(four.pus(), 32u);
  EXPECT_EQ(four.resolve("numa:1")->to_string(), "8-15");
  EXPECT_EQ(four.resolve("numa:2-3")->to_string(), "16-31");
  EXPECT_EQ(four.resolve("core:2-3")->to_string(), "4-7");
  EXPECT_EQ(four.resolve("l3:3")->to_string(), "24-31");
  EXPECT_EQ(four.resolve("pu:4")->to_string(), "4");
  EXPECT_EQ(four.resolve("0-3,8")->to_string(), "0-3,8");
}

TEST(Synthetic, AutoIsTheCpusOfTheMemorysNode) {
  Topology four = synthetic(kFourNodes);
  EXPECT_EQ(four.resolve("auto", 3u)->to_string(), "24-31");
  EXPECT_EQ(four.resolve("auto", 0u)->to_string(), "0-7");
  auto unknown = four.resolve("auto");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Errc::failed_precondition);
  auto missing = four.resolve("auto", 4u);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "NUMA node 4 does not exist: this machine has 4 NUMA node(s)");
}

TEST(Synthetic, NodeOfCpus) {
  Topology four = synthetic(kFourNodes);
  EXPECT_EQ(*four.node_of(CpuSet{{8, 9, 15}}), 1u);
  EXPECT_EQ(*four.node_of(CpuSet{{31}}), 3u);
  auto spread = four.node_of(CpuSet{{7, 8}});
  ASSERT_FALSE(spread.ok());
  EXPECT_EQ(spread.error().code, Errc::not_found);
}

TEST(Synthetic, ErrorsSayWhatWasAskedAndWhatExists) {
  Topology two = synthetic(kTwoNodes);
  auto node = two.resolve("numa:2");
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.error().message, "NUMA node 2 does not exist: this machine has 2 NUMA node(s)");
  auto cpu = two.resolve("0,16");
  ASSERT_FALSE(cpu.ok());
  EXPECT_EQ(cpu.error().message, "CPU 16 is not available; this process may use CPUs 0-15");
  EXPECT_EQ(two.check_node(2).error().code, Errc::out_of_range);
  EXPECT_TRUE(two.check_node(1).ok());
}

TEST(Synthetic, RulesCheckAgainstTheMachine) {
  auto rules = AffinityRules::parse("src*:numa:3;q*:auto;f*:none;*:numa:0");
  ASSERT_TRUE(rules.ok());
  EXPECT_TRUE(rules->check(synthetic(kFourNodes)).ok());
  auto on_two = rules->check(synthetic(kTwoNodes));
  ASSERT_FALSE(on_two.ok());
  EXPECT_EQ(on_two.error().message,
            "affinity rule 'src*:numa:3': NUMA node 3 does not exist: this machine has 2 NUMA "
            "node(s)");
}

TEST(Synthetic, BadDescriptionIsInvalidArgument) {
  auto t = Topology::load_synthetic("pack:two");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, Errc::invalid_argument);
}

TEST(Synthetic, XmlTopologyCheckedIn) {
  auto t = Topology::load_xml(PARALLAX_TOPOLOGY_DIR "/four-nodes.xml");
  ASSERT_TRUE(t.ok()) << t.error().to_string();
  EXPECT_EQ(t->numa_nodes(), 4u);
  EXPECT_EQ(t->resolve("numa:2")->to_string(), "16-23");
  EXPECT_FALSE(Topology::load_xml(PARALLAX_TOPOLOGY_DIR "/no-such.xml").ok());
}

// ---- this machine ----------------------------------------------------------------------------

TEST(RealPinning, PinByRulesAppliesTheFirstMatch) {
  auto rules = AffinityRules::parse("other*:none;worker*:numa:0;*:0");
  ASSERT_TRUE(rules.ok());
  auto topo = Topology::process();
  ASSERT_TRUE(topo.ok());
  const CpuSet node0 = (*topo)->node_cpus(0).value();
  std::thread([&] {
    auto p = pin_by_rules(*rules, "worker1", "queue");
    ASSERT_TRUE(p.ok()) << p.error().to_string();
    ASSERT_NE(p->rule, nullptr);
    EXPECT_EQ(p->rule->pattern, "worker*");
    EXPECT_EQ(p->cpus, node0);
    EXPECT_EQ(current_thread_affinity().value(), node0);  // read back from the thread itself
    auto left = pin_by_rules(*rules, "other", "queue");
    ASSERT_TRUE(left.ok());
    EXPECT_TRUE(left->cpus.empty());
  }).join();
}

TEST(RealPinning, UnknownObjectIsAnErrorNamingTheMachine) {
  auto rules = AffinityRules::parse("*:numa:9");
  ASSERT_TRUE(rules.ok());
  std::thread([&] {
    const CpuSet before = current_thread_affinity().value();
    auto p = pin_by_rules(*rules, "src", "parallaxsrc");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().code, Errc::out_of_range);
    EXPECT_NE(p.error().message.find("affinity 'numa:9' (rule '*') for 'src': NUMA node 9 does "
                                     "not exist"),
              std::string::npos)
        << p.error().message;
    EXPECT_NE(p.error().message.find("this machine: "), std::string::npos);
    EXPECT_EQ(current_thread_affinity().value(), before);  // nothing changed
  }).join();
}

TEST(RealPinning, CurrentThreadNodeAndNodeParsing) {
  auto n = current_thread_node();
  ASSERT_TRUE(n.ok()) << n.error().to_string();
  EXPECT_LT(*n, Topology::process().value()->numa_nodes());
  EXPECT_EQ(*parse_node("1"), std::optional<unsigned>{1u});
  EXPECT_EQ(*parse_node("auto"), std::nullopt);
  EXPECT_FALSE(parse_node("-1").ok());
  EXPECT_FALSE(parse_node("one").ok());
  EXPECT_FALSE(parse_node("").ok());
}

TEST(MemoryPlacement, BindPrefaultAndCountPages) {
  const std::size_t len = 64 * 4096;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  auto before = memory_placement(p, len, 0);
  ASSERT_TRUE(before.ok()) << before.error().to_string();
  EXPECT_EQ(before->pages, 64u);
  EXPECT_EQ(before->pages_on_node, 0u);  // nothing touched yet
  EXPECT_EQ(memory_node(p, len), -1);
  ASSERT_TRUE(bind_memory(p, len, 0).ok());
  std::memset(p, 1, len);
  auto after = memory_placement(p, len, 0);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->pages_on_node, 64u);
  EXPECT_EQ(after->pages_elsewhere, 0u);
  EXPECT_EQ(after->nodes, std::vector<unsigned>{0});
  EXPECT_EQ(memory_node(p, len), 0);
  auto bad = bind_memory(p, len, 5);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::out_of_range);
  ::munmap(p, len);
}

}  // namespace
