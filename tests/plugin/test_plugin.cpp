// SPDX-License-Identifier: MIT OR Apache-2.0
// Plugin loader tests: a real C plugin loaded with dlopen runs in a pipeline; broken plugins
// are refused whole with clear errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "parallax/pipeline.h"
#include "parallax/plugin.h"

using namespace parallax;
using namespace parallax::pipeline;

namespace {

std::string plugin_dir() {
  const char* d = std::getenv("PLX_TEST_PLUGIN_DIR");
  return d ? d : "";
}
std::string good_plugin() {
  return plugin_dir() + "/good/libplx_ctest.so";
}
std::string variant(int n) {
  return plugin_dir() + "/libplx_ctest_broken" + std::to_string(n) + ".so";
}

std::string temp_file(const char* stem) {
  return (std::filesystem::temp_directory_path() /
          (std::string("plx-plugin-") + stem + "-" + std::to_string(getpid())))
      .string();
}

// Loads the good plugin into the global registry once for the whole test program.
void ensure_loaded() {
  static bool done = [] {
    auto r = plugin::load(good_plugin());
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return true;
  }();
  (void)done;
}

std::string run_and_read(const std::string& description, const std::string& out) {
  std::filesystem::remove(out);
  auto p = Pipeline::from_string(description);
  EXPECT_TRUE(p.ok()) << p.error().to_string();
  if (!p.ok()) return {};
  PipelineExecutor ex;
  auto r = ex.run(*p);
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  std::ifstream in(out);
  std::string line;
  std::getline(in, line);
  return line;
}

TEST(Plugin, LoadsAndDescribesItsElements) {
  ensure_loaded();
  auto list = plugin::loaded();
  auto it = std::find_if(list.begin(), list.end(), [](auto& p) { return p.name == "ctest"; });
  ASSERT_NE(it, list.end());
  EXPECT_EQ(it->version, "1.0");
  EXPECT_EQ(it->elements,
            (std::vector<std::string>{"c-counter-src", "c-invert", "c-checksum-sink"}));
  const ElementInfo* info = ElementRegistry::global().find("c-invert");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->plugin, "ctest");
  EXPECT_EQ(info->klass, "Filter/Effect");
  auto el = ElementRegistry::global().create("c-counter-src");
  ASSERT_TRUE(el.ok());
  const PropertySpec* fill = (*el)->find_property("fill");
  ASSERT_NE(fill, nullptr);
  EXPECT_EQ(fill->type, PropertyType::uint64);
  EXPECT_EQ(std::get<std::uint64_t>(fill->default_value), 42u);
}

TEST(Plugin, ElementsRunInAPipeline) {
  ensure_loaded();
  const std::string out = temp_file("sum");
  // 5 buffers of 64 bytes of value 1, inverted to 254: 5 * 64 * 254.
  EXPECT_EQ(
      run_and_read(
          "c-counter-src num-buffers=5 fill=1 ! c-invert ! c-checksum-sink location=" + out, out),
      "5 81280");
  EXPECT_EQ(run_and_read("c-counter-src num-buffers=5 fill=1 ! c-invert passthrough=true ! "
                         "c-checksum-sink location=" +
                             out,
                         out),
            "5 320");
  EXPECT_EQ(
      run_and_read("c-counter-src num-buffers=3 ! queue ! c-checksum-sink location=" + out, out),
      "3 8064");  // default fill 42
  std::filesystem::remove(out);
}

TEST(Plugin, CallbackErrorsStopThePipelineWithTheirMessage) {
  ensure_loaded();
  auto p = Pipeline::from_string(
      "c-counter-src num-buffers=10 ! c-invert name=inv fail-at=3 ! nullsink");
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  PipelineExecutor ex;
  auto r = ex.run(*p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("refusing buffer 3 as asked"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("inv"), std::string::npos) << r.error().message;
}

TEST(Plugin, PropertyValuesAreCheckedByTheHost) {
  ensure_loaded();
  auto p = Pipeline::from_string("c-counter-src fill=300 ! nullsink");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("fill"), std::string::npos) << p.error().message;
}

TEST(Plugin, LoadingTwiceIsRefused) {
  ensure_loaded();
  auto again = plugin::load(good_plugin());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::already_exists);
}

// A private registry holding a stand-in "nullsink", like the global one holds the built-in.
std::unique_ptr<ElementRegistry> registry_with_nullsink() {
  auto registry = std::make_unique<ElementRegistry>();
  ElementInfo stand_in;
  stand_in.name = "nullsink";
  stand_in.factory = [] { return std::unique_ptr<Element>(); };
  EXPECT_TRUE(registry->register_element(std::move(stand_in)).ok());
  return registry;
}

struct Broken {
  int variant;
  Errc code;
  const char* message;
};
class BrokenPlugins : public ::testing::TestWithParam<Broken> {};
TEST_P(BrokenPlugins, AreRefusedWholeWithAClearError) {
  auto owned = registry_with_nullsink();  // private: nothing from other tests interferes
  ElementRegistry& registry = *owned;
  auto r = plugin::load(variant(GetParam().variant), registry);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, GetParam().code) << r.error().to_string();
  EXPECT_NE(r.error().message.find(GetParam().message), std::string::npos) << r.error().message;
  // All or nothing: no element of the broken plugin was registered.
  EXPECT_EQ(registry.find("c-counter-src"), nullptr);
  EXPECT_EQ(registry.find("c-invert"), nullptr);
}
INSTANTIATE_TEST_SUITE_P(
    Plugin, BrokenPlugins,
    ::testing::Values(
        Broken{1, Errc::unsupported, "built for plugin ABI 99, this Parallax speaks 1"},
        Broken{2, Errc::invalid_argument, "not a Parallax plugin"},
        Broken{3, Errc::already_exists, "element 'nullsink' is already registered"},
        Broken{4, Errc::invalid_argument, "property 'fill' has an invalid default 'abc'"},
        Broken{5, Errc::invalid_argument, "a transform needs transform"}));

TEST(Plugin, MissingFileAndNonPlugin) {
  ElementRegistry registry;
  auto missing = plugin::load("/nonexistent/libnothing.so", registry);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::not_found);
  const std::string junk = temp_file("junk.so");
  std::ofstream(junk) << "not an ELF file";
  auto bad = plugin::load(junk, registry);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::not_found);  // dlopen refused it
  std::filesystem::remove(junk);
}

TEST(Plugin, LoadPathReportsFailuresAndLoadsTheRest) {
  auto registry = registry_with_nullsink();
  std::vector<std::string> errors;
  auto loaded = plugin::load_path(plugin_dir() + "/good:" + plugin_dir() + ":/nonexistent-dir",
                                  &errors, *registry);
  // good/ holds the well-formed plugin (already loaded globally by other tests in this
  // process, so it may be refused as a duplicate); the parent holds the five broken variants.
  EXPECT_LE(loaded.size(), 1u);
  std::size_t broken = 0;
  for (const auto& e : errors)
    if (e.find("libplx_ctest_broken") != std::string::npos) ++broken;
  EXPECT_EQ(broken, 5u);
  EXPECT_TRUE(std::any_of(errors.begin(), errors.end(), [](const std::string& e) {
    return e.find("/nonexistent-dir") != std::string::npos;
  }));
}

}  // namespace
