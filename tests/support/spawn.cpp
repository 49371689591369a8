#include "support/spawn.hpp"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace aether::testing {
namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void close_quietly(int fd) noexcept {
  if (fd >= 0) ::close(fd);
}

} // namespace

int spawn(const std::vector<std::string>& args, spawn_io io) {
  if (args.empty()) throw std::invalid_argument{"spawn: no program"};
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  argv.reserve(copy.size() + 1);
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);

  // Both ends close on exec: the parent reads EOF once exec succeeded, or the
  // child's errno if it failed.
  std::array<int, 2> exec_error{};
  if (::pipe2(exec_error.data(), O_CLOEXEC) != 0) throw_errno("pipe2");
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) {
    close_quietly(exec_error[0]);
    close_quietly(exec_error[1]);
    throw_errno("open /dev/null");
  }
  const int in = io.in >= 0 ? io.in : null_fd;
  const int out = io.out >= 0 ? io.out : null_fd;
  const int err = io.err >= 0 ? io.err : null_fd;

  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) {
    close_quietly(exec_error[0]);
    close_quietly(exec_error[1]);
    close_quietly(null_fd);
    throw_errno("fork");
  }
  if (child == 0) {
    // Only async-signal-safe calls from here to exec: other threads of the
    // parent may have held locks at the fork.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127); // the parent died before prctl
    // dup2 clears close-on-exec on the copies.
    ::dup2(in, STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(err, STDERR_FILENO);
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC); // no inherited pipes or sockets of the test
    // Undo the test's signal mask and ignored signals, which exec keeps; a
    // value-initialised sigaction has sa_handler == SIG_DFL.
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction default_action {};
    for (int signal = 1; signal < NSIG; ++signal) ::sigaction(signal, &default_action, nullptr);
    ::execvp(argv[0], argv.data());
    const int error = errno;
    [[maybe_unused]] const auto written = ::write(exec_error[1], &error, sizeof error);
    ::_exit(127);
  }
  close_quietly(exec_error[1]);
  close_quietly(null_fd);
  int error = 0;
  ssize_t n = 0;
  do n = ::read(exec_error[0], &error, sizeof error);
  while (n < 0 && errno == EINTR);
  close_quietly(exec_error[0]);
  if (n > 0) {
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    throw std::system_error(error, std::generic_category(), fmt::format("cannot execute {}", args.front()));
  }
  return child;
}

} // namespace aether::testing
