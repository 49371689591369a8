#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aether::testing {

/// The words of one line of a child's output, split on white space: the line
/// protocol of every test program (`ack load-3 17`, `event 12 order.placed`,
/// `ready`). The first word says what the line is.
[[nodiscard]] std::vector<std::string> words(std::string_view line);

/// A program run as a child process for fault tests: its stdin and stdout
/// are pipes to the test (stderr is the test's own); it is started through
/// `spawn` (so a bad path throws at once) and killed when the test dies.
///
/// The protocol is lines: `line` reads the next one with a deadline, `rest`
/// reads everything the process wrote up to the end of its output, which is
/// how a test collects what a killed process printed before it died (lines
/// still in the pipe are not lost).
///
/// Thread-safety: use from one thread.
class child_process {
public:
  /// Starts `args[0]` with `args`; throws std::system_error when it cannot.
  explicit child_process(std::vector<std::string> args);
  /// Kills the process (SIGKILL) if it still runs, and reaps it.
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  child_process(child_process&& other) noexcept;
  child_process& operator=(child_process&&) = delete;

  /// The next line of its output, or nullopt at the deadline or the end.
  [[nodiscard]] std::optional<std::string> line(std::chrono::steady_clock::time_point deadline);
  /// Every complete line up to the end of its output (the process exited or
  /// was killed); nullopt if the output did not end by the deadline. A last
  /// line cut short by a kill is not among them: see `partial`.
  [[nodiscard]] std::optional<std::vector<std::string>> rest(std::chrono::steady_clock::time_point deadline);
  /// What follows the last newline once the output ended (a line cut short).
  [[nodiscard]] const std::string& partial() const noexcept { return buffer_; }
  /// Writes `text` to its input; throws if the process no longer reads it.
  void write(const std::string& text);
  /// Closes its input: a program reading lines sees the end.
  void close_input();
  void signal(int sig);
  /// Waits for the exit; returns the wait status.
  int wait();
  /// Waits for the exit until `deadline`, reading its output meanwhile (a
  /// process that writes more than a pipe holds could not exit otherwise);
  /// nullopt if it still runs.
  [[nodiscard]] std::optional<int> wait(std::chrono::steady_clock::time_point deadline);
  /// SIGKILL, then reaps it: a process crash.
  void kill();
  /// SIGTERM and waits up to `timeout` for the exit; returns its exit code,
  /// or -1 if it did not exit in time (it is killed then) or died of a signal.
  [[nodiscard]] int terminate(std::chrono::milliseconds timeout = std::chrono::seconds{30});
  [[nodiscard]] int pid() const noexcept { return pid_; }

private:
  /// Reads what is there within the deadline; false at the end of output or the deadline.
  bool fill(std::chrono::steady_clock::time_point deadline);

  int pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  bool eof_ = false;
  std::string buffer_;
};

} // namespace aether::testing
