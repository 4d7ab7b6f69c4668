// SPDX-License-Identifier: MIT OR Apache-2.0
// Property values (read to their end before typing), typed setters, and caps compatibility.
#include <gtest/gtest.h>

#include "test_util.h"

namespace {

using namespace plx_test;
using parallax::Errc;

std::string location_of(const std::string& description) {
  auto p = Pipeline::from_string(description);
  if (!p.ok()) return "ERROR: " + p.error().message;
  return std::get<std::string>(*p->find("filesrc0")->property("location"));
}

struct ValueCase {
  const char* description;
  const char* location;
};

class LocationValue : public ::testing::TestWithParam<ValueCase> {};

TEST_P(LocationValue, IsTheWholeWordUnquotedAndUnescaped) {
  EXPECT_EQ(location_of(GetParam().description), GetParam().location);
}

INSTANTIATE_TEST_SUITE_P(
    Table, LocationValue,
    ::testing::Values(ValueCase{"filesrc location=notes.txt ! nullsink", "notes.txt"},
                      ValueCase{"filesrc location=yes.bin ! nullsink", "yes.bin"},
                      ValueCase{"filesrc location=2024-01-01.ts ! nullsink", "2024-01-01.ts"},
                      ValueCase{"filesrc location=1.5.bin ! nullsink", "1.5.bin"},
                      ValueCase{"filesrc location=10 ! nullsink", "10"},
                      ValueCase{"filesrc location=true ! nullsink", "true"},
                      ValueCase{"filesrc location=\"my file.txt\" ! nullsink", "my file.txt"},
                      ValueCase{"filesrc location='single quoted' ! nullsink", "single quoted"},
                      ValueCase{"filesrc location=a\\ b ! nullsink", "a b"},
                      ValueCase{"filesrc location=\"say \\\"hi\\\"\" ! nullsink", "say \"hi\""},
                      ValueCase{"filesrc location=\"a!b\" ! nullsink", "a!b"},
                      ValueCase{"filesrc location=pre\"mid dle\"post ! nullsink", "premid dlepost"},
                      ValueCase{"filesrc location=a=b ! nullsink", "a=b"},
                      ValueCase{"filesrc location= ! nullsink", ""},
                      ValueCase{"filesrc location=video/x-raw ! nullsink", "video/x-raw"}));

TEST(PropertyValue, IntegerMustBeTheWholeWord) {
  auto p = Pipeline::from_string("nullsource num-buffers=10abc ! nullsink");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("invalid value '10abc' for property 'num-buffers'"),
            std::string::npos);
  EXPECT_NE(p.error().message.find("valid properties of 'nullsource': num-buffers"),
            std::string::npos);
}

TEST(PropertyValue, IntegersAcceptSignAndHex) {
  auto p = Pipeline::from_string("nullsource num-buffers=-1 size=0x40 ! nullsink");
  ASSERT_TRUE(p.ok()) << p.error().message;
  Element* e = p->find("nullsource0");
  EXPECT_EQ(std::get<std::int64_t>(*e->property("num-buffers")), -1);
  EXPECT_EQ(std::get<std::uint64_t>(*e->property("size")), 64u);
}

TEST(PropertyValue, IntegerBoundaries) {
  auto e = ElementRegistry::global().create("nullsource").value();
  EXPECT_TRUE(e->set_property_from_string("num-buffers", "9223372036854775807").ok());
  EXPECT_FALSE(e->set_property_from_string("num-buffers", "9223372036854775808").ok());
  EXPECT_EQ(e->set_property_from_string("num-buffers", "-2").error().code, Errc::out_of_range);
  EXPECT_TRUE(e->set_property_from_string("size", "268435456").ok());
  EXPECT_EQ(e->set_property_from_string("size", "268435457").error().code, Errc::out_of_range);
  EXPECT_FALSE(e->set_property_from_string("size", "").ok());
  EXPECT_FALSE(e->set_property_from_string("size", " 1").ok());
  EXPECT_FALSE(e->set_property_from_string("size", "1.0").ok());
  EXPECT_FALSE(e->set_property_from_string("size", "+").ok());
}

TEST(PropertyValue, Booleans) {
  auto e = ElementRegistry::global().create("identity").value();
  for (const char* t : {"true", "TRUE", "yes", "on", "1"}) {
    ASSERT_TRUE(e->set_property_from_string("silent", t).ok()) << t;
    EXPECT_TRUE(std::get<bool>(*e->property("silent"))) << t;
  }
  for (const char* f : {"false", "No", "off", "0"}) {
    ASSERT_TRUE(e->set_property_from_string("silent", f).ok()) << f;
    EXPECT_FALSE(std::get<bool>(*e->property("silent"))) << f;
  }
  auto bad = e->set_property_from_string("silent", "maybe");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("expected a boolean"), std::string::npos);
}

TEST(PropertyValue, EnumByNickOrNumber) {
  auto e = ElementRegistry::global().create("queue").value();
  ASSERT_TRUE(e->set_property_from_string("leaky", "downstream").ok());
  EXPECT_EQ(std::get<std::string>(*e->property("leaky")), "downstream");
  ASSERT_TRUE(e->set_property_from_string("leaky", "1").ok());
  EXPECT_EQ(std::get<std::string>(*e->property("leaky")), "upstream");
  EXPECT_FALSE(e->set_property_from_string("leaky", "3").ok());
  EXPECT_FALSE(e->set_property_from_string("leaky", "sideways").ok());
}

// `leaky` is a typed enumeration read with prop_enum(): a bad value is a parse error naming
// the property and its choices, never a silent fallback to `none`.
TEST(PropertyValue, BadLeakyIsAClearError) {
  for (const char* d :
       {"nullsource ! queue leaky=sideways ! nullsink", "nullsource ! queue leaky=3 ! nullsink",
        "nullsource ! queue leaky=-1 ! nullsink"}) {
    auto p = Pipeline::from_string(d);
    ASSERT_FALSE(p.ok()) << d;
    EXPECT_EQ(p.error().code, Errc::invalid_argument) << d;
    EXPECT_NE(p.error().message.find("for property 'leaky'"), std::string::npos)
        << p.error().message;
    EXPECT_NE(p.error().message.find("downstream"), std::string::npos) << p.error().message;
  }
}

TEST(PropertyValue, CapsPropertyIsValidated) {
  auto e = ElementRegistry::global().create("capsfilter").value();
  EXPECT_TRUE(e->set_property_from_string("caps", "audio/x-raw,rate=48000").ok());
  auto bad = e->set_property_from_string("caps", "audio/x-raw,rate");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("expected caps"), std::string::npos);
}

TEST(PropertyTyped, SettersCheckTypeAndRange) {
  auto e = ElementRegistry::global().create("nullsource").value();
  EXPECT_TRUE(e->set_property("num-buffers", 10).ok());
  EXPECT_EQ(std::get<std::int64_t>(*e->property("num-buffers")), 10);
  EXPECT_TRUE(e->set_property("size", 128u).ok());
  EXPECT_EQ(e->set_property("size", -1).error().code, Errc::out_of_range);
  EXPECT_EQ(e->set_property("size", "12").error().code, Errc::invalid_argument)
      << "no silent string->int";
  EXPECT_TRUE(e->set_property("pattern", "zero").ok());
  EXPECT_TRUE(e->set_property("pattern", 2).ok());
  EXPECT_EQ(std::get<std::string>(*e->property("pattern")), "counter");
  auto unknown = e->set_property("colour", true);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Errc::not_found);
  EXPECT_NE(unknown.error().message.find("valid properties: num-buffers"), std::string::npos);
}

TEST(PropertyTyped, ReadOnlyPropertiesRefuseWrites) {
  auto e = ElementRegistry::global().create("identity").value();
  EXPECT_EQ(e->set_property("buffers", 1u).error().code, Errc::permission_denied);
  EXPECT_EQ(std::get<std::uint64_t>(*e->property("buffers")), 0u);
}

TEST(PropertySpec, IntrospectionDescribesTypeDefaultAndRange) {
  auto e = ElementRegistry::global().create("queue").value();
  const PropertySpec* s = e->find_property("max-size-buffers");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->type, PropertyType::uint64);
  EXPECT_EQ(std::get<std::uint64_t>(s->default_value), 200u);
  EXPECT_TRUE(s->readable() && s->writable());
  EXPECT_FALSE(s->description.empty());
  const PropertySpec* leaky = e->find_property("leaky");
  ASSERT_NE(leaky, nullptr);
  EXPECT_EQ(leaky->enum_values.size(), 3u);
  EXPECT_EQ(leaky->type_description(), "enum none|upstream|downstream");
}

// --- Caps ---

bool compatible(const char* a, const char* b) {
  return Caps::parse(a).value().can_intersect(Caps::parse(b).value());
}

TEST(Caps, ParsesAndPrintsCanonically) {
  auto c = Caps::parse("video/x-raw,format=(string)RGBA, width=(int)640 ,framerate=30/1");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->to_string(), "video/x-raw, format=RGBA, width=640, framerate=30/1");
  EXPECT_TRUE(c->is_fixed());
  auto l = Caps::parse("video/x-raw, format={ RGBA, BGRA }, width=[ 1, 4096 ]; audio/x-raw");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->to_string(), "video/x-raw, format={ RGBA, BGRA }, width=[ 1, 4096 ]; audio/x-raw");
  EXPECT_FALSE(l->is_fixed());
  EXPECT_TRUE(Caps::parse("ANY")->is_any());
  EXPECT_TRUE(Caps::parse("EMPTY")->is_empty());
  EXPECT_EQ(Caps::parse("text/x-raw,s=\"a, b\"")->to_string(), "text/x-raw, s=\"a, b\"");
}

TEST(Caps, RejectsMalformedText) {
  for (const char* bad : {"", ",a=1", "video/x-raw,", "video/x-raw,w", "video/x-raw,w=",
                          "video/x-raw,w=[1,2", "video/x-raw,w={a,b", "video/x-raw,w=\"x",
                          "video/x-raw w=1", "video/x-raw,w=1,w=2", "video/x-raw,w=[5,1]"})
    EXPECT_FALSE(Caps::parse(bad).ok()) << bad;
}

TEST(Caps, CompatibilityFollowsGStreamerIntersection) {
  EXPECT_TRUE(compatible("video/x-raw,format=RGBA,width=640", "video/x-raw,format=RGBA"));
  EXPECT_TRUE(compatible("video/x-raw,format=RGBA,width=640", "video/x-raw,format=RGBA,width=640"));
  EXPECT_TRUE(compatible("video/x-raw", "video/x-raw,format=RGBA"));
  EXPECT_FALSE(compatible("video/x-raw,format=BGRA", "video/x-raw,format=RGBA"));
  EXPECT_FALSE(compatible("video/x-raw,width=320", "video/x-raw,width=640"));
  EXPECT_FALSE(compatible("audio/x-raw", "video/x-raw"));
  EXPECT_TRUE(compatible("video/x-raw,format={BGRA,RGBA}", "video/x-raw,format=RGBA"));
  EXPECT_TRUE(compatible("video/x-raw,width=640", "video/x-raw,width=[1,1000]"));
  EXPECT_FALSE(compatible("video/x-raw,width=2000", "video/x-raw,width=[1,1000]"));
  EXPECT_TRUE(compatible("video/x-raw,width=(int)640", "video/x-raw,width=640"));
  EXPECT_TRUE(compatible("video/x-raw,framerate=30/1", "video/x-raw,framerate=60/2"));
  EXPECT_TRUE(compatible("ANY", "video/x-raw"));
  EXPECT_FALSE(compatible("EMPTY", "video/x-raw"));
  EXPECT_TRUE(compatible("audio/x-raw; video/x-raw,format=RGBA", "video/x-raw"));
}

// Caps keep the text they were made from: re-serialising gives the original string.
TEST(Caps, KeepTheirText) {
  const std::string text = "video/x-raw,format=(string)RGBA, width=(int)640";
  Caps c = Caps::parse(text).value();
  EXPECT_EQ(c.text(), text);
  EXPECT_EQ(c.to_string(), "video/x-raw, format=RGBA, width=640");
  EXPECT_TRUE(c.complete());
  Caps copy = c;
  EXPECT_EQ(copy.text(), text);
  // Equality is about the format: the same format spelt differently is equal.
  EXPECT_EQ(c, Caps::parse("video/x-raw, format=RGBA, width=640").value());
  // Caps computed by an intersection that narrowed something have no source text.
  Caps narrowed = c.intersect(Caps::parse("video/x-raw, height=480").value());
  EXPECT_EQ(narrowed.text(), "video/x-raw, format=RGBA, width=640, height=480");
  // ... and an intersection that narrowed nothing is the same format, with its text.
  EXPECT_EQ(c.intersect(Caps::parse("video/x-raw").value()).text(), text);
  EXPECT_EQ(Caps::any().intersect(c).text(), text);
  // Default caps have no text: their canonical form.
  EXPECT_EQ(Caps().text(), "ANY");
}

// from_text() never fails: what the parser cannot read keeps its text whole and announces its
// media type (complete() false); unequal texts of such caps are unequal caps.
TEST(Caps, FromTextKeepsWhatTheParserCannotRead) {
  const std::string arr = "video/x-h264, stream-format=(string)avc, x=(int)< 1, 2 >";
  ASSERT_FALSE(Caps::parse(arr).ok());
  Caps c = Caps::from_text(arr);
  EXPECT_FALSE(c.complete());
  EXPECT_EQ(c.text(), arr);
  EXPECT_EQ(c.to_string(), "video/x-h264");
  EXPECT_NE(c, Caps::from_text("video/x-h264, x=(int)< 3 >"));
  EXPECT_NE(c, Caps::parse("video/x-h264").value());
  EXPECT_EQ(c, Caps::from_text(arr));
  Caps junk = Caps::from_text("!!not caps");
  EXPECT_FALSE(junk.complete());
  EXPECT_TRUE(junk.is_any());
  EXPECT_EQ(junk.text(), "!!not caps");
  Caps ok = Caps::from_text("audio/x-raw, rate=(int)48000");
  EXPECT_TRUE(ok.complete());
  EXPECT_EQ(ok.text(), "audio/x-raw, rate=(int)48000");
}

TEST(Caps, IntersectionKeepsFieldsOfBothSides) {
  Caps a = Caps::parse("video/x-raw,width=640").value();
  Caps b = Caps::parse("video/x-raw,format={RGBA,BGRA},height=[1,480]").value();
  EXPECT_EQ(a.intersect(b).to_string(),
            "video/x-raw, width=640, format={ RGBA, BGRA }, height=[ 1, 480 ]");
}

}  // namespace
