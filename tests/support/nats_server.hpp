#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

/// Real `nats-server` processes for integration and fault tests.
///
/// Every server listens on 127.0.0.1 only, on free ports, with its config, log
/// and (by default) JetStream store in a fresh temporary directory under
/// $TMPDIR (or /tmp) that is removed again on destruction. The binary is
/// `nats-server` from the PATH, or $AETHER_NATS_SERVER if set.
namespace aether::testing {

/// How to start one server. The `{}` initialisers let designated initialisers
/// such as `server_options{.jetstream = false}` leave the strings out without
/// -Wmissing-field-initializers.
struct server_options {
  /// Enables JetStream with a file store.
  bool jetstream = true;
  /// The server name; empty means `aether-<port>`.
  std::string name{};
  /// The JetStream store directory, kept on destruction; empty means `store/`
  /// in the server's temporary directory.
  std::string store_dir{};
  /// The client port; 0 picks a free loopback port.
  int port = 0;
  /// Lines added to the server's configuration file, e.g.
  /// "ping_interval: \"1s\"\nping_max: 2\n" to drop a silent client within seconds.
  std::string extra_config{};
};

/// One `nats-server` process on 127.0.0.1.
///
/// The destructor kills the process (SIGKILL), reaps it and removes the
/// temporary directory; it never throws. The process also gets SIGKILL when
/// the thread that last started it exits (PR_SET_PDEATHSIG), so a crashing test
/// binary leaves no server behind; start and restart servers from a thread that
/// outlives them, such as the test's main thread.
///
/// Not thread-safe: use an instance from one thread at a time.
class nats_server {
public:
  /// Starts the server and waits (up to 15 s) until it accepts clients and,
  /// if enabled, JetStream is ready. Throws std::runtime_error with the tail of
  /// the server's log on failure.
  explicit nats_server(server_options options = {});
  ~nats_server();

  nats_server(const nats_server&) = delete;
  nats_server& operator=(const nats_server&) = delete;

  /// The client URL, `nats://127.0.0.1:<port>`.
  [[nodiscard]] std::string url() const;
  /// The client port; stays the same across restarts.
  [[nodiscard]] int port() const noexcept { return port_; }
  /// The server name, as reported in JetStream cluster information.
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// The JetStream store directory.
  [[nodiscard]] const std::string& store_dir() const noexcept { return store_dir_; }
  /// The process id, or -1 once the process is known to have exited.
  [[nodiscard]] int pid() const noexcept { return pid_; }
  /// Whether the process exists (a paused server is running); reaps it if it exited.
  [[nodiscard]] bool running() const;

  /// Sends SIGKILL and waits for the process to exit.
  void kill();
  /// Sends SIGTERM (a graceful shutdown) and waits up to 10 s for the process
  /// to exit, then falls back to SIGKILL.
  void terminate();
  /// Sends SIGSTOP and waits until the process is stopped: it keeps its sockets
  /// open but answers nothing.
  void pause();
  /// Sends SIGCONT and waits until the process runs again.
  void resume();
  /// Starts the server again with the same ports, name, store directory and
  /// configuration, killing it first if it still runs, and waits (up to 15 s)
  /// until it is ready. A cluster member is ready once it is in contact with a
  /// JetStream meta leader and its replicas are current, which needs a quorum
  /// of its peers to be running.
  void restart();

  /// The body of a monitoring endpoint (`/varz`, `/jsz?streams=true`, ...),
  /// or nothing if the server does not answer within a second.
  [[nodiscard]] std::optional<std::string> monitor(std::string_view path) const;
  /// A number of a monitoring endpoint, by its key (the first one in the
  /// body): `monitor_number("/varz", "in_msgs")` counts the messages clients
  /// published to this server. Nothing if it does not answer.
  [[nodiscard]] std::optional<std::uint64_t> monitor_number(std::string_view path, std::string_view key) const;

  /// The last `max_bytes` of the server's log file (which also holds its
  /// stdout and stderr), cut at a line start.
  [[nodiscard]] std::string log_tail(std::size_t max_bytes = 4096) const;

private:
  friend class nats_cluster;

  struct cluster_route {
    int port = 0;
    std::vector<int> peer_ports;
  };
  struct launch_only {};
  enum class startup { ready, exited, timed_out };
  /// The JetStream meta group as this server sees it.
  struct meta_group_view {
    std::string leader;                ///< empty while no leader is known
    std::size_t current_followers = 0; ///< only known to the leader
  };

  /// Starts a cluster member on the given client and monitoring ports without waiting for it.
  nats_server(server_options options, std::vector<int> ports, std::optional<cluster_route> route, launch_only);

  void write_config() const;
  /// Forks and execs the server; throws if it cannot be executed.
  void launch();
  [[nodiscard]] startup await_startup(std::chrono::steady_clock::time_point deadline) const;
  [[nodiscard]] std::string startup_failure(startup result) const;
  /// Whether the monitoring endpoint and the client port answer as for a ready server.
  [[nodiscard]] bool ready() const;
  /// Whether the process exited because one of its ports was taken.
  [[nodiscard]] bool lost_port_race() const;
  /// The meta group from the monitoring endpoint /jsz; nothing if it does not answer.
  [[nodiscard]] std::optional<meta_group_view> meta_group() const;
  /// Collects the process's exit, stop or continue status, if any (waits for one if `block`).
  void reap(bool block, int options = 0) const;
  void kill_quietly() noexcept;
  void remove_dir() noexcept;

  std::string dir_;
  std::string extra_config_;
  std::string name_;
  std::string store_dir_;
  bool jetstream_ = true;
  int port_ = 0;
  int monitor_port_ = 0;
  std::optional<cluster_route> route_;
  mutable int pid_ = -1;
  mutable bool stopped_ = false;
};

/// JetStream servers clustered over loopback routes (cluster `aether-test`,
/// servers `aether-0` to `aether-<size-1>`), each with its own temporary
/// directory and store.
///
/// Not thread-safe: use an instance from one thread at a time.
class nats_cluster {
public:
  /// Starts `size` servers and waits (up to 30 s) until every one of them is
  /// healthy and names the same JetStream meta leader, and the leader reports
  /// every other server as a current follower, so that a stream with `size`
  /// replicas can be created.
  /// Throws std::runtime_error with the servers' log tails on failure and
  /// std::invalid_argument if `size` is 0.
  explicit nats_cluster(std::size_t size = 3);
  ~nats_cluster();

  nats_cluster(const nats_cluster&) = delete;
  nats_cluster& operator=(const nats_cluster&) = delete;

  /// The `i`-th server, for URLs and faults.
  [[nodiscard]] nats_server& server(std::size_t i) { return *servers_.at(i); }
  [[nodiscard]] std::size_t size() const noexcept { return servers_.size(); }
  /// The client URLs of all servers, comma separated, for a client that fails over.
  [[nodiscard]] std::string urls() const;

  /// The index of the JetStream meta leader once every running, unpaused
  /// server is healthy and names it and it reports all of them as current
  /// followers; nothing until then.
  [[nodiscard]] std::optional<std::size_t> meta_leader() const;
  /// Waits until meta_leader() is known, for example after killing the leader
  /// or restarting a server. Throws std::runtime_error on timeout.
  void wait_until_ready(std::chrono::milliseconds timeout = std::chrono::seconds{30}) const;
  /// The index of the server that leads JetStream stream `stream` (of the
  /// global account), as the running, unpaused servers report it on their
  /// monitoring endpoints; nothing while no leader is known.
  [[nodiscard]] std::optional<std::size_t> stream_leader(std::string_view stream) const;

private:
  [[nodiscard]] bool ready() const;
  [[nodiscard]] std::string log_tails() const;

  std::vector<std::unique_ptr<nats_server>> servers_;
};

} // namespace aether::testing
