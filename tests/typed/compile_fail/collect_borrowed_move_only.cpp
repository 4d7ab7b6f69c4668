// SPDX-License-Identifier: MIT OR Apache-2.0
// Compile-fail check (collect_borrowed_move_only): with -DPLX_BROKEN=1 this must not compile, and
// the diagnostic must be the typed API's own; without it the same snippet must compile (so it
// cannot fail for a wrong reason).
#include <parallax/typed.h>

#include <memory>
#include <string>
#include <vector>

using namespace parallax::typed;

void snippet() {
#if PLX_BROKEN
  std::vector<std::unique_ptr<int>> v;
  auto r = pipeline(from_iter(v)).sink(collect<std::unique_ptr<int>>()).run();
  (void)r;
#else
  std::vector<std::unique_ptr<int>> v;
  auto r = pipeline(from_iter(std::move(v))).sink(collect<std::unique_ptr<int>>()).run();
  (void)r;
#endif
}
