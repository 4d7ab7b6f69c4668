// SPDX-License-Identifier: MIT OR Apache-2.0
// Compile-fail check (pipe_wrong_argument): with -DPLX_BROKEN=1 this must not compile, and the
// diagnostic must be the typed API's own; without it the same snippet must compile (so it cannot
// fail for a wrong reason).
#include <parallax/typed.h>

#include <memory>
#include <string>
#include <vector>

using namespace parallax::typed;

void snippet() {
#if PLX_BROKEN
  auto r = (range(0, 3) | map([](std::string s) { return s; }) | collect<std::string>()).run();
  (void)r;
#else
  auto r =
      (range(0, 3) | map([](int x) { return std::to_string(x); }) | collect<std::string>()).run();
  (void)r;
#endif
}
