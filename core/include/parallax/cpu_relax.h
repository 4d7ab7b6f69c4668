// SPDX-License-Identifier: MIT OR Apache-2.0
// cpu_relax(): the body of every spin-wait loop. It tells the core (and an SMT sibling) that
// this thread is spinning: x86 `pause`, arm64 `yield`; elsewhere a compiler barrier, so the
// loop still re-reads memory each time round. Public because header-only templates spin too
// (parallax/spsc_ring.h).
#pragma once

namespace parallax {

[[gnu::always_inline]] inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

}  // namespace parallax
