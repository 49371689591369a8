#include <aether/runtime/nats.hpp>

#include "support/spawn.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in{path};
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// A loopback port that was free a moment ago.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), size) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

/// Replaces the one line starting with `key` (after indentation) by `key value`.
bool rewrite(std::string& config, const std::string& key, const std::string& value) {
  std::istringstream in{config};
  std::string out;
  int found = 0;
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(" \t");
    if (first != std::string::npos && line.compare(first, key.size(), key) == 0) {
      line = line.substr(0, first) + key + " " + value;
      ++found;
    }
    out += line + "\n";
  }
  config = out;
  return found == 1;
}

struct server_process {
  int pid = -1;
  ~server_process() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

} // namespace

TEST_CASE("nats-server runs the deployment sample's configuration with JetStream in its store directory") {
  const fs::path sample = fs::path{AETHER_SOURCE_DIR} / "samples/deploy/nats-server.conf";
  auto config = read_file(sample);
  REQUIRE_FALSE(config.empty());
  char pattern[] = "/tmp/aether-deploy-XXXXXX";
  REQUIRE(::mkdtemp(pattern) != nullptr);
  const fs::path dir{pattern};
  const auto store = dir / "store";
  const int port = free_port();
  // Only the port and the store directory change.
  REQUIRE(rewrite(config, "port:", std::to_string(port)));
  REQUIRE(rewrite(config, "store_dir:", "\"" + store.string() + "\""));
  {
    std::ofstream out{dir / "nats.conf"};
    out << config;
  }
  const auto log = dir / "server.log";
  const char* binary = std::getenv("AETHER_NATS_SERVER");
  server_process server;
  server.pid = aether::testing::spawn(
      {binary != nullptr ? binary : "nats-server", "-c", (dir / "nats.conf").string(), "-l", log.string()}, {});

  aether::nats::connect_options o;
  o.url = "nats://127.0.0.1:" + std::to_string(port);
  o.max_reconnects = 0;
  std::shared_ptr<aether::nats::connection> conn;
  for (auto deadline = std::chrono::steady_clock::now() + 15s; !conn && std::chrono::steady_clock::now() < deadline;) {
    if (auto c = aether::nats::connection::connect(o)) {
      conn = *c;
    } else {
      std::this_thread::sleep_for(50ms);
    }
  }
  REQUIRE_MESSAGE(conn != nullptr, read_file(log));
  // JetStream is on, and keeps what it stores in the configured directory.
  aether::nats::stream_config stream;
  stream.name = "DEPLOY";
  stream.subjects = {"deploy.>"};
  REQUIRE(conn->ensure_stream(stream).has_value());
  REQUIRE(conn->stream_publish("deploy.one", "x").has_value());
  CHECK(read_file(log).find("Store Directory: \"" + store.string()) != std::string::npos);
  CHECK(fs::is_directory(store / "jetstream" / "$G" / "streams" / "DEPLOY"));
  conn.reset();
  ::kill(server.pid, SIGKILL);
  ::waitpid(server.pid, nullptr, 0);
  server.pid = -1;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST_CASE("the deployment sample's unit runs a notifying node under a watchdog that restarts it on failure") {
  const auto unit = read_file(fs::path{AETHER_SOURCE_DIR} / "samples/deploy/aether-node.service");
  for (const char* line : {"\nType=notify\n", "\nNotifyAccess=main\n", "\nWatchdogSec=", "\nRestart=on-failure\n"}) {
    CHECK_MESSAGE(unit.find(line) != std::string::npos, line);
  }
}
