// SPDX-License-Identifier: MIT OR Apache-2.0
// Parser table tests: valid descriptions and their graphs, invalid ones and their exact errors.
#include <gtest/gtest.h>

#include "test_util.h"

namespace {

using namespace plx_test;

struct ValidCase {
  const char* description;
  std::vector<std::string> edges;
};

class ParseValid : public ::testing::TestWithParam<ValidCase> {};

TEST_P(ParseValid, BuildsTheExpectedGraph) {
  Pipeline p;
  auto r = p.parse(GetParam().description);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(edges(p), GetParam().edges);
  EXPECT_TRUE(p.validate().ok()) << p.validate().error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseValid,
    ::testing::Values(
        ValidCase{"nullsource ! nullsink", {"nullsource0.src->nullsink0.sink"}},
        ValidCase{"nullsource!nullsink", {"nullsource0.src->nullsink0.sink"}},
        ValidCase{"  nullsource num-buffers=10 size=64 !\n\tpassthrough ! nullsink  ",
                  {"nullsource0.src->passthrough0.sink", "passthrough0.src->nullsink0.sink"}},
        ValidCase{"nullsource ! tee name=t t. ! queue ! nullsink  t. ! queue ! nullsink",
                  {"nullsource0.src->t.sink", "queue0.src->nullsink0.sink",
                   "queue1.src->nullsink1.sink", "t.src_0->queue0.sink", "t.src_1->queue1.sink"}},
        ValidCase{"nullsource ! tee name=t  t.src_5 ! nullsink",
                  {"nullsource0.src->t.sink", "t.src_5->nullsink0.sink"}},
        // A reference before the element it names, and a reference as a link's sink side.
        ValidCase{"t. ! nullsink  nullsource ! tee name=t",
                  {"nullsource0.src->t.sink", "t.src_0->nullsink0.sink"}},
        ValidCase{"nullsource ! p.  passthrough name=p ! nullsink",
                  {"nullsource0.src->p.sink", "p.src->nullsink0.sink"}},
        ValidCase{"nullsource ! video/x-raw,format=RGBA ! nullsink",
                  {"capsfilter0.src->nullsink0.sink", "nullsource0.src->capsfilter0.sink"}},
        ValidCase{"nullsource ! video/x-raw, format=RGBA, width=(int)640 ! nullsink",
                  {"capsfilter0.src->nullsink0.sink", "nullsource0.src->capsfilter0.sink"}},
        ValidCase{"filesrc location=\"a b!c.bin\" ! filesink location='x y'",
                  {"filesrc0.src->filesink0.sink"}},
        ValidCase{"nullsource name=s ! queue max-size-buffers=3 leaky=downstream ! nullsink name=k",
                  {"queue0.src->k.sink", "s.src->queue0.sink"}}));

struct InvalidCase {
  const char* description;
  parallax::Errc code;
  std::size_t line;
  std::size_t column;
  const char* what;  // the full ParseError::what, or its start when ends with "..."
};

class ParseInvalid : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(ParseInvalid, ReportsPositionAndExpectation) {
  const InvalidCase& c = GetParam();
  Pipeline p;
  ParseError pe;
  auto r = p.parse(c.description, &pe);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, c.code) << r.error().message;
  EXPECT_EQ(pe.line, c.line) << r.error().message;
  EXPECT_EQ(pe.column, c.column) << r.error().message;
  std::string what = c.what;
  if (what.size() > 3 && what.substr(what.size() - 3) == "...") {
    what.resize(what.size() - 3);
    EXPECT_EQ(pe.what.substr(0, what.size()), what);
  } else {
    EXPECT_EQ(pe.what, what);
  }
  EXPECT_EQ(r.error().message, pe.to_string());
  EXPECT_EQ(p.size(), 0u) << "a failed parse must leave the pipeline unchanged";
}

using parallax::Errc;
INSTANTIATE_TEST_SUITE_P(
    Table, ParseInvalid,
    ::testing::Values(
        InvalidCase{"", Errc::invalid_argument, 1, 1,
                    "expected an element: the description is empty"},
        InvalidCase{"   ", Errc::invalid_argument, 1, 1,
                    "expected an element: the description is empty"},
        InvalidCase{"! nullsink", Errc::invalid_argument, 1, 1, "expected an element before '!'"},
        InvalidCase{"nullsource !", Errc::invalid_argument, 1, 13, "expected an element after '!'"},
        InvalidCase{"nullsource ! ! nullsink", Errc::invalid_argument, 1, 14,
                    "expected an element between '!' and '!'"},
        InvalidCase{"nullsource ! pasthrough ! nullsink", Errc::not_found, 1, 14,
                    "unknown element 'pasthrough'; did you mean 'passthrough'?"},
        InvalidCase{"nullsource ! zzzzzzzzzz ! nullsink", Errc::not_found, 1, 14,
                    "unknown element 'zzzzzzzzzz'"},
        InvalidCase{"nullsource\n  ! pasthrough ! nullsink", Errc::not_found, 2, 5,
                    "unknown element 'pasthrough'; did you mean 'passthrough'?"},
        InvalidCase{
            "nullsource num-buffer=5 ! nullsink", Errc::not_found, 1, 12,
            "element 'nullsource' has no property 'num-buffer'; did you mean 'num-buffers'?; "
            "valid properties: num-buffers (int64 -1..9223372036854775807), size (uint64 "
            "0..268435456), pattern (enum none|zero|counter), affinity (string)"},
        InvalidCase{"nullsource num-buffers=10abc ! nullsink", Errc::invalid_argument, 1, 24,
                    "invalid value '10abc' for property 'num-buffers': expected an integer in "
                    "-1..9223372036854775807; valid properties of 'nullsource': num-buffers..."},
        InvalidCase{"nullsource size=-1 ! nullsink", Errc::invalid_argument, 1, 17,
                    "invalid value '-1' for property 'size': expected an unsigned integer in "
                    "0..268435456..."},
        InvalidCase{
            "nullsource size=268435457 ! nullsink", Errc::out_of_range, 1, 17,
            "value '268435457' for property 'size' is out of range (uint64 0..268435456)..."},
        InvalidCase{
            "nullsource pattern=blue ! nullsink", Errc::invalid_argument, 1, 20,
            "invalid value 'blue' for property 'pattern': expected one of none|zero|counter..."},
        InvalidCase{"filesrc location=\"unterminated ! nullsink", Errc::invalid_argument, 1, 18,
                    "unterminated quote: expected a closing \""},
        InvalidCase{"filesrc location=x\\", Errc::invalid_argument, 1, 19,
                    "expected a character after '\\'"},
        InvalidCase{"location=x ! nullsink", Errc::invalid_argument, 1, 1,
                    "expected an element before the property 'location'"},
        InvalidCase{"nullsource ! num-buffers=3", Errc::invalid_argument, 1, 14,
                    "expected an element after '!', got the property 'num-buffers'"},
        InvalidCase{"nullsource location = x", Errc::invalid_argument, 1, 21,
                    "unexpected '=': write properties as name=value without spaces"},
        InvalidCase{"nullsource ! 9lives", Errc::invalid_argument, 1, 14,
                    "expected an element name, got '9lives'"},
        InvalidCase{"nullsource ! tee name=t  x. ! nullsink", Errc::not_found, 1, 26,
                    "no element named 'x'; did you mean 't'?"},
        InvalidCase{"nullsource ! tee name=t  zzz. ! nullsink", Errc::not_found, 1, 26,
                    "no element named 'zzz'"},
        InvalidCase{"nullsource ! tee name=tee1  tee2. ! nullsink", Errc::not_found, 1, 29,
                    "no element named 'tee2'; did you mean 'tee1'?"},
        InvalidCase{"nullsink ! nullsource", Errc::invalid_argument, 1, 1,
                    "element 'nullsink0' (nullsink) has no src pad: it is a sink"},
        InvalidCase{"nullsource ! nullsource", Errc::invalid_argument, 1, 14,
                    "element 'nullsource1' (nullsource) has no sink pad: it is a source"},
        InvalidCase{"nullsource name=s ! nullsink  s. ! nullsink", Errc::failed_precondition, 1, 31,
                    "element 's' has no free src pad (all are linked)"},
        InvalidCase{"nullsource ! tee name=t  t.sink ! nullsink", Errc::invalid_argument, 1, 26,
                    "pad 't.sink' is a sink pad"},
        InvalidCase{"nullsource ! tee name=t  t.foo ! nullsink", Errc::not_found, 1, 26,
                    "element 't' has no pad 'foo'"},
        InvalidCase{"video/x-raw ! nullsink", Errc::invalid_argument, 1, 1,
                    "expected an element before the caps filter 'video/x-raw'"},
        InvalidCase{"nullsource video/x-raw ! nullsink", Errc::invalid_argument, 1, 12,
                    "expected '!' before the caps filter 'video/x-raw'"},
        InvalidCase{"nullsource ! video/x-raw,width=[ 1 ! nullsink", Errc::invalid_argument, 1, 35,
                    "invalid caps: expected ',' in a range"},
        InvalidCase{"nullsource ! video/x-raw,,a=1 ! nullsink", Errc::invalid_argument, 1, 26,
                    "invalid caps: expected a field name"},
        InvalidCase{"nullsource name=a ! nullsink name=a", Errc::already_exists, 1, 35,
                    "an element named 'a' already exists"},
        InvalidCase{"nullsource name= ! nullsink", Errc::invalid_argument, 1, 17,
                    "expected a name after 'name='"},
        InvalidCase{
            "nullsource ! queue name=a.b ! nullsink", Errc::invalid_argument, 1, 25,
            "element names cannot contain '.' (it separates element and pad in references)"},
        InvalidCase{"nullsource ! 1=2", Errc::invalid_argument, 1, 14,
                    "expected a property name before '='"}));

TEST(Parse, ErrorExcerptHasACaretUnderTheColumn) {
  Pipeline p;
  auto r = p.parse("nullsource ! pasthrough ! nullsink");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "line 1, column 14: unknown element 'pasthrough'; did you mean 'passthrough'?\n"
            "  nullsource ! pasthrough ! nullsink\n"
            "               ^");
}

TEST(Parse, FailedParseLeavesAnExistingPipelineUnchanged) {
  Pipeline p;
  ASSERT_TRUE(p.parse("nullsource ! tee name=t").ok());
  auto r = p.parse("t. ! queue ! nullsink  t. ! queue ! bogus");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(p.size(), 2u);
  EXPECT_TRUE(p.find("t")->src_pads().empty()) << "request pads of a failed parse are released";
  // The automatic names did not advance either.
  ASSERT_TRUE(p.parse("t. ! queue ! nullsink").ok());
  EXPECT_NE(p.find("queue0"), nullptr);
}

TEST(Parse, LinkFailureAfterRequestingPadsRollsBack) {
  Pipeline p;
  ASSERT_TRUE(p.parse("nullsource ! tee name=t  t. ! nullsink name=k").ok());
  auto r = p.parse("t. ! k.");  // k's only sink pad is linked already
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, parallax::Errc::failed_precondition);
  EXPECT_EQ(p.find("t")->src_pads().size(), 1u);
}

TEST(Parse, AppendsToAPipelineAndReferencesEarlierElements) {
  Pipeline p;
  ASSERT_TRUE(p.parse("nullsource ! tee name=t").ok());
  ASSERT_TRUE(p.parse("t. ! nullsink").ok());
  EXPECT_EQ(edges(p),
            (std::vector<std::string>{"nullsource0.src->t.sink", "t.src_0->nullsink0.sink"}));
}

TEST(Parse, CapsFilterGetsTheCapsProperty) {
  auto p = Pipeline::from_string("nullsource ! video/x-raw, format=RGBA ,width=640 ! nullsink");
  ASSERT_TRUE(p.ok()) << p.error().message;
  Element* cf = p->find("capsfilter0");
  ASSERT_NE(cf, nullptr);
  EXPECT_EQ(std::get<std::string>(*cf->property("caps")), "video/x-raw, format=RGBA ,width=640");
}

TEST(Parse, NamesFollowGStreamerNumbering) {
  auto p = Pipeline::from_string("nullsource ! queue ! queue ! nullsink");
  ASSERT_TRUE(p.ok());
  EXPECT_NE(p->find("queue0"), nullptr);
  EXPECT_NE(p->find("queue1"), nullptr);
}

}  // namespace
