// SPDX-License-Identifier: MIT OR Apache-2.0
// Compile-fail check (map_wrong_argument): with -DPLX_BROKEN=1 this must not compile, and the
// diagnostic must be the typed API's own; without it the same snippet must compile (so it cannot
// fail for a wrong reason).
#include <parallax/typed.h>

#include <memory>
#include <string>
#include <vector>

using namespace parallax::typed;

void snippet() {
#if PLX_BROKEN
  auto r = pipeline(range(0, 10))
               .then(map([](const std::string& s) { return s.size(); }))
               .sink(discard())
               .run();
  (void)r;
#else
  auto r =
      pipeline(range(0, 10)).then(map([](const int& x) { return x + 1; })).sink(discard()).run();
  (void)r;
#endif
}
