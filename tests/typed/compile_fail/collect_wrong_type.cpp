// SPDX-License-Identifier: MIT OR Apache-2.0
// Compile-fail check (collect_wrong_type): with -DPLX_BROKEN=1 this must not compile, and the
// diagnostic must be the typed API's own; without it the same snippet must compile (so it cannot
// fail for a wrong reason).
#include <parallax/typed.h>

#include <memory>
#include <string>
#include <vector>

using namespace parallax::typed;

void snippet() {
#if PLX_BROKEN
  auto r = pipeline(from_iter(std::vector{1, 2, 3}))
               .then(map([](int x) { return x * 10; }))
               .sink(collect<std::string>())
               .run();
  (void)r;
#else
  auto r = pipeline(from_iter(std::vector{1, 2, 3}))
               .then(map([](int x) { return x * 10; }))
               .sink(collect<int>())
               .run();
  (void)r;
#endif
}
