// SPDX-License-Identifier: MIT OR Apache-2.0
// Compile-fail check (filter_map_not_optional): with -DPLX_BROKEN=1 this must not compile, and the
// diagnostic must be the typed API's own; without it the same snippet must compile (so it cannot
// fail for a wrong reason).
#include <parallax/typed.h>

#include <memory>
#include <string>
#include <vector>

using namespace parallax::typed;

void snippet() {
#if PLX_BROKEN
  auto r = pipeline(range(0, 3)).then(filter_map([](int x) { return x; })).sink(discard()).run();
  (void)r;
#else
  auto r = pipeline(range(0, 3))
               .then(filter_map([](int x) { return x > 0 ? std::optional<int>(x) : std::nullopt; }))
               .sink(discard())
               .run();
  (void)r;
#endif
}
