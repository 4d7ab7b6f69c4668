// SPDX-License-Identifier: MIT OR Apache-2.0
// Tests of the bridge between typed and dynamic pipelines (parallax/typed/dynamic.h): typed
// sources feeding dynamic chains built with parse(), typed sinks at their end, errors, EOS,
// raw byte items, and dynamic sources whose buffers are not archives.
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "parallax/pipeline.h"
#include "parallax/typed/dynamic.h"

using namespace parallax;
namespace dyn = parallax::pipeline;
namespace ty = parallax::typed;
using namespace std::chrono_literals;

namespace plxtest {

struct Sample {
  std::uint32_t id{0};
  std::string name;
  std::vector<std::int16_t> data;
  std::optional<double> gain;
  bool operator==(const Sample&) const = default;
};
PLX_ARCHIVE(Sample, id, name, data, gain);

struct Unrelated {
  std::uint64_t x{0};
};
PLX_ARCHIVE(Unrelated, x);

Sample make_sample(std::uint32_t i) {
  Sample s;
  s.id = i;
  s.name = "s" + std::to_string(i);
  for (std::uint32_t k = 0; k < i % 6; ++k)
    s.data.push_back(static_cast<std::int16_t>(k - 3));
  if (i % 2 == 1) s.gain = i * 0.5;
  return s;
}

// A dynamic source producing `count` buffers of `bytes` with a fixed pattern (never a valid
// archive), announcing `caps` if given.
class PatternSource final : public dyn::SourceElement {
 public:
  PatternSource(int count, std::vector<std::byte> bytes, std::optional<std::string> caps = {})
      : left_(count), bytes_(std::move(bytes)), caps_(std::move(caps)) {}

 protected:
  dyn::FlowReturn create(memory::Buffer& out) override {
    if (left_-- <= 0) return dyn::FlowReturn::eos;
    out = memory::Buffer::copy_from(bytes_);
    return dyn::FlowReturn::ok;
  }
  std::optional<dyn::Caps> source_caps() override {
    if (!caps_) return std::nullopt;
    return dyn::Caps::parse(*caps_).value();
  }

 private:
  int left_;
  std::vector<std::byte> bytes_;
  std::optional<std::string> caps_;
};

// source ! <middle description> ! sink, with the ends added by add_node and the middle by
// parse(). The middle's first and last elements must be named "first" and "last".
Result<void> assemble(dyn::Pipeline& p, std::unique_ptr<dyn::Element> src, std::string_view middle,
                      std::unique_ptr<dyn::Element> sink) {
  PLX_ASSIGN(dyn::NodeId s, p.add_node("typed-src", std::move(src)));
  PLX_TRY(p.parse(middle));
  PLX_ASSIGN(dyn::NodeId k, p.add_node("typed-sink", std::move(sink)));
  PLX_TRY(p.link(s, *p.node("first")));
  PLX_TRY(p.link(*p.node("last"), k));
  return ok();
}

}  // namespace plxtest

using namespace plxtest;

TEST(TypedDynamic, TypedRangeThroughQueueAndPassthroughIntoCollect) {
  dyn::Pipeline p;
  auto [sink, result] = ty::element_sink<int>(ty::collect<int>());
  ASSERT_TRUE(assemble(p, ty::into_element(ty::range(0, 1000)),
                       "queue name=first max-size-buffers=8 ! passthrough name=last",
                       std::move(sink))
                  .ok());

  auto run = dyn::PipelineExecutor().run(p);

  ASSERT_TRUE(run.ok()) << run.error().to_string();
  auto v = result.take();
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  std::vector<int> want(1000);
  for (int i = 0; i < 1000; ++i)
    want[i] = i;
  EXPECT_EQ(*v, want);
  auto again = result.take();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::failed_precondition);
}

TEST(TypedDynamic, StructsWithStagesCrossAsArchivesAndFold) {
  dyn::Pipeline p;
  auto src = ty::into_element(ty::pipeline(ty::range(0u, 200u))
                                  .then(ty::filter([](const unsigned& i) { return i % 3 != 0; }))
                                  .then(ty::map([](unsigned i) { return make_sample(i); })),
                              ty::ElementSourceOptions{.slot_size = 256, .slots = 4});
  auto [sink, result] = ty::element_sink<Sample>(
      ty::fold(std::vector<Sample>{}, [](std::vector<Sample> acc, Sample&& s) {
        acc.push_back(std::move(s));
        return acc;
      }));
  ASSERT_TRUE(
      assemble(p, std::move(src), "queue name=first ! identity name=last", std::move(sink)).ok());

  auto run = dyn::PipelineExecutor().run(p);

  ASSERT_TRUE(run.ok()) << run.error().to_string();
  auto v = result.take();
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  std::vector<Sample> want;
  for (unsigned i = 0; i < 200; ++i)
    if (i % 3 != 0) want.push_back(make_sample(i));
  EXPECT_EQ(*v, want);
}

TEST(TypedDynamic, SourceAnnouncesArchiveCapsThatACapsfilterCanMatch) {
  dyn::Pipeline p;
  auto [sink, result] = ty::element_sink<Sample>(ty::discard());
  const std::string middle =
      "passthrough name=first ! capsfilter name=last caps=\"application/x-parallax-archive\"";
  ASSERT_TRUE(assemble(p, ty::into_element(ty::from_iter({make_sample(1), make_sample(2)})), middle,
                       std::move(sink))
                  .ok());

  auto run = dyn::PipelineExecutor().run(p);

  ASSERT_TRUE(run.ok()) << run.error().to_string();
  EXPECT_EQ(result.take().value(), 2u);
  EXPECT_EQ(p.find("first")->pad("src")->caps().to_string().find("application/x-parallax-archive"),
            0u);
}

TEST(TypedDynamic, ViewSinkReadsInPlaceAndKeepsBuffers) {
  dyn::Pipeline p;
  std::vector<Sample> in{make_sample(3), make_sample(4), make_sample(5)};
  auto [sink, result] = ty::element_view_sink<Sample>(ty::collect<link::Typed<Sample>>());
  ASSERT_TRUE(assemble(p, ty::into_element(ty::from_iter(in)),
                       "passthrough name=first ! queue name=last", std::move(sink))
                  .ok());

  ASSERT_TRUE(dyn::PipelineExecutor().run(p).ok());
  auto views = result.take();

  ASSERT_TRUE(views.ok()) << views.error().to_string();
  ASSERT_EQ(views->size(), 3u);
  EXPECT_EQ((*views)[1]->id, 4u);
  EXPECT_EQ(std::string_view((*views)[2]->name), "s5");
  EXPECT_EQ((*views)[0].deserialize(), in[0]);
  EXPECT_EQ((*views)[2].metadata().sequence, 2u);  // the source numbers its buffers
}

TEST(TypedDynamic, ValuesLargerThanASlotFallBackToTheHeap) {
  dyn::Pipeline p;
  Sample big = make_sample(1);
  big.data.assign(10000, 7);
  auto [sink, result] = ty::element_sink<Sample>(ty::collect<Sample>());
  ASSERT_TRUE(assemble(p,
                       ty::into_element(ty::from_iter({make_sample(2), big}),
                                        ty::ElementSourceOptions{.slot_size = 128, .slots = 2}),
                       "passthrough name=first ! passthrough name=last", std::move(sink))
                  .ok());

  ASSERT_TRUE(dyn::PipelineExecutor().run(p).ok());
  auto v = result.take();

  ASSERT_TRUE(v.ok()) << v.error().to_string();
  ASSERT_EQ(v->size(), 2u);
  EXPECT_EQ((*v)[1], big);
}

TEST(TypedDynamic, ErrorInTheTypedSourceStopsTheDynamicPipeline) {
  dyn::Pipeline p;
  auto failing = ty::pipeline(ty::range(0, 100)).then(ty::map([](int i) -> Result<int> {
    if (i == 42) return err(Errc::out_of_range, "item 42 is cursed");
    return i;
  }));
  auto [sink, result] = ty::element_sink<int>(ty::collect<int>());
  ASSERT_TRUE(assemble(p, ty::into_element(std::move(failing)),
                       "queue name=first ! passthrough name=last", std::move(sink))
                  .ok());

  auto run = dyn::PipelineExecutor().run(p);

  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.error().code, Errc::out_of_range);
  EXPECT_NE(run.error().message.find("item 42 is cursed"), std::string::npos)
      << run.error().message;
  EXPECT_NE(run.error().message.find("typed-src"), std::string::npos) << run.error().message;
  auto r = result.take();  // no EOS reached the sink: its result says so
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::cancelled);
}

TEST(TypedDynamic, ErrorInTheTypedSinkStopsTheDynamicPipeline) {
  dyn::Pipeline p;
  int seen = 0;
  auto [sink, result] = ty::element_sink<int>(ty::for_each([&seen](int i) -> Result<void> {
    ++seen;
    if (i == 7) return err(Errc::invalid_argument, "sink refuses 7");
    return ok();
  }));
  ASSERT_TRUE(assemble(p, ty::into_element(ty::range(0, 100000)),
                       "queue name=first ! passthrough name=last", std::move(sink))
                  .ok());

  auto run = dyn::PipelineExecutor().run(p);

  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.error().code, Errc::invalid_argument);
  EXPECT_NE(run.error().message.find("sink refuses 7"), std::string::npos);
  EXPECT_EQ(seen, 8);  // nothing after the failing item reached the sink
  auto r = result.take();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

TEST(TypedDynamic, EmptyTypedSourceGivesEosAndAnEmptyResult) {
  dyn::Pipeline p;
  auto [sink, result] = ty::element_sink<int>(ty::collect<int>());
  ASSERT_TRUE(assemble(p, ty::into_element(ty::range(5, 5)),
                       "queue name=first ! passthrough name=last", std::move(sink))
                  .ok());

  auto run = dyn::PipelineExecutor().run(p);

  ASSERT_TRUE(run.ok()) << run.error().to_string();
  auto v = result.take();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->empty());
}

TEST(TypedDynamic, EndlessTypedSourceEndsOnSendEos) {
  dyn::Pipeline p;
  int n = 0;
  auto [sink, result] = ty::element_sink<int>(ty::discard());
  ASSERT_TRUE(assemble(p, ty::into_element(ty::repeat_with([&n] { return n++; })),
                       "queue name=first ! passthrough name=last", std::move(sink))
                  .ok());
  dyn::PipelineExecutor ex;
  ASSERT_TRUE(ex.start(p).ok());
  std::this_thread::sleep_for(20ms);

  ex.send_eos();
  auto run = ex.wait();

  ASSERT_TRUE(run.ok()) << run.error().to_string();
  auto count = result.take();
  ASSERT_TRUE(count.ok());
  EXPECT_GT(*count, 0u);
}

TEST(TypedDynamic, DynamicSourceOfNonArchivesMakesTheTypedSinkFailWithDataLoss) {
  dyn::Pipeline p;
  auto [sink, result] = ty::element_sink<Sample>(ty::collect<Sample>());
  // nullsource buffers (a counter pattern) are not archives.
  ASSERT_TRUE(p.parse("nullsource num-buffers=5 size=64 pattern=counter ! queue name=last").ok());
  auto k = p.add_node("typed-sink", std::move(sink));
  ASSERT_TRUE(k.ok());
  ASSERT_TRUE(p.link(*p.node("last"), *k).ok());

  auto run = dyn::PipelineExecutor().run(p);

  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.error().code, Errc::data_loss);
  EXPECT_NE(run.error().message.find("not a valid archive of Sample"), std::string::npos)
      << run.error().message;
  auto r = result.take();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::data_loss);
}

TEST(TypedDynamic, ForgedArchiveUnderTheRightCapsIsDataLossNamingTheField) {
  auto good = archive::serialize(make_sample(4), {.header = true});
  ASSERT_TRUE(good.ok());
  std::vector<std::byte> bad = *good;
  using A = archive::Archived<Sample>;
  const std::uint32_t huge = 0x01000000;
  std::memcpy(bad.data() + bad.size() - sizeof(A) + offsetof(A, data) + 4, &huge, sizeof huge);
  dyn::Pipeline p;
  auto [sink, result] = ty::element_sink<Sample>(ty::collect<Sample>());
  ASSERT_TRUE(assemble(p, std::make_unique<PatternSource>(3, bad, link::archive_format<Sample>()),
                       "passthrough name=first ! passthrough name=last", std::move(sink))
                  .ok());

  auto run = dyn::PipelineExecutor().run(p);

  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.error().code, Errc::data_loss);
  EXPECT_NE(run.error().message.find("data:"), std::string::npos) << run.error().message;
}

TEST(TypedDynamic, CapsOfAnotherTypeAreRefused) {
  dyn::Pipeline p;
  auto [sink, result] = ty::element_sink<Sample>(ty::collect<Sample>());
  ASSERT_TRUE(assemble(p, ty::into_element(ty::once(Unrelated{9})),
                       "passthrough name=first ! passthrough name=last", std::move(sink))
                  .ok());

  auto run = dyn::PipelineExecutor().run(p);

  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.error().code, Errc::failed_precondition);  // the sink's refusal comes first
  EXPECT_NE(run.error().message.find("Unrelated"), std::string::npos) << run.error().message;
  EXPECT_NE(run.error().message.find("expected archives of Sample"), std::string::npos);
  auto r = result.take();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::failed_precondition);
}

TEST(TypedDynamic, RawBytesCrossUnchanged) {
  dyn::Pipeline p;
  std::vector<std::vector<std::byte>> in;
  for (int i = 0; i < 20; ++i) {
    std::vector<std::byte> b(static_cast<std::size_t>(i * 37));
    for (std::size_t k = 0; k < b.size(); ++k)
      b[k] = std::byte(k * 13 + i);
    in.push_back(std::move(b));
  }
  auto want = in;
  auto [sink, result] =
      ty::element_sink<std::vector<std::byte>>(ty::collect<std::vector<std::byte>>());
  ASSERT_TRUE(assemble(p, ty::into_element(ty::from_iter(std::move(in))),
                       "queue name=first ! identity name=last", std::move(sink))
                  .ok());

  ASSERT_TRUE(dyn::PipelineExecutor().run(p).ok());
  auto got = result.take();

  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(*got, want);
}

TEST(TypedDynamic, RawStringsReadAnyByteStream) {
  dyn::Pipeline p;
  auto [sink, result] = ty::element_sink<std::string>(ty::collect<std::string>());
  const std::string text = "not an archive \xff";
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());
  ASSERT_TRUE(assemble(p, std::make_unique<PatternSource>(2, bytes, "text/plain"),
                       "passthrough name=first ! passthrough name=last", std::move(sink))
                  .ok());

  ASSERT_TRUE(dyn::PipelineExecutor().run(p).ok());
  auto got = result.take();

  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, (std::vector<std::string>{text, text}));
}

TEST(TypedDynamic, ElementsRunOnce) {
  dyn::Pipeline p;
  auto [sink, result] = ty::element_sink<int>(ty::collect<int>());
  ASSERT_TRUE(assemble(p, ty::into_element(ty::range(0, 3)),
                       "passthrough name=first ! passthrough name=last", std::move(sink))
                  .ok());
  ASSERT_TRUE(dyn::PipelineExecutor().run(p).ok());

  auto second = dyn::PipelineExecutor().run(p);

  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Errc::failed_precondition);
  EXPECT_EQ(result.take().value(), (std::vector<int>{0, 1, 2}));
}
