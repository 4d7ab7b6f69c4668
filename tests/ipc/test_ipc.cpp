// SPDX-License-Identifier: MIT OR Apache-2.0
// IpcPublisher / IpcSubscriber tests. Cross-process claims run real processes (the ipc_peer
// helper, fork+exec); the policy and event-order tests also run in one process, where
// ThreadSanitizer can watch the shared-memory protocol.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>

#include "ipc/os.h"
#include "ipc_test_util.h"
#include "parallax/ipc.h"

using namespace parallax;
using namespace parallax::link;
using namespace std::chrono_literals;
using ipc_test::Child;
using ipc_test::TempDir;

namespace {

PublisherOptions small_pool(std::size_t slot = 4096, std::size_t slots = 64) {
  PublisherOptions po;
  po.slot_size = slot;
  po.slot_count = slots;
  return po;
}

Result<void> send_seq(IpcPublisher& pub, std::uint64_t seq, std::size_t size = 256) {
  PLX_ASSIGN(memory::Loan l, pub.loan());
  ipc_test::fill_payload(l, seq, size);
  return pub.send(std::move(l));
}

// Waits until `pred` holds (polling), for at most `t`.
template <typename F>
bool eventually(F pred, std::chrono::milliseconds t = 3s) {
  const auto until = std::chrono::steady_clock::now() + t;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return pred();
}

SubscriberOptions with_policy(Policy p) {
  SubscriberOptions so;
  so.policy = p;
  return so;
}

}  // namespace

// ---- single process: API behaviour ------------------------------------------------------------

TEST(IpcPublisher, BindRejectsBadArguments) {
  TempDir dir;
  EXPECT_EQ(IpcPublisher::bind("").error().code, Errc::invalid_argument);
  EXPECT_EQ(IpcPublisher::bind(std::string(200, 'x')).error().code, Errc::invalid_argument);
  auto po = small_pool();
  po.ring_bytes = 1000;
  EXPECT_EQ(IpcPublisher::bind(dir.file("s"), po).error().code, Errc::invalid_argument);
  po = small_pool();
  po.max_leases_per_subscriber = 4097;  // 0 is automatic (3/4 of the slots), 1..4096 explicit
  EXPECT_EQ(IpcPublisher::bind(dir.file("s"), po).error().code, Errc::invalid_argument);
  // A heap pool cannot cross processes.
  po = small_pool();
  po.pool = memory::MemoryPool::create(memory::HeapSegment::create(65536).value(), 4096).value();
  EXPECT_EQ(IpcPublisher::bind(dir.file("s"), po).error().code, Errc::invalid_argument);
}

// Subscribers map only sealed memfds: a file-backed pool would be refused by every one of
// them, so the publisher refuses it up front (bind and replace_pool), saying why.
TEST(IpcPublisher, RefusesAFileBackedPool) {
  TempDir dir;
  auto file_pool = [&](const std::string& name) {
    return memory::MemoryPool::create(
               memory::MappedFileSegment::create(dir.file(name), 65536).value(), 4096)
        .value();
  };
  auto po = small_pool();
  po.pool = file_pool("pool.bin");
  auto r = IpcPublisher::bind(dir.file("f.sock"), po);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(r.error().message.find("file-backed"), std::string::npos) << r.error().message;
  struct stat st {};
  EXPECT_NE(::stat(dir.file("f.sock").c_str(), &st), 0) << "socket bound for a refused pool";
  // A memfd pool is fine, and cannot be swapped for a file-backed one later.
  auto pub = IpcPublisher::bind(dir.file("m.sock"), small_pool());
  ASSERT_TRUE(pub.ok()) << pub.error().to_string();
  auto rp = pub->replace_pool(file_pool("pool2.bin"));
  ASSERT_FALSE(rp.ok());
  EXPECT_EQ(rp.error().code, Errc::invalid_argument);
  EXPECT_NE(rp.error().message.find("file-backed"), std::string::npos) << rp.error().message;
}

TEST(IpcPublisher, SocketModeAndCleanUnlink) {
  TempDir dir;
  const auto path = dir.file("pub.sock");
  {
    auto pub = IpcPublisher::bind(path, small_pool());
    ASSERT_TRUE(pub.ok()) << pub.error().to_string();
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  struct stat st {};
  EXPECT_NE(::stat(path.c_str(), &st), 0) << "socket file left behind";
}

TEST(IpcPublisher, NeverStealsALiveSocketNorTouchesOtherFiles) {
  TempDir dir;
  const auto path = dir.file("live.sock");
  auto first = IpcPublisher::bind(path, small_pool());
  ASSERT_TRUE(first.ok());
  auto second = IpcPublisher::bind(path, small_pool());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Errc::already_exists);
  const auto file = dir.file("regular");
  std::ofstream(file) << "keep me";
  auto third = IpcPublisher::bind(file, small_pool());
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().code, Errc::already_exists);
  std::ifstream in(file);
  std::string s;
  std::getline(in, s);
  EXPECT_EQ(s, "keep me");
}

// A peer that connects and never says hello must not hold one of max_subscribers forever.
TEST(IpcPublisher, SilentConnectionIsClosedAfterTheHandshakeTimeout) {
  TempDir dir;
  auto po = small_pool();
  po.max_subscribers = 1;
  po.handshake_timeout = 300ms;
  auto pub = IpcPublisher::bind(dir.file("s"), po).value();
  auto addr = os::make_addr(dir.file("s")).value();
  UniqueFd silent(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(silent.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::this_thread::sleep_for(50ms);
  SubscriberOptions quick;
  quick.connect_timeout = 10ms;
  auto early = IpcSubscriber::connect(dir.file("s"), quick);
  ASSERT_FALSE(early.ok());  // the silent connection holds the only place
  const auto t0 = std::chrono::steady_clock::now();
  pollfd p{silent.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 3000), 1);  // the publisher speaks (refuse) or hangs up
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
  std::byte buf[512];
  const ssize_t n = ::recv(silent.get(), buf, sizeof buf, 0);
  EXPECT_GT(n, 0);  // the refusal, with its reason
  char c;
  EXPECT_EQ(::recv(silent.get(), &c, 1, 0), 0);  // then closed
  auto sub = IpcSubscriber::connect(dir.file("s"));
  ASSERT_TRUE(sub.ok()) << sub.error().message;
  EXPECT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  EXPECT_EQ(pub.stats().protocol_errors, 1u);
  auto bad = small_pool();
  bad.handshake_timeout = 0ms;
  EXPECT_EQ(IpcPublisher::bind(dir.file("t"), bad).error().code, Errc::invalid_argument);
}

TEST(IpcPublisher, ReplacesAStaleSocket) {
  TempDir dir;
  const auto path = dir.file("stale.sock");
  {
    // A socket file nobody listens on, as a crashed publisher leaves it.
    auto addr = os::make_addr(path).value();
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET, 0));
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  auto pub = IpcPublisher::bind(path, small_pool());
  ASSERT_TRUE(pub.ok()) << pub.error().to_string();
  auto sub = IpcSubscriber::connect(path);
  EXPECT_TRUE(sub.ok());
}

TEST(IpcSubscriber, ConnectErrors) {
  TempDir dir;
  auto r = IpcSubscriber::connect(dir.file("nobody"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::not_found);
  SubscriberOptions so;
  so.connect_timeout = 50ms;
  const auto t0 = std::chrono::steady_clock::now();
  r = IpcSubscriber::connect(dir.file("nobody"), so);
  EXPECT_FALSE(r.ok());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  IpcSubscriber empty;
  EXPECT_EQ(empty.recv().error().code, Errc::failed_precondition);
}

TEST(IpcTransport, BuffersEventsAndMetadataCrossInOrder) {
  TempDir dir;
  auto pub = IpcPublisher::bind(dir.file("s"), small_pool()).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  ASSERT_TRUE(pub.send_event(Event::stream_start("s1")).ok());
  ASSERT_TRUE(pub.set_format("audio/x-raw, rate=(int)48000").ok());
  StreamSegment seg;
  seg.start = 5;
  ASSERT_TRUE(pub.send_event(Event::make_segment(seg)).ok());
  ASSERT_TRUE(send_seq(pub, 0).ok());
  ASSERT_TRUE(pub.send_event(Event::custom("mark", "\x01")).ok());
  ASSERT_TRUE(send_seq(pub, 1, 4096).ok());
  ASSERT_TRUE(pub.send_event(Event::flush_start()).ok());
  ASSERT_TRUE(pub.send_event(Event::flush_stop()).ok());
  ASSERT_TRUE(pub.send_eos().ok());

  std::vector<std::string> seen;
  for (;;) {
    auto item = sub.recv_item_for(2s);
    ASSERT_TRUE(item.ok()) << item.error().to_string();
    ASSERT_TRUE(item->has_value());
    if (auto* b = std::get_if<memory::Buffer>(&**item)) {
      EXPECT_EQ(ipc_test::check_payload(*b), "");
      seen.push_back("buf" + std::to_string(b->metadata().sequence));
    } else {
      const Event& e = std::get<Event>(**item);
      seen.emplace_back(to_string(e.type));
      if (e.type == EventType::eos) break;
    }
  }
  const std::vector<std::string> want = {"stream-start", "caps",       "segment",
                                         "buf0",         "custom",     "buf1",
                                         "flush-start",  "flush-stop", "eos"};
  EXPECT_EQ(seen, want);
  EXPECT_EQ(sub.format(), std::optional<std::string>("audio/x-raw, rate=(int)48000"));
  ASSERT_TRUE(sub.segment().has_value());
  EXPECT_EQ(sub.segment()->start, 5u);
}

TEST(IpcTransport, ReceivedBuffersAreZeroCopyAndReadOnly) {
  TempDir dir;
  auto pub = IpcPublisher::bind(dir.file("s"), small_pool()).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  ASSERT_TRUE(send_seq(pub, 0, 1000).ok());
  auto b = sub.recv_for(2s);
  ASSERT_TRUE(b.ok() && b->has_value());
  const memory::Buffer& buf = **b;
  ASSERT_NE(buf.segment(), nullptr);
  EXPECT_EQ(buf.segment()->access(), memory::Access::read_only);
  EXPECT_EQ(buf.segment()->writable_data(), nullptr);
  EXPECT_EQ(buf.size(), 1000u);
  EXPECT_EQ(pub.stats().zero_copy, 1u);
  EXPECT_EQ(pub.stats().copies, 0u);
}

// A huge-page segment's fd holds more than the slots need (rounded up to the huge page size,
// 2 MiB here): it must be announced with its real size or every subscriber refuses it.
TEST(IpcTransport, HugePageSegmentsCrossWithTheirRoundedSize) {
  TempDir dir;
  auto seg = memory::HugePageSegment::create("plx-ipc-huge", 10 * 4096);
  if (!seg && seg.error().code == Errc::unsupported) GTEST_SKIP() << seg.error().message;
  ASSERT_TRUE(seg.ok()) << seg.error().message;
  ASSERT_GT(seg->mapped_size(), seg->size());
  auto pool = memory::MemoryPool::create(std::move(*seg), 4096);
  ASSERT_TRUE(pool.ok());
  auto po = small_pool(4096, 10);
  po.pool = *pool;
  auto pub = IpcPublisher::bind(dir.file("s"), po).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  for (std::uint64_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(send_seq(pub, i, 4096).ok());
    auto b = sub.recv_for(2s);
    ASSERT_TRUE(b.ok()) << b.error().message;
    ASSERT_TRUE(b->has_value());
    EXPECT_EQ((*b)->metadata().sequence, i);
    EXPECT_EQ((*b)->size(), 4096u);
  }
  EXPECT_EQ(pub.stats().zero_copy, 3u);
}

TEST(IpcTransport, ForeignBuffersAreCopiedOnceAndCounted) {
  TempDir dir;
  auto pub = IpcPublisher::bind(dir.file("s"), small_pool()).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  Metadata m;
  m.sequence = 42;
  m.set("origin", std::string("heap"));
  ASSERT_TRUE(pub.send(memory::Buffer::copy_from(std::string_view("hello from the heap"), m)).ok());
  auto too_big = memory::Buffer::from_vector(std::vector<std::byte>(5000));
  EXPECT_EQ(pub.send(too_big).error().code, Errc::invalid_argument);
  auto b = sub.recv_for(2s);
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>((*b)->data().data()), (*b)->size()),
            "hello from the heap");
  EXPECT_EQ((*b)->metadata().sequence, 42u);
  EXPECT_EQ(*(*b)->metadata().get_as<std::string>("origin"), "heap");
  EXPECT_EQ(pub.stats().copies, 1u);
  EXPECT_EQ(pub.stats().bytes_copied, 19u);
}

TEST(IpcTransport, LeasesReturnWhenBuffersDrop) {
  TempDir dir;
  auto pub = IpcPublisher::bind(dir.file("s"), small_pool()).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  const std::size_t base = pub.pool()->in_use();
  std::vector<memory::Buffer> held;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(send_seq(pub, i).ok());
    held.push_back(std::move(**sub.recv_for(2s)));
  }
  EXPECT_EQ(sub.stats().leases, 10u);
  pub.collect_returns();
  EXPECT_EQ(pub.pool()->in_use(), base + 10);
  EXPECT_EQ(pub.stats().subscribers.at(0).leases, 10u);
  held.clear();
  EXPECT_EQ(sub.stats().leases, 0u);
  pub.collect_returns();
  EXPECT_EQ(pub.pool()->in_use(), base);
  EXPECT_EQ(pub.stats().subscribers.at(0).leases, 0u);
}

// Received buffers' cores are recycled per connection (dropped on any thread, reused by the
// consumer thread): a reused core carries its new buffer's metadata and nothing of the old one,
// and buffers dropped after the subscriber is gone still return cleanly.
TEST(IpcTransport, RecycledBuffersCarryOnlyTheirOwnMetadataAcrossThreads) {
  TempDir dir;
  auto pub = IpcPublisher::bind(dir.file("s"), small_pool()).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  std::uint64_t seq = 0;
  for (int round = 0; round < 20; ++round) {
    std::vector<memory::Buffer> held;
    for (int i = 0; i < 8; ++i, ++seq) {
      if (seq % 3 == 0) {  // a buffer with no metadata entries after ones with two
        auto l = pub.loan().value();
        (void)l.set_size(16);
        l.metadata().sequence = seq;
        ASSERT_TRUE(pub.send(std::move(l)).ok());
      } else {
        ASSERT_TRUE(send_seq(pub, seq, 64 + 8 * i).ok());
      }
      auto b = sub.recv_for(2s);
      ASSERT_TRUE(b.ok() && b->has_value());
      const memory::Buffer& got = **b;
      EXPECT_EQ(got.metadata().sequence, seq);
      if (seq % 3 == 0) {
        EXPECT_TRUE(got.metadata().entries.empty()) << seq;
        EXPECT_FALSE(got.metadata().pts.has_value()) << seq;
        EXPECT_EQ(got.size(), 16u);
      } else {
        EXPECT_EQ(ipc_test::check_payload(got), "") << seq;
      }
      held.push_back(std::move(**b));
    }
    // Dropped on another thread, half of them while the consumer thread receives again.
    std::thread dropper([h = std::move(held)]() mutable { h.clear(); });
    dropper.join();
  }
  std::vector<memory::Buffer> late;
  for (int i = 0; i < 4; ++i, ++seq) {
    ASSERT_TRUE(send_seq(pub, seq).ok());
    late.push_back(std::move(**sub.recv_for(2s)));
  }
  sub.close();
  std::thread([l = std::move(late)]() mutable {
    for (const auto& b : l)
      EXPECT_EQ(ipc_test::check_payload(b), "");
    l.clear();  // the connection (and its recycled cores) go with the last one, here
  }).join();
  EXPECT_EQ(sub.stats().buffers, seq);
}

// eager_return_bytes: sending a large buffer takes back what the subscriber returned since, so
// the next loan reuses the slot returned last (LIFO, still in the cache) instead of another.
TEST(IpcTransport, LargeSendsTakeReturnsBackSoTheNextLoanReusesTheSlotReturnedLast) {
  TempDir dir;
  auto po = small_pool(1 << 20, 8);  // eager_return_bytes: 1 MiB by default
  auto pub = IpcPublisher::bind(dir.file("s"), po).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  auto send_frame = [&](std::uint64_t seq) -> const std::byte* {
    auto l = pub.loan().value();
    const std::byte* at = l.data().data();
    l.metadata().sequence = seq;
    EXPECT_TRUE(pub.send(std::move(l)).ok());
    return at;
  };
  // The publisher's background thread also collects returns, every 20 ms; when it happens to
  // run between the consumer's drop and the next send(), it releases the slot into its own
  // thread cache and the next loan comes from this thread's cache instead (seen once under
  // TSan, 1 of 10 rounds). So most rounds, not every round, must reuse the returned slot;
  // without send()'s take-back almost none do (the loan comes from this thread's cache).
  constexpr int kRounds = 20;
  int reused = 0;
  for (std::uint64_t seq = 0; seq < 2 * kRounds; seq += 2) {
    // Frame seq goes out and comes back (the consumer drops it); frame seq+1 goes out and
    // stays with the consumer.
    const std::byte* returned = send_frame(seq);
    ASSERT_TRUE(sub.recv_for(2s).value().has_value());
    send_frame(seq + 1);
    auto held = sub.recv_for(2s).value();
    ASSERT_TRUE(held.has_value());
    // The next loan is the slot returned last: send() took the return back.
    auto next = pub.loan().value();
    if (next.data().data() == returned) ++reused;
    EXPECT_EQ(pub.pool()->in_use(), 2u) << seq;  // the held frame and this loan
  }
  EXPECT_GE(reused, kRounds - 4) << "the next loan reused the returned slot in " << reused << " of "
                                 << kRounds << " rounds";
}

TEST(IpcTransport, CleanCloseEndsTheStreamAndBuffersOutliveIt) {
  TempDir dir;
  auto pub = IpcPublisher::bind(dir.file("s"), small_pool()).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  ASSERT_TRUE(send_seq(pub, 0).ok());
  pub.close();
  auto b = sub.recv_for(2s);
  ASSERT_TRUE(b.ok() && b->has_value());
  auto end = sub.recv_for(2s);
  ASSERT_TRUE(end.ok()) << end.error().to_string();
  EXPECT_FALSE(end->has_value());
  EXPECT_EQ(ipc_test::check_payload(**b), "");  // still mapped
  EXPECT_EQ(pub.send(memory::Buffer()).error().code, Errc::failed_precondition);
}

TEST(IpcTransport, LateJoinerGetsStickyEventsFirst) {
  TempDir dir;
  auto pub = IpcPublisher::bind(dir.file("s"), small_pool()).value();
  ASSERT_TRUE(pub.send_event(Event::stream_start("late", 3)).ok());
  ASSERT_TRUE(pub.set_format("video/x-raw, width=(int)2").ok());
  ASSERT_TRUE(pub.set_format("video/x-raw, width=(int)4").ok());  // the latest wins
  ASSERT_TRUE(send_seq(pub, 0).ok());                             // nobody listening: gone
  auto sub = IpcSubscriber::connect(dir.file("s")).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  ASSERT_TRUE(send_seq(pub, 1).ok());
  auto i1 = sub.recv_item_for(2s);
  ASSERT_TRUE(i1.ok() && i1->has_value());
  EXPECT_EQ(std::get<Event>(**i1).type, EventType::stream_start);
  EXPECT_EQ(std::get<Event>(**i1).stream_id, "late");
  EXPECT_EQ(std::get<Event>(**i1).group_id, 3u);
  auto i2 = sub.recv_item_for(2s);
  ASSERT_TRUE(i2.ok() && i2->has_value());
  EXPECT_EQ(std::get<Event>(**i2).caps.text(), "video/x-raw, width=(int)4");
  auto b = sub.recv_for(2s);
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->metadata().sequence, 1u);
}

// A subscriber's sleep is a futex wait for its first 50 ms, then a poll of its wake socket
// (docs/protocol.md, "Wake-ups"). In either phase a buffer and an interrupt end it at once,
// and a publisher that closes ends the stream.
TEST(IpcTransport, BothSleepPhasesWakeAtOnce) {
  TempDir dir;
  auto pub = IpcPublisher::bind(dir.file("s"), small_pool()).value();
  SubscriberOptions so;
  so.spin = 0ns;  // sleeps at once
  auto sub = IpcSubscriber::connect(dir.file("s"), so).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 5s).ok());
  using Clock = std::chrono::steady_clock;
  // 10 ms: asleep on the futex; 200 ms: on the wake socket since 150 ms.
  for (const auto delay : {10ms, 200ms}) {
    std::atomic<Clock::rep> at{0};
    std::thread sender([&] {
      std::this_thread::sleep_for(delay);
      at = Clock::now().time_since_epoch().count();
      EXPECT_TRUE(send_seq(pub, 7).ok());
    });
    auto b = sub.recv_for(5s);
    const auto lag = Clock::now().time_since_epoch().count() - at.load();
    sender.join();
    ASSERT_TRUE(b.ok() && b->has_value()) << delay.count() << " ms";
    EXPECT_LT(lag, Clock::duration(20ms).count()) << "buffer after " << delay.count() << " ms";

    std::thread interrupter([&] {
      std::this_thread::sleep_for(delay);
      at = Clock::now().time_since_epoch().count();
      sub.interrupt();
    });
    auto r = sub.recv_for(5s);
    const auto ilag = Clock::now().time_since_epoch().count() - at.load();
    interrupter.join();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::cancelled);
    EXPECT_LT(ilag, Clock::duration(20ms).count()) << "interrupt after " << delay.count() << " ms";
    sub.resume();
  }
  std::thread closer([&] {
    std::this_thread::sleep_for(10ms);
    pub.close();
  });
  auto end = sub.recv_for(5s);
  closer.join();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(end->has_value());  // the clean end of the stream
  EXPECT_GE(sub.stats().wakeups, 4u);
}

TEST(IpcTransport, InterruptUnblocksRecv) {
  TempDir dir;
  auto pub = IpcPublisher::bind(dir.file("s"), small_pool()).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();
  std::thread t([&] {
    std::this_thread::sleep_for(50ms);
    sub.interrupt();
  });
  auto r = sub.recv();
  t.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::cancelled);
  sub.resume();
  auto timed = sub.recv_for(20ms);
  ASSERT_FALSE(timed.ok());
  EXPECT_EQ(timed.error().code, Errc::timeout);
}

TEST(IpcTransport, InterruptCancelsABlockedSendEventWhichStaysQueued) {
  // Arrange: a 16 KiB ring that a subscriber (in this process, not reading) lets fill up with
  // ~4 KiB events, so the next send_event() waits for room.
  TempDir dir;
  auto po = small_pool();
  po.ring_bytes = 16 * 1024;
  auto pub = IpcPublisher::bind(dir.file("s"), po).value();
  auto sub = IpcSubscriber::connect(dir.file("s"), with_policy(Policy::block)).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  auto big = [](int i) {
    return Event::custom("e" + std::to_string(i), std::string(4000, static_cast<char>(i)));
  };
  int sent = 0;
  for (; sent < 4; ++sent)
    ASSERT_TRUE(pub.send_event(big(sent)).ok());
  // Act: the fifth does not fit; interrupt it from another thread.
  std::atomic<bool> returned{false};
  std::thread t([&] {
    std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(returned.load()) << "send_event() did not wait for room";
    pub.interrupt();
  });
  auto r = pub.send_event(big(sent++));
  returned = true;
  t.join();
  // Assert: cancelled, and still delivered in order once the subscriber reads.
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::cancelled);
  pub.resume();
  std::vector<std::string> names;
  for (;;) {
    auto it = sub.recv_item_for(200ms);
    if (!it.ok() || !it->has_value()) break;
    if (auto* e = std::get_if<Event>(&**it)) names.push_back(e->name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"e0", "e1", "e2", "e3", "e4"}));
  // And the transport carries on after resume().
  ASSERT_TRUE(send_seq(pub, 7).ok());
  auto b = sub.recv_for(2s);
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->metadata().sequence, 7u);
}

TEST(IpcPublisher, InterruptMakesTheNextCallsFailUntilResume) {
  TempDir dir;
  auto pub = IpcPublisher::bind(dir.file("s"), small_pool(4096, 2)).value();
  pub.interrupt();
  auto l = pub.loan();
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code, Errc::cancelled);
  auto w = pub.wait_for_subscribers(1, 5s);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, Errc::cancelled);
  auto e = pub.send_eos();
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, Errc::cancelled);
  pub.resume();
  EXPECT_TRUE(send_seq(pub, 0).ok());
  // Interrupting an empty handle is harmless.
  IpcPublisher empty;
  empty.interrupt();
  empty.resume();
}

// ---- lease pressure: copy past a threshold ----------------------------------------------------

namespace {
// Sends `n` checksummed buffers then EOS from a thread; returns what send() said last.
std::thread produce(IpcPublisher& pub, int n, std::atomic<int>& sent, Result<void>& last) {
  return std::thread([&pub, n, &sent, &last] {
    for (int i = 0; i < n; ++i) {
      last = send_seq(pub, static_cast<std::uint64_t>(i));
      if (!last) return;
      ++sent;
    }
    last = pub.send_eos();
  });
}
}  // namespace

TEST(IpcLeasePressure, WithoutCopiesAConsumerThatHoldsItsQuotaStallsThePublisher) {
  // The deadlock of issue 11 in miniature: quota 4, the consumer keeps every buffer.
  TempDir dir;
  auto po = small_pool(4096, 16);
  po.max_leases_per_subscriber = 4;
  auto pub = IpcPublisher::bind(dir.file("s"), po).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();  // copy_threshold 0: never copy
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  std::atomic<int> sent{0};
  Result<void> last;
  std::thread t = produce(pub, 8, sent, last);
  std::vector<memory::Buffer> held;
  for (int i = 0; i < 4; ++i)
    held.push_back(std::move(**sub.recv_for(2s)));
  auto fifth = sub.recv_for(300ms);
  ASSERT_FALSE(fifth.ok());
  EXPECT_EQ(fifth.error().code, Errc::timeout);
  pub.interrupt();  // frees the producer
  t.join();
}

TEST(IpcLeasePressure, CopiesPastTheThresholdAndReturnsTheLeaseAtOnce) {
  TempDir dir;
  auto po = small_pool(4096, 16);
  po.max_leases_per_subscriber = 4;
  auto pub = IpcPublisher::bind(dir.file("s"), po).value();
  SubscriberOptions so;
  so.copy_threshold = 2;
  auto sub = IpcSubscriber::connect(dir.file("s"), so).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  std::atomic<int> sent{0};
  Result<void> last;
  constexpr int kN = 40;  // 10x the quota, all held at once
  std::thread t = produce(pub, kN, sent, last);
  std::vector<memory::Buffer> held;
  for (;;) {
    auto b = sub.recv_for(5s);
    ASSERT_TRUE(b.ok()) << b.error().to_string();
    if (!b->has_value()) break;
    held.push_back(std::move(**b));
  }
  t.join();
  ASSERT_TRUE(last.ok()) << last.error().to_string();
  ASSERT_EQ(held.size(), static_cast<std::size_t>(kN));
  for (std::size_t i = 0; i < held.size(); ++i) {
    EXPECT_EQ(held[i].metadata().sequence, i);
    EXPECT_EQ(ipc_test::check_payload(held[i]), "") << i;
    // The first two are the publisher's slots (zero copy), the rest local copies.
    EXPECT_EQ(held[i].segment() != nullptr, i < 2) << i;
  }
  const SubscriberStats st = sub.stats();
  EXPECT_EQ(st.copy_threshold, 2u);
  EXPECT_EQ(st.copies, static_cast<std::uint64_t>(kN - 2));
  EXPECT_EQ(st.bytes_copied, static_cast<std::uint64_t>(kN - 2) * 256);
  EXPECT_EQ(st.leases, 2u);
  pub.collect_returns();
  EXPECT_EQ(pub.stats().subscribers.at(0).leases, 2u);
  held.clear();
  pub.collect_returns();
  EXPECT_EQ(pub.stats().subscribers.at(0).leases, 0u);
}

TEST(IpcLeasePressure, AutoThresholdIsHalfTheQuotaAndCappedBelowIt) {
  TempDir dir;
  auto po = small_pool(4096, 32);  // room for two grants of 8 (reserve 4, then 28 and 20 left)
  po.max_leases_per_subscriber = 8;
  auto pub = IpcPublisher::bind(dir.file("s"), po).value();
  SubscriberOptions so;
  so.copy_threshold = SubscriberOptions::kCopyThresholdAuto;
  auto a = IpcSubscriber::connect(dir.file("s"), so).value();
  so.copy_threshold = 100;
  auto b = IpcSubscriber::connect(dir.file("s"), so).value();
  EXPECT_EQ(a.stats().copy_threshold, 4u);
  EXPECT_EQ(b.stats().copy_threshold, 7u);
}

// ---- drain at EOS -------------------------------------------------------------------------------

TEST(IpcDrain, CloseAfterEosWaitsUntilASlowReaderReadThroughTheEos) {
  TempDir dir;
  auto po = small_pool(4096, 64);
  po.linger = 5s;
  auto pub = IpcPublisher::bind(dir.file("s"), po).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(send_seq(pub, i).ok());
  ASSERT_TRUE(pub.send_eos().ok());
  EXPECT_EQ(pub.drain(50ms).error().code, Errc::timeout);  // nobody read anything yet
  std::atomic<int> got{0};
  std::atomic<bool> eos{false};
  std::thread reader([&] {
    for (;;) {
      std::this_thread::sleep_for(30ms);  // a slow consumer: ~300 ms for the stream
      auto b = sub.recv_for(5s);
      if (!b.ok() || !b->has_value()) {
        eos = b.ok();
        return;
      }
      if (ipc_test::check_payload(**b).empty()) ++got;
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  pub.close();
  const auto took = std::chrono::steady_clock::now() - t0;
  reader.join();
  EXPECT_GE(took, 250ms) << "close() did not wait for the reader";
  EXPECT_LT(took, 4s);
  EXPECT_EQ(got.load(), 10);
  EXPECT_TRUE(eos.load());
}

TEST(IpcDrain, LingerBoundsTheWaitForAStalledReaderAndInterruptCutsItShort) {
  TempDir dir;
  auto po = small_pool(4096, 64);
  po.linger = 300ms;
  auto pub = IpcPublisher::bind(dir.file("s"), po).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();  // never reads
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  ASSERT_TRUE(send_seq(pub, 0).ok());
  ASSERT_TRUE(pub.send_eos().ok());
  // interrupt() ends a drain at once.
  std::thread cut([&] {
    std::this_thread::sleep_for(50ms);
    pub.interrupt();
  });
  auto t0 = std::chrono::steady_clock::now();
  auto d = pub.drain(10s);
  cut.join();
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, Errc::cancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  pub.resume();
  t0 = std::chrono::steady_clock::now();
  pub.close();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 1500ms);
  // Nothing was dropped: the reader still gets the buffer and the EOS.
  auto b = sub.recv_for(2s);
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ(ipc_test::check_payload(**b), "");
}

TEST(IpcDrain, CloseWithoutEosDoesNotLinger) {
  TempDir dir;
  auto po = small_pool(4096, 64);
  po.linger = 5s;
  auto pub = IpcPublisher::bind(dir.file("s"), po).value();
  auto sub = IpcSubscriber::connect(dir.file("s")).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  ASSERT_TRUE(send_seq(pub, 0).ok());
  const auto t0 = std::chrono::steady_clock::now();
  pub.close();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
}

// ---- policies (one stalled subscriber, one fast one) ------------------------------------------

class IpcPolicy : public ::testing::Test {
 protected:
  void start(Policy stalled_policy) {
    auto po = small_pool();
    po.max_leases_per_subscriber = 4;
    pub_ = std::move(IpcPublisher::bind(dir_.file("s"), po).value());
    stalled_ =
        std::move(IpcSubscriber::connect(dir_.file("s"), with_policy(stalled_policy)).value());
    fast_ = std::move(IpcSubscriber::connect(dir_.file("s"), with_policy(Policy::block)).value());
    ASSERT_TRUE(pub_.wait_for_subscribers(2, 2s).ok());
  }
  // The fast subscriber drains in a thread, dropping each buffer at once.
  void run_fast(int n) {
    fast_thread_ = std::thread([this, n] {
      for (int i = 0; i < n; ++i) {
        auto b = fast_.recv_for(5s);
        if (!b.ok() || !b->has_value() || (*b)->metadata().sequence != std::uint64_t(i)) return;
        fast_got_.fetch_add(1);
      }
    });
  }
  SubscriberInfo info_of_stalled() {
    for (auto& s : pub_.stats().subscribers)
      if (s.id == 1) return s;
    return {};
  }
  std::vector<std::uint64_t> drain_stalled() {
    std::vector<std::uint64_t> seqs;
    for (;;) {
      auto b = stalled_.recv_for(100ms);
      if (!b.ok() || !b->has_value()) break;
      seqs.push_back((*b)->metadata().sequence);
    }
    return seqs;
  }
  // Everything the stalled subscriber has, in order: buffers by sequence (payload checked),
  // events by type ("format:<caps>" for formats).
  std::vector<std::string> drain_stalled_items() {
    std::vector<std::string> seen;
    for (;;) {
      auto it = stalled_.recv_item_for(100ms);
      if (!it.ok() || !it->has_value()) break;
      if (auto* b = std::get_if<memory::Buffer>(&**it)) {
        EXPECT_EQ(ipc_test::check_payload(*b), "");
        seen.push_back(std::to_string(b->metadata().sequence));
      } else {
        const Event& e = std::get<Event>(**it);
        seen.push_back(e.type == EventType::caps ? "format:" + e.caps.text()
                                                 : std::string(to_string(e.type)));
      }
    }
    return seen;
  }
  void TearDown() override {
    if (fast_thread_.joinable()) fast_thread_.join();
  }
  TempDir dir_;
  IpcPublisher pub_;
  IpcSubscriber stalled_, fast_;
  std::thread fast_thread_;
  std::atomic<int> fast_got_{0};
};

TEST_F(IpcPolicy, DropNewestKeepsTheFirstAndDoesNotStallOthers) {
  start(Policy::drop_newest);
  run_fast(20);
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(send_seq(pub_, i).ok());
  fast_thread_.join();
  EXPECT_EQ(fast_got_.load(), 20);
  auto info = info_of_stalled();
  EXPECT_EQ(info.dropped_newest, 16u);
  EXPECT_EQ(info.dropped_oldest, 0u);
  EXPECT_EQ(drain_stalled(), (std::vector<std::uint64_t>{0, 1, 2, 3}));
}

TEST_F(IpcPolicy, DropOldestKeepsTheLatest) {
  start(Policy::drop_oldest);
  run_fast(20);
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(send_seq(pub_, i).ok());
  fast_thread_.join();
  EXPECT_EQ(fast_got_.load(), 20);
  auto info = info_of_stalled();
  EXPECT_EQ(info.dropped_oldest, 16u);
  EXPECT_EQ(drain_stalled(), (std::vector<std::uint64_t>{16, 17, 18, 19}));
  // Retracted leases went back to the pool.
  pub_.collect_returns();
  EXPECT_EQ(pub_.stats().subscribers.size(), 2u);
}

TEST_F(IpcPolicy, DropOldestNeverDropsEvents) {
  start(Policy::drop_oldest);
  run_fast(8);
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(send_seq(pub_, i).ok());
  ASSERT_TRUE(pub_.set_format("x/y").ok());
  for (int i = 4; i < 8; ++i)
    ASSERT_TRUE(send_seq(pub_, i).ok());
  fast_thread_.join();
  const std::vector<std::string> seen = drain_stalled_items();
  // The format event survives; the buffers around it are the latest that fit the quota.
  ASSERT_NE(std::find(seen.begin(), seen.end(), "format:x/y"), seen.end());
  EXPECT_EQ(seen.back(), "7");
}

// The stalled subscriber never read anything, so an event is the oldest record in its ring:
// drop-oldest must still drop the oldest buffers behind it (not the newest), keep every
// event, and keep the order.
TEST_F(IpcPolicy, DropOldestDropsBuffersBehindAnUnreadEvent) {
  start(Policy::drop_oldest);
  run_fast(20);
  ASSERT_TRUE(pub_.set_format("x/first").ok());
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(send_seq(pub_, i).ok());
  ASSERT_TRUE(pub_.set_format("x/second").ok());
  for (int i = 10; i < 20; ++i)
    ASSERT_TRUE(send_seq(pub_, i).ok());
  fast_thread_.join();
  EXPECT_EQ(fast_got_.load(), 20);
  auto info = info_of_stalled();
  EXPECT_EQ(info.dropped_newest, 0u);
  EXPECT_EQ(info.dropped_oldest, 16u);
  EXPECT_EQ(drain_stalled_items(), (std::vector<std::string>{"format:x/first", "format:x/second",
                                                             "16", "17", "18", "19"}));
}

// Races drop-oldest retractions (including the take-everything-back path an event at the head
// takes) against a subscriber that reads slowly: every event arrives, in place; buffers arrive
// intact, in order, each after the events sent before it and before those sent after it.
TEST(IpcPolicyRace, DropOldestWithEventsAgainstASlowReader) {
  TempDir dir;
  auto po = small_pool(4096, 64);
  po.max_leases_per_subscriber = 8;
  auto pub = IpcPublisher::bind(dir.file("s"), po).value();
  auto sub = IpcSubscriber::connect(dir.file("s"), with_policy(Policy::drop_oldest)).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  constexpr int kBuffers = 3000;
  std::vector<std::pair<char, std::uint64_t>> seen;  // ('e', k) or ('b', seq)
  std::string bad;
  std::thread reader([&] {
    for (int n = 0;; ++n) {
      auto it = sub.recv_item_for(5s);
      if (!it.ok()) {
        bad = "recv: " + it.error().message;
        return;
      }
      if (!it->has_value()) return;
      if (auto* b = std::get_if<memory::Buffer>(&**it)) {
        if (auto why = ipc_test::check_payload(*b); !why.empty() && bad.empty()) bad = why;
        seen.emplace_back('b', b->metadata().sequence);
      } else {
        const Event& e = std::get<Event>(**it);
        if (e.type == EventType::eos) return;
        if (e.type == EventType::custom) seen.emplace_back('e', std::stoull(e.name));
      }
      if (n % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  for (int i = 0; i < kBuffers; ++i) {
    if (i % 10 == 0) {
      ASSERT_TRUE(pub.send_event(Event::custom(std::to_string(i / 10), "\x01")).ok());
    }
    ASSERT_TRUE(send_seq(pub, static_cast<std::uint64_t>(i), 512).ok());
  }
  ASSERT_TRUE(pub.send_eos().ok());
  reader.join();
  EXPECT_EQ(bad, "");
  std::uint64_t next_event = 0, buffers = 0;
  std::int64_t last_seq = -1;
  for (const auto& [kind, v] : seen) {
    if (kind == 'e') {
      EXPECT_EQ(v, next_event) << "events lost or reordered";
      ++next_event;
    } else {
      ++buffers;
      EXPECT_GT(static_cast<std::int64_t>(v), last_seq) << "buffers reordered";
      last_seq = static_cast<std::int64_t>(v);
      // Buffer v was sent after event v/10 and before event v/10 + 1.
      EXPECT_EQ(next_event, v / 10 + 1) << "buffer " << v << " overtook or trailed an event";
    }
  }
  EXPECT_EQ(next_event, kBuffers / 10u);
  EXPECT_GT(buffers, 0u);
  const auto st = pub.stats();
  ASSERT_EQ(st.subscribers.size(), 1u);
  EXPECT_GT(st.subscribers[0].dropped_oldest, 0u);  // the reader did fall behind
  EXPECT_EQ(buffers + st.subscribers[0].dropped_oldest + st.subscribers[0].dropped_newest,
            static_cast<std::uint64_t>(kBuffers));
}

TEST_F(IpcPolicy, BlockAppliesBackpressure) {
  start(Policy::block);
  run_fast(8);
  std::atomic<bool> drained{false};
  std::thread consumer([&] {
    std::this_thread::sleep_for(150ms);
    drained = true;
    std::vector<std::uint64_t> seqs;
    for (int i = 0; i < 8; ++i) {
      auto b = stalled_.recv_for(3s);
      if (b.ok() && b->has_value()) seqs.push_back((*b)->metadata().sequence);
    }
    EXPECT_EQ(seqs.size(), 8u);
  });
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i)
    ASSERT_TRUE(send_seq(pub_, i).ok());
  const auto took = std::chrono::steady_clock::now() - t0;
  consumer.join();
  EXPECT_TRUE(drained.load());
  EXPECT_GE(took, 100ms) << "send() did not wait for the blocked subscriber";
  auto info = info_of_stalled();
  EXPECT_EQ(info.dropped_newest + info.dropped_oldest, 0u);
  EXPECT_GE(info.blocked_sends, 1u);
}

TEST_F(IpcPolicy, BlockTimeoutExpelsAStalledSubscriber) {
  auto po = small_pool();
  po.max_leases_per_subscriber = 2;
  po.block_timeout = 50ms;
  pub_ = std::move(IpcPublisher::bind(dir_.file("s"), po).value());
  stalled_ = std::move(IpcSubscriber::connect(dir_.file("s")).value());
  ASSERT_TRUE(pub_.wait_for_subscribers(1, 2s).ok());
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(send_seq(pub_, i).ok());
  EXPECT_TRUE(eventually([&] { return pub_.subscriber_count() == 0; }));
  EXPECT_EQ(pub_.stats().protocol_errors, 1u);
}

// ---- multi-process ----------------------------------------------------------------------------

TEST(IpcMultiProcess, OnePublisherFourSubscribersChecksumsAndOrder) {
  TempDir dir;
  const auto path = dir.file("fan.sock");
  auto po = small_pool(64 * 1024, 64);
  auto pub = IpcPublisher::bind(path, po).value();
  ASSERT_TRUE(pub.set_format("test/x-checksummed").ok());
  constexpr int kN = 3000;
  std::vector<Child> subs;
  for (int i = 0; i < 4; ++i)
    subs.emplace_back(
        std::vector<std::string>{ipc_test::peer_binary(), "subscribe", path, std::to_string(kN)});
  ASSERT_TRUE(pub.wait_for_subscribers(4, 10s).ok());
  for (int i = 0; i < kN; ++i) {
    const std::size_t size = 1 + (static_cast<std::size_t>(i) * 7919) % (64 * 1024 - 1);
    ASSERT_TRUE(send_seq(pub, i, size).ok());
  }
  ASSERT_TRUE(pub.send_eos().ok());
  for (auto& c : subs)
    EXPECT_EQ(c.wait(60s), 0);
  auto st = pub.stats();
  EXPECT_EQ(st.buffers_sent, std::uint64_t(kN));
  EXPECT_EQ(st.copies, 0u);
  EXPECT_EQ(st.protocol_errors, 0u);
}

TEST(IpcMultiProcess, SubscriberKilledMidStreamLeasesAndFdsReclaimed) {
  TempDir dir;
  const auto path = dir.file("kill.sock");
  auto po = small_pool(4096, 256);
  po.max_leases_per_subscriber = 16;
  auto pub = IpcPublisher::bind(path, po).value();
  const char* soak = std::getenv("PLX_IPC_SOAK_CYCLES");
  const int cycles = soak ? std::atoi(soak) : 200;
  std::size_t pool_base = pub.pool()->in_use();
  std::size_t fd_base = 0;
  std::uint64_t seq = 0;
  for (int c = 0; c < cycles; ++c) {
    if (c == 3) fd_base = os::count_open_fds();
    Child victim({ipc_test::peer_binary(), "hold", path}, true);
    ASSERT_EQ(victim.read_line(), "ready");
    ASSERT_TRUE(pub.wait_for_subscribers(1, 5s).ok());
    for (int i = 0; i < 12; ++i)
      ASSERT_TRUE(send_seq(pub, seq++).ok());
    victim.kill9();
    ASSERT_TRUE(eventually([&] { return pub.subscriber_count() == 0; })) << "cycle " << c;
    ASSERT_TRUE(send_seq(pub, seq++).ok());  // refreshes the producer's view of subscribers
  }
  pub.collect_returns();
  EXPECT_TRUE(eventually([&] { return pub.pool()->in_use() == pool_base; }))
      << "pool occupancy " << pub.pool()->in_use() << " vs baseline " << pool_base;
  // The last victim's socket and wake socket close when the background thread releases its
  // quarantine (it sees the process gone), shortly after subscriber_count() says 0; the
  // baseline may likewise include cycle 2's. A leak of one fd per cycle still fails by far.
  EXPECT_TRUE(eventually([&] { return os::count_open_fds() <= fd_base; }))
      << "publisher fd count grew: " << os::count_open_fds() << " vs " << fd_base;
  auto st = pub.stats();
  EXPECT_EQ(st.connections, std::uint64_t(cycles));
  EXPECT_EQ(st.disconnects, std::uint64_t(cycles));
  EXPECT_EQ(st.protocol_errors, 0u);
}

TEST(IpcMultiProcess, InterruptCancelsASendBlockedOnAStalledSubscriberProcess) {
  // Arrange: a subscriber process that connected and then stopped reading (alive), and a
  // `block` publisher whose lease quota for it is used up.
  TempDir dir;
  const auto path = dir.file("stall.sock");
  auto po = small_pool(4096, 16);
  po.max_leases_per_subscriber = 4;
  po.default_policy = Policy::block;
  auto pub = IpcPublisher::bind(path, po).value();
  Child stalled({ipc_test::peer_binary(), "stall", path}, true);
  ASSERT_EQ(stalled.read_line(), "ready");
  ASSERT_TRUE(pub.wait_for_subscribers(1, 5s).ok());
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(send_seq(pub, i).ok());
  // Act: the next send blocks; another thread interrupts it.
  std::atomic<bool> returned{false};
  Result<void> blocked = err(Errc::internal, "not run");
  std::chrono::steady_clock::time_point returned_at;
  std::thread producer([&] {
    blocked = send_seq(pub, 4);
    returned_at = std::chrono::steady_clock::now();
    returned = true;
  });
  std::this_thread::sleep_for(200ms);
  const bool was_blocked = !returned.load();
  const auto interrupted_at = std::chrono::steady_clock::now();
  pub.interrupt();
  producer.join();
  // Assert: it was blocked, and returned cancelled promptly (well under the 100 ms re-check).
  EXPECT_TRUE(was_blocked) << "send() did not block on the stalled subscriber";
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.error().code, Errc::cancelled);
  EXPECT_LT(returned_at - interrupted_at, 50ms);
  // The subscriber is still connected (interrupting is not expelling) and holds its quota.
  EXPECT_EQ(pub.subscriber_count(), 1u);
  EXPECT_GE(pub.stats().subscribers.at(0).blocked_sends, 1u);
  // After resume() and the consumer's death, sends go through again.
  pub.resume();
  stalled.kill9();
  ASSERT_TRUE(eventually([&] { return pub.subscriber_count() == 0; }));
  EXPECT_TRUE(send_seq(pub, 5).ok());
}

TEST(IpcMultiProcess, PublisherKilledSubscribersErrorWithin100ms) {
  TempDir dir;
  const auto path = dir.file("victim.sock");
  Child publisher({ipc_test::peer_binary(), "publish", path, "4096", "200"});
  SubscriberOptions so;
  so.connect_timeout = 5s;
  auto s1 = IpcSubscriber::connect(path, so);
  auto s2 = IpcSubscriber::connect(path, so);
  ASSERT_TRUE(s1.ok() && s2.ok());
  for (auto* s : {&*s1, &*s2}) {
    auto b = s->recv_for(5s);
    ASSERT_TRUE(b.ok() && b->has_value());
  }
  std::atomic<std::int64_t> killed_at{0};
  std::vector<std::int64_t> lag(2, -1);
  std::vector<Errc> code(2, Errc::internal);
  auto drain = [&](IpcSubscriber& s, int idx) {
    std::vector<memory::Buffer> keep;  // buffers must stay readable after the crash
    for (;;) {
      auto b = s.recv_for(3s);
      if (!b.ok()) {
        code[idx] = b.error().code;
        const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
        lag[idx] = now - killed_at.load();
        for (auto& k : keep)
          EXPECT_EQ(ipc_test::check_payload(k), "");
        return;
      }
      if (!b->has_value()) return;
      keep.push_back(std::move(**b));
      if (keep.size() > 4) keep.erase(keep.begin());
    }
  };
  std::thread t1(drain, std::ref(*s1), 0), t2(drain, std::ref(*s2), 1);
  std::this_thread::sleep_for(50ms);
  killed_at = std::chrono::steady_clock::now().time_since_epoch().count();
  ::kill(publisher.pid(), SIGKILL);
  t1.join();
  t2.join();
  publisher.wait();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(code[i], Errc::unavailable);
    EXPECT_GE(lag[i], 0);
    EXPECT_LT(lag[i], 100'000'000) << "subscriber " << i << " noticed after " << lag[i] << " ns";
  }
}

TEST(IpcMultiProcess, ReconnectsToARestartedPublisher) {
  TempDir dir;
  const auto path = dir.file("re.sock");
  Child first({ipc_test::peer_binary(), "publish", path, "512", "500"});
  SubscriberOptions so;
  so.connect_timeout = 5s;
  so.reconnect = true;
  auto sub = IpcSubscriber::connect(path, so).value();
  auto b = sub.recv_for(5s);
  ASSERT_TRUE(b.ok() && b->has_value());
  b->reset();
  first.kill9();  // leaves a stale socket file behind
  Child second({ipc_test::peer_binary(), "publish", path, "512", "500"});
  bool got_format_again = false;
  for (int i = 0; i < 2000; ++i) {
    auto it = sub.recv_item_for(5s);
    ASSERT_TRUE(it.ok()) << it.error().to_string();
    ASSERT_TRUE(it->has_value());
    if (auto* e = std::get_if<Event>(&**it); e && e->type == EventType::caps) {
      got_format_again = true;
      break;
    }
  }
  EXPECT_TRUE(got_format_again);
  auto after = sub.recv_for(5s);
  ASSERT_TRUE(after.ok() && after->has_value());
  EXPECT_EQ(ipc_test::check_payload(**after), "");
  EXPECT_EQ(sub.stats().reconnects, 1u);
}

TEST(IpcMultiProcess, ForeignUidIsRefusedByCredentials) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to setuid() a child";
  TempDir dir;
  const auto path = dir.file("cred.sock");
  auto po = small_pool();
  po.socket_mode = 0666;  // the file mode lets everyone in: only SO_PEERCRED can refuse
  auto pub = IpcPublisher::bind(path, po).value();
  Child nobody({ipc_test::peer_binary(), "setuid-connect", path, "65534"});
  EXPECT_EQ(nobody.wait(10s), 0);
  EXPECT_EQ(pub.stats().refused, 1u);
  EXPECT_EQ(pub.subscriber_count(), 0u);
  // Admitted once allowed.
  po = small_pool();
  po.socket_mode = 0666;
  po.allowed_uids = {65534};
  pub.close();
  pub = IpcPublisher::bind(path, po).value();
  Child allowed({ipc_test::peer_binary(), "setuid-connect", path, "65534"});
  EXPECT_EQ(allowed.wait(10s), 1);  // 1 = connected (the helper expected a refusal)
}

class IpcHostileSubscriber : public ::testing::TestWithParam<const char*> {};

TEST_P(IpcHostileSubscriber, ConnectionClosedOthersUnaffected) {
  TempDir dir;
  const auto path = dir.file("h.sock");
  auto pub = IpcPublisher::bind(path, small_pool()).value();
  ASSERT_TRUE(pub.set_format("test/x-checksummed").ok());
  auto good = IpcSubscriber::connect(path).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  // One buffer first: the good subscriber maps the pool's segment (an fd of its own) now.
  ASSERT_TRUE(send_seq(pub, 1000).ok());
  ASSERT_TRUE(good.recv_for(2s).ok());
  const std::size_t fds_before = os::count_open_fds();
  Child hostile({ipc_test::peer_binary(), "hostile-sub", path, GetParam()});
  const std::string mode = GetParam();
  if (mode == "double-release" || mode == "never-leased" || mode == "bad-read-pos" ||
      mode == "bad-return-index" || mode == "talk-after-hello") {
    // It may be expelled at once: count admissions, not current subscribers.
    ASSERT_TRUE(eventually([&] { return pub.stats().connections >= 2; }, 5s));
  }
  // Keep the stream going while the hostile peer does its thing, until it exits.
  std::uint64_t seq = 0;
  const auto until = std::chrono::steady_clock::now() + 5s;
  auto running = [&] {
    siginfo_t si{};
    return ::waitid(P_PID, static_cast<id_t>(hostile.pid()), &si, WEXITED | WNOHANG | WNOWAIT) ==
               0 &&
           si.si_pid == 0;
  };
  while (std::chrono::steady_clock::now() < until && running()) {
    ASSERT_TRUE(send_seq(pub, seq).ok());
    auto b = good.recv_for(2s);
    ASSERT_TRUE(b.ok() && b->has_value());
    EXPECT_EQ((*b)->metadata().sequence, seq);
    ++seq;
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_EQ(hostile.wait(5s), 0) << "the publisher did not close the hostile connection";
  EXPECT_GE(pub.stats().protocol_errors, 1u);
  EXPECT_TRUE(eventually([&] { return pub.subscriber_count() == 1; }));
  ASSERT_TRUE(send_seq(pub, seq).ok());
  auto b = good.recv_for(2s);
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_TRUE(eventually([&] { return os::count_open_fds() <= fds_before; }))
      << "fds leaked: " << os::count_open_fds() << " vs " << fds_before;
}

INSTANTIATE_TEST_SUITE_P(Modes, IpcHostileSubscriber,
                         ::testing::Values("garbage", "version", "fds", "toomanyfds",
                                           "never-leased", "double-release", "bad-read-pos",
                                           "bad-return-index", "talk-after-hello"));

class IpcHostilePublisher : public ::testing::TestWithParam<const char*> {};

TEST_P(IpcHostilePublisher, SubscriberRefusesAndSurvives) {
  TempDir dir;
  const auto path = dir.file("hp.sock");
  Child hostile({ipc_test::peer_binary(), "hostile-pub", path, GetParam()}, true);
  ASSERT_EQ(hostile.read_line(), "ready");
  SubscriberOptions so;
  so.connect_timeout = 2s;
  auto sub = IpcSubscriber::connect(path, so);
  Errc code = Errc::internal;
  std::string why;
  if (!sub.ok()) {
    code = sub.error().code;
    why = sub.error().message;
  } else {
    auto b = sub->recv_for(2s);
    ASSERT_FALSE(b.ok()) << "accepted a malformed stream";
    code = b.error().code;
    why = b.error().message;
    sub->close();
    sub = Error{};  // drop the connection so the helper sees it closed
  }
  EXPECT_EQ(code, Errc::data_loss) << GetParam();
  // Refused for the missing write seal, before any mapping (without reserved huge pages the
  // mapping itself would fail too, which proves nothing about the seal check).
  if (std::string_view(GetParam()) == "hugetlb-unsealed") {
    EXPECT_NE(why.find("hugetlbfs memfd not sealed against writes"), std::string::npos) << why;
  }
  EXPECT_EQ(hostile.wait(10s), 0) << "the subscriber did not close the connection";
}

INSTANTIATE_TEST_SUITE_P(Modes, IpcHostilePublisher,
                         ::testing::Values("garbage", "version", "writable-ring", "welcome-no-fds",
                                           "oob", "unsealed", "writable", "truncated", "bad-record",
                                           "bad-write-pos", "retire-unknown", "retire-then-use",
                                           "hugetlb-unsealed"));

// ---- hostile peers against the wake-ups (issue 12, item 1) ------------------------------------

// A subscriber clears O_NONBLOCK on the wake-up fds it was given and fills them, and says it
// sleeps so that every buffer wakes it. The publisher (a separate process) must still send,
// expel it after block_timeout, and close: nothing a peer does to a shared fd can make a
// publisher call block.
TEST(IpcHostileWakeups, JammedSubscriberCannotBlockThePublisher) {
  TempDir dir;
  const auto path = dir.file("jam.sock");
  Child pub({ipc_test::peer_binary(), "publish-n", path, "40"}, true);
  ASSERT_EQ(pub.read_line(), "ready");
  Child hostile({ipc_test::peer_binary(), "hostile-sub", path, "jam-wakeups"}, true);
  ASSERT_EQ(hostile.read_line(), "ready");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(pub.wait(10s), 0) << "the publisher blocked on a jammed wake-up (or failed)";
  // 40 buffers, one block_timeout (300 ms) to expel the stalled peer: well under 5 s.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

// The symmetric attack: a publisher jams the subscriber's return wake-up and asks to be woken
// on the first return. Dropping the received Buffer (which returns its lease) and the next
// wait must not block the subscriber process.
TEST(IpcHostileWakeups, JammedPublisherCannotBlockTheSubscriber) {
  TempDir dir;
  const auto path = dir.file("jamp.sock");
  Child hostile({ipc_test::peer_binary(), "hostile-pub", path, "jam-wakeups"}, true);
  ASSERT_EQ(hostile.read_line(), "ready");
  Child sub({ipc_test::peer_binary(), "recv-drop", path});
  EXPECT_EQ(sub.wait(10s), 0) << "the subscriber blocked dropping a buffer (or failed)";
}

// ---- slots a gone subscriber may still read (issue 12, item 2) --------------------------------

// A subscriber process receives 4 buffers, closes, keeps them. The publisher goes on: with
// 8 slots it reuses every slot it can. The kept buffers must stay intact (their slots are
// quarantined, counted in stats), and come back to the pool once the process drops them,
// while it is still alive.
TEST(IpcQuarantine, SlotsOfAClosedSubscriberAreNotReusedUntilItDropsThem) {
  TempDir dir;
  const auto path = dir.file("q.sock");
  auto po = small_pool(4096, 16);  // a grant of 4 (reserve 2, at most 3/4 of the 14 left)
  po.max_leases_per_subscriber = 4;
  po.default_policy = Policy::block;
  auto pub = IpcPublisher::bind(path, po).value();
  Child keeper({ipc_test::peer_binary(), "keep-after-close", path, "4"}, true, true);
  ASSERT_TRUE(pub.wait_for_subscribers(1, 5s).ok());
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(send_seq(pub, i).ok());
  ASSERT_EQ(keeper.read_line(), "closed");
  ASSERT_TRUE(eventually([&] { return pub.subscriber_count() == 0; }));
  // Every slot the pool will give is written (the kept ones must not be among them).
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(send_seq(pub, 1000 + i).ok());
  const auto st = pub.stats();
  EXPECT_EQ(st.quarantined_slots, 4u);
  EXPECT_EQ(st.quarantined_subscribers, 1u);
  keeper.write_line("check");
  EXPECT_EQ(keeper.read_line(), "intact");
  keeper.write_line("drop");
  ASSERT_EQ(keeper.read_line(), "dropped");
  // Alive, but its connection object (and mappings) are gone: the slots come back.
  EXPECT_TRUE(eventually([&] { return pub.stats().quarantined_slots == 0; }));
  pub.collect_returns();
  EXPECT_TRUE(eventually([&] { return pub.pool()->in_use() == 0; }))
      << "pool occupancy " << pub.pool()->in_use();
}

// Quarantine is bounded: a gone subscriber whose slots are quarantined still counts against
// max_subscribers (so the pool can lose at most max_subscribers x quota to quarantine).
TEST(IpcQuarantine, QuarantinedSubscribersCountAgainstMaxSubscribers) {
  TempDir dir;
  const auto path = dir.file("qmax.sock");
  auto po = small_pool(4096, 8);
  po.max_leases_per_subscriber = 2;
  po.max_subscribers = 1;
  auto pub = IpcPublisher::bind(path, po).value();
  Child keeper({ipc_test::peer_binary(), "keep-after-close", path, "2"}, true, true);
  ASSERT_TRUE(pub.wait_for_subscribers(1, 5s).ok());
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(send_seq(pub, i).ok());
  ASSERT_EQ(keeper.read_line(), "closed");
  ASSERT_TRUE(eventually([&] { return pub.subscriber_count() == 0; }));
  auto refused = IpcSubscriber::connect(path);
  ASSERT_FALSE(refused.ok());
  // The refusal ("too many subscribers") or, when our hello crossed it, a reset connection.
  EXPECT_TRUE(refused.error().code == Errc::resource_exhausted ||
              refused.error().code == Errc::unavailable)
      << refused.error().to_string();
  keeper.kill9();  // process gone: slots and place come back
  EXPECT_TRUE(eventually([&] { return pub.stats().quarantined_slots == 0; }));
  SubscriberOptions so;
  so.connect_timeout = 2s;
  EXPECT_TRUE(IpcSubscriber::connect(path, so).ok());
}

// ---- connect / bind against listeners that never answer (issue 12, item 4) --------------------

namespace {
// A listener with a full backlog that never accepts: a blocking connect() to it never returns.
struct JammedListener {
  UniqueFd lfd;
  std::vector<UniqueFd> clients;
  explicit JammedListener(const std::string& path) {
    auto addr = os::make_addr(path).value();
    lfd.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    EXPECT_EQ(::bind(lfd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(lfd.get(), 0), 0);
    for (int i = 0; i < 64; ++i) {
      UniqueFd c(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      if (::connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) break;
      clients.push_back(std::move(c));
    }
  }
};
}  // namespace

TEST(IpcConnectDeadline, FullBacklogListenerTimesOutWithinConnectTimeout) {
  TempDir dir;
  const auto path = dir.file("full.sock");
  JammedListener jam(path);
  Child c({ipc_test::peer_binary(), "connect-within", path, "300"}, true);
  EXPECT_EQ(c.wait(5s), 0) << c.read_line();
}

// A subscriber asleep on its futex learns of a control message through RingHeader::ctl_sent
// and the wake-up that follows it (wire version 3), not only when its 50 ms futex window ends:
// here the message is one it must refuse, so recv_for() ends with data_loss at once.
TEST(IpcHostilePublisher, AControlMessageWakesAFutexSleeper) {
  TempDir dir;
  const auto path = dir.file("late.sock");
  Child hostile({ipc_test::peer_binary(), "hostile-pub", path, "late-retire"}, true);
  ASSERT_EQ(hostile.read_line(), "ready");
  SubscriberOptions so;
  so.spin = 0ns;  // sleeps at once
  so.connect_timeout = 5s;
  auto sub = IpcSubscriber::connect(path, so).value();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = sub.recv_for(5s);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::data_loss) << r.error().message;
  // ~5 ms after the sleep began; 50 ms (the end of the futex window) without ctl_sent.
  EXPECT_LT(took, 35ms) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  sub.close();
  EXPECT_EQ(hostile.wait(5s), 0);
}

TEST(IpcConnectDeadline, SilentPublisherHandshakeHonoursConnectTimeout) {
  TempDir dir;
  const auto path = dir.file("silent.sock");
  Child hostile({ipc_test::peer_binary(), "hostile-pub", path, "silent"}, true);
  ASSERT_EQ(hostile.read_line(), "ready");
  Child c({ipc_test::peer_binary(), "connect-within", path, "300"}, true);
  EXPECT_EQ(c.wait(5s), 0) << c.read_line();  // before: a fixed 5 s wait for the welcome
}

TEST(IpcConnectDeadline, BindProbeOfANonAcceptingListenerDoesNotBlock) {
  TempDir dir;
  const auto path = dir.file("taken.sock");
  JammedListener jam(path);
  Child c({ipc_test::peer_binary(), "bind-taken", path}, true);
  EXPECT_EQ(c.wait(5s), 0) << c.read_line();
}

namespace {
// A subscriber with reconnect on (connect_timeout 10 s) that received from `path`'s publisher.
IpcSubscriber reconnecting_subscriber(const std::string& path) {
  SubscriberOptions so;
  so.reconnect = true;
  so.connect_timeout = 10s;
  auto sub = IpcSubscriber::connect(path, so).value();
  EXPECT_TRUE(sub.recv_for(5s).ok());
  return sub;
}

// The publisher is gone and whatever holds its path now never lets a reconnect complete:
// interrupt() from another thread ends the recv that reconnects, well before connect_timeout.
void expect_interrupt_cancels_reconnect(IpcSubscriber& sub) {
  std::thread t([&] {
    std::this_thread::sleep_for(300ms);
    sub.interrupt();
  });
  const auto t0 = std::chrono::steady_clock::now();
  Result<std::optional<memory::Buffer>> r = std::optional<memory::Buffer>();
  do {
    r = sub.recv_for(20s);  // drains what was in flight, then reconnects
  } while (r.ok() && r->has_value());
  const auto took = std::chrono::steady_clock::now() - t0;
  t.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::cancelled) << r.error().to_string();
  EXPECT_LT(took, 2s);  // not connect_timeout (10 s)
}
}  // namespace

TEST(IpcConnectDeadline, InterruptCancelsAReconnect) {
  TempDir dir;
  const auto path = dir.file("re.sock");
  Child publisher({ipc_test::peer_binary(), "publish", path, "4096", "1000"});
  auto sub = reconnecting_subscriber(path);
  // The publisher dies; its path is then held by a listener that never accepts.
  publisher.kill9();
  ::unlink(path.c_str());
  JammedListener jam(path);
  expect_interrupt_cancels_reconnect(sub);
}

// The same while the reconnect waits for a welcome that never comes (a listener that accepts,
// reads the hello and stays silent for 10 s): the wait for the welcome watches the interrupt.
TEST(IpcConnectDeadline, InterruptCancelsAReconnectWaitingForAWelcome) {
  TempDir dir;
  const auto path = dir.file("re-silent.sock");
  Child publisher({ipc_test::peer_binary(), "publish", path, "4096", "1000"});
  auto sub = reconnecting_subscriber(path);
  publisher.kill9();
  Child silent({ipc_test::peer_binary(), "hostile-pub", path, "silent"}, true);
  ASSERT_EQ(silent.read_line(), "ready");
  expect_interrupt_cancels_reconnect(sub);
}

// ---- segment announcement caps (issue 12, item 5) ---------------------------------------------

class IpcHostilePublisherLimits : public ::testing::TestWithParam<const char*> {};

TEST_P(IpcHostilePublisherLimits, TooManyOrTooLargeSegmentsAreRefused) {
  TempDir dir;
  const auto path = dir.file("segs.sock");
  Child hostile({ipc_test::peer_binary(), "hostile-pub", path, GetParam()}, true);
  ASSERT_EQ(hostile.read_line(), "ready");
  const std::size_t fds_before = os::count_open_fds();
  SubscriberOptions so;
  so.connect_timeout = 2s;
  so.max_segments = 16;
  so.max_mapped_bytes = std::uint64_t{1} << 30;
  Errc code = Errc::internal;
  {
    auto sub = IpcSubscriber::connect(path, so);
    if (!sub.ok()) {
      code = sub.error().code;
    } else {
      auto b = sub->recv_for(3s);
      ASSERT_FALSE(b.ok()) << "accepted unbounded segment announcements";
      code = b.error().code;
      EXPECT_LE(sub->stats().segments, 16u);
    }
  }
  EXPECT_EQ(code, Errc::resource_exhausted) << GetParam();
  EXPECT_TRUE(eventually([&] { return os::count_open_fds() <= fds_before; }))
      << "fds kept: " << os::count_open_fds() << " vs " << fds_before;
}

INSTANTIATE_TEST_SUITE_P(Modes, IpcHostilePublisherLimits,
                         ::testing::Values("many-segments", "huge-segments"));

// ---- allowed policies (issue 12, item 6, partly) ----------------------------------------------

TEST(IpcAllowedPolicies, ASubscriberAskingForBlockIsRefusedWhenNotAllowed) {
  TempDir dir;
  const auto path = dir.file("pol.sock");
  auto po = small_pool();
  po.default_policy = Policy::drop_oldest;
  po.allowed_policies = {Policy::drop_oldest, Policy::drop_newest};
  auto pub = IpcPublisher::bind(path, po).value();
  SubscriberOptions blocky;
  blocky.policy = Policy::block;
  auto refused = IpcSubscriber::connect(path, blocky);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::permission_denied) << refused.error().to_string();
  SubscriberOptions polite;
  polite.policy = Policy::drop_newest;
  EXPECT_TRUE(IpcSubscriber::connect(path, polite).ok());
  EXPECT_TRUE(IpcSubscriber::connect(path).ok());  // the default (drop-oldest)
  auto bad = small_pool();
  bad.allowed_policies = {Policy::drop_newest};  // default block not allowed
  EXPECT_EQ(IpcPublisher::bind(dir.file("bad.sock"), bad).error().code, Errc::invalid_argument);
}

// ---- pool replacement (caps growth) and retirement ---------------------------------------------

namespace {

std::shared_ptr<memory::MemoryPool> slot_pool(std::size_t slot, std::size_t count) {
  auto seg = memory::SharedMemorySegment::create("plx-test-pool", slot * count).value();
  return memory::MemoryPool::create(std::move(seg), slot).value();
}

std::shared_ptr<memory::MemoryPool> arena_pool(std::size_t first, std::size_t budget) {
  auto seg = memory::SharedMemorySegment::create("plx-test-arena", first).value();
  memory::ArenaOptions o;
  o.max_bytes = budget;
  return memory::MemoryPool::create_arena(std::move(seg), o).value();
}

Result<void> send_sized(IpcPublisher& pub, std::uint64_t seq, std::size_t size) {
  PLX_ASSIGN(memory::Loan l, pub.loan(size));
  ipc_test::fill_payload(l, seq, size);
  return pub.send(std::move(l));
}

}  // namespace

// A buffer of the old pool stays valid while held; the old segment is retired (the subscriber
// told, its mapping dropped with the last buffer) only once it is released; an old-pool buffer
// sent after the switch is copied into the new pool.
TEST(IpcPoolReplacement, OldSegmentRetiredOnlyAfterItsLastLease) {
  TempDir dir;
  const auto path = dir.file("grow.sock");
  PublisherOptions po;
  po.pool = slot_pool(4096, 8);
  auto pub = IpcPublisher::bind(path, po).value();
  ASSERT_TRUE(pub.set_format("test/x-checksummed").ok());
  SubscriberOptions so;
  so.connect_timeout = 2s;
  auto sub = IpcSubscriber::connect(path, so).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  const std::uint64_t old_seg = pub.pool()->segment(0).id();

  memory::Loan kept_local = pub.loan(100).value();  // an old-pool buffer the producer still has
  ipc_test::fill_payload(kept_local, 1, 100);
  ASSERT_TRUE(send_sized(pub, 0, 4000).ok());
  auto b0 = sub.recv_for(2s);
  ASSERT_TRUE(b0.ok() && b0->has_value());
  memory::Buffer held = std::move(**b0);

  ASSERT_TRUE(pub.replace_pool(slot_pool(64 * 1024, 8)).ok());
  EXPECT_EQ(pub.pool()->slot_size(), 64u * 1024);
  ASSERT_TRUE(pub.send(std::move(kept_local).freeze()).ok());  // old pool: copied
  ASSERT_TRUE(send_sized(pub, 2, 60000).ok());                 // new pool: zero copy
  for (std::uint64_t seq : {1u, 2u}) {
    auto b = sub.recv_for(2s);
    ASSERT_TRUE(b.ok() && b->has_value());
    EXPECT_EQ((*b)->metadata().sequence, seq);
    EXPECT_EQ(ipc_test::check_payload(**b), "");
    EXPECT_NE((*b)->segment()->id(), held.segment()->id());
  }
  EXPECT_EQ(pub.stats().copies, 1u);
  EXPECT_EQ(pub.stats().pools_replaced, 1u);

  // Held: not retired, still readable.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(pub.stats().segments_retired, 0u);
  EXPECT_FALSE(sub.recv_for(30ms).ok());  // lets it read its socket: nothing to retire yet
  EXPECT_EQ(sub.stats().segments_retired, 0u);
  EXPECT_EQ(ipc_test::check_payload(held), "");
  (void)old_seg;

  held = memory::Buffer();
  ASSERT_TRUE(eventually([&] { return pub.stats().segments_retired == 1; }));
  ASSERT_TRUE(eventually([&] {
    (void)sub.recv_for(5ms);
    return sub.stats().segments_retired == 1;
  }));
  // The stream goes on over the new pool.
  ASSERT_TRUE(send_sized(pub, 3, 5000).ok());
  auto b3 = sub.recv_for(2s);
  ASSERT_TRUE(b3.ok() && b3->has_value()) << (b3.ok() ? "eos" : b3.error().to_string());
  EXPECT_EQ(ipc_test::check_payload(**b3), "");
}

// Separate subscriber processes follow two pool replacements (4 KiB slots, 64 KiB slots, then
// a variable-size arena with blocks up to 256 KiB) without a gap or a checksum error.
TEST(IpcPoolReplacement, SubscriberProcessesFollowGrowingPools) {
  TempDir dir;
  const auto path = dir.file("growmp.sock");
  PublisherOptions po;
  po.pool = slot_pool(4096, 16);
  auto pub = IpcPublisher::bind(path, po).value();
  ASSERT_TRUE(pub.set_format("test/x-checksummed").ok());
  constexpr int kPerPhase = 300;
  std::vector<Child> subs;
  for (int i = 0; i < 2; ++i)
    subs.emplace_back(std::vector<std::string>{ipc_test::peer_binary(), "subscribe", path,
                                               std::to_string(3 * kPerPhase)});
  ASSERT_TRUE(pub.wait_for_subscribers(2, 10s).ok());
  std::uint64_t seq = 0;
  for (int i = 0; i < kPerPhase; ++i)
    ASSERT_TRUE(send_sized(pub, seq++, 1 + (i * 131) % 4096).ok());
  ASSERT_TRUE(pub.replace_pool(slot_pool(64 * 1024, 16)).ok());
  for (int i = 0; i < kPerPhase; ++i)
    ASSERT_TRUE(send_sized(pub, seq++, 1 + (i * 7919) % (64 * 1024)).ok());
  ASSERT_TRUE(pub.replace_pool(arena_pool(256 * 1024, 8 << 20)).ok());
  EXPECT_TRUE(pub.pool()->variable_size());
  for (int i = 0; i < kPerPhase; ++i) {
    // Sizes over three orders of magnitude.
    const std::size_t size = i % 50 == 0 ? 256 * 1024 : 1 + (i * 7919) % (i % 2 ? 512 : 32768);
    ASSERT_TRUE(send_sized(pub, seq++, size).ok());
  }
  // Both old pools get retired in both subscribers while the stream is still open.
  EXPECT_TRUE(eventually([&] { return pub.stats().segments_retired == 4; }, 10s))
      << pub.stats().segments_retired;
  ASSERT_TRUE(pub.send_eos().ok());
  for (auto& c : subs)
    EXPECT_EQ(c.wait(60s), 0);
  auto st = pub.stats();
  EXPECT_EQ(st.copies, 0u);
  EXPECT_EQ(st.protocol_errors, 0u);
  EXPECT_EQ(st.pools_replaced, 2u);
  EXPECT_TRUE(st.pool.variable_size);
  EXPECT_LE(st.pool.bytes_capacity, std::size_t{8} << 20);
}

// ---- quotas against the pool (issue 12 item 6) -------------------------------------------------

// A subscriber process that keeps every buffer it gets and never returns one joins first, then a
// well-behaved one (block policy, returns each buffer at once). With the native defaults (32
// slots, quota 32) the hoarder used to be granted the whole pool: the producer's loan() then
// timed out on every other send and the well-behaved subscriber lost half the stream. The quota
// granted is bounded by the pool minus the producer's reserve (at most 3/4 of what is left).
TEST(IpcQuotaVsPool, HoardingSubscriberCannotStarveTheProducerNorAWellBehavedOne) {
  TempDir dir;
  const auto path = dir.file("hoard.sock");
  PublisherOptions po;  // native defaults: 32 slots of 1 MiB, quota 32, reserve auto (4)
  po.slot_size = 64 * 1024;
  po.default_policy = Policy::drop_newest;
  po.loan_timeout = 300ms;
  auto pub = IpcPublisher::bind(path, po).value();
  ASSERT_TRUE(pub.set_format("test/x-checksummed").ok());
  Child hoarder({ipc_test::peer_binary(), "hoard", path}, true);
  const std::string ready = hoarder.read_line();
  ASSERT_EQ(ready.rfind("ready ", 0), 0u) << ready;
  const unsigned hoarder_quota = static_cast<unsigned>(std::stoul(ready.substr(6)));
  EXPECT_EQ(hoarder_quota, 21u);  // 3/4 of 32 - 4
  ASSERT_TRUE(pub.wait_for_subscribers(1, 5s).ok());
  constexpr int kN = 200;
  Child polite({ipc_test::peer_binary(), "subscribe", path, std::to_string(kN), "block"});
  ASSERT_TRUE(pub.wait_for_subscribers(2, 5s).ok());
  int loan_failures = 0;
  for (int i = 0; i < kN; ++i) {
    Result<void> r = send_seq(pub, static_cast<std::uint64_t>(i));
    while (!r.ok() && r.error().code == Errc::timeout && loan_failures < 20) {
      ++loan_failures;  // retry the same sequence number: the polite one checks for gaps
      r = send_seq(pub, static_cast<std::uint64_t>(i));
    }
    ASSERT_TRUE(r.ok()) << "send " << i << ": " << r.error().to_string();
  }
  ASSERT_TRUE(pub.send_eos().ok());
  EXPECT_EQ(polite.wait(20s), 0) << "the well-behaved subscriber did not receive all " << kN;
  EXPECT_EQ(loan_failures, 0) << "loan() timed out while a subscriber hoarded";
  bool hoarder_seen = false;
  for (const auto& s : pub.stats().subscribers) {
    if (s.pid != hoarder.pid()) continue;
    hoarder_seen = true;
    EXPECT_EQ(s.max_leases, hoarder_quota);
    EXPECT_GT(s.dropped_newest, 0u);  // it was cut off at its quota, not the pool
  }
  EXPECT_TRUE(hoarder_seen);
  hoarder.kill9();
}

// The sum of the quotas is bounded by the pool: once it is granted, a newcomer is refused with a
// clear error rather than admitted to starve the others; the grant comes back when a subscriber
// leaves. Many hoarders together still leave the producer its reserve.
TEST(IpcQuotaVsPool, GrantsSumToThePoolMinusTheReserveAndNewcomersAreRefusedBeyond) {
  TempDir dir;
  const auto path = dir.file("grants.sock");
  PublisherOptions po = small_pool(4096, 16);
  po.pool_reserve = 2;  // budget 14: grants 11, 3, then refusal
  po.default_policy = Policy::drop_newest;
  po.loan_timeout = 300ms;
  auto pub = IpcPublisher::bind(path, po).value();
  ASSERT_TRUE(pub.set_format("test/x-checksummed").ok());
  std::vector<Child> hoarders;
  std::vector<unsigned> grants;
  for (int i = 0; i < 2; ++i) {
    hoarders.emplace_back(std::vector<std::string>{ipc_test::peer_binary(), "hoard", path}, true);
    const std::string ready = hoarders.back().read_line();
    ASSERT_EQ(ready.rfind("ready ", 0), 0u) << ready;
    grants.push_back(static_cast<unsigned>(std::stoul(ready.substr(6))));
  }
  EXPECT_EQ(grants, (std::vector<unsigned>{11, 3}));
  ASSERT_TRUE(pub.wait_for_subscribers(2, 5s).ok());
  auto refused = IpcSubscriber::connect(path);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::resource_exhausted) << refused.error().to_string();
  // Every hoarder fills its quota; the producer still loans (its reserve and the slots the
  // hoarders' quotas do not cover).
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(send_seq(pub, static_cast<std::uint64_t>(i)).ok()) << "send " << i;
  EXPECT_GE(pub.pool()->capacity() - pub.pool()->in_use(), 2u);
  hoarders.front().kill9();  // its grant (and, once its mappings are gone, its slots) come back
  ASSERT_TRUE(eventually([&] { return pub.subscriber_count() == 1; }, 5s));
  ASSERT_TRUE(eventually(
      [&] {
        (void)send_seq(pub, 1000);  // refreshes the producer's view
        return IpcSubscriber::connect(path).ok();
      },
      5s));
  for (auto& h : hoarders)
    h.kill9();  // the first one already was: kill9() is then a no-op
}

// Fan-out (issue 12): the pool grows by whole segments as subscribers join, within
// max_pool_bytes, instead of refusing the third consumer of a 6-slot pool (parallaxsink's 1080p
// pool). A subscriber already connected keeps receiving every buffer, now from the new segments
// too (announced to it with the first buffer from each); every hoarder holds its whole grant and
// the producer still loans; beyond the budget a newcomer is refused with resource_exhausted,
// saying why. Real processes throughout.
TEST(IpcQuotaVsPool, AdmissionGrowsThePoolBySegmentsWithinTheBudget) {
  TempDir dir;
  const auto path = dir.file("fanout.sock");
  PublisherOptions po = small_pool(4096, 6);  // 6 slots, reserve auto (1), quota auto (4)
  po.max_leases_per_subscriber = 0;
  po.max_pool_bytes = 3 * 6 * 4096;  // three segments
  po.loan_timeout = 300ms;
  auto pub = IpcPublisher::bind(path, po).value();
  ASSERT_TRUE(pub.set_format("test/x-checksummed").ok());
  constexpr int kN = 120;
  Child polite({ipc_test::peer_binary(), "subscribe", path, std::to_string(kN), "block"});
  ASSERT_TRUE(pub.wait_for_subscribers(1, 5s).ok());
  ASSERT_EQ(pub.stats().subscribers.at(0).max_leases, 4u);
  EXPECT_EQ(pub.pool()->capacity(), 6u);
  // Without growth the second subscriber got 1 slot and the third was refused. Each newcomer
  // that would get less than half the quota (2) grows the pool a segment: 6 -> 12 -> 18 slots.
  std::vector<Child> hoarders;
  std::vector<unsigned> grants;
  for (int i = 0; i < 4; ++i) {
    hoarders.emplace_back(std::vector<std::string>{ipc_test::peer_binary(), "hoard", path}, true);
    const std::string ready = hoarders.back().read_line();
    ASSERT_EQ(ready.rfind("ready ", 0), 0u) << "hoarder " << i << ": " << ready;
    grants.push_back(static_cast<unsigned>(std::stoul(ready.substr(6))));
  }
  // Slots 12, reserve 1: 4 (grown), 3; slots 18, reserve 2: 4 (grown), then 1 (budget reached).
  EXPECT_EQ(grants, (std::vector<unsigned>{4, 3, 4, 1}));
  EXPECT_EQ(pub.pool()->capacity(), 18u);
  EXPECT_EQ(pub.pool()->segment_count(), 3u);
  EXPECT_EQ(pub.stats().pool.grows, 2u);
  ASSERT_TRUE(pub.wait_for_subscribers(5, 5s).ok());
  auto refused = IpcSubscriber::connect(path);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::resource_exhausted) << refused.error().to_string();
  EXPECT_NE(refused.error().message.find("max_pool_bytes"), std::string::npos)
      << refused.error().message;
  // The hoarders fill their grants (16 of 18 slots); the producer loans from the reserve and
  // the polite subscriber gets every buffer, through the new segments as well.
  std::set<std::uint64_t> segments_used;
  for (int i = 0; i < kN; ++i) {
    auto l = pub.loan();
    ASSERT_TRUE(l.ok()) << "loan " << i << ": " << l.error().to_string();
    ipc_test::fill_payload(*l, static_cast<std::uint64_t>(i), 256);
    const memory::Buffer b = std::move(*l).freeze();
    segments_used.insert(b.segment()->id());
    ASSERT_TRUE(pub.send(b).ok()) << "send " << i;
  }
  ASSERT_TRUE(pub.send_eos().ok());
  // Its pid before wait() reaps it (Child::pid() is -1 after): the publisher may still list the
  // finished subscriber, with no leases, until its background thread sees the hang-up.
  const pid_t polite_pid = polite.pid();
  EXPECT_EQ(polite.wait(20s), 0) << "the subscriber already connected lost buffers";
  EXPECT_GE(segments_used.size(), 2u) << "the producer never loaned from a grown segment";
  for (const auto& s : pub.stats().subscribers) {
    if (s.pid == polite_pid) continue;
    EXPECT_EQ(s.leases, s.max_leases) << "pid " << s.pid;
  }
  for (auto& h : hoarders)
    h.kill9();
}

// No budget (max_pool_bytes 0, the raw API's default): the pool never grows, grants are bounded
// as before and the newcomer beyond them is refused, the error saying there is no budget.
TEST(IpcQuotaVsPool, WithoutABudgetThePoolDoesNotGrow) {
  TempDir dir;
  const auto path = dir.file("nogrow.sock");
  PublisherOptions po = small_pool(4096, 6);
  po.max_leases_per_subscriber = 0;
  auto pub = IpcPublisher::bind(path, po).value();
  std::vector<IpcSubscriber> subs;
  for (int i = 0; i < 2; ++i) {
    auto s = IpcSubscriber::connect(path);
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    subs.push_back(std::move(*s));
  }
  EXPECT_EQ(subs[0].stats().quota, 4u);
  EXPECT_EQ(subs[1].stats().quota, 1u);
  auto refused = IpcSubscriber::connect(path);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::resource_exhausted);
  EXPECT_NE(refused.error().message.find("max_pool_bytes is 0"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(pub.pool()->capacity(), 6u);
  EXPECT_EQ(pub.stats().pool.grows, 0u);
}

// A full pool is backpressure, not growth: loans of a publisher-made pool with a budget wait
// (and time out) instead of taking more memory; only admission grows it.
TEST(IpcQuotaVsPool, LoansDoNotGrowThePool) {
  TempDir dir;
  PublisherOptions po = small_pool(4096, 4);
  po.max_pool_bytes = 16 * 4096;
  po.loan_timeout = 50ms;
  auto pub = IpcPublisher::bind(dir.file("l.sock"), po).value();
  std::vector<memory::Loan> held;
  for (int i = 0; i < 4; ++i)
    held.push_back(pub.loan().value());
  auto l = pub.loan();
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code, Errc::timeout);
  EXPECT_EQ(pub.pool()->capacity(), 4u);
}

// send_copy(): the sinks' copy path. Waits past loan_timeout while every slot is held (it is
// backpressure), returns cancelled on interrupt(), or waits again when on_interrupt says so;
// fit() makes a larger pool for a larger buffer within the budget and refuses beyond it.
TEST(IpcPublisher, SendCopyWaitsUntilInterruptedAndFitGrowsSlots) {
  TempDir dir;
  PublisherOptions po = small_pool(4096, 2);
  po.max_pool_bytes = 64 * 1024;
  po.loan_timeout = 20ms;
  auto pub = IpcPublisher::bind(dir.file("c.sock"), po).value();
  std::vector<memory::Loan> held;
  held.push_back(pub.loan().value());
  held.push_back(pub.loan().value());
  std::vector<std::byte> bytes(100, std::byte{7});
  auto fill = [&](std::span<std::byte> d) { std::memcpy(d.data(), bytes.data(), d.size()); };
  std::atomic<bool> done{false};
  Result<void> r;
  int hooks = 0;
  std::thread t([&] {
    r = pub.send_copy(bytes.size(), fill, Metadata{}, [&] {
      ++hooks;
      pub.resume();
      held.clear();  // the slots come back: the retried wait gets one
      return true;
    });
    done = true;
  });
  std::this_thread::sleep_for(100ms);  // five loan_timeouts: still waiting
  EXPECT_FALSE(done.load());
  pub.interrupt();
  t.join();
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(hooks, 1);
  EXPECT_EQ(pub.stats().copies, 1u);
  // Without a hook, interrupt() ends it with cancelled.
  held.push_back(pub.loan().value());
  held.push_back(pub.loan().value());
  pub.interrupt();
  auto c = pub.send_copy(bytes.size(), fill, Metadata{});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, Errc::cancelled);
  pub.resume();
  held.clear();
  // fit(): 8 KiB slots x 2 within 64 KiB; 40 KiB x 2 does not fit.
  const auto old_id = pub.pool()->id();
  EXPECT_TRUE(pub.fit(8000).value());
  EXPECT_NE(pub.pool()->id(), old_id);
  EXPECT_GE(pub.pool()->slot_size(), 8000u);
  EXPECT_FALSE(pub.fit(100).value());
  auto big = pub.fit(40 * 1024);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, Errc::resource_exhausted);
  EXPECT_NE(big.error().message.find("max_pool_bytes"), std::string::npos) << big.error().message;
  std::vector<std::byte> eight(8000, std::byte{1});
  EXPECT_TRUE(pub.send_copy(memory::Buffer::copy_from(std::span<const std::byte>(eight))).ok());
}

TEST(IpcQuotaVsPool, ReserveMustLeaveSlotsForSubscribers) {
  TempDir dir;
  PublisherOptions po = small_pool(4096, 8);
  po.pool_reserve = 8;
  auto r = IpcPublisher::bind(dir.file("r.sock"), po);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

// ---- stale-socket replacement race (issue 12 item 7) -------------------------------------------

// Publisher processes started at the same moment on a path holding a stale socket: exactly one
// binds, and the one that bound is the one subscribers reach (without the lock file, both could
// probe the stale socket, and the second's unlink + bind silently replaced the first's socket).
TEST(IpcBindRace, PublishersStartingTogetherOnAStaleSocketOneWins) {
  TempDir dir;
  const auto path = dir.file("race.sock");
  const char* env = std::getenv("PLX_IPC_RACE_ROUNDS");
  // Without the lock file the race hit in round 37 of a run of the old code with 4 racers
  // (two publishers bound, one lost its socket): 8 racers x 50 rounds by default.
  const int rounds = env ? std::atoi(env) : 50;
  constexpr int kRacers = 8;
  for (int round = 0; round < rounds; ++round) {
    {
      auto addr = os::make_addr(path).value();
      UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET, 0));
      ::unlink(path.c_str());
      ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    }  // closed without unlink: stale
    std::vector<Child> racers;
    for (int i = 0; i < kRacers; ++i)
      racers.emplace_back(std::vector<std::string>{ipc_test::peer_binary(), "race-bind", path},
                          true, true);
    std::this_thread::sleep_for(50ms);  // every racer is waiting on its stdin
    for (auto& r : racers)
      r.write_line("go");
    int bound = 0, owners = 0;
    std::string lines;
    for (auto& r : racers) {
      const std::string l = r.read_line();
      lines += l + "; ";
      if (l.rfind("bound", 0) == 0) {
        ++bound;
        if (l == "bound 1") ++owners;
      } else {
        ASSERT_EQ(l.rfind("taken", 0), 0u) << l;
      }
    }
    EXPECT_EQ(bound, 1) << "round " << round << ": " << lines;
    EXPECT_EQ(owners, bound) << "round " << round
                             << ": a bound publisher lost its socket: " << lines;
    for (auto& r : racers)
      r.kill9();
    if (HasFailure()) break;
  }
}

// The lock file: a second publisher on the same path is refused while the first lives, even
// when the socket file was removed behind the first one's back; the lock file goes with the
// publisher.
TEST(IpcBindRace, LockFileRefusesASecondPublisherAndIsRemovedAtClose) {
  TempDir dir;
  const auto path = dir.file("lock.sock");
  {
    auto a = IpcPublisher::bind(path, small_pool());
    ASSERT_TRUE(a.ok()) << a.error().to_string();
    struct stat st {};
    ASSERT_EQ(::lstat((path + ".lock").c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ::unlink(path.c_str());  // someone removed the socket file
    auto b = IpcPublisher::bind(path, small_pool());
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.error().code, Errc::already_exists) << b.error().to_string();
  }
  struct stat st {};
  EXPECT_NE(::lstat((path + ".lock").c_str(), &st), 0) << "lock file left behind";
  EXPECT_TRUE(IpcPublisher::bind(path, small_pool()).ok());
  // A lock path that is not a regular file is not touched.
  const auto other = dir.file("sym.sock");
  ASSERT_EQ(::symlink("/etc/passwd", (other + ".lock").c_str()), 0);
  auto c = IpcPublisher::bind(other, small_pool());
  ASSERT_FALSE(c.ok());
}
