#pragma once

#include <string>
#include <vector>

namespace aether::testing {

/// Where a spawned process's standard streams go: a descriptor of the
/// parent (duplicated in the child), or -1 for /dev/null.
struct spawn_io {
  int in = -1;
  int out = -1;
  int err = -1;
};

/// Forks and execs `args` (`args[0]` is looked up on the PATH if it has no
/// slash) the one careful way every test process is started:
/// - the child gets SIGKILL when the thread that spawned it exits
///   (PR_SET_PDEATHSIG), and exits at once if the parent is already gone;
/// - it inherits no descriptor of the test but its three standard streams;
/// - its signal mask is empty and every signal has its default action;
/// - a failed exec is reported here as std::system_error naming the program,
///   read from a close-on-exec pipe, instead of a silent exit status 127.
/// Returns the child's pid; the caller reaps it.
///
/// Thread-safety: callable from any thread; between fork and exec the child
/// makes async-signal-safe calls only.
[[nodiscard]] int spawn(const std::vector<std::string>& args, spawn_io io);

} // namespace aether::testing
