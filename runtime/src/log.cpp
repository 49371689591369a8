#include <aether/runtime/log.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace aether {
namespace {

log_level level_from_env() noexcept {
  const char* v = std::getenv("AETHER_LOG");
  if (v == nullptr) return log_level::warn;
  const std::string_view s{v};
  if (s == "trace") return log_level::trace;
  if (s == "debug") return log_level::debug;
  if (s == "info") return log_level::info;
  if (s == "error") return log_level::error;
  if (s == "off") return log_level::off;
  return log_level::warn;
}

std::atomic<log_level>& current() noexcept {
  static std::atomic<log_level> level{level_from_env()};
  return level;
}

constexpr std::string_view names[] = {"trace", "debug", "info", "warn", "error", "off"};

} // namespace

void set_log_level(log_level level) noexcept { current().store(level, std::memory_order_relaxed); }

namespace detail {

bool log_enabled(log_level level) noexcept { return level >= current().load(std::memory_order_relaxed); }

void write_log(log_level level, std::string_view text) noexcept {
  const auto name = names[static_cast<int>(level)];
  // One fprintf per line keeps lines from different threads whole.
  std::fprintf(stderr, "aether %.*s: %.*s\n", static_cast<int>(name.size()), name.data(), static_cast<int>(text.size()),
               text.data());
}

} // namespace detail
} // namespace aether
