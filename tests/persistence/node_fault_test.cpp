// Fault tests with real processes: a node under load is killed with
// SIGKILL and restarted, and its nats-server is killed and restarted; no
// acknowledged event may be lost and versions never fork.
#include "bank.hpp"
#include "store_fixtures.hpp"

#include <chrono>
#include <csignal>
#include <map>
#include <optional>
#include <poll.h>
#include <sstream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

/// A child process whose stdout is read line by line.
class child {
public:
  explicit child(std::vector<std::string> args) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive the test
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    fd_ = out[0];
  }
  ~child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(fd_);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  /// The next line, or nullopt at the deadline or end of output.
  std::optional<std::string> line(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
        auto l = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return l;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const auto n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  void signal(int sig) { REQUIRE(::kill(pid_, sig) == 0); }
  /// Waits for the exit; returns the wait status.
  int wait() {
    int status = 0;
    REQUIRE(::waitpid(pid_, &status, 0) == pid_);
    pid_ = -1;
    return status;
  }

private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buffer_;
};

/// Reads `count` acknowledgements, checking that each account's versions
/// only go up by one: a version acknowledged before is never handed out
/// again (nothing acknowledged was lost) and none is skipped.
void read_acks(child& node, std::map<std::string, std::uint64_t>& acked, int count) {
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  for (int i = 0; i < count; ++i) {
    auto l = node.line(deadline);
    REQUIRE_MESSAGE(l, "the node stopped acknowledging");
    std::istringstream in{*l};
    std::string word, account;
    std::uint64_t version = 0;
    in >> word >> account >> version;
    REQUIRE(word == "ack");
    auto& last = acked[account];
    // After a crash an unacknowledged write may have landed: a gap is
    // allowed only where the previous process died, never a step back.
    CHECK_MESSAGE(version > last, account << " acknowledged version " << version << " after " << last);
    last = version;
  }
}

} // namespace

TEST_CASE("a node killed and restarted, and a server killed and restarted, lose nothing acknowledged") {
  aether::testing::nats_server server;
  std::map<std::string, std::uint64_t> acked;
  {
    child node{{AETHER_LOAD_NODE, server.url(), "4"}};
    read_acks(node, acked, 200);
    node.signal(SIGKILL);
    node.wait();
  }
  child node{{AETHER_LOAD_NODE, server.url(), "4"}};
  read_acks(node, acked, 200);
  server.kill();
  server.restart();
  read_acks(node, acked, 200); // reconnected, and going on where it was
  node.signal(SIGTERM);
  const int status = node.wait();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  // The store has every acknowledged version, with no gap and no fork.
  auto store = test::open_store(test::connect(server.url()));
  for (const auto& [account, version] : acked) {
    auto events = store->read_wait(aether::actor_id{"account", account});
    REQUIRE(events);
    CHECK(events->size() >= version);
    for (std::size_t i = 0; i < events->size(); ++i) {
      CHECK((*events)[i].version == i + 1);
      CHECK((*events)[i].type == "bank.deposited");
    }
  }
}
