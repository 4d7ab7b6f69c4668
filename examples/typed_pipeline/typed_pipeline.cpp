// SPDX-License-Identifier: MIT OR Apache-2.0
// The original README's typed pipeline in C++: keep the even numbers of 1..10, times ten.
#include <parallax/typed.h>

#include <cstdio>
#include <vector>

int main() {
  using namespace parallax::typed;

  auto result = pipeline(from_iter(std::vector{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}))
                    .then(filter([](const int& x) { return x % 2 == 0; }))  // keep even numbers
                    .then(map([](int x) { return x * 10; }))                // multiply by 10
                    .sink(collect<int>())
                    .run();
  if (!result.ok()) {
    std::fprintf(stderr, "typed_pipeline: %s\n", result.error().to_string().c_str());
    return 1;
  }
  std::vector<int> values = std::move(result).into_inner();

  std::printf("Result: [");
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::printf(i == 0 ? "%d" : ", %d", values[i]);
  }
  std::printf("]\n");
  return 0;
}
