// SPDX-License-Identifier: MIT OR Apache-2.0
// NUMA placement of the publisher's pool (PublisherOptions::numa_node): bind, prefault, verify,
// report in stats, announce the node to subscribers; errors for nodes that do not exist.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "ipc_test_util.h"
#include "parallax/affinity.h"
#include "parallax/ipc.h"

using namespace parallax;
using namespace parallax::link;
using namespace std::chrono_literals;
using ipc_test::TempDir;

namespace {

PublisherOptions small(std::optional<int> node) {
  PublisherOptions po;
  po.slot_size = 64 * 1024;
  po.slot_count = 4;
  po.numa_node = node;
  return po;
}

// Sends one buffer and returns the subscriber's view of the memory's node.
int announced_node(IpcPublisher& pub) {
  auto sub = IpcSubscriber::connect(pub.path());
  EXPECT_TRUE(sub.ok()) << sub.error().to_string();
  if (!sub.ok()) return -2;
  EXPECT_TRUE(pub.wait_for_subscribers(1, 5s).ok());
  auto loan = pub.loan();
  EXPECT_TRUE(loan.ok());
  EXPECT_TRUE(loan->set_size(16).ok());
  std::memset(loan->data().data(), 7, 16);  // the producer's first touch
  EXPECT_TRUE(pub.send(std::move(*loan)).ok());
  auto b = sub->recv_for(5s);
  EXPECT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ(sub->stats().segments, 1u);
  EXPECT_EQ(sub->stats().last_segment_node, sub->stats().memory_node);
  return sub->stats().memory_node;
}

TEST(IpcPlacement, BoundPoolIsOnItsNodeAndAnnounced) {
  TempDir dir;
  auto pub = IpcPublisher::bind(dir.file("s"), small(0));
  ASSERT_TRUE(pub.ok()) << pub.error().to_string();
  const PublisherStats st = pub->stats();
  EXPECT_EQ(st.numa_node, 0);
  EXPECT_EQ(st.pages, 4u * 64 * 1024 / 4096);
  EXPECT_EQ(st.pages_on_node, st.pages);  // prefaulted, every page verified on node 0
  EXPECT_EQ(announced_node(*pub), 0);
}

TEST(IpcPlacement, AutoIsTheNodeOfTheBindingThread) {
  TempDir dir;
  const unsigned mine = topology::current_thread_node().value();
  auto pub = IpcPublisher::bind(dir.file("s"), small(PublisherOptions::kAutoNode));
  ASSERT_TRUE(pub.ok()) << pub.error().to_string();
  EXPECT_EQ(pub->stats().numa_node, static_cast<int>(mine));
  EXPECT_EQ(pub->stats().pages_on_node, pub->stats().pages);
  EXPECT_EQ(announced_node(*pub), static_cast<int>(mine));
}

TEST(IpcPlacement, UnplacedPoolAnnouncesWhereItsPagesAre) {
  TempDir dir;
  auto pub = IpcPublisher::bind(dir.file("s"), small(std::nullopt));
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(pub->stats().numa_node, -1);
  EXPECT_EQ(pub->stats().pages, 0u);
  {
    // Nobody touched the pool yet: its node is unknown, and announced as such.
    TempDir dir2;
    auto fresh = IpcPublisher::bind(dir2.file("s"), small(std::nullopt));
    ASSERT_TRUE(fresh.ok());
    EXPECT_EQ(announced_node(*fresh), -1);
  }
  // The producer wrote a slot before the subscriber joined: the pages it touched have a node.
  auto loan = pub->loan();
  ASSERT_TRUE(loan.ok());
  std::memset(loan->data().data(), 1, loan->data().size());
  ASSERT_TRUE(pub->send(std::move(*loan)).ok());
  EXPECT_EQ(announced_node(*pub), static_cast<int>(topology::current_thread_node().value()));
}

TEST(IpcPlacement, MissingNodeIsAnErrorUnlessBestEffort) {
  TempDir dir;
  const auto nodes = topology::Topology::process().value()->numa_nodes();
  const int missing = static_cast<int>(nodes) + 6;
  auto pub = IpcPublisher::bind(dir.file("s"), small(missing));
  ASSERT_FALSE(pub.ok());
  EXPECT_EQ(pub.error().code, Errc::out_of_range);
  EXPECT_EQ(pub.error().message,
            "numa-node " + std::to_string(missing) + ": NUMA node " + std::to_string(missing) +
                " does not exist: this machine has " + std::to_string(nodes) + " NUMA node(s)");
  auto bad = small(-5);
  EXPECT_EQ(IpcPublisher::bind(dir.file("s2"), bad).error().code, Errc::invalid_argument);

  auto opts = small(missing);
  opts.numa_best_effort = true;
  auto lenient = IpcPublisher::bind(dir.file("s3"), opts);
  ASSERT_TRUE(lenient.ok()) << lenient.error().to_string();
  EXPECT_EQ(lenient->stats().pages_on_node, 0u);  // nothing placed, and stats say so
}

}  // namespace
