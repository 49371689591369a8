#pragma once

// How much work a test does: full in a plain build, less under sanitizers
// (which slow the code under test several times), more for a soak run.
//
//   const int trials = aether::testing::scaled(200);   // 200 plain, 100 sanitized
//   AETHER_SOAK=20 ctest -R race                        // 20 times as many

#include <algorithm>
#include <cstdlib>

namespace aether::testing {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif
#else
inline constexpr bool sanitized = false;
#endif

/// The multiplier of $AETHER_SOAK (a positive integer), 1 without it.
inline int soak_factor() {
  const char* v = std::getenv("AETHER_SOAK");
  const int n = v != nullptr ? std::atoi(v) : 1;
  return std::max(n, 1);
}

/// `plain` in a plain build, half of it (at least 1) under sanitizers, times
/// the soak factor.
inline int scaled(int plain) { return std::max(sanitized ? plain / 2 : plain, 1) * soak_factor(); }

} // namespace aether::testing
