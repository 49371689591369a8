#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace aether::testing {

/// A program run as a child process for fault tests: its stdin and stdout
/// are pipes to the test; it is killed when the test process dies.
///
/// Thread-safety: use from one thread.
class child_process {
public:
  /// Starts `args[0]` with `args`; throws std::runtime_error when it cannot.
  explicit child_process(std::vector<std::string> args);
  /// Kills the process (SIGKILL) if it still runs, and reaps it.
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// The next line of its output, or nullopt at the deadline or the end.
  [[nodiscard]] std::optional<std::string> line(std::chrono::steady_clock::time_point deadline);
  /// Writes `text` to its input.
  void write(const std::string& text);
  void signal(int sig);
  /// Waits for the exit; returns the wait status.
  int wait();

private:
  int pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  std::string buffer_;
};

} // namespace aether::testing
