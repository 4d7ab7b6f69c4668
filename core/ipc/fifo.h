// SPDX-License-Identifier: MIT OR Apache-2.0
// A growable FIFO on one circular array (private to libparallax): a Connection's records in
// flight, pushed at every ring write and popped as the subscriber takes them. std::deque does
// the same with a node allocated every 21 records and freed as the front passes it (callgrind,
// tests/ipc/ipc_loop: ~70 instructions per send, a malloc and a free among them); this never
// allocates once it reached the connection's working size, and a push is a store and an add.
//
// Single-threaded (the Connection's lock). T must be trivially copyable: elements are moved
// with the array when it grows and are never destroyed.
#pragma once

#include <cstddef>
#include <iterator>
#include <type_traits>
#include <vector>

namespace parallax::link::detail {

template <typename T>
class Fifo {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  [[nodiscard]] bool empty() const noexcept { return head_ == tail_; }
  [[nodiscard]] std::size_t size() const noexcept { return tail_ - head_; }
  [[nodiscard]] const T& front() const noexcept { return buf_[head_ & mask_]; }

  void push_back(const T& v) {
    if (tail_ - head_ == buf_.size()) [[unlikely]]
      grow();
    buf_[tail_ & mask_] = v;
    ++tail_;
  }
  void pop_front() noexcept { ++head_; }
  /// Empties it (the array is kept).
  void clear() noexcept { head_ = tail_ = 0; }

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = const T*;
    using reference = const T&;
    const_iterator() = default;
    reference operator*() const noexcept { return f_->buf_[i_ & f_->mask_]; }
    pointer operator->() const noexcept { return &**this; }
    const_iterator& operator++() noexcept {
      ++i_;
      return *this;
    }
    const_iterator operator++(int) noexcept {
      const_iterator t = *this;
      ++i_;
      return t;
    }
    bool operator==(const const_iterator& o) const noexcept { return i_ == o.i_; }

   private:
    friend class Fifo;
    const_iterator(const Fifo* f, std::size_t i) noexcept : f_(f), i_(i) {}
    const Fifo* f_{nullptr};
    std::size_t i_{0};
  };
  [[nodiscard]] const_iterator begin() const noexcept { return {this, head_}; }
  [[nodiscard]] const_iterator end() const noexcept { return {this, tail_}; }

 private:
  // Doubles the array (64 elements the first time), the elements in order from index 0.
  void grow() {
    std::vector<T> next(buf_.empty() ? 64 : buf_.size() * 2);
    std::size_t n = 0;
    for (std::size_t i = head_; i != tail_; ++i)
      next[n++] = buf_[i & mask_];
    buf_.swap(next);
    mask_ = buf_.size() - 1;
    head_ = 0;
    tail_ = n;
  }

  std::vector<T> buf_;   // power-of-two size (or empty)
  std::size_t mask_{0};  // buf_.size() - 1
  std::size_t head_{0};  // positions, monotonic (the index is position & mask_)
  std::size_t tail_{0};
};

}  // namespace parallax::link::detail
