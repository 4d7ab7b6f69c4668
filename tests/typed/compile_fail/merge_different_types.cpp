// SPDX-License-Identifier: MIT OR Apache-2.0
// Compile-fail check (merge_different_types): with -DPLX_BROKEN=1 this must not compile, and the
// diagnostic must be the typed API's own; without it the same snippet must compile (so it cannot
// fail for a wrong reason).
#include <parallax/typed.h>

#include <memory>
#include <string>
#include <vector>

using namespace parallax::typed;

void snippet() {
#if PLX_BROKEN
  auto r = pipeline(merge(range(0, 3), from_iter({std::string("a")}))).sink(discard()).run();
  (void)r;
#else
  auto r = pipeline(merge(range(0, 3), from_iter({7}))).sink(discard()).run();
  (void)r;
#endif
}
