// SPDX-License-Identifier: MIT OR Apache-2.0
// Compile-fail check (fold_wrong_callable): with -DPLX_BROKEN=1 this must not compile, and the
// diagnostic must be the typed API's own; without it the same snippet must compile (so it cannot
// fail for a wrong reason).
#include <parallax/typed.h>

#include <memory>
#include <string>
#include <vector>

using namespace parallax::typed;

void snippet() {
#if PLX_BROKEN
  auto r =
      pipeline(range(0, 3))
          .sink(fold(std::string(), [](std::string acc, const std::string& s) { return acc + s; }))
          .run();
  (void)r;
#else
  auto r =
      pipeline(range(0, 3))
          .sink(fold(std::string(), [](std::string acc, int x) { return acc + std::to_string(x); }))
          .run();
  (void)r;
#endif
}
