// SPDX-License-Identifier: MIT OR Apache-2.0
// Executor tests: EOS through branches and queues, errors, backpressure, leaky queues,
// stop and EOS requests mid-stream, events and the bus, programmatic graphs and validation.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "test_util.h"

namespace {

using namespace plx_test;
using namespace std::chrono_literals;
using parallax::Errc;

TEST(Executor, RunsToEos) {
  auto p =
      Pipeline::from_string("nullsource num-buffers=1000 size=16 ! identity name=id ! nullsink");
  ASSERT_TRUE(p.ok());
  PipelineExecutor ex;
  auto r = ex.run(*p);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(u64(p->find("id"), "buffers"), 1000u);
  EXPECT_EQ(u64(p->find("id"), "bytes"), 16000u);
  EXPECT_FALSE(ex.running());
}

TEST(Executor, ZeroBuffersStillReachesEos) {
  auto p = Pipeline::from_string("nullsource num-buffers=0 ! queue ! nullsink");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(PipelineExecutor().run(*p).ok());
}

TEST(Executor, EosThroughTeeBranchesAndQueues) {
  auto p = Pipeline::from_string(
      "nullsource num-buffers=500 size=8 ! tee name=t "
      "t. ! queue ! identity name=a ! nullsink "
      "t. ! queue max-size-buffers=2 ! identity name=b ! queue ! nullsink "
      "t. ! identity name=c ! nullsink");
  ASSERT_TRUE(p.ok()) << p.error().message;
  PipelineExecutor ex;
  auto r = ex.run(*p);
  ASSERT_TRUE(r.ok()) << r.error().message;
  for (const char* n : {"a", "b", "c"})
    EXPECT_EQ(u64(p->find(n), "buffers"), 500u) << n;
}

TEST(Executor, QueuePreservesOrderAndEventSequence) {
  Pipeline p;
  ASSERT_TRUE(p.parse("nullsource num-buffers=300 ! queue max-size-buffers=7 ! "
                      "video/x-raw,format=RGBA ! queue name=q")
                  .ok());
  auto sink = std::make_unique<RecordingSink>();
  RecordingSink* rec = sink.get();
  NodeId k = p.add_node("rec", std::move(sink)).value();
  ASSERT_TRUE(p.link(*p.node("q"), k).ok());
  ASSERT_TRUE(PipelineExecutor().run(p).ok());
  auto s = rec->snapshot();
  ASSERT_EQ(s.sequences.size(), 300u);
  for (std::size_t i = 0; i < s.sequences.size(); ++i)
    ASSERT_EQ(s.sequences[i], i);
  EXPECT_EQ(s.events, (std::vector<EventType>{EventType::stream_start, EventType::caps,
                                              EventType::segment, EventType::eos}));
  EXPECT_EQ(s.caps, std::vector<std::string>{"video/x-raw, format=RGBA"});
}

TEST(Executor, ErrorStopsThePipelineAndNamesTheElement) {
  auto p = Pipeline::from_string("nullsource ! identity name=bad error-after=10 ! nullsink");
  ASSERT_TRUE(p.ok());
  const auto t0 = std::chrono::steady_clock::now();
  auto r = PipelineExecutor().run(*p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::internal);
  EXPECT_EQ(r.error().message, "element 'bad': error-after reached: failing on buffer 11");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(Executor, ErrorBehindQueueInOneBranchStopsEverything) {
  auto p = Pipeline::from_string(
      "nullsource ! tee name=t  t. ! queue ! identity error-after=100 name=bad ! nullsink "
      "t. ! queue ! nullsink");
  ASSERT_TRUE(p.ok());
  auto r = PipelineExecutor().run(*p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("element 'bad'"), std::string::npos) << r.error().message;
}

TEST(Executor, StartFailureIsReportedWithTheElement) {
  auto p = Pipeline::from_string("filesrc location=/nonexistent/parallax-test ! nullsink");
  ASSERT_TRUE(p.ok());
  auto r = PipelineExecutor().run(*p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::not_found);
  EXPECT_NE(
      r.error().message.find("element 'filesrc0': could not open '/nonexistent/parallax-test'"),
      std::string::npos)
      << r.error().message;
}

TEST(Executor, BackpressureBoundsWhatASlowSinkLetsPile) {
  auto p = Pipeline::from_string(
      "nullsource size=1024 name=src ! queue max-size-buffers=5 name=q ! identity sleep-time=1000 "
      "name=slow ! nullsink");
  ASSERT_TRUE(p.ok());
  PipelineExecutor ex;
  ASSERT_TRUE(ex.start(*p).ok());
  std::uint64_t max_level = 0, max_gap = 0;
  for (int i = 0; i < 30; ++i) {
    std::this_thread::sleep_for(10ms);
    max_level = std::max(max_level, u64(p->find("q"), "current-level-buffers"));
    auto st = ex.stats();
    // stats: src, q, slow, sink in topological order
    const std::uint64_t produced = st[0].buffers, consumed = st[2].buffers;
    max_gap = std::max(max_gap, produced - std::min(produced, consumed));
  }
  ex.stop();
  EXPECT_EQ(ex.wait().error().code, Errc::cancelled);
  EXPECT_LE(max_level, 5u);
  // Queued (5) + the batch the queue thread holds (<= 5) + one in each thread's hands.
  EXPECT_LE(max_gap, 12u);
  EXPECT_GT(ex.stats()[3].buffers, 0u);
}

TEST(Executor, LeakyDownstreamDropsInsteadOfBlocking) {
  auto p = Pipeline::from_string(
      "nullsource num-buffers=2000 ! queue max-size-buffers=4 leaky=downstream ! "
      "identity sleep-time=200 name=slow ! nullsink");
  ASSERT_TRUE(p.ok());
  PipelineExecutor ex;
  ASSERT_TRUE(ex.run(*p).ok());
  const auto seen = u64(p->find("slow"), "buffers");
  EXPECT_GT(seen, 0u);
  EXPECT_LT(seen, 2000u);
}

TEST(Executor, LeakyUpstreamDropsNewBuffers) {
  Pipeline p;
  ASSERT_TRUE(p.parse("nullsource num-buffers=2000 ! queue max-size-buffers=4 leaky=upstream ! "
                      "identity sleep-time=200 ! queue name=q")
                  .ok());
  auto sink = std::make_unique<RecordingSink>();
  RecordingSink* rec = sink.get();
  ASSERT_TRUE(p.link(*p.node("q"), p.add_node("rec", std::move(sink)).value()).ok());
  ASSERT_TRUE(PipelineExecutor().run(p).ok());
  auto s = rec->snapshot();
  ASSERT_GT(s.sequences.size(), 0u);
  ASSERT_LT(s.sequences.size(), 2000u);
  EXPECT_EQ(s.sequences.front(), 0u) << "upstream leaking keeps the oldest";
  EXPECT_TRUE(std::is_sorted(s.sequences.begin(), s.sequences.end()));
}

TEST(Executor, StopMidStream) {
  auto p = Pipeline::from_string("nullsource ! queue ! nullsink  ");
  ASSERT_TRUE(p.ok());
  PipelineExecutor ex;
  ASSERT_TRUE(ex.start(*p).ok());
  EXPECT_TRUE(ex.running());
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(ex.wait_for(1ms).has_value());
  const auto t0 = std::chrono::steady_clock::now();
  ex.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  auto r = ex.wait();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::cancelled);
  EXPECT_FALSE(ex.running());
  EXPECT_GT(ex.stats()[2].buffers, 0u);
}

TEST(Executor, StopFromAnotherThreadWhileWaiting) {
  auto p = Pipeline::from_string("nullsource ! identity sleep-time=100 ! nullsink");
  ASSERT_TRUE(p.ok());
  PipelineExecutor ex;
  ASSERT_TRUE(ex.start(*p).ok());
  std::thread stopper([&] {
    std::this_thread::sleep_for(30ms);
    ex.stop();
  });
  auto r = ex.wait();
  stopper.join();
  EXPECT_EQ(r.error().code, Errc::cancelled);
}

TEST(Executor, SendEosEndsCleanly) {
  auto p =
      Pipeline::from_string("nullsource ! tee name=t t. ! queue ! nullsink t. ! queue ! nullsink");
  ASSERT_TRUE(p.ok());
  PipelineExecutor ex;
  ASSERT_TRUE(ex.start(*p).ok());
  std::this_thread::sleep_for(20ms);
  ex.send_eos();
  auto r = ex.wait();
  EXPECT_TRUE(r.ok()) << r.error().message;
}

TEST(Executor, RestartsAfterARun) {
  auto p = Pipeline::from_string("nullsource num-buffers=10 ! identity name=id ! nullsink");
  ASSERT_TRUE(p.ok());
  PipelineExecutor ex;
  ASSERT_TRUE(ex.run(*p).ok());
  ASSERT_TRUE(ex.run(*p).ok());
  EXPECT_EQ(u64(p->find("id"), "buffers"), 10u);
}

TEST(Executor, RefusesAnInvalidPipelineOrASecondStart) {
  Pipeline empty;
  EXPECT_EQ(PipelineExecutor().run(empty).error().code, Errc::failed_precondition);
  auto p = Pipeline::from_string("nullsource ! identity sleep-time=1000 ! nullsink");
  ASSERT_TRUE(p.ok());
  PipelineExecutor ex;
  ASSERT_TRUE(ex.start(*p).ok());
  EXPECT_EQ(ex.start(*p).error().code, Errc::failed_precondition);
  PipelineExecutor other;
  EXPECT_EQ(other.start(*p).error().code, Errc::failed_precondition);
  ex.stop();
}

TEST(Executor, BusCarriesStateChangesEosAndErrors) {
  auto p = Pipeline::from_string("nullsource num-buffers=3 ! nullsink");
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(PipelineExecutor().run(*p).ok());
  bool eos = false, playing = false;
  while (auto m = p->bus().pop()) {
    if (m->type == MessageType::eos) eos = true;
    if (m->type == MessageType::state_changed && m->source == "pipeline" &&
        m->new_state == State::playing)
      playing = true;
  }
  EXPECT_TRUE(eos);
  EXPECT_TRUE(playing);

  auto q = Pipeline::from_string("nullsource ! identity error-after=0 name=x ! nullsink");
  ASSERT_TRUE(q.ok());
  ASSERT_FALSE(PipelineExecutor().run(*q).ok());
  std::optional<Message> first_error;
  while (auto m = q->bus().pop())
    if (m->type == MessageType::error && !first_error) first_error = m;
  ASSERT_TRUE(first_error.has_value());
  EXPECT_EQ(first_error->source, "x");
}

TEST(Executor, TraceEventsPostsEventMessages) {
  auto p = Pipeline::from_string("nullsource num-buffers=1 ! audio/x-raw,rate=48000 ! nullsink");
  ASSERT_TRUE(p.ok());
  std::vector<std::string> lines;
  std::mutex mu;
  p->bus().set_sync_handler([&](const Message& m) {
    std::lock_guard l(mu);
    if (m.type == MessageType::event) lines.push_back(m.to_string());
  });
  ExecutorOptions o;
  o.trace_events = true;
  ASSERT_TRUE(PipelineExecutor(o).run(*p).ok());
  std::lock_guard l(mu);
  EXPECT_NE(std::find(lines.begin(), lines.end(),
                      "/pipeline/capsfilter0.src: caps: audio/x-raw, rate=48000"),
            lines.end());
  EXPECT_NE(std::find(lines.begin(), lines.end(), "/pipeline/nullsource0.src: eos"), lines.end());
}

TEST(Executor, ThreadHookSeesEveryStreamingThreadAndItsAffinity) {
  auto p = Pipeline::from_string(
      "nullsource num-buffers=5 affinity=0-1 ! queue affinity=numa:0 ! nullsink");
  ASSERT_TRUE(p.ok());
  std::mutex mu;
  std::vector<std::string> seen;
  ExecutorOptions o;
  o.thread_hook = [&](Element& e, std::string_view affinity) -> parallax::Result<void> {
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof name);
    std::lock_guard l(mu);
    seen.push_back(e.name() + "=" + std::string(affinity) + "@" + name);
    return parallax::ok();
  };
  ASSERT_TRUE(PipelineExecutor(o).run(*p).ok());
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"nullsource0=0-1@plx-nullsource0",
                                            "queue0=numa:0@plx-queue0"}));
}

TEST(Executor, CapsMismatchIsNotNegotiated) {
  Pipeline p;
  NodeId src = p.add_node("src", std::make_unique<CapsSource>("audio/x-raw,rate=44100", 5)).value();
  NodeId cf = p.add_element("capsfilter").value();
  ASSERT_TRUE(p.element(cf)->set_property("caps", "audio/x-raw,rate=48000").ok());
  NodeId sink = p.add_element("nullsink").value();
  ASSERT_TRUE(p.link_many({src, cf, sink}).ok());
  auto r = PipelineExecutor().run(p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "element 'capsfilter0': not negotiated: format 'audio/x-raw, rate=44100' from upstream "
            "does not match the caps filter 'audio/x-raw, rate=48000'");
}

TEST(Executor, CapsFilterPassesCompatibleUpstreamCaps) {
  Pipeline p;
  NodeId src =
      p.add_node("src", std::make_unique<CapsSource>("video/x-raw,format=RGBA,width=640", 3))
          .value();
  NodeId cf = p.add_element("capsfilter").value();
  ASSERT_TRUE(p.element(cf)->set_property("caps", "video/x-raw,format=RGBA").ok());
  auto rec = std::make_unique<RecordingSink>();
  RecordingSink* r = rec.get();
  NodeId sink = p.add_node("rec", std::move(rec)).value();
  ASSERT_TRUE(p.link_many({src, cf, sink}).ok());
  ASSERT_TRUE(PipelineExecutor().run(p).ok());
  EXPECT_EQ(r->snapshot().caps, std::vector<std::string>{"video/x-raw, format=RGBA, width=640"});
  EXPECT_EQ(r->snapshot().sequences.size(), 3u);
}

// --- Programmatic graphs ---

TEST(Graph, AddNodeLinkAndRun) {
  Pipeline p;
  auto src = ElementRegistry::global().create("nullsource").value();
  ASSERT_TRUE(src->set_property("num-buffers", 42).ok());
  NodeId a = p.add_node("src", std::move(src)).value();
  NodeId t = p.add_element("tee", "t").value();
  NodeId k1 = p.add_element("nullsink").value();
  NodeId k2 = p.add_element("identity", "id").value();
  NodeId k3 = p.add_element("nullsink").value();
  ASSERT_TRUE(p.link(a, t).ok());
  ASSERT_TRUE(p.link(t, k1).ok());
  ASSERT_TRUE(p.link_pads(t, "src_%u", k2, "sink").ok());
  ASSERT_TRUE(p.link(k2, k3).ok());
  EXPECT_EQ(edges(p), (std::vector<std::string>{"id.src->nullsink1.sink", "src.src->t.sink",
                                                "t.src_0->nullsink0.sink", "t.src_1->id.sink"}));
  ASSERT_TRUE(PipelineExecutor().run(p).ok());
  EXPECT_EQ(u64(p.find("id"), "buffers"), 42u);
}

TEST(Graph, AddNodeRefusesDuplicatesAndNull) {
  Pipeline p;
  ASSERT_TRUE(p.add_element("nullsink", "x").ok());
  EXPECT_EQ(p.add_element("nullsink", "x").error().code, Errc::already_exists);
  EXPECT_EQ(p.add_node("y", nullptr).error().code, Errc::invalid_argument);
  EXPECT_EQ(p.add_element("nosuch").error().code, Errc::not_found);
}

TEST(Graph, LinkErrors) {
  Pipeline p;
  NodeId src = p.add_element("nullsource").value();
  NodeId sink = p.add_element("nullsink").value();
  NodeId sink2 = p.add_element("nullsink").value();
  EXPECT_EQ(p.link(sink, src).error().code, Errc::invalid_argument);
  ASSERT_TRUE(p.link(src, sink).ok());
  EXPECT_EQ(p.link(src, sink2).error().code, Errc::failed_precondition);
  EXPECT_EQ(p.link_pads(src, "nope", sink2, "sink").error().code, Errc::not_found);
  EXPECT_EQ(p.link(NodeId{99}, sink2).error().code, Errc::invalid_argument);
}

TEST(Graph, ValidateFindsUnlinkedPadsAndCycles) {
  Pipeline p;
  NodeId src = p.add_element("nullsource").value();
  NodeId pass = p.add_element("passthrough").value();
  ASSERT_TRUE(p.link(src, pass).ok());
  EXPECT_EQ(p.validate().error().message, "pad 'passthrough0.src' is not linked");

  Pipeline c;
  NodeId s = c.add_element("nullsource").value();
  NodeId mix = c.add_node("mix", std::make_unique<TwoInputs>()).value();
  NodeId a = c.add_element("passthrough", "a").value();
  ASSERT_TRUE(c.link(s, mix).ok());
  ASSERT_TRUE(c.link(mix, a).ok());
  ASSERT_TRUE(c.link(a, mix).ok());
  auto r = c.validate();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("cycle"), std::string::npos) << r.error().message;

  Pipeline t;
  ASSERT_TRUE(t.parse("nullsource ! tee").ok());
  EXPECT_EQ(t.validate().error().message, "element 'tee0' has no linked src pad");
}

TEST(Graph, DotExport) {
  auto p =
      Pipeline::from_string("nullsource num-buffers=5 ! tee name=t t. ! nullsink  t. ! nullsink");
  ASSERT_TRUE(p.ok());
  const std::string dot = p->to_dot();
  EXPECT_EQ(dot.rfind("digraph pipeline {", 0), 0u);
  EXPECT_NE(dot.find("\"nullsource0\" [label=\"nullsource0\\n(nullsource)\\nnum-buffers=5\"]"),
            std::string::npos)
      << dot;
  EXPECT_NE(dot.find("\"t\" -> \"nullsink1\" [taillabel=\"src_1\", headlabel=\"sink\"]"),
            std::string::npos)
      << dot;
}

TEST(Registry, OtherFilesCanRegisterElements) {
  ElementInfo info;
  static int round = 0;  // the registry is process-global: a fresh name per --gtest_repeat
  info.name = "test-recording-sink" + std::to_string(round++);
  info.klass = "Sink";
  info.description = "records";
  info.plugin = "tests";
  info.factory = [] { return std::make_unique<RecordingSink>(); };
  info.properties = {PropertySpec::string("label", "none", "a label")};
  ASSERT_TRUE(ElementRegistry::global().register_element(info).ok());
  EXPECT_EQ(ElementRegistry::global().register_element(info).error().code, Errc::already_exists);
  auto p = Pipeline::from_string("nullsource num-buffers=4 ! " + info.name + " label=x name=r");
  ASSERT_TRUE(p.ok()) << p.error().message;
  ASSERT_TRUE(PipelineExecutor().run(*p).ok());
  EXPECT_EQ(static_cast<RecordingSink*>(p->find("r"))->snapshot().sequences.size(), 4u);
  auto plugins = ElementRegistry::global().plugins();
  EXPECT_NE(std::find(plugins.begin(), plugins.end(), "tests"), plugins.end());
  ElementInfo bad;
  bad.name = "nofactory";
  EXPECT_EQ(ElementRegistry::global().register_element(bad).error().code, Errc::invalid_argument);
}

}  // namespace
