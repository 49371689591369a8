#include <aether/runtime/log.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

namespace aether {
namespace {

constexpr std::string_view level_names[] = {"trace", "debug", "info", "warn", "error", "off"};
constexpr std::string_view format_names[] = {"text", "logfmt", "json"};

/// What `AETHER_LOG` and `AETHER_LOG_FORMAT` set (nothing where unset), or
/// the error of the first unknown value.
struct log_env {
  std::optional<log_level> level;
  std::optional<log_format> format;
};
expected<log_env> read_log_env() {
  log_env e;
  if (const char* v = std::getenv("AETHER_LOG")) {
    auto l = parse_log_level(v);
    if (!l) return l.error();
    e.level = *l;
  }
  if (const char* v = std::getenv("AETHER_LOG_FORMAT")) {
    auto f = parse_log_format(v);
    if (!f) return f.error();
    e.format = *f;
  }
  return e;
}

struct log_state {
  std::atomic<log_level> level{log_level::warn};
  std::atomic<log_format> format{log_format::text};
  std::mutex sink_mutex;
  std::shared_ptr<const log_sink> sink;
  std::string env_problem; // an unknown value in the environment, said once

  // As configure_log_from_env: a bad value applies nothing.
  log_state() {
    auto e = read_log_env();
    if (!e) {
      env_problem = e.error().detail();
      return;
    }
    if (e->level) level.store(*e->level, std::memory_order_relaxed);
    if (e->format) format.store(*e->format, std::memory_order_relaxed);
  }
};

log_state& state() noexcept {
  static log_state s;
  // An unknown value is not ignored silently, even by a program that never
  // calls `configure_log_from_env`.
  static const bool said = [] {
    if (!s.env_problem.empty()) {
      std::fprintf(stderr, "aether error: %s (using the default)\n", s.env_problem.c_str());
    }
    return true;
  }();
  (void)said;
  return s;
}

/// RFC 3339, UTC, milliseconds: 2026-11-27T12:00:35.123Z.
void append_time(std::string& out) {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) {
        fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
      } else {
        out += c;
      }
    }
  }
  out += '"';
}

/// A logfmt value: bare when it is a plain word, else quoted with escapes.
void append_logfmt_value(std::string& out, std::string_view s) {
  bool bare = !s.empty();
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || c == '"' || c == '=' || c == '\\' || u == 0x7f) bare = false;
  }
  if (bare) {
    out += s;
  } else {
    append_json_string(out, s);
  }
}

/// ` key=value` for each field: the tail of a text and of a logfmt line.
void append_logfmt_fields(std::string& out, std::span<const log_field> fields) {
  for (const auto& fl : fields) {
    out += ' ';
    out += fl.key;
    out += '=';
    append_logfmt_value(out, fl.value);
  }
}

std::string format_line(log_format f, log_level level, std::string_view component, std::string_view text,
                        std::span<const log_field> fields) {
  std::string out;
  out.reserve(64 + text.size());
  const auto name = level_names[static_cast<int>(level)];
  switch (f) {
  case log_format::text:
    append_time(out);
    out += ' ';
    out += component;
    out += ' ';
    out += name;
    out += ": ";
    out += text;
    append_logfmt_fields(out, fields);
    break;
  case log_format::logfmt:
    out += "time=";
    append_time(out);
    out += " level=";
    out += name;
    out += " component=";
    append_logfmt_value(out, component);
    out += " msg=";
    append_json_string(out, text); // always quoted: a message is prose
    append_logfmt_fields(out, fields);
    break;
  case log_format::json:
    out += "{\"time\":\"";
    append_time(out);
    out += "\",\"level\":\"";
    out += name;
    out += "\",\"component\":";
    append_json_string(out, component);
    out += ",\"msg\":";
    append_json_string(out, text);
    for (const auto& fl : fields) {
      out += ',';
      append_json_string(out, fl.key);
      out += ':';
      append_json_string(out, fl.value);
    }
    out += '}';
    break;
  }
  out += '\n';
  return out;
}

} // namespace

std::string_view to_string(log_level level) noexcept { return level_names[static_cast<int>(level)]; }

expected<log_level> parse_log_level(std::string_view text) {
  for (std::size_t i = 0; i < std::size(level_names); ++i) {
    if (text == level_names[i]) return static_cast<log_level>(i);
  }
  return error{errc::invalid_argument,
               fmt::format("AETHER_LOG={} is not one of trace, debug, info, warn, error, off", text)};
}

expected<log_format> parse_log_format(std::string_view text) {
  for (std::size_t i = 0; i < std::size(format_names); ++i) {
    if (text == format_names[i]) return static_cast<log_format>(i);
  }
  return error{errc::invalid_argument, fmt::format("AETHER_LOG_FORMAT={} is not one of text, logfmt, json", text)};
}

expected<void> configure_log_from_env() {
  auto e = read_log_env();
  if (!e) return e.error();
  if (e->level) set_log_level(*e->level);
  if (e->format) set_log_format(*e->format);
  return {};
}

void set_log_level(log_level level) noexcept { state().level.store(level, std::memory_order_relaxed); }
log_level current_log_level() noexcept { return state().level.load(std::memory_order_relaxed); }
void set_log_format(log_format format) noexcept { state().format.store(format, std::memory_order_relaxed); }

void set_log_sink(log_sink sink) {
  auto p = sink ? std::make_shared<const log_sink>(std::move(sink)) : nullptr;
  auto& s = state();
  std::lock_guard lock{s.sink_mutex};
  s.sink = std::move(p);
}

namespace detail {

bool log_enabled(log_level level) noexcept {
  return level != log_level::off && level >= state().level.load(std::memory_order_relaxed);
}

void write_log(log_level level, std::string_view component, std::string_view text,
               std::span<const log_field> fields) noexcept {
  auto& s = state();
  std::shared_ptr<const log_sink> sink;
  {
    std::lock_guard lock{s.sink_mutex};
    sink = s.sink;
  }
  try {
    if (sink) {
      (*sink)(level, component, text, fields);
      return;
    }
    const auto line = format_line(s.format.load(std::memory_order_relaxed), level, component, text, fields);
    // One write per line keeps lines from different threads whole.
    std::fwrite(line.data(), 1, line.size(), stderr);
  } catch (...) { // a log line is never worth an exception
  }
}

} // namespace detail
} // namespace aether
