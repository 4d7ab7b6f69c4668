// SPDX-License-Identifier: MIT OR Apache-2.0
// parallaxsink / parallaxsrc in the dynamic pipeline: properties, events, counters, and real
// cross-process runs against parallax-launch child processes (PARALLAX_LAUNCH, set by meson).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "parallax/affinity.h"
#include "parallax/ipc.h"
#include "parallax/pipeline.h"
#include "parallax/placement.h"
#include "parallax/sched.h"
#include "parallax/segment.h"

namespace {

using namespace parallax;
using namespace parallax::pipeline;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A socket path nobody else uses (tests may run in parallel with other suites).
std::string socket_path(const char* what) {
  static std::atomic<int> n{0};
  return "/tmp/plx-ipcel-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + "-" + what +
         ".sock";
}

// --- A child process (parallax-launch) with its output in files (tests/helpers).
class Child : public parallax::test::Process {
 public:
  explicit Child(const std::vector<std::string>& args) : Process(launch_args(args), files()) {}

 private:
  static std::vector<std::string> launch_args(const std::vector<std::string>& args) {
    const char* tool = std::getenv("PARALLAX_LAUNCH");
    if (tool == nullptr) ADD_FAILURE() << "PARALLAX_LAUNCH is not set (run through meson test)";
    std::vector<std::string> argv{tool ? tool : "parallax-launch"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  static parallax::test::SpawnOptions files() {
    parallax::test::SpawnOptions o;
    o.output_files = parallax::test::unique_path("ipcel");
    return o;
  }
};

bool contains(const std::string& s, const std::string& what) {
  return s.find(what) != std::string::npos;
}

// Whether [p, p+n) lies in a mapping of this process that is not writable.
bool mapped_read_only(const void* p, std::size_t n) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  while (std::getline(maps, line)) {
    std::uintptr_t lo = 0, hi = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR " %4s", &lo, &hi, perms) != 3) continue;
    if (a >= lo && a + n <= hi) return perms[0] == 'r' && perms[1] == '-';
  }
  return false;
}

// A sink that records every event and what it saw of each buffer. It keeps only the last
// buffer: holding them all would hold the publisher's slots (leases) and stall it.
class CaptureSink final : public SinkElement {
 public:
  struct Seen {
    std::size_t size{0};
    Metadata meta;
    std::vector<std::byte> head;   // the first bytes
    bool pattern_ok{false};        // nullsource pattern=counter, checked in place
    bool shared_read_only{false};  // a read-only memfd mapping (zero copy on this side)
  };
  struct Got {
    std::vector<Seen> buffers;
    std::vector<Event> events;
    Buffer last;
    std::vector<int> first_cpus;      // the streaming thread's CPUs at the first buffer
    std::int64_t first_slice_ns{-1};  // its EEVDF slice then (0: the kernel reports none)
  };
  [[nodiscard]] Got got() const {
    std::lock_guard l(mu_);
    return got_;
  }
  [[nodiscard]] std::size_t count() const {
    std::lock_guard l(mu_);
    return got_.buffers.size();
  }
  bool handle_event(Pad& pad, const Event& ev) override {
    {
      std::lock_guard l(mu_);
      got_.events.push_back(ev);
    }
    return SinkElement::handle_event(pad, ev);
  }

 protected:
  FlowReturn render(const Buffer& buf) override {
    Seen s;
    s.size = buf.size();
    s.meta = buf.metadata();
    const auto d = buf.data();
    s.head.assign(d.begin(),
                  d.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(d.size(), 16)));
    std::lock_guard l(mu_);
    const std::size_t n = got_.buffers.size();
    if (n == 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      if (::sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE; ++c)
          if (CPU_ISSET(c, &set)) got_.first_cpus.push_back(c);
      auto slice = sched::current_thread_slice();
      got_.first_slice_ns = slice ? slice->count() : 0;
    }
    s.pattern_ok = true;
    for (std::size_t i = 0; i < d.size(); ++i)
      s.pattern_ok = s.pattern_ok && d[i] == static_cast<std::byte>((n + i) & 0xff);
    s.shared_read_only = buf.segment() != nullptr &&
                         buf.segment()->backend() == memory::Backend::memfd &&
                         buf.segment()->access() == memory::Access::read_only &&
                         mapped_read_only(d.data(), d.size());
    got_.buffers.push_back(std::move(s));
    got_.last = buf;
    return FlowReturn::ok;
  }

 private:
  mutable std::mutex mu_;
  Got got_;
};

// "parallaxsrc ... ! capture": the capture sink stays owned by the pipeline.
struct SrcPipeline {
  Pipeline p;
  CaptureSink* sink{nullptr};
  Element* src{nullptr};
};

SrcPipeline make_src_pipeline(const std::string& src_description) {
  SrcPipeline s;
  auto r = s.p.parse(src_description + " name=src");
  EXPECT_TRUE(r) << r.error().message;
  auto sink = std::make_unique<CaptureSink>();
  s.sink = sink.get();
  auto id = s.p.add_node("capture", std::move(sink));
  EXPECT_TRUE(id);
  EXPECT_TRUE(s.p.link(*s.p.node("src"), *id));
  s.src = s.p.find("src");
  return s;
}

std::uint64_t u64(const Element& e, const char* name) {
  auto v = e.property(name);
  EXPECT_TRUE(v) << name;
  return v ? std::get<std::uint64_t>(*v) : 0;
}

// ---------------------------------------------------------------------------------------------

TEST(IpcElements, RegisteredWithGStreamerPropertyNames) {
  auto& reg = ElementRegistry::global();
  auto sink = reg.create("parallaxsink");
  ASSERT_TRUE(sink);
  for (const char* p :
       {"socket-path", "slot-count", "slot-size", "memory", "wait-for-connection", "policy",
        "max-subscribers", "socket-mode", "buffers", "bytes", "zero-copy", "copied", "subscribers"})
    EXPECT_NE((*sink)->find_property(p), nullptr) << p;
  EXPECT_EQ(std::get<std::string>(*(*sink)->property("policy")), "block");
  EXPECT_EQ(std::get<std::string>(*(*sink)->property("memory")), "memfd");
  EXPECT_EQ(std::get<std::string>(*(*sink)->property("socket-mode")), "0600");
  EXPECT_EQ(std::get<std::uint64_t>(*(*sink)->property("max-subscribers")), 64u);
  EXPECT_TRUE((*sink)->is_sink());
  auto src = reg.create("parallaxsrc");
  ASSERT_TRUE(src);
  EXPECT_TRUE((*src)->is_source());
  EXPECT_TRUE((*src)->has_task());
  EXPECT_EQ(std::get<std::uint64_t>(*(*src)->property("timeout")), 5'000'000'000u);
  // Issue 11 parity with the GStreamer elements: same names, types and defaults.
  EXPECT_TRUE(std::get<bool>(*(*sink)->property("wait-for-connection")));
  EXPECT_EQ(std::get<std::uint64_t>(*(*sink)->property("linger")), 2'000'000'000u);
  EXPECT_EQ(std::get<std::int64_t>(*(*src)->property("copy-threshold")), -1);
  EXPECT_TRUE(std::get<bool>(*(*sink)->property("prefault")));
  EXPECT_FALSE(std::get<bool>(*(*src)->property("busy-poll")));
  for (const char* p : {"copied", "bytes-copied"}) {
    EXPECT_NE((*sink)->find_property(p), nullptr) << p;
    EXPECT_NE((*src)->find_property(p), nullptr) << p;
  }
  // Counters are read-only.
  EXPECT_FALSE((*sink)->set_property("buffers", std::uint64_t{3}));
}

TEST(IpcElements, BadValuesAreRejectedAtParseTimeListingTheValidOnes) {
  struct Case {
    const char* description;
    const char* expected;
  } cases[] = {
      {"nullsource ! parallaxsink policy=drop-all",
       "expected one of block|drop-oldest|drop-newest"},
      {"nullsource ! parallaxsink memory=shm", "expected one of memfd|hugepage"},
      {"nullsource ! parallaxsink socket-mode=0644", "expected one of 0600|0660|0666"},
      {"nullsource ! parallaxsink slot-count=5000", "out of range (uint64 0..4096)"},
      {"nullsource ! parallaxsink max-subscribers=0", "out of range (uint64 1..1024)"},
      {"nullsource ! parallaxsink wait-for-connection=maybe", "expected a boolean"},
      {"parallaxsrc timeout=5s ! nullsink", "expected an unsigned integer"},
      {"parallaxsrc policy=never ! nullsink",
       "expected one of default|block|drop-oldest|drop-newest"},
  };
  for (const auto& c : cases) {
    Pipeline p;
    auto r = p.parse(c.description);
    ASSERT_FALSE(r) << c.description;
    EXPECT_TRUE(contains(r.error().message, c.expected)) << r.error().message;
    EXPECT_EQ(p.size(), 0u);
  }
  Pipeline ok;
  EXPECT_TRUE(
      ok.parse("nullsource ! parallaxsink socket-mode=0660 policy=drop-oldest "
               "slot-count=4096 memory=hugepage socket-path=/tmp/x"));
}

// socket-mode is a typed enumeration whose numbers are the file modes: a mode set by nick or
// by number is the socket file's mode after start(); anything else is refused when it is set
// (no fallback to 0600 at start()).
TEST(IpcElements, SocketModeIsATypedEnumGivingTheFileMode) {
  auto sink = ElementRegistry::global().create("parallaxsink");
  ASSERT_TRUE(sink);
  auto bad = (*sink)->set_property("socket-mode", std::int64_t{0644});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(bad.error().message, "expected one of 0600|0660|0666"))
      << bad.error().message;
  EXPECT_FALSE((*sink)->set_property("socket-mode", std::string("0644")));
  EXPECT_EQ(std::get<std::string>(*(*sink)->property("socket-mode")), "0600");  // unchanged
  ASSERT_TRUE((*sink)->set_property("socket-mode", std::int64_t{0666}));
  EXPECT_EQ(std::get<std::string>(*(*sink)->property("socket-mode")), "0666");

  for (const auto& [text, mode] :
       {std::pair<const char*, mode_t>{"0600", 0600}, {"0660", 0660}, {"0666", 0666}}) {
    const std::string s = socket_path("mode");
    Pipeline p;
    ASSERT_TRUE(p.parse("nullsource ! parallaxsink slot-size=4096 socket-mode=" +
                        std::string(text) + " socket-path=" + s));
    PipelineExecutor ex;
    ASSERT_TRUE(ex.start(p));
    struct stat st {};
    const auto until = Clock::now() + 5s;
    while (::stat(s.c_str(), &st) != 0 && Clock::now() < until)
      std::this_thread::sleep_for(5ms);
    EXPECT_TRUE(S_ISSOCK(st.st_mode)) << text;
    EXPECT_EQ(st.st_mode & 0777, mode) << text;
    ex.stop();
    EXPECT_EQ(ex.wait().error().code, Errc::cancelled);
  }
}

TEST(IpcElements, MissingSocketPathFailsAtStart) {
  for (const char* d : {"nullsource ! parallaxsink", "parallaxsrc ! nullsink"}) {
    Pipeline p;
    ASSERT_TRUE(p.parse(d));
    PipelineExecutor ex;
    auto r = ex.run(p);
    ASSERT_FALSE(r) << d;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_TRUE(contains(r.error().message, "socket-path is not set")) << r.error().message;
  }
}

// Native -> native across processes: parallax-launch publishes; this process receives through
// parallaxsrc. Bytes, metadata, caps and the event order arrive intact; the received buffers
// are the publisher's slots mapped read-only here (no copy on the receiving side).
TEST(IpcElements, CrossProcessBytesMetadataEventsAndZeroCopyReceive) {
  const std::string s = socket_path("x");
  Child prod({"-q",
              "nullsource num-buffers=200 size=1000 pattern=counter ! "
              "video/x-raw,format=GRAY8,width=100,height=10 ! parallaxsink socket-path=" +
                  s});
  SrcPipeline c = make_src_pipeline("parallaxsrc timeout=20000000000 socket-path=" + s);
  PipelineExecutor ex;
  auto r = ex.run(c.p);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(prod.wait(), 0) << prod.err();

  CaptureSink::Got got = c.sink->got();
  ASSERT_EQ(got.buffers.size(), 200u);
  for (std::size_t n = 0; n < got.buffers.size(); ++n) {
    const CaptureSink::Seen& b = got.buffers[n];
    ASSERT_EQ(b.size, 1000u);
    EXPECT_TRUE(b.pattern_ok) << "buffer " << n;
    EXPECT_EQ(b.meta.offset, n);
    EXPECT_EQ(b.meta.offset_end, n + 1);
    EXPECT_EQ(b.meta.sequence, n);
    // Zero copy on the receiving side: a read-only memfd mapping of the publisher's slot.
    EXPECT_TRUE(b.shared_read_only) << "buffer " << n;
  }
  // The last buffer outlives the publisher process (the mapping stays valid).
  ASSERT_EQ(got.last.size(), 1000u);
  EXPECT_EQ(got.last.data()[0], static_cast<std::byte>(199));
  EXPECT_EQ(got.last.data()[999], static_cast<std::byte>((199 + 999) & 0xff));

  std::vector<EventType> types;
  for (const auto& e : got.events)
    types.push_back(e.type);
  ASSERT_EQ(types, (std::vector<EventType>{EventType::stream_start, EventType::caps,
                                           EventType::segment, EventType::eos}));
  EXPECT_EQ(got.events[0].stream_id, "nullsource0");  // the publisher's stream id
  EXPECT_EQ(got.events[1].caps.to_string(), "video/x-raw, format=GRAY8, width=100, height=10");
  EXPECT_EQ(u64(*c.src, "buffers"), 200u);
  EXPECT_EQ(u64(*c.src, "bytes"), 200'000u);
}

// Two parallax-launch processes; the consumer writes a file and prints the caps event (-v).
TEST(IpcElements, TwoLaunchProcessesFileIdenticalAndCapsPrinted) {
  const std::string s = socket_path("y");
  const std::string out = "/tmp/plx-ipcel-" + std::to_string(::getpid()) + "-out.bin";
  Child cons(
      {"-v", "parallaxsrc socket-path=" + s + " timeout=20000000000 ! filesink location=" + out});
  Child prod({"-q",
              "nullsource num-buffers=300 size=333 pattern=counter ! "
              "audio/x-raw,rate=48000 ! parallaxsink slot-count=4 socket-path=" +
                  s});
  EXPECT_EQ(prod.wait(), 0) << prod.err();
  ASSERT_EQ(cons.wait(), 0) << cons.err();
  std::ifstream in(out, std::ios::binary);
  std::string bytes{std::istreambuf_iterator<char>(in), {}};
  ::unlink(out.c_str());
  ASSERT_EQ(bytes.size(), 300u * 333u);
  bool same = true;
  for (std::size_t n = 0; n < 300; ++n)
    for (std::size_t i = 0; i < 333; ++i)
      same = same && static_cast<unsigned char>(bytes[n * 333 + i]) == ((n + i) & 0xff);
  EXPECT_TRUE(same);
  EXPECT_TRUE(contains(cons.out(), "/pipeline/parallaxsrc0.src: caps: audio/x-raw, rate=48000"))
      << cons.out();
  EXPECT_TRUE(contains(cons.out(), "/pipeline/parallaxsrc0.src: eos")) << cons.out();
}

// A publisher killed mid-stream: parallaxsrc posts an error within its timeout (no hang).
TEST(IpcElements, PublisherKilledIsAnErrorWithinTheTimeout) {
  const std::string s2 = socket_path("k2");
  Child prod2(
      {"-q", "nullsource size=100 ! identity sleep-time=2000 ! parallaxsink socket-path=" + s2});
  // Wait for the socket to exist so the 1 s connect budget is not spent on the child's start.
  for (int i = 0; i < 2000 && ::access(s2.c_str(), F_OK) != 0; ++i)
    std::this_thread::sleep_for(5ms);
  SrcPipeline c2 = make_src_pipeline("parallaxsrc timeout=1000000000 socket-path=" + s2);
  PipelineExecutor ex2;
  ASSERT_TRUE(ex2.start(c2.p));
  const auto until2 = Clock::now() + 20s;
  while (c2.sink->count() < 10 && Clock::now() < until2)
    std::this_thread::sleep_for(5ms);
  ASSERT_GE(c2.sink->count(), 10u);
  const auto t0 = Clock::now();
  prod2.kill9();
  (void)prod2.wait();
  auto r = ex2.wait_for(10s);
  const auto took = Clock::now() - t0;
  ASSERT_TRUE(r.has_value()) << "parallaxsrc did not notice the dead publisher in 10 s";
  ASSERT_FALSE(*r);
  EXPECT_EQ(r->error().code, Errc::unavailable);
  EXPECT_TRUE(contains(r->error().message, "went away")) << r->error().message;
  EXPECT_GE(took, 900ms);  // it waited for the publisher to come back first
  EXPECT_LT(took, 4s);
  ::unlink(s2.c_str());  // the killed publisher could not remove it
}

TEST(IpcElements, NoPublisherIsAnErrorAfterTheTimeout) {
  Pipeline p;
  ASSERT_TRUE(
      p.parse("parallaxsrc timeout=200000000 socket-path=" + socket_path("none") + " ! nullsink"));
  PipelineExecutor ex;
  const auto t0 = Clock::now();
  auto r = ex.run(p);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_found);
  EXPECT_TRUE(contains(r.error().message, "could not connect to a publisher")) << r.error().message;
  EXPECT_GE(Clock::now() - t0, 190ms);
  EXPECT_LT(Clock::now() - t0, 3s);
}

TEST(IpcElements, WaitingForAConnectionIsInterruptible) {
  // The sink holds the stream while nobody is connected (the default): stop() and send_eos()
  // both end that wait promptly.
  for (bool use_eos : {false, true}) {
    const std::string s = socket_path("w");
    Pipeline p;
    ASSERT_TRUE(
        p.parse("nullsource num-buffers=10 ! parallaxsink name=k slot-size=4096 "
                "socket-path=" +
                s));
    PipelineExecutor ex;
    ASSERT_TRUE(ex.start(p));
    std::this_thread::sleep_for(150ms);
    EXPECT_TRUE(ex.running());
    EXPECT_EQ(u64(*p.find("k"), "buffers"), 0u);  // held
    const auto t0 = Clock::now();
    if (use_eos) {
      ex.send_eos();
      auto r = ex.wait_for(3s);
      ASSERT_TRUE(r.has_value());
      EXPECT_TRUE(*r) << r->error().message;
    } else {
      ex.stop();
      EXPECT_EQ(ex.wait().error().code, Errc::cancelled);
    }
    EXPECT_LT(Clock::now() - t0, 1s);
    EXPECT_NE(::access(s.c_str(), F_OK), 0) << "socket file left behind";
  }
  // The source side: waiting forever (timeout=0) for a publisher is interrupted by stop().
  Pipeline p;
  ASSERT_TRUE(p.parse("parallaxsrc timeout=0 socket-path=" + socket_path("w2") + " ! nullsink"));
  PipelineExecutor ex;
  ASSERT_TRUE(ex.start(p));
  std::this_thread::sleep_for(100ms);
  const auto t0 = Clock::now();
  ex.stop();
  EXPECT_EQ(ex.wait().error().code, Errc::cancelled);
  EXPECT_LT(Clock::now() - t0, 1s);
}

TEST(IpcElements, StopEndsASendBlockedOnASubscriberThatStoppedReading) {
  // Issue 11: a subscriber that connected and stopped reading (policy block) fills its lease
  // quota; the sink then waits in the publisher. PipelineExecutor::stop() (a second Ctrl-C in
  // parallax-launch) must end it: the sink's unlock() interrupts the publisher.
  const std::string s = socket_path("stall");
  Pipeline p;
  ASSERT_TRUE(
      p.parse("nullsource size=4096 ! parallaxsink name=k slot-size=4096 socket-path=" + s));
  PipelineExecutor ex;
  ASSERT_TRUE(ex.start(p));
  link::SubscriberOptions so;
  so.connect_timeout = 5s;
  auto sub = link::IpcSubscriber::connect(s, so);  // never reads
  ASSERT_TRUE(sub.ok()) << sub.error().message;
  // Blocked once the counter stops moving (quota 12 of 16 slots, ring records for them).
  std::uint64_t before = 0;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(50ms);
    const std::uint64_t now = u64(*p.find("k"), "buffers");
    if (now != 0 && now == before) break;
    before = now;
  }
  ASSERT_TRUE(ex.running());
  const auto t0 = Clock::now();
  ex.stop();
  auto r = ex.wait_for(3s);
  ASSERT_TRUE(r.has_value()) << "stop() did not end a sink blocked on a stalled subscriber";
  EXPECT_LT(Clock::now() - t0, 1s);
}

TEST(IpcElements, EosWaitsUntilTheSubscriberReadThroughWithinLinger) {
  // Issue 11 (drain at EOS): the EOS reaches the executor (parallax-launch exits) only once
  // the subscriber has read everything, the EOS included; linger=0 does not wait.
  for (bool linger : {true, false}) {
    const std::string s = socket_path(linger ? "drain" : "nodrain");
    Pipeline p;
    ASSERT_TRUE(
        p.parse("nullsource num-buffers=30 size=64 ! parallaxsink slot-size=4096 "
                "slot-count=64 " +
                std::string(linger ? "" : "linger=0 ") + "socket-path=" + s));
    PipelineExecutor ex;
    ASSERT_TRUE(ex.start(p));
    link::SubscriberOptions so;
    so.connect_timeout = 5s;
    auto sub = link::IpcSubscriber::connect(s, so);
    ASSERT_TRUE(sub.ok()) << sub.error().message;
    std::atomic<int> items{0};
    std::atomic<bool> done{false};
    std::thread reader([&] {
      while (!done.load()) {
        std::this_thread::sleep_for(10ms);  // slow: ~350 ms for the whole stream
        auto it = sub->recv_item_for(100ms);
        if (!it.ok()) continue;
        if (!it->has_value()) break;
        ++items;
        if (auto* e = std::get_if<link::Event>(&**it); e && e->type == link::EventType::eos) break;
      }
    });
    auto r = ex.wait_for(5s);
    const int read_at_eos = items.load();
    done = true;
    reader.join();
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(*r) << r->error().message;
    // 30 buffers + stream-start + segment + eos (no caps: nullsource sends none).
    if (linger)
      EXPECT_GE(read_at_eos, 32) << "the EOS went on before the subscriber read the stream";
    else
      EXPECT_LT(read_at_eos, 20) << "linger=0 still waited";
  }
}

// Counters, in one process (two pipelines): the dynamic pipeline has no allocation query, so
// upstream cannot write into the sink's pool: every buffer is copied once into a slot.
TEST(IpcElements, CountersAndTheCopyIntoASlot) {
  const std::string s = socket_path("c");
  Pipeline prod;
  ASSERT_TRUE(
      prod.parse("nullsource num-buffers=64 size=512 ! parallaxsink name=k slot-size=512 "
                 "slot-count=8 socket-path=" +
                 s));
  Element* k = prod.find("k");
  EXPECT_EQ(u64(*k, "subscribers"), 0u);
  PipelineExecutor pex;
  ASSERT_TRUE(pex.start(prod));
  SrcPipeline c = make_src_pipeline("parallaxsrc timeout=5000000000 socket-path=" + s);
  PipelineExecutor cex;
  ASSERT_TRUE(cex.start(c.p));
  auto pr = pex.wait();
  ASSERT_TRUE(pr) << pr.error().message;
  auto cr = cex.wait();
  ASSERT_TRUE(cr) << cr.error().message;
  // The consumer may come and go between two polls of "subscribers": count admissions.
  EXPECT_EQ(u64(*k, "connections"), 1u);
  EXPECT_EQ(u64(*k, "buffers"), 64u);
  EXPECT_EQ(u64(*k, "bytes"), 64u * 512u);
  EXPECT_EQ(u64(*k, "copied"), 64u);
  EXPECT_EQ(u64(*k, "zero-copy"), 0u);
  EXPECT_EQ(u64(*k, "subscribers"), 0u);  // closed at stop()
  EXPECT_EQ(u64(*c.src, "buffers"), 64u);
  EXPECT_GE(u64(*c.src, "events"), 3u);  // stream-start, segment, eos at least
  EXPECT_EQ(c.sink->count(), 64u);
  // Transit latency of the (last) connection: every buffer measured.
  EXPECT_EQ(u64(*c.src, "latency-count"), 64u);
  EXPECT_GT(u64(*c.src, "latency-p50"), 0u);
  EXPECT_GE(u64(*c.src, "latency-p99"), u64(*c.src, "latency-p50"));
  EXPECT_GE(u64(*c.src, "latency-max"), u64(*c.src, "latency-p99"));
}

// A buffer larger than the slots gets a larger pool (the old one is retired); one that cannot
// fit max-memory is a clear error naming the property, with slots and with the variable-size
// pool (slot-size 0).
TEST(IpcElements, LargerBufferGrowsThePoolWithinMaxMemory) {
  {
    Pipeline p;
    ASSERT_TRUE(
        p.parse("nullsource num-buffers=3 size=5000 ! parallaxsink name=k slot-size=4096 "
                "wait-for-connection=false socket-path=" +
                socket_path("grow")));
    PipelineExecutor ex;
    auto r = ex.run(p);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(u64(*p.find("k"), "pool-growths"), 1u);
    EXPECT_EQ(u64(*p.find("k"), "buffers"), 3u);
  }
  {
    Pipeline p;
    ASSERT_TRUE(
        p.parse("nullsource num-buffers=1 size=200000 ! parallaxsink slot-size=4096 "
                "slot-count=16 max-memory=1048576 wait-for-connection=false socket-path=" +
                socket_path("big")));
    PipelineExecutor ex;
    auto r = ex.run(p);
    ASSERT_FALSE(r);
    EXPECT_TRUE(contains(r.error().message, "max-memory")) << r.error().message;
  }
  {
    Pipeline p;
    ASSERT_TRUE(
        p.parse("nullsource num-buffers=1 size=2000000 ! parallaxsink max-memory=1048576 "
                "wait-for-connection=false socket-path=" +
                socket_path("bigarena")));
    PipelineExecutor ex;
    auto r = ex.run(p);
    ASSERT_FALSE(r);
    EXPECT_TRUE(contains(r.error().message, "max-memory")) << r.error().message;
  }
}

// Events from a native publisher in this process: custom events and segments map both ways;
// a format our Caps parser cannot read is announced by its media type, and a parallaxsink
// downstream republishes the original string unchanged.
TEST(IpcElements, EventsMapAndUnparsableFormatsSurviveARelay) {
  const std::string a = socket_path("ea");
  const std::string b = socket_path("eb");
  const std::string fmt =
      "video/x-h264, stream-format=(string)avc, codec_data=(buffer)0164001fffe1, "
      "streamheader=(buffer)< 0102, 0304 >";
  auto pub = link::IpcPublisher::bind(a);
  ASSERT_TRUE(pub) << pub.error().message;
  // Relay: parallaxsrc ! tee ! capture, tee ! parallaxsink (b).
  Pipeline p;
  ASSERT_TRUE(p.parse("parallaxsrc name=src timeout=5000000000 socket-path=" + a +
                      " ! tee name=t t. ! parallaxsink name=k slot-size=4096 socket-path=" + b));
  auto cap = std::make_unique<CaptureSink>();
  CaptureSink* sink = cap.get();
  auto cid = p.add_node("capture", std::move(cap));
  ASSERT_TRUE(cid);
  ASSERT_TRUE(p.link(*p.node("t"), *cid));
  PipelineExecutor ex;
  ASSERT_TRUE(ex.start(p));
  ASSERT_TRUE(pub->wait_for_subscribers(1, 5s));

  // With a slot-size the relay's socket exists from the start: connect before anything is
  // sent (custom events are not sticky: a late subscriber would not get them).
  std::optional<link::IpcSubscriber> sub;
  for (int i = 0; i < 400 && !sub; ++i) {
    if (auto r = link::IpcSubscriber::connect(b))
      sub.emplace(std::move(*r));
    else
      std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(sub.has_value());
  ASSERT_TRUE(pub->send_event(link::Event::stream_start("the-stream", 7)));
  ASSERT_TRUE(pub->set_format(fmt));
  StreamSegment si;
  si.start = 5;
  si.time = 7;
  si.rate = 2.0;
  ASSERT_TRUE(pub->send_event(link::Event::make_segment(si)));
  ASSERT_TRUE(pub->send_event(link::Event::custom("my-event", "hi")));
  auto loan = pub->loan();
  ASSERT_TRUE(loan);
  ASSERT_TRUE(loan->set_size(16));
  ASSERT_TRUE(pub->send(std::move(*loan)));

  ASSERT_TRUE(pub->send_eos());

  std::vector<link::Event> relayed;
  int buffers = 0;
  for (;;) {
    auto item = sub->recv_item_for(5s);
    ASSERT_TRUE(item) << item.error().message;
    if (!item->has_value()) break;
    if (auto* ev = std::get_if<link::Event>(&**item)) {
      relayed.push_back(*ev);
      if (ev->type == link::EventType::eos) break;
    } else {
      ++buffers;
    }
  }
  auto r = ex.wait_for(5s);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(*r) << r->error().message;

  // What the pipeline saw.
  CaptureSink::Got got = sink->got();
  std::vector<EventType> types;
  for (const auto& e : got.events)
    types.push_back(e.type);
  ASSERT_EQ(types, (std::vector<EventType>{EventType::stream_start, EventType::caps,
                                           EventType::segment, EventType::custom, EventType::eos}));
  EXPECT_EQ(got.events[0].stream_id, "the-stream");
  EXPECT_EQ(got.events[0].group_id, 7u);
  EXPECT_EQ(got.events[1].caps.to_string(), "video/x-h264");
  EXPECT_FALSE(got.events[1].caps.complete());
  EXPECT_EQ(got.events[1].caps.text(), fmt);  // the caps keep the publisher's string
  EXPECT_EQ(got.events[2].segment.start, 5u);
  EXPECT_EQ(got.events[2].segment.time, 7u);
  EXPECT_EQ(got.events[2].segment.rate, 2.0);
  EXPECT_EQ(got.events[2].segment.stop, StreamSegment::kNone);
  EXPECT_EQ(got.events[3].name, "my-event");
  EXPECT_EQ(got.events[3].data, "hi");
  EXPECT_EQ(got.buffers.size(), 1u);

  // What the relay published: the original format string, the segment, the custom event.
  EXPECT_EQ(buffers, 1);
  bool saw_format = false, saw_custom = false, saw_segment = false;
  for (const auto& e : relayed) {
    if (e.type == link::EventType::caps) {
      saw_format = true;
      EXPECT_EQ(e.caps.text(), fmt);
    }
    if (e.type == link::EventType::custom) {
      saw_custom = true;
      EXPECT_EQ(e.name, "my-event");
      EXPECT_EQ(e.data, "hi");
    }
    if (e.type == link::EventType::segment) {
      saw_segment = true;
      EXPECT_EQ(e.segment.start, 5u);
      EXPECT_EQ(e.segment.time, 7u);
      EXPECT_EQ(e.segment.rate, 2.0);
      EXPECT_EQ(e.segment.stop, StreamSegment::kNone);
    }
  }
  EXPECT_TRUE(saw_format);
  EXPECT_TRUE(saw_custom);
  EXPECT_TRUE(saw_segment);
  EXPECT_EQ(relayed.back().type, link::EventType::eos);
}

}  // namespace

// affinity=auto on the native parallaxsrc: its streaming thread moves to the CPUs of the NUMA
// node the publisher announced for its memory (numa_node = 0 here). The consumer's threads
// start on one CPU only (inherited from the thread that starts the executor), so the pin is
// visible as the whole of node 0. Without a node announced, auto is the element's error.
// sched-slice: the source's streaming thread has the slice asked for when the first buffer
// reaches the sink (same thread); a value under the kernel's minimum fails at start.
TEST(IpcElements, SchedSliceIsTheSourceThreadsAndBadValuesFailAtStart) {
  bool supported = true;
  std::thread([&] { supported = static_cast<bool>(sched::set_current_thread_slice(1ms)); }).join();
  if (!supported) GTEST_SKIP() << "this kernel has no custom time slices (Linux 6.12 or later)";
  const std::string path = socket_path("slice");
  link::PublisherOptions po;
  po.slot_size = 4096;
  po.slot_count = 8;
  auto pub = link::IpcPublisher::bind(path, po);
  ASSERT_TRUE(pub) << pub.error().message;
  std::int64_t slice_ns = -1;
  std::string error;
  std::thread consumer([&] {
    SrcPipeline c =
        make_src_pipeline("parallaxsrc timeout=5000000000 sched-slice=250 socket-path=" + path);
    PipelineExecutor ex;
    auto r = ex.run(c.p);
    if (!r) error = r.error().message;
    slice_ns = c.sink->got().first_slice_ns;
  });
  ASSERT_TRUE(pub->wait_for_subscribers(1, 10s));
  ASSERT_TRUE(pub->set_format("application/octet-stream"));
  auto l = pub->loan();
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->set_size(64));
  ASSERT_TRUE(pub->send(std::move(*l)));
  ASSERT_TRUE(pub->send_eos());
  consumer.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(slice_ns, 250'000);

  Pipeline p;
  ASSERT_TRUE(p.parse("parallaxsrc sched-slice=99 socket-path=" + path + " ! nullsink"));
  PipelineExecutor ex;
  auto r = ex.run(p);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(r.error().message, "sched-slice=99")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "100-100000")) << r.error().message;
}

TEST(IpcElements, AffinityAutoPinsTheSourceToTheNodeOfThePublishersMemory) {
  auto machine = topology::Topology::process();
  ASSERT_TRUE(machine) << machine.error().message;
  auto node0 = (*machine)->node_cpus(0);
  ASSERT_TRUE(node0) << node0.error().message;
  if (node0->cpus.size() < 2) GTEST_SKIP() << "needs a NUMA node with two CPUs";
  std::vector<int> node0_cpus(node0->cpus.begin(), node0->cpus.end());

  auto run_consumer = [](const std::string& path, bool bound, std::vector<int>& cpus,
                         std::string& error) {
    link::PublisherOptions po;
    po.slot_size = 4096;
    po.slot_count = 8;
    if (bound) po.numa_node = 0;
    auto pub = link::IpcPublisher::bind(path, po);
    ASSERT_TRUE(pub) << pub.error().message;
    std::thread consumer([&] {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(0, &one);
      ASSERT_EQ(::pthread_setaffinity_np(::pthread_self(), sizeof one, &one), 0);
      SrcPipeline c =
          make_src_pipeline("parallaxsrc timeout=5000000000 affinity=auto socket-path=" + path);
      ExecutorOptions eo;
      eo.thread_hook = pin_by_rules_hook();
      PipelineExecutor ex(eo);
      auto r = ex.run(c.p);
      if (!r) error = r.error().message;
      cpus = c.sink->got().first_cpus;
    });
    ASSERT_TRUE(pub->wait_for_subscribers(1, 10s));
    ASSERT_TRUE(pub->set_format("application/octet-stream"));
    for (int i = 0; i < 3; ++i) {
      auto l = pub->loan();
      ASSERT_TRUE(l);
      ASSERT_TRUE(l->set_size(64));
      std::memset(l->data().data(), i, 64);
      ASSERT_TRUE(pub->send(std::move(*l)));
    }
    ASSERT_TRUE(pub->send_eos());
    consumer.join();
  };

  std::vector<int> cpus;
  std::string error;
  run_consumer(socket_path("auto"), true, cpus, error);
  EXPECT_EQ(error, "");
  EXPECT_EQ(cpus, node0_cpus) << "the source's thread was not moved to node 0's CPUs";

  // The publisher bound no node and had touched no page when we joined: nothing to follow.
  cpus.clear();
  error.clear();
  run_consumer(socket_path("auto-unknown"), false, cpus, error);
  EXPECT_NE(error.find("affinity auto"), std::string::npos) << error;
  EXPECT_NE(error.find("numa-node"), std::string::npos) << error;
  EXPECT_TRUE(cpus.empty());
}
