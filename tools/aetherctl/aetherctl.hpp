#pragma once

// What the commands of aetherctl share: the parsed command line, the
// connection, the error that ends a command with an exit code, and output.

#include <aether/runtime/expected.hpp>
#include <aether/runtime/nats.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace aetherctl {

/// Exit codes (documented in `--help` and the README).
inline constexpr int exit_ok = 0;
/// The command started and the server failed it, or the user declined.
inline constexpr int exit_failed = 1;
/// Bad input or nothing to talk to: unknown command or option, a bad id,
/// pattern or time, an unknown namespace, cluster or durable, no server.
inline constexpr int exit_bad_input = 2;

/// Ends a command: `main` prints `aetherctl: {message}` on stderr and exits
/// with `code`.
class failure : public std::runtime_error {
public:
  failure(int code, const std::string& message) : std::runtime_error{message}, code_{code} {}
  [[nodiscard]] int code() const noexcept { return code_; }

private:
  int code_;
};

[[noreturn]] inline void bad_input(const std::string& message) { throw failure{exit_bad_input, message}; }

/// The command line: the command's words and its options.
struct command_line {
  std::string server;
  std::string cluster;
  bool json = false;
  bool yes = false;
  /// The command and its positional arguments (`history`, `shop/order/o-1`).
  std::vector<std::string> words;
  /// Options with a value (`from` -> `3`); repeated ones keep every value.
  std::multimap<std::string, std::string, std::less<>> values;

  [[nodiscard]] std::optional<std::string> value(std::string_view name) const;
  /// Every value of a repeatable option, in order.
  [[nodiscard]] std::vector<std::string> all(std::string_view name) const;
  /// `bad_input` unless every option given is among `allowed` and exactly
  /// `min`..`max` positional arguments follow the command words (`skip`).
  void expect(std::size_t skip, std::size_t min, std::size_t max,
              std::initializer_list<std::string_view> allowed) const;
};

/// An unsigned number option; `bad_input` naming it when it is not one.
[[nodiscard]] std::optional<std::uint64_t> number_option(const command_line& cl, std::string_view name);
/// A time option (RFC 3339, e.g. `2026-11-27T12:00:00Z`, or Unix seconds
/// with an `@` before them) as Unix nanoseconds; `bad_input` otherwise.
[[nodiscard]] std::optional<std::int64_t> time_option(const command_line& cl, std::string_view name);
/// Unix nanoseconds as RFC 3339 UTC with microseconds.
[[nodiscard]] std::string format_time(std::int64_t unix_ns);

/// Connects to `cl.server` with the AETHER_NATS_* credentials; `bad_input`
/// when no server answers or the credentials are refused.
[[nodiscard]] std::shared_ptr<aether::nats::connection> connect(const command_line& cl);

/// Turns a failed result into a `failure`: `invalid_argument`, `invalid_id`,
/// `not_found` and `unauthorized` are bad input, the rest a failed command.
[[noreturn]] void fail(const aether::error& e, std::string_view doing);
template <class T>
T need(aether::expected<T> r, std::string_view doing) {
  if (!r) fail(r.error(), doing);
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

/// A JetStream API request and its JSON answer; an `{"error":...}` answer
/// becomes `not_found` (code 404) or `unavailable`.
[[nodiscard]] aether::expected<std::string> js_api(aether::nats::connection& conn, std::string_view subject,
                                                   std::string_view body);

/// Prints rows as columns separated by two spaces, the first row a header.
void print_table(const std::vector<std::vector<std::string>>& rows);

// The commands; each returns the exit code or throws `failure`.
int run_status(const command_line& cl);
int run_shards(const command_line& cl);
int run_history(const command_line& cl);
int run_tail(const command_line& cl);
int run_namespaces(const command_line& cl);
int run_durables(const command_line& cl);
int run_state(const command_line& cl);

} // namespace aetherctl
