// SPDX-License-Identifier: MIT OR Apache-2.0
// Element tests: file round trip, TCP round trip on loopback (ephemeral ports), TCP waits
// interrupted by stop/EOS, nullsource patterns, sources' own pools in the metrics.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "../observe/prom_parser.h"
#include "parallax/metrics.h"
#include "test_util.h"

namespace {

using namespace plx_test;
using namespace std::chrono_literals;
using parallax::Errc;

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s)
    c = static_cast<char>(rng() & 0xff);
  return s;
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(FileElements, RoundTripThroughQueueAndTee) {
  TempDir dir;
  const std::string data = random_bytes(100'003, 1);  // not a multiple of the block size
  write_file(dir.file("in.bin"), data);
  auto p = Pipeline::from_string(
      "filesrc location=" + dir.file("in.bin") +
      " blocksize=1000 ! queue ! tee name=t  t. ! filesink location=" + dir.file("a.bin") +
      "  t. ! queue ! filesink location=" + dir.file("b.bin"));
  ASSERT_TRUE(p.ok()) << p.error().message;
  PipelineExecutor ex;
  auto r = ex.run(*p);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(read_file(dir.file("a.bin")), data);
  EXPECT_EQ(read_file(dir.file("b.bin")), data);
  EXPECT_EQ(ex.stats()[0].buffers, 101u);
  EXPECT_EQ(ex.stats()[0].bytes, data.size());
}

TEST(FileElements, EmptyFileGivesAnEmptyOutput) {
  TempDir dir;
  write_file(dir.file("in.bin"), "");
  write_file(dir.file("out.bin"), "old contents");
  auto p = Pipeline::from_string("filesrc location=" + dir.file("in.bin") +
                                 " ! filesink location=" + dir.file("out.bin"));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(PipelineExecutor().run(*p).ok());
  EXPECT_EQ(read_file(dir.file("out.bin")), "");
}

TEST(FileElements, AppendMode) {
  TempDir dir;
  write_file(dir.file("in.bin"), "world");
  write_file(dir.file("out.bin"), "hello ");
  auto p = Pipeline::from_string("filesrc location=" + dir.file("in.bin") +
                                 " ! filesink append=true location=" + dir.file("out.bin"));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(PipelineExecutor().run(*p).ok());
  EXPECT_EQ(read_file(dir.file("out.bin")), "hello world");
}

TEST(FileElements, MissingLocationAndUnwritablePathAreErrors) {
  auto p = Pipeline::from_string("filesrc ! nullsink");
  ASSERT_TRUE(p.ok());
  auto r = PipelineExecutor().run(*p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "element 'filesrc0': no file to read: set 'location'");
  auto q =
      Pipeline::from_string("nullsource num-buffers=1 ! filesink location=/nonexistent-dir/x.bin");
  ASSERT_TRUE(q.ok());
  auto r2 = PipelineExecutor().run(*q);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find(
                "element 'filesink0': could not open '/nonexistent-dir/x.bin' for writing"),
            std::string::npos);
}

TEST(NullSource, CounterPatternAndSize) {
  TempDir dir;
  auto p = Pipeline::from_string(
      "nullsource num-buffers=3 size=4 pattern=counter ! filesink location=" + dir.file("o"));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(PipelineExecutor().run(*p).ok());
  EXPECT_EQ(read_file(dir.file("o")),
            std::string("\x00\x01\x02\x03\x01\x02\x03\x04\x02\x03\x04\x05", 12));
}

// Runs a server pipeline (started first, port 0), reads its bound port, runs the client.
void tcp_round_trip(const std::string& server_desc, const std::string& server_elem,
                    const std::string& client_desc_with_port) {
  auto server = Pipeline::from_string(server_desc);
  ASSERT_TRUE(server.ok()) << server.error().message;
  PipelineExecutor sx;
  ASSERT_TRUE(sx.start(*server).ok());
  const auto port = std::get<std::uint64_t>(*server->find(server_elem)->property("bound-port"));
  ASSERT_GT(port, 0u);
  std::string client_desc = client_desc_with_port;
  client_desc.replace(client_desc.find("PORT"), 4, std::to_string(port));
  auto client = Pipeline::from_string(client_desc);
  ASSERT_TRUE(client.ok()) << client.error().message;
  auto cr = PipelineExecutor().run(*client);
  ASSERT_TRUE(cr.ok()) << cr.error().message;
  auto sr = sx.wait_for(10s);
  ASSERT_TRUE(sr.has_value()) << "server did not see the end of the stream";
  ASSERT_TRUE(sr->ok()) << sr->error().message;
}

TEST(TcpElements, RoundTripClientToServer) {
  TempDir dir;
  const std::string data = random_bytes(300'000, 2);
  write_file(dir.file("in.bin"), data);
  tcp_round_trip("tcpsrc mode=server host=127.0.0.1 port=0 name=rx ! queue ! filesink location=" +
                     dir.file("out.bin"),
                 "rx",
                 "filesrc location=" + dir.file("in.bin") +
                     " blocksize=7000 ! tcpsink host=127.0.0.1 port=PORT");
  EXPECT_EQ(read_file(dir.file("out.bin")), data);
}

TEST(TcpElements, RoundTripServerToClient) {
  TempDir dir;
  const std::string data = random_bytes(200'000, 3);
  write_file(dir.file("in.bin"), data);
  // Here the sender listens: it starts first and accepts the receiver's connection.
  auto sender = Pipeline::from_string("filesrc location=" + dir.file("in.bin") +
                                      " ! tcpsink mode=server port=0 name=tx");
  ASSERT_TRUE(sender.ok());
  PipelineExecutor sx;
  ASSERT_TRUE(sx.start(*sender).ok());
  const auto port = std::get<std::uint64_t>(*sender->find("tx")->property("bound-port"));
  auto receiver = Pipeline::from_string("tcpsrc port=" + std::to_string(port) +
                                        " ! filesink location=" + dir.file("out.bin"));
  ASSERT_TRUE(receiver.ok());
  auto rr = PipelineExecutor().run(*receiver);
  ASSERT_TRUE(rr.ok()) << rr.error().message;
  ASSERT_TRUE(sx.wait().ok());
  EXPECT_EQ(read_file(dir.file("out.bin")), data);
}

TEST(TcpElements, ConnectionRefusedIsAnError) {
  // Find a port nobody listens on: bind a server, read its port, stop it.
  auto probe = Pipeline::from_string("tcpsrc mode=server port=0 name=rx ! nullsink");
  ASSERT_TRUE(probe.ok());
  PipelineExecutor px;
  ASSERT_TRUE(px.start(*probe).ok());
  const auto port = std::get<std::uint64_t>(*probe->find("rx")->property("bound-port"));
  px.stop();
  auto p = Pipeline::from_string("tcpsrc port=" + std::to_string(port) + " ! nullsink");
  ASSERT_TRUE(p.ok());
  auto r = PipelineExecutor().run(*p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::unavailable) << r.error().message;
  EXPECT_NE(r.error().message.find("could not connect to 127.0.0.1:" + std::to_string(port)),
            std::string::npos);
}

// `mode` is a typed enumeration: a value that is not one of its nicks or numbers is a parse
// error naming the property and the choices (no silent fallback to client).
TEST(TcpElements, BadModeIsAClearError) {
  for (const char* d : {"tcpsrc mode=listen ! nullsink", "nullsource ! tcpsink mode=2",
                        "tcpsrc mode=Server ! nullsink"}) {
    auto p = Pipeline::from_string(d);
    ASSERT_FALSE(p.ok()) << d;
    EXPECT_EQ(p.error().code, Errc::invalid_argument) << d;
    EXPECT_NE(p.error().message.find("for property 'mode'"), std::string::npos)
        << p.error().message;
    EXPECT_NE(p.error().message.find("client"), std::string::npos) << p.error().message;
    EXPECT_NE(p.error().message.find("server"), std::string::npos) << p.error().message;
  }
}

// The number of an enumeration value selects it as its nick does: mode=1 listens.
TEST(TcpElements, ModeByNumberListens) {
  auto p = Pipeline::from_string("tcpsrc mode=1 port=0 name=rx ! nullsink");
  ASSERT_TRUE(p.ok()) << p.error().message;
  PipelineExecutor ex;
  ASSERT_TRUE(ex.start(*p).ok());
  EXPECT_GT(std::get<std::uint64_t>(*p->find("rx")->property("bound-port")), 0u);
  ex.stop();
  EXPECT_EQ(ex.wait().error().code, Errc::cancelled);
}

TEST(TcpElements, StopInterruptsAServerWaitingForAClient) {
  auto p = Pipeline::from_string("tcpsrc mode=server port=0 ! nullsink");
  ASSERT_TRUE(p.ok());
  PipelineExecutor ex;
  ASSERT_TRUE(ex.start(*p).ok());
  std::this_thread::sleep_for(30ms);
  const auto t0 = std::chrono::steady_clock::now();
  ex.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_EQ(ex.wait().error().code, Errc::cancelled);
}

TEST(TcpElements, EosRequestInterruptsAWaitingSource) {
  auto p = Pipeline::from_string("tcpsrc mode=server port=0 ! nullsink");
  ASSERT_TRUE(p.ok());
  PipelineExecutor ex;
  ASSERT_TRUE(ex.start(*p).ok());
  std::this_thread::sleep_for(30ms);
  ex.send_eos();
  auto r = ex.wait_for(2s);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok()) << r->error().message;
}

// A sink that keeps the first `keep` buffers it renders (their slots stay in use) and then
// discards the rest; held() says how many it keeps.
class HoldingSink final : public SinkElement {
 public:
  explicit HoldingSink(std::size_t keep) : keep_(keep) {}
  [[nodiscard]] std::size_t held() const {
    std::lock_guard l(mu_);
    return held_.size();
  }
  [[nodiscard]] std::uint64_t rendered() const {
    std::lock_guard l(mu_);
    return rendered_;
  }

 protected:
  FlowReturn render(const Buffer& buf) override {
    std::lock_guard l(mu_);
    ++rendered_;
    if (held_.size() < keep_) held_.push_back(buf);
    return FlowReturn::ok;
  }

 private:
  const std::size_t keep_;
  mutable std::mutex mu_;
  std::vector<Buffer> held_;
  std::uint64_t rendered_{0};
};

prom::Parsed scrape() {
  std::string error;
  auto parsed = prom::parse(parallax::observe::MetricsRegistry::global().prometheus(), &error);
  EXPECT_TRUE(parsed.has_value()) << error;
  return parsed.value_or(prom::Parsed{});
}

// A native source's own pool (not a publisher's) is in the process's metrics, labelled by the
// element's name, read from the pool at export time; gone with the element's stop().
TEST(PoolMetrics, SourcePoolReportsItsSlotsAndWhatIsHeld) {
  Pipeline p;
  auto src = ElementRegistry::global().create("nullsource");
  ASSERT_TRUE(src.ok()) << src.error().message;
  ASSERT_TRUE((*src)->set_property("size", std::uint64_t{1} << 20).ok());  // 64 slots of 1 MiB
  const NodeId s = p.add_node("poolsrc", std::move(*src)).value();
  auto sink = std::make_unique<HoldingSink>(5);
  HoldingSink* hold = sink.get();
  ASSERT_TRUE(p.link(s, p.add_node("hold", std::move(sink)).value()).ok());
  const std::map<std::string, std::string> lab{{"element", "poolsrc"}, {"pool", "slots"}};
  EXPECT_FALSE(scrape().value("parallax_pool_slots", "parallax_pool_slots", lab).has_value());

  PipelineExecutor ex;
  ASSERT_TRUE(ex.start(p).ok());
  // Wait until the sink holds its 5 and has discarded some more (those slots came back).
  const auto until = std::chrono::steady_clock::now() + 10s;
  while ((hold->held() < 5 || hold->rendered() < 200) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(hold->held(), 5u);
  const prom::Parsed m = scrape();
  EXPECT_EQ(m.value("parallax_pool_slots", "parallax_pool_slots", lab), 64.0);
  EXPECT_EQ(m.value("parallax_pool_slot_size_bytes", "parallax_pool_slot_size_bytes", lab),
            double(1 << 20));
  EXPECT_EQ(m.value("parallax_pool_segments", "parallax_pool_segments", lab), 1.0);
  // The 5 held, plus at most the one the source is filling and the one being rendered.
  const auto in_use = m.value("parallax_pool_slots_in_use", "parallax_pool_slots_in_use", lab);
  ASSERT_TRUE(in_use.has_value());
  EXPECT_GE(*in_use, 5.0);
  EXPECT_LE(*in_use, 7.0);
  const auto hw = m.value("parallax_pool_high_water_bytes", "parallax_pool_high_water_bytes", lab);
  ASSERT_TRUE(hw.has_value());
  EXPECT_GE(*hw, 5.0 * (1 << 20));
  EXPECT_EQ(m.families.at("parallax_pool_slots").type, "gauge");
  ex.stop();
  EXPECT_EQ(ex.wait().error().code, Errc::cancelled);
  EXPECT_FALSE(scrape().value("parallax_pool_slots", "parallax_pool_slots", lab).has_value())
      << "a stopped element's pool is no longer reported";
}

}  // namespace
