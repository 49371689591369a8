#include "support/child_process.hpp"
#include "support/spawn.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <stdexcept>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>

namespace aether::testing {

std::vector<std::string> words(std::string_view line) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < line.size()) {
    const auto start = line.find_first_not_of(" \t\r", i);
    if (start == std::string_view::npos) break;
    auto end = line.find_first_of(" \t\r", start);
    if (end == std::string_view::npos) end = line.size();
    out.emplace_back(line.substr(start, end - start));
    i = end;
  }
  return out;
}

child_process::child_process(std::vector<std::string> args) {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    throw std::system_error(errno, std::generic_category(), "pipe2");
  }
  try {
    pid_ = spawn(args, {.in = in[0], .out = out[1], .err = STDERR_FILENO});
  } catch (...) {
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
    throw;
  }
  ::close(in[0]);
  ::close(out[1]);
  in_ = in[1];
  out_ = out[0];
}

child_process::child_process(child_process&& other) noexcept
    : pid_{std::exchange(other.pid_, -1)},
      in_{std::exchange(other.in_, -1)},
      out_{std::exchange(other.out_, -1)},
      eof_{other.eof_},
      buffer_{std::move(other.buffer_)} {}

child_process::~child_process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (in_ >= 0) ::close(in_);
  if (out_ >= 0) ::close(out_);
}

bool child_process::fill(std::chrono::steady_clock::time_point deadline) {
  if (eof_) return false;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd p{out_, POLLIN, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
  if (ready < 0 && errno == EINTR) return true;
  if (ready <= 0) return false;
  char chunk[4096];
  const auto n = ::read(out_, chunk, sizeof chunk);
  if (n < 0 && errno == EINTR) return true;
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return true;
}

std::optional<std::string> child_process::line(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      auto l = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return l;
    }
    if (!fill(deadline)) return std::nullopt;
  }
}

std::optional<std::vector<std::string>> child_process::rest(std::chrono::steady_clock::time_point deadline) {
  while (!eof_) {
    if (!fill(deadline) && !eof_) return std::nullopt;
  }
  std::vector<std::string> lines;
  for (auto nl = buffer_.find('\n'); nl != std::string::npos; nl = buffer_.find('\n')) {
    lines.push_back(buffer_.substr(0, nl));
    buffer_.erase(0, nl + 1);
  }
  return lines;
}

void child_process::write(const std::string& text) {
  if (in_ < 0) throw std::runtime_error{"writing to a child whose input is closed"};
  // A child that died makes the write fail with EPIPE instead of killing the
  // test with SIGPIPE: the signal is blocked meanwhile and a pending one dropped.
  sigset_t pipe_set;
  sigset_t old;
  ::sigemptyset(&pipe_set);
  ::sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  bool failed = false;
  for (std::size_t sent = 0; sent < text.size();) {
    const auto n = ::write(in_, text.data() + sent, text.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed = true;
      break;
    }
    sent += static_cast<std::size_t>(n);
  }
  if (failed) {
    timespec zero{};
    ::sigtimedwait(&pipe_set, nullptr, &zero);
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (failed) throw std::runtime_error{"writing to a child failed (it exited?)"};
}

void child_process::close_input() {
  if (in_ >= 0) ::close(std::exchange(in_, -1));
}

void child_process::signal(int sig) {
  if (pid_ <= 0 || ::kill(pid_, sig) != 0) throw std::runtime_error{"kill failed"};
}

int child_process::wait() {
  int status = 0;
  pid_t r = 0;
  do r = ::waitpid(pid_, &status, 0);
  while (r < 0 && errno == EINTR);
  if (r != pid_) throw std::runtime_error{"waitpid failed"};
  pid_ = -1;
  return status;
}

std::optional<int> child_process::wait(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    if (r < 0 && errno != EINTR) throw std::runtime_error{"waitpid failed"};
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return std::nullopt;
    // Polls the exit (no order depends on it) and reads the output meanwhile,
    // kept for `line` and `rest`: a child blocked on a full pipe never exits.
    const auto step = std::min(deadline, now + std::chrono::milliseconds{5});
    if (eof_) {
      std::this_thread::sleep_until(step);
    } else {
      fill(step);
    }
  }
}

void child_process::kill() {
  signal(SIGKILL);
  wait();
}

int child_process::terminate(std::chrono::milliseconds timeout) {
  signal(SIGTERM);
  const auto status = wait(std::chrono::steady_clock::now() + timeout);
  if (!status) {
    kill();
    return -1;
  }
  return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

} // namespace aether::testing
