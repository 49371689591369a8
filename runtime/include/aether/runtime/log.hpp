#pragma once

#include <aether/runtime/expected.hpp>

#include <fmt/format.h>

#include <functional>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace aether {

enum class log_level { trace, debug, info, warn, error, off };

/// How lines are written to stderr: `text` (`<time> aether <level>: <message> key=value...`),
/// `logfmt` (`time=... level=... component=... msg="..." key=value`), or
/// `json` (one object per line: time, level, component, msg and the fields).
enum class log_format { text, logfmt, json };

/// A key and value attached to a log line.
struct log_field {
  std::string_view key;
  std::string value;
};

/// Receives every enabled line instead of stderr, so a program routes
/// Aether's lines into its own logger. Called on the thread that logs, from
/// any thread, possibly concurrently; it must not throw (what it throws is dropped).
using log_sink = std::function<void(log_level level, std::string_view component, std::string_view message,
                                    std::span<const log_field> fields)>;

/// The name of a level: trace, debug, info, warn, error, off.
[[nodiscard]] std::string_view to_string(log_level level) noexcept;

namespace detail {
void write_log(log_level level, std::string_view component, std::string_view text,
               std::span<const log_field> fields = {}) noexcept;
[[nodiscard]] bool log_enabled(log_level level) noexcept;
} // namespace detail

/// Sets the minimum level written. The default comes from `AETHER_LOG`
/// (trace, debug, info, warn, error, off), else `warn`.
void set_log_level(log_level level) noexcept;
[[nodiscard]] log_level current_log_level() noexcept;
/// Sets how lines are written to stderr. The default comes from
/// `AETHER_LOG_FORMAT` (text, logfmt, json), else `text`.
void set_log_format(log_format format) noexcept;
/// Routes lines to `sink` (an empty one: back to stderr).
void set_log_sink(log_sink sink);

/// Reads `AETHER_LOG` and `AETHER_LOG_FORMAT` and applies the ones set;
/// `invalid_argument` naming the variable for an unknown value (then nothing
/// changes). `node_config::from_env` calls it.
[[nodiscard]] expected<void> configure_log_from_env();
[[nodiscard]] expected<log_level> parse_log_level(std::string_view text);
[[nodiscard]] expected<log_format> parse_log_format(std::string_view text);

/// Writes one line (component `aether`) when `level` is enabled. Thread-safe.
template <class... Args>
void log(log_level level, fmt::format_string<Args...> format, Args&&... args) noexcept {
  if (!detail::log_enabled(level)) return;
  try {
    detail::write_log(level, "aether", fmt::format(format, std::forward<Args>(args)...));
  } catch (...) { // formatting failed: a log line is never worth an exception
  }
}

/// Writes one line of `component` with fields when `level` is enabled. Thread-safe.
inline void log_event(log_level level, std::string_view component, std::string_view message,
                      std::initializer_list<log_field> fields = {}) noexcept {
  if (!detail::log_enabled(level)) return;
  detail::write_log(level, component, message, std::span<const log_field>{fields.begin(), fields.size()});
}

} // namespace aether
