// SPDX-License-Identifier: MIT OR Apache-2.0
// Compile-fail check (then_bare_callable): with -DPLX_BROKEN=1 this must not compile, and the
// diagnostic must be the typed API's own; without it the same snippet must compile (so it cannot
// fail for a wrong reason).
#include <parallax/typed.h>

#include <memory>
#include <string>
#include <vector>

using namespace parallax::typed;

void snippet() {
#if PLX_BROKEN
  auto r = pipeline(range(0, 10)).then([](int x) { return x * 2; }).sink(discard()).run();
  (void)r;
#else
  auto r = pipeline(range(0, 10)).then(map([](int x) { return x * 2; })).sink(discard()).run();
  (void)r;
#endif
}
