#pragma once

#include <fmt/format.h>

#include <string_view>

namespace aether {

enum class log_level { trace, debug, info, warn, error, off };

namespace detail {
void write_log(log_level level, std::string_view text) noexcept;
[[nodiscard]] bool log_enabled(log_level level) noexcept;
} // namespace detail

/// Sets the minimum level written to stderr. The default comes from
/// `AETHER_LOG` (trace, debug, info, warn, error, off), else `warn`.
void set_log_level(log_level level) noexcept;

/// Writes one line to stderr when `level` is enabled. Thread-safe.
template <class... Args>
void log(log_level level, fmt::format_string<Args...> format, Args&&... args) noexcept {
  if (!detail::log_enabled(level)) return;
  try {
    detail::write_log(level, fmt::format(format, std::forward<Args>(args)...));
  } catch (...) { // formatting failed: a log line is never worth an exception
  }
}

} // namespace aether
