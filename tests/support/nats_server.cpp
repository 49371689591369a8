#include "support/nats_server.hpp"
#include "support/spawn.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

namespace aether::testing {
namespace {

using namespace std::chrono_literals;
using steady_clock = std::chrono::steady_clock;

constexpr auto server_start_timeout = 15s;
constexpr auto graceful_stop_timeout = 10s;
constexpr auto poll_interval = 20ms;
constexpr auto http_timeout = 1s;
// Fresh ports can be taken by someone else between probing and the server's
// bind; such a start is retried with other ports.
constexpr int max_start_attempts = 5;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// Owns a file descriptor.
class file_descriptor {
public:
  explicit file_descriptor(int fd = -1) noexcept : fd_{fd} {}
  ~file_descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  file_descriptor(file_descriptor&& other) noexcept : fd_{std::exchange(other.fd_, -1)} {}
  file_descriptor& operator=(file_descriptor&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  file_descriptor(const file_descriptor&) = delete;
  file_descriptor& operator=(const file_descriptor&) = delete;

  [[nodiscard]] int get() const noexcept { return fd_; }

private:
  int fd_;
};

sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  return address;
}

file_descriptor tcp_socket() {
  file_descriptor socket{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (socket.get() < 0) throw_errno("socket");
  return socket;
}

/// `count` distinct free loopback ports. All probe sockets stay bound until
/// every port is picked, so the ports differ; they are free again on return.
std::vector<int> free_loopback_ports(std::size_t count) {
  std::vector<file_descriptor> probes;
  std::vector<int> ports;
  for (std::size_t i = 0; i < count; ++i) {
    auto probe = tcp_socket();
    auto address = loopback(0);
    socklen_t length = sizeof address;
    if (::bind(probe.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) throw_errno("bind 127.0.0.1:0");
    if (::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) throw_errno("getsockname");
    ports.push_back(ntohs(address.sin_port));
    probes.push_back(std::move(probe));
  }
  return ports;
}

/// A connected socket to 127.0.0.1:port, or an invalid one if nothing listens.
file_descriptor connect_loopback(int port) {
  auto socket = tcp_socket();
  const auto address = loopback(port);
  if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    return file_descriptor{};
  return socket;
}

struct http_response {
  int status = 0;
  std::string body;
};

/// A plain HTTP/1.0 GET to 127.0.0.1:port; nothing if the server does not
/// answer within a second (it may be starting, stopped or paused).
std::optional<http_response> http_get(int port, std::string_view path) {
  auto socket = connect_loopback(port);
  if (socket.get() < 0) return std::nullopt;
  timeval timeout{};
  timeout.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(http_timeout).count();
  ::setsockopt(socket.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(socket.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);

  const auto request = fmt::format("GET {} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
  for (std::size_t sent = 0; sent < request.size();) {
    const auto n = ::send(socket.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return std::nullopt;
    sent += static_cast<std::size_t>(n);
  }
  std::string response;
  std::array<char, 4096> buffer{};
  for (;;) {
    const auto n = ::recv(socket.get(), buffer.data(), buffer.size(), 0);
    if (n == 0) break;
    if (n < 0) return std::nullopt;
    response.append(buffer.data(), static_cast<std::size_t>(n));
  }
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  const auto space = response.find(' ');
  const auto body = response.find("\r\n\r\n");
  if (!response.starts_with("HTTP/") || space == std::string::npos || body == std::string::npos) return std::nullopt;
  http_response result;
  result.status = std::atoi(response.c_str() + space + 1);
  result.body = response.substr(body + 4);
  return result;
}

/// The position just after `"key":` and any white space in `json`, or npos.
/// Naive (no escapes, first match wins), which is enough for the monitoring
/// endpoints' output.
std::size_t json_value(std::string_view json, std::string_view key) {
  const auto quoted_key = fmt::format("\"{}\"", key);
  auto position = json.find(quoted_key);
  if (position == std::string_view::npos) return position;
  position = json.find_first_not_of(" \t\r\n", position + quoted_key.size());
  if (position == std::string_view::npos || json[position] != ':') return std::string_view::npos;
  return json.find_first_not_of(" \t\r\n", position + 1);
}

/// The object value of `key`, braces included, or empty.
std::string_view json_object(std::string_view json, std::string_view key) {
  const auto start = json_value(json, key);
  if (start == std::string_view::npos || json[start] != '{') return {};
  int depth = 0;
  for (auto i = start; i < json.size(); ++i) {
    if (json[i] == '{') ++depth;
    if (json[i] == '}' && --depth == 0) return json.substr(start, i - start + 1);
  }
  return {};
}

std::string json_string(std::string_view json, std::string_view key) {
  const auto start = json_value(json, key);
  if (start == std::string_view::npos || json[start] != '"') return {};
  const auto end = json.find('"', start + 1);
  return end == std::string_view::npos ? std::string{} : std::string{json.substr(start + 1, end - start - 1)};
}

/// A double-quoted string for the server's config file.
std::string config_string(std::string_view value) {
  std::string quoted = "\"";
  for (const char c : value) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + '"';
}

std::string make_temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = fmt::format("{}/aether-nats-XXXXXX", base != nullptr && *base != '\0' ? base : "/tmp");
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno(fmt::format("mkdtemp {}", pattern));
  return pattern;
}

/// The server binary: $AETHER_NATS_SERVER, or `nats-server` from the PATH.
std::string server_binary() {
  const char* binary = std::getenv("AETHER_NATS_SERVER");
  return binary != nullptr && *binary != '\0' ? binary : "nats-server";
}

} // namespace

// --- nats_server ----------------------------------------------------------------------------------------------------

nats_server::nats_server(server_options options)
    : dir_{make_temp_dir()}, extra_config_{std::move(options.extra_config)}, jetstream_{options.jetstream} {
  try {
    store_dir_ = options.store_dir.empty() ? dir_ + "/store" : options.store_dir;
    for (int attempt = 1;; ++attempt) {
      const auto ports = free_loopback_ports(options.port == 0 ? 2 : 1);
      port_ = options.port == 0 ? ports.front() : options.port;
      monitor_port_ = ports.back();
      name_ = options.name.empty() ? fmt::format("aether-{}", port_) : options.name;
      write_config();
      std::error_code ignored;
      std::filesystem::remove(dir_ + "/server.log", ignored);
      launch();
      const auto result = await_startup(steady_clock::now() + server_start_timeout);
      if (result == startup::ready) return;
      const bool retry = result == startup::exited && lost_port_race() && attempt < max_start_attempts;
      const auto failure = startup_failure(result);
      kill_quietly();
      if (!retry) throw std::runtime_error(failure);
    }
  } catch (...) {
    kill_quietly();
    remove_dir();
    throw;
  }
}

nats_server::nats_server(server_options options, std::vector<int> ports, std::optional<cluster_route> route,
                         launch_only)
    : dir_{make_temp_dir()},
      extra_config_{std::move(options.extra_config)},
      name_{std::move(options.name)},
      jetstream_{options.jetstream},
      port_{ports.at(0)},
      monitor_port_{ports.at(1)},
      route_{std::move(route)} {
  try {
    store_dir_ = options.store_dir.empty() ? dir_ + "/store" : options.store_dir;
    write_config();
    launch();
  } catch (...) {
    kill_quietly();
    remove_dir();
    throw;
  }
}

nats_server::~nats_server() {
  kill_quietly();
  remove_dir();
}

std::string nats_server::url() const { return fmt::format("nats://127.0.0.1:{}", port_); }

bool nats_server::running() const {
  reap(false);
  return pid_ > 0;
}

void nats_server::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  while (pid_ > 0) reap(true);
}

void nats_server::terminate() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  // A stopped process only acts on SIGTERM once it runs again.
  if (stopped_) ::kill(pid_, SIGCONT);
  stopped_ = false;
  const auto deadline = steady_clock::now() + graceful_stop_timeout;
  while (running() && steady_clock::now() < deadline) std::this_thread::sleep_for(poll_interval / 2);
  kill();
}

void nats_server::pause() {
  if (!running()) throw std::logic_error(fmt::format("cannot pause nats-server '{}': it is not running", name_));
  if (stopped_) return;
  ::kill(pid_, SIGSTOP);
  while (pid_ > 0 && !stopped_) reap(true, WUNTRACED);
}

void nats_server::resume() {
  if (!running()) throw std::logic_error(fmt::format("cannot resume nats-server '{}': it is not running", name_));
  if (!stopped_) return;
  ::kill(pid_, SIGCONT);
  while (pid_ > 0 && stopped_) reap(true, WCONTINUED);
}

void nats_server::restart() {
  kill();
  launch();
  const auto result = await_startup(steady_clock::now() + server_start_timeout);
  if (result == startup::ready) return;
  const auto failure = startup_failure(result);
  kill_quietly();
  throw std::runtime_error(failure);
}

std::optional<std::string> nats_server::monitor(std::string_view path) const {
  auto response = http_get(monitor_port_, path);
  if (!response || response->status != 200) return std::nullopt;
  return std::move(response->body);
}

std::optional<std::uint64_t> nats_server::monitor_number(std::string_view path, std::string_view key) const {
  const auto body = monitor(path);
  if (!body) return std::nullopt;
  const auto start = json_value(*body, key);
  if (start == std::string_view::npos) return std::nullopt;
  std::uint64_t value = 0;
  const auto* first = body->data() + start;
  const auto [end, ec] = std::from_chars(first, body->data() + body->size(), value);
  if (ec != std::errc{} || end == first) return std::nullopt;
  return value;
}

std::string nats_server::log_tail(std::size_t max_bytes) const {
  std::ifstream log{dir_ + "/server.log", std::ios::binary};
  if (!log) return {};
  log.seekg(0, std::ios::end);
  const auto size = static_cast<std::size_t>(log.tellg());
  const auto start = size > max_bytes ? size - max_bytes : 0;
  log.seekg(static_cast<std::streamoff>(start));
  std::string tail{std::istreambuf_iterator<char>{log}, std::istreambuf_iterator<char>{}};
  if (start > 0) {
    const auto line = tail.find('\n');
    tail.erase(0, line == std::string::npos ? 0 : line + 1);
  }
  return tail;
}

void nats_server::write_config() const {
  std::string config = fmt::format("server_name: {}\nlisten: \"127.0.0.1:{}\"\nhttp: \"127.0.0.1:{}\"\n",
                                   config_string(name_), port_, monitor_port_);
  if (jetstream_) config += fmt::format("jetstream {{\n  store_dir: {}\n}}\n", config_string(store_dir_));
  if (route_) {
    config +=
        fmt::format("cluster {{\n  name: \"aether-test\"\n  listen: \"127.0.0.1:{}\"\n  routes: [\n", route_->port);
    for (const int peer : route_->peer_ports) {
      if (peer != route_->port) config += fmt::format("    \"nats-route://127.0.0.1:{}\"\n", peer);
    }
    config += "  ]\n}\n";
  }
  config += extra_config_;
  std::ofstream file{dir_ + "/nats.conf", std::ios::trunc};
  file << config;
  if (!file.flush()) throw std::runtime_error(fmt::format("cannot write {}/nats.conf", dir_));
}

void nats_server::launch() {
  const auto log = dir_ + "/server.log";
  // stdout and stderr go to the log too: config errors are only printed there.
  file_descriptor output{::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)};
  if (output.get() < 0) throw_errno(fmt::format("open {}", log));
  pid_ = spawn({server_binary(), "-c", dir_ + "/nats.conf", "-l", log},
               {.in = -1, .out = output.get(), .err = output.get()});
  stopped_ = false;
}

nats_server::startup nats_server::await_startup(steady_clock::time_point deadline) const {
  for (;;) {
    if (!running()) return startup::exited;
    if (ready()) return startup::ready;
    if (steady_clock::now() >= deadline) return startup::timed_out;
    std::this_thread::sleep_for(poll_interval);
  }
}

std::string nats_server::startup_failure(startup result) const {
  const auto* what = result == startup::exited ? "exited during startup" : "was not ready in time";
  return fmt::format("nats-server '{}' on 127.0.0.1:{} {}; log tail:\n{}", name_, port_, what, log_tail());
}

bool nats_server::ready() const {
  // /healthz answers 200 once the server is up. On nats-server 2.9.10,
  // `js-enabled-only=true` adds "JetStream is enabled" (the older
  // `js-enabled` still works but logs a deprecation warning on every call);
  // without parameters a clustered server is only healthy once it is in
  // contact with a JetStream meta leader and its stream and consumer replicas
  // are current. Every failed health check logs a warning, so a cluster member
  // is first asked quietly, on /jsz, whether it knows a meta leader.
  if (route_) {
    const auto meta = meta_group();
    if (!meta || meta->leader.empty()) return false;
  }
  const auto* path = route_ || !jetstream_ ? "/healthz" : "/healthz?js-enabled-only=true";
  const auto health = http_get(monitor_port_, path);
  if (!health || health->status != 200) return false;
  // The monitoring listener starts before the client listener.
  return connect_loopback(port_).get() >= 0;
}

std::optional<nats_server::meta_group_view> nats_server::meta_group() const {
  const auto jsz = http_get(monitor_port_, "/jsz");
  if (!jsz || jsz->status != 200) return std::nullopt;
  const auto meta = json_object(jsz->body, "meta_cluster");
  meta_group_view view;
  view.leader = json_string(meta, "leader");
  // The leader lists its followers under "replicas", each with "current".
  for (auto rest = meta; !rest.empty();) {
    const auto value = json_value(rest, "current");
    if (value == std::string_view::npos) break;
    if (rest.substr(value).starts_with("true")) ++view.current_followers;
    rest = rest.substr(value);
  }
  return view;
}

bool nats_server::lost_port_race() const {
  return log_tail(16 * 1024).find("address already in use") != std::string::npos;
}

void nats_server::reap(bool block, int options) const {
  if (pid_ <= 0) return;
  int status = 0;
  pid_t result = 0;
  do result = ::waitpid(pid_, &status, options | (block ? 0 : WNOHANG));
  while (result < 0 && errno == EINTR);
  if (result < 0) { // ECHILD: not ours to wait for any more
    pid_ = -1;
    stopped_ = false;
  } else if (result == pid_) {
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      pid_ = -1;
      stopped_ = false;
    } else if (WIFSTOPPED(status)) {
      stopped_ = true;
    } else if (WIFCONTINUED(status)) {
      stopped_ = false;
    }
  }
}

void nats_server::kill_quietly() noexcept {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  while (pid_ > 0) reap(true);
}

void nats_server::remove_dir() noexcept {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

// --- nats_cluster ---------------------------------------------------------------------------------------------------

namespace {
constexpr auto cluster_start_timeout = 30s;
}

nats_cluster::nats_cluster(std::size_t size) {
  if (size == 0) throw std::invalid_argument("a nats_cluster needs at least one server");
  for (int attempt = 1;; ++attempt) {
    servers_.clear();
    // Client, monitoring and route port of each server.
    const auto ports = free_loopback_ports(3 * size);
    const std::vector<int> route_ports(ports.begin() + static_cast<std::ptrdiff_t>(2 * size), ports.end());
    for (std::size_t i = 0; i < size; ++i) {
      server_options options;
      options.name = fmt::format("aether-{}", i);
      servers_.push_back(std::unique_ptr<nats_server>(
          new nats_server(std::move(options), {ports[i], ports[size + i]},
                          nats_server::cluster_route{route_ports[i], route_ports}, nats_server::launch_only{})));
    }
    const auto deadline = steady_clock::now() + cluster_start_timeout;
    bool exited = false;
    for (;;) {
      exited = std::any_of(servers_.begin(), servers_.end(), [](const auto& s) { return !s->running(); });
      if (exited || steady_clock::now() >= deadline) break;
      if (ready()) return;
      std::this_thread::sleep_for(poll_interval);
    }
    const bool retry = exited && attempt < max_start_attempts &&
                       std::any_of(servers_.begin(), servers_.end(), [](const auto& s) { return s->lost_port_race(); });
    if (!retry) {
      throw std::runtime_error(fmt::format("a cluster of {} nats-servers {}; log tails:\n{}", size,
                                           exited ? "lost a server during startup" : "was not ready in time",
                                           log_tails()));
    }
  }
}

nats_cluster::~nats_cluster() = default;

std::string nats_cluster::urls() const {
  std::string urls;
  for (const auto& server : servers_) urls += (urls.empty() ? "" : ",") + server->url();
  return urls;
}

std::optional<std::size_t> nats_cluster::meta_leader() const {
  // Followers keep naming a dead leader until they elect a new one, so the
  // leader must be one of the running servers. A leader alone is not enough
  // for a stream with a replica on every server: on 2.9.10 the meta group's
  // `cluster_size` is the configured size even before the peers have joined,
  // so the leader's list of current followers is what counts.
  std::string leader;
  std::optional<std::size_t> leader_index;
  std::size_t current_followers = 0;
  std::size_t answering = 0;
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    const auto& server = *servers_[i];
    if (!server.running() || server.stopped_) continue;
    const auto meta = server.meta_group();
    if (!meta || meta->leader.empty() || (!leader.empty() && meta->leader != leader)) return std::nullopt;
    if (!server.ready()) return std::nullopt;
    leader = meta->leader;
    if (server.name() == leader) {
      leader_index = i;
      current_followers = meta->current_followers;
    }
    ++answering;
  }
  if (!leader_index || current_followers + 1 < answering) return std::nullopt;
  return leader_index;
}

void nats_cluster::wait_until_ready(std::chrono::milliseconds timeout) const {
  const auto deadline = steady_clock::now() + timeout;
  while (!ready()) {
    if (steady_clock::now() >= deadline) {
      throw std::runtime_error(
          fmt::format("the nats-server cluster did not agree on a meta leader in time; log tails:\n{}", log_tails()));
    }
    std::this_thread::sleep_for(poll_interval);
  }
}

std::optional<std::size_t> nats_cluster::stream_leader(std::string_view stream) const {
  const auto name = fmt::format("\"{}\"", stream); // the stream detail's name (the output is indented)
  for (const auto& server : servers_) {
    if (!server->running() || server->stopped_) continue;
    const auto jsz = server->monitor("/jsz?accounts=true&streams=true");
    if (!jsz) continue;
    const auto at = jsz->find(name);
    if (at == std::string::npos) continue;
    const auto cluster = json_object(std::string_view{*jsz}.substr(at), "cluster");
    const auto leader = json_string(cluster, "leader");
    if (leader.empty()) continue;
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (servers_[i]->name() == leader) return i;
    }
  }
  return std::nullopt;
}

bool nats_cluster::ready() const { return meta_leader().has_value(); }

std::string nats_cluster::log_tails() const {
  std::string tails;
  for (const auto& server : servers_) tails += fmt::format("--- {} ---\n{}", server->name(), server->log_tail(2048));
  return tails;
}

} // namespace aether::testing
