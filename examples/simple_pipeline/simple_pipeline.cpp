// SPDX-License-Identifier: MIT OR Apache-2.0
// The original README's "Dynamic Pipeline" example: parse a pipeline string, build one
// programmatically with add_node/link, and run both with PipelineExecutor.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "parallax/pipeline.h"

using parallax::pipeline::ElementRegistry;
using parallax::pipeline::Pipeline;
using parallax::pipeline::PipelineExecutor;

int main(int argc, char** argv) {
  // An input file for filesrc: the path from the command line, or a small generated one.
  std::string input =
      argc > 1 ? argv[1]
               : (std::filesystem::temp_directory_path() / "simple_pipeline_input.bin").string();
  if (argc <= 1) std::ofstream(input, std::ios::binary) << std::string(64 * 1024, 'x');

  // 1. Parse a pipeline from a string (gst-launch syntax).
  Pipeline parsed;
  if (auto r = parsed.parse("filesrc location=\"" + input + "\" ! passthrough ! nullsink"); !r) {
    std::fprintf(stderr, "parse failed: %s\n", r.error().message.c_str());
    return 1;
  }

  // 2. Or build programmatically.
  Pipeline built;
  auto source = ElementRegistry::global().create("nullsource").value();
  (void)source->set_property("num-buffers", 100);
  (void)source->set_property("size", 1024);
  auto sink = ElementRegistry::global().create("nullsink").value();
  auto src = built.add_node("src", std::move(source));
  auto snk = built.add_node("sink", std::move(sink));
  if (!src || !snk) return 1;
  if (auto r = built.link(*src, *snk); !r) {
    std::fprintf(stderr, "link failed: %s\n", r.error().message.c_str());
    return 1;
  }

  // 3. Run them.
  PipelineExecutor executor;
  for (Pipeline* p : {&parsed, &built}) {
    if (auto r = executor.run(*p); !r) {
      std::fprintf(stderr, "pipeline failed: %s\n", r.error().message.c_str());
      return 1;
    }
    for (const auto& s : executor.stats())
      std::printf("%-12s %8llu buffers %10llu bytes\n", s.name.c_str(),
                  static_cast<unsigned long long>(s.buffers),
                  static_cast<unsigned long long>(s.bytes));
  }
  std::printf("both pipelines reached EOS\n");
  return 0;
}
