// SPDX-License-Identifier: MIT OR Apache-2.0
// Observability of a running hop (docs/observability.md): the stats request on the
// publisher's socket, answered for real subscriber processes and read back by
// parallax-inspect --json; its credential check; hostile stats requests; and the transit
// latency histogram against known delays.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <chrono>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "ipc/os.h"
#include "ipc/wire.h"
#include "ipc_test_util.h"
#include "parallax/ipc.h"

using namespace parallax;
using namespace parallax::link;
using namespace std::chrono_literals;
using ipc_test::Child;
using ipc_test::stats_peer;
using ipc_test::TempDir;

namespace {

PublisherOptions opts(std::size_t slots = 64, std::uint32_t quota = 8) {
  PublisherOptions po;
  po.slot_size = 4096;
  po.slot_count = slots;
  po.max_leases_per_subscriber = quota;
  po.ring_bytes = 64 * 1024;
  return po;
}

Result<void> send_one(IpcPublisher& pub, std::uint64_t seq, std::size_t size = 1000) {
  PLX_ASSIGN(memory::Loan l, pub.loan());
  ipc_test::fill_payload(l, seq, size);
  return pub.send(std::move(l));
}

// Everything a child writes on stdout until it exits.
std::string read_all(Child& c) {
  std::string out, line;
  for (;;) {
    line = c.read_line();
    if (line.empty()) break;
    out += line + "\n";
  }
  return out;
}

UniqueFd raw_connect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un a = os::make_addr(path).value();
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return UniqueFd();
  return fd;
}

// Reads messages until the publisher closes; returns how many it sent (-1: timeout).
int count_until_closed(int fd, std::vector<std::vector<std::byte>>* msgs = nullptr) {
  int n = 0;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 3000) <= 0) return -1;
    std::vector<std::byte> buf(wire::kMaxMsgSize);
    const ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
    if (r <= 0) return n;
    buf.resize(static_cast<std::size_t>(r));
    if (msgs) msgs->push_back(std::move(buf));
    ++n;
  }
}

TEST(IpcStats, InspectShowsStalledDropNewestAndBusyPollSubscribers) {
  TempDir dir;
  const auto path = dir.file("obs.sock");
  auto pub = IpcPublisher::bind(path, opts()).value();
  ASSERT_TRUE(pub.set_format("video/x-raw,format=GRAY8,width=32,height=32").ok());
  Child stalled({stats_peer(), "sub", path, "drop-oldest", "sleep", "0", "0"}, true);
  Child dropper({stats_peer(), "sub", path, "drop-newest", "sleep", "3", "3"}, true);
  Child busy({stats_peer(), "sub", path, "block", "busy", "0", "40"}, true);
  for (Child* c : {&stalled, &dropper, &busy})
    ASSERT_EQ(c->read_line(), "ready");
  ASSERT_TRUE(pub.wait_for_subscribers(3, 5s).ok());
  for (std::uint64_t i = 0; i < 40; ++i)
    ASSERT_TRUE(send_one(pub, i).ok());
  EXPECT_EQ(busy.read_line(), "got 40");
  EXPECT_EQ(dropper.read_line(), "got 3");

  // Through the API (same socket, same request parallax-inspect sends).
  std::map<pid_t, SubscriberInfo> by_pid;
  PublisherStats st;
  // The busy subscriber returns its last lease just after saying "got 40".
  for (int attempt = 0; attempt < 200; ++attempt) {
    auto q = query_stats(path);
    ASSERT_TRUE(q.ok()) << q.error().to_string();
    st = *q;
    by_pid.clear();
    for (const auto& s : st.subscribers)
      by_pid[s.pid] = s;
    if (by_pid.count(busy.pid()) && by_pid[busy.pid()].leases == 0) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(st.publisher_pid, ::getpid());
  EXPECT_EQ(st.format, "video/x-raw,format=GRAY8,width=32,height=32");
  EXPECT_EQ(st.slots, 64u);
  EXPECT_EQ(st.slot_size, 4096u);
  ASSERT_EQ(st.segments.size(), 1u);
  EXPECT_EQ(st.segments[0].slots, 64u);
  EXPECT_EQ(st.buffers_sent, 40u);
  ASSERT_EQ(st.subscribers.size(), 3u);
  ASSERT_EQ(by_pid.count(stalled.pid()), 1u);
  ASSERT_EQ(by_pid.count(dropper.pid()), 1u);
  ASSERT_EQ(by_pid.count(busy.pid()), 1u);
  const SubscriberInfo& a = by_pid[stalled.pid()];
  EXPECT_EQ(a.policy, Policy::drop_oldest);
  EXPECT_EQ(a.leases, 8u);  // its quota: eight descriptors it never read
  EXPECT_EQ(a.max_leases, 8u);
  EXPECT_EQ(a.dropped_oldest, 32u);
  EXPECT_EQ(a.dropped_newest, 0u);
  EXPECT_EQ(a.received, 0u);
  EXPECT_GT(a.ring_used, 0u);
  const SubscriberInfo& b = by_pid[dropper.pid()];
  EXPECT_EQ(b.policy, Policy::drop_newest);
  EXPECT_EQ(b.leases, 8u);  // 3 held in its hands + 5 unread
  EXPECT_EQ(b.dropped_newest, 32u);
  EXPECT_EQ(b.dropped_oldest, 0u);
  EXPECT_EQ(b.received, 3u);
  EXPECT_EQ(b.latency_count, 3u);
  const SubscriberInfo& c = by_pid[busy.pid()];
  EXPECT_EQ(c.policy, Policy::block);
  EXPECT_EQ(c.leases, 0u);
  EXPECT_EQ(c.buffers_sent, 40u);
  EXPECT_EQ(c.bytes_sent, 40u * 1000u);
  EXPECT_EQ(c.received, 40u);
  EXPECT_EQ(c.ring_used, 0u);
  EXPECT_EQ(c.dropped_oldest + c.dropped_newest, 0u);
  EXPECT_EQ(c.latency_count, 40u);
  EXPECT_GT(c.latency_p50_ns, 0u);
  EXPECT_GE(c.latency_p99_ns, c.latency_p50_ns);
  EXPECT_GE(c.latency_max_ns, c.latency_p99_ns);
  // The requests did not count as subscribers nor disturb anyone.
  EXPECT_EQ(pub.subscriber_count(), 3u);
  const auto local = pub.stats();
  EXPECT_EQ(local.connections, 3u);
  EXPECT_EQ(local.protocol_errors, 0u);
  EXPECT_GE(local.stats_requests, 1u);

  // The same through the tool, as a separate process, as JSON.
  const char* inspect = std::getenv("PLX_INSPECT");
  if (inspect == nullptr) GTEST_SKIP() << "parallax-inspect not built (tools disabled)";
  Child tool({inspect, "--json", path}, true);
  const std::string out = read_all(tool);
  EXPECT_EQ(tool.wait(10s), 0);
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(out)) << out;
  EXPECT_EQ(j.at("socket").get<std::string>(), path);
  EXPECT_EQ(j.at("publisher").at("pid").get<int>(), ::getpid());
  EXPECT_EQ(j.at("pool").at("slots").get<int>(), 64);
  ASSERT_EQ(j.at("subscribers").size(), 3u);
  std::map<int, nlohmann::json> jp;
  for (const auto& s : j.at("subscribers"))
    jp[s.at("pid").get<int>()] = s;
  EXPECT_EQ(jp.at(stalled.pid()).at("policy"), "drop-oldest");
  EXPECT_EQ(jp.at(stalled.pid()).at("leases").get<int>(), 8);
  EXPECT_EQ(jp.at(stalled.pid()).at("dropped_oldest").get<int>(), 32);
  EXPECT_EQ(jp.at(dropper.pid()).at("policy"), "drop-newest");
  EXPECT_EQ(jp.at(dropper.pid()).at("dropped_newest").get<int>(), 32);
  EXPECT_EQ(jp.at(busy.pid()).at("policy"), "block");
  EXPECT_EQ(jp.at(busy.pid()).at("received").get<int>(), 40);
  EXPECT_GT(jp.at(busy.pid()).at("latency_p50_ns").get<std::uint64_t>(), 0u);

  // And the human view exits cleanly.
  Child view({inspect, path}, true);
  const std::string text = read_all(view);
  EXPECT_EQ(view.wait(10s), 0);
  EXPECT_FALSE(text.empty());
}

TEST(IpcStats, StatsRequestFromAnotherUidIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to setuid() a child";
  TempDir dir;
  const auto path = dir.file("cred.sock");
  auto po = opts();
  po.socket_mode = 0666;  // the file mode lets everyone in: only SO_PEERCRED can refuse
  auto pub = IpcPublisher::bind(path, po).value();
  Child nobody({stats_peer(), "query-as", path, "65534"});
  EXPECT_EQ(nobody.wait(10s), 0);
  EXPECT_EQ(pub.stats().refused, 1u);
  EXPECT_EQ(pub.stats().stats_requests, 0u);
  pub.close();
  po = opts();
  po.socket_mode = 0666;
  po.allowed_uids = {65534};
  pub = IpcPublisher::bind(path, po).value();
  Child allowed({stats_peer(), "query-as", path, "65534"});
  EXPECT_EQ(allowed.wait(10s), 1);  // answered once its uid is allowed
  EXPECT_EQ(pub.stats().stats_requests, 1u);
}

TEST(IpcStats, HostileStatsRequestsOnlyCloseTheirOwnConnection) {
  TempDir dir;
  const auto path = dir.file("h.sock");
  auto pub = IpcPublisher::bind(path, opts()).value();
  auto sub = IpcSubscriber::connect(path).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  std::uint64_t seq = 0;
  auto stream_ok = [&] {
    for (int i = 0; i < 5; ++i) {
      if (!send_one(pub, seq++).ok()) return false;
      auto r = sub.recv_for(2s);
      if (!r || !*r || ipc_test::check_payload(**r) != "") return false;
    }
    return true;
  };
  ASSERT_TRUE(stream_ok());
  std::uint64_t errors = 0;

  // Garbage where the request should be.
  {
    auto fd = raw_connect(path);
    std::vector<std::byte> junk(64, std::byte{0x5a});
    ASSERT_TRUE(os::send_msg(fd.get(), junk).ok());
    std::vector<std::vector<std::byte>> msgs;
    EXPECT_EQ(count_until_closed(fd.get(), &msgs), 1);  // a refusal, then closed
    ASSERT_EQ(msgs.size(), 1u);
    auto m = wire::decode_stats_msg(msgs[0]);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(std::get<wire::Refuse>(*m).code, Errc::data_loss);
    ++errors;
  }
  EXPECT_TRUE(stream_ok());
  // A stats request with a non-zero reserved field, and one with trailing bytes.
  for (int variant = 0; variant < 2; ++variant) {
    auto fd = raw_connect(path);
    auto req = wire::encode_stats_request();
    if (variant == 0)
      req[20] = std::byte{1};
    else
      req.push_back(std::byte{0});
    if (variant == 1) {  // the header's size must match too
      const auto sz = static_cast<std::uint32_t>(req.size());
      std::memcpy(req.data() + 8, &sz, 4);
    }
    ASSERT_TRUE(os::send_msg(fd.get(), req).ok());
    EXPECT_EQ(count_until_closed(fd.get()), 1);
    ++errors;
  }
  // Huge: far past the largest message.
  {
    auto fd = raw_connect(path);
    std::vector<std::byte> huge(100 * 1024, std::byte{0});
    auto req = wire::encode_stats_request();
    std::memcpy(huge.data(), req.data(), req.size());
    ASSERT_TRUE(os::send_msg(fd.get(), huge).ok());
    EXPECT_GE(count_until_closed(fd.get()), 0);  // closed (with or without a refusal)
    ++errors;
  }
  EXPECT_TRUE(stream_ok());
  // Repeated on one connection: one answer, then the connection is closed; the second
  // request is never read as anything else.
  {
    auto fd = raw_connect(path);
    ASSERT_TRUE(os::send_msg(fd.get(), wire::encode_stats_request()).ok());
    // The publisher may have answered and closed already: then the second send fails.
    auto again = os::send_msg(fd.get(), wire::encode_stats_request());
    EXPECT_TRUE(again.ok() || again.error().code == Errc::unavailable);
    std::vector<std::vector<std::byte>> msgs;
    // Header, 1 segment, 1 subscriber, end. (A second request landing after the publisher
    // discarded what was queued resets the connection: the sender loses its own answer.)
    const int n = count_until_closed(fd.get(), &msgs);
    EXPECT_TRUE(n == 4 || n == 0) << n;
    if (n == 4) {
      EXPECT_TRUE(std::holds_alternative<wire::StatsEnd>(wire::decode_stats_msg(msgs[3]).value()));
    }
  }
  // Repeated on many connections, some never reading their answer.
  for (int i = 0; i < 50; ++i) {
    auto fd = raw_connect(path);
    ASSERT_TRUE(fd);
    ASSERT_TRUE(os::send_msg(fd.get(), wire::encode_stats_request()).ok());
    if (i % 2 == 0) {
      EXPECT_EQ(count_until_closed(fd.get()), 4);
    } else {  // never reads its answer; leaves once it was served (a hang-up before is no request)
      const auto until = std::chrono::steady_clock::now() + 3s;
      while (pub.stats().stats_requests < static_cast<std::uint64_t>(2 + i) &&
             std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(1ms);
    }
  }
  EXPECT_TRUE(stream_ok());
  EXPECT_TRUE(sub.connected());
  EXPECT_EQ(pub.subscriber_count(), 1u);
  const auto st = pub.stats();
  EXPECT_EQ(st.connections, 1u);
  EXPECT_EQ(st.disconnects, 0u);
  EXPECT_EQ(st.protocol_errors, errors);
  EXPECT_EQ(st.stats_requests, 51u);
  EXPECT_EQ(st.subscribers.at(0).dropped_oldest + st.subscribers.at(0).dropped_newest, 0u);
}

// Known delays between the publisher's send and the subscriber's receive land in the log2
// bucket that holds them: the measured latency is never below the delay, and only scheduling
// noise (well under the bucket's width here) can push it above.
TEST(IpcStats, TransitLatencyHistogramBucketsKnownDelays) {
  TempDir dir;
  const auto path = dir.file("lat.sock");
  auto pub = IpcPublisher::bind(path, opts()).value();
  auto sub = IpcSubscriber::connect(path).value();
  ASSERT_TRUE(pub.wait_for_subscribers(1, 2s).ok());
  struct Case {
    std::chrono::microseconds delay;
    std::size_t bucket;  // [2^(k-1), 2^k) ns
  };
  // Each sample's transit time lies between the injected delay and the time the test measured
  // from before send() to after recv(): the sample must land in a bucket between those two
  // bounds' buckets (bucket k = [2^(k-1), 2^k) ns = bit_width(ns)). Bounding it by the measured
  // time instead of a fixed margin keeps the check exact on a loaded machine, where sleep_for()
  // oversleeps by milliseconds. 0.6 ms is bucket 20, 2.5 ms bucket 22, 20 ms bucket 25.
  const std::chrono::microseconds delays[] = {600us, 2500us, 20000us};
  constexpr int kPer = 12;
  std::uint64_t seq = 0;
  auto before = sub.stats().latency_log2;
  for (const auto delay : delays) {
    for (int i = 0; i < kPer; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      ASSERT_TRUE(send_one(pub, seq++).ok());
      std::this_thread::sleep_for(delay);
      auto r = sub.recv_for(2s);
      ASSERT_TRUE(r.ok() && r->has_value());
      const auto elapsed = std::chrono::steady_clock::now() - t0;
      const auto lo = static_cast<std::size_t>(
          std::bit_width(static_cast<std::uint64_t>(std::chrono::nanoseconds(delay).count())));
      const auto hi = static_cast<std::size_t>(std::bit_width(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count())));
      const auto now = sub.stats().latency_log2;
      std::size_t landed = 64, n = 0;
      for (std::size_t k = 0; k < 64; ++k) {
        if (now[k] != before[k]) {
          landed = k;
          n += now[k] - before[k];
        }
      }
      EXPECT_EQ(n, 1u) << "one sample per buffer";
      EXPECT_GE(landed, lo) << "a latency below the injected delay of " << delay.count() << " us";
      EXPECT_LE(landed, hi) << "a latency above the measured " << elapsed.count() << " ns";
      before = now;
    }
  }
  const auto st = sub.stats();
  EXPECT_EQ(st.latency_count, 3u * kPer);
  EXPECT_GE(st.latency_max_ns, 20'000'000u);
  EXPECT_GE(st.latency_p99_ns, 16'777'216u);  // from the 20 ms bucket
  EXPECT_LT(st.latency_p50_ns, 16'777'216u);  // the middle of the three
  // The publisher sees the same histogram through the ack area.
  const auto ps = pub.stats();
  ASSERT_EQ(ps.subscribers.size(), 1u);
  EXPECT_EQ(ps.subscribers[0].latency_count, st.latency_count);
  EXPECT_EQ(ps.subscribers[0].latency_p50_ns, st.latency_p50_ns);
  EXPECT_EQ(ps.subscribers[0].latency_p99_ns, st.latency_p99_ns);
  EXPECT_EQ(ps.subscribers[0].received, 3u * kPer);
}

}  // namespace
