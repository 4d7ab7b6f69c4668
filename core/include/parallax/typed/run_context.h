// SPDX-License-Identifier: MIT OR Apache-2.0
// RunContext: where the first error of a typed pipeline run is kept. One per thread segment of a
// pipeline (the caller's thread, and one more behind each queue() stage), so it needs no lock.
#pragma once

#include <parallax/result.h>

#include <optional>
#include <utility>

namespace parallax::typed {

class RunContext {
 public:
  /// Records e unless an error is already recorded (the first error wins).
  void fail(Error e) {
    if (!error_) error_ = std::move(e);
  }
  /// Upstream failed: nothing more will come, and partial work (a batch) must not be flushed.
  void abort() noexcept { aborted_ = true; }
  [[nodiscard]] bool failed() const noexcept { return error_.has_value() || aborted_; }
  [[nodiscard]] std::optional<Error> take_error() { return std::exchange(error_, std::nullopt); }

 private:
  std::optional<Error> error_;
  bool aborted_ = false;
};

}  // namespace parallax::typed
