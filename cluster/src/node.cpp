#include <aether/cluster/node.hpp>
#include <aether/persistence/jetstream_event_store.hpp>
#include <aether/runtime/log.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>

#include <fmt/format.h>

#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

namespace aether {

namespace {

/// Reads a non-negative integer variable into `out` when it is set; `min` and `max` are not negative.
template <class T>
expected<void> read_env(const char* name, T& out, T min, T max) {
  const char* raw = std::getenv(name);
  if (raw == nullptr) return {};
  const std::string_view text{raw};
  unsigned long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < static_cast<unsigned long long>(min) ||
      value > static_cast<unsigned long long>(max)) {
    return error{errc::invalid_argument, fmt::format("{}={} is not a number from {} to {}", name, text, min, max)};
  }
  out = static_cast<T>(value);
  return {};
}

expected<void> read_ms(const char* name, std::chrono::milliseconds& out) {
  auto ms = static_cast<std::uint64_t>(out.count());
  if (auto r = read_env<std::uint64_t>(name, ms, 0, 1'000'000'000); !r) return r;
  out = std::chrono::milliseconds{ms};
  return {};
}

} // namespace

expected<node_config> node_config::from_env() {
  node_config c;
  for (auto r :
       {read_env<std::size_t>("AETHER_THREADS", c.threads, 0, 1024),
        read_env<std::uint32_t>("AETHER_SHARDS", c.system.shard_count, 1, 1u << 16),
        read_env<std::size_t>("AETHER_MAILBOX_CAPACITY", c.system.mailbox_capacity, 1, 1u << 30),
        read_env<std::size_t>("AETHER_DRAIN_BATCH", c.system.drain_batch, 1, 256),
        read_ms("AETHER_IDLE_TIMEOUT_MS", c.system.idle_timeout), read_ms("AETHER_DRAIN_TIMEOUT_MS", c.drain_timeout),
        read_env<int>("AETHER_JS_REPLICAS", c.replicas, 1, 5),
        read_env<std::uint64_t>("AETHER_SNAPSHOT_EVERY", c.snapshot_every, 0, 1'000'000'000)}) {
    if (!r) return r.error();
  }
  if (const char* url = std::getenv("AETHER_NATS_URL")) c.nats_url = url;
  return c;
}

/// The connections to NATS, or none for the embedded default: one batching
/// publishes for throughput, one sending each at once for latency.
struct connections {
  std::shared_ptr<nats::connection> batched;
  std::shared_ptr<nats::connection> quick;
};

connections connect(const node_config& c) {
  if (c.nats_url.empty()) return {};
  nats::connect_options o;
  o.url = c.nats_url;
  o.name = "aether-node";
  auto batched = nats::connection::connect(o);
  if (!batched) throw startup_error{batched.error()};
  o.name = "aether-node-quick";
  o.send_asap = true;
  auto quick = nats::connection::connect(o);
  if (!quick) throw startup_error{quick.error()};
  return {*batched, *quick};
}

/// The local bus, or the NATS bus (on the quick connection: an event is one
/// message, and its subscribers are waiting).
std::shared_ptr<event_bus> open_bus(const node_config& c, executor& ex, const connections& conns) {
  if (!conns.quick) return std::make_shared<local_event_bus>(ex);
  auto bus = nats_event_bus::open(ex, conns.quick, nats_bus_options{c.replicas});
  if (!bus) throw startup_error{bus.error()};
  return *bus;
}

/// The stores of the embedded default, or JetStream's; what they store
/// reaches the bus.
std::shared_ptr<persistence> open_stores(const node_config& c, const connections& conns,
                                         const std::shared_ptr<event_bus>& bus) {
  auto p = std::make_shared<persistence>();
  p->snapshot_every = c.snapshot_every;
  if (!conns.batched) {
    p->events = std::make_shared<memory_event_store>();
    p->snapshots = std::make_shared<memory_snapshot_store>();
  } else {
    jetstream_store_options js;
    js.replicas = c.replicas;
    js.origin = static_cast<const nats_event_bus&>(*bus).origin();
    auto events = jetstream_event_store::open(conns.batched, js, conns.quick);
    if (!events) throw startup_error{events.error()};
    p->events = *events;
    p->snapshots = std::make_shared<kv_snapshot_store>(conns.batched, c.replicas);
  }
  p->events->watch_appends([weak = std::weak_ptr{bus}](const std::vector<event>& events) {
    if (auto b = weak.lock()) b->stored(events);
  });
  return p;
}

struct node::impl {
  explicit impl(node_config cfg)
      : config{std::move(cfg)},
        threads{config.threads != 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency())},
        pool{threads, config.system.shard_count},
        system{config.system, pool},
        conns{connect(config)},
        bus{open_bus(config, pool, conns)},
        stores{open_stores(config, conns, bus)} {}

  node_config config;
  std::size_t threads;
  thread_pool_executor pool;
  actor_system system;
  connections conns;
  std::shared_ptr<event_bus> bus;
  // Destroyed first: closing a store answers what waits on it, through the system.
  std::shared_ptr<persistence> stores;

  std::mutex mutex;
  std::condition_variable stopped_cv;
  bool stopping = false;
  bool stopped = false;
  asio::io_context signals_context; // run() waits here for signals or stop()
  std::optional<asio::signal_set> signals;

  void shutdown() {
    {
      std::unique_lock lock{mutex};
      if (stopping) {
        stopped_cv.wait(lock, [this] { return stopped; });
        return;
      }
      stopping = true;
    }
    system.stop_accepting();
    // Let actors finish what is queued (they may still message each other).
    const auto deadline = std::chrono::steady_clock::now() + config.drain_timeout;
    while (!system.idle() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    std::promise<void> closed;
    auto done = closed.get_future();
    system.close([&closed] { closed.set_value(); });
    if (done.wait_for(config.drain_timeout) != std::future_status::ready) {
      log(log_level::warn, "shutdown: actors did not passivate within {} ms", config.drain_timeout.count());
    }
    bus->close(); // its handlers run on the pool
    pool.stop();
    pool.join();
    system.discard_queued();
    signals_context.stop();
    std::lock_guard lock{mutex};
    stopped = true;
    stopped_cv.notify_all();
  }
};

node::node(node_config config) {
  config.system.validate().value();
  impl_ = std::make_unique<impl>(std::move(config));
  if (impl_->config.handle_signals) {
    // Caught from now on; handled when run() runs the context.
    impl_->signals.emplace(impl_->signals_context, SIGINT, SIGTERM);
    impl_->signals->async_wait([this](const std::error_code& ec, int signal) {
      if (ec) return;
      log(log_level::info, "signal {}: shutting down", signal);
      impl_->signals_context.stop();
    });
  }
}

node::~node() { stop(); }

actor_system& node::system() const noexcept { return impl_->system; }
std::shared_ptr<const persistence> node::stores() const noexcept { return impl_->stores; }
event_bus& node::bus() const noexcept { return *impl_->bus; }
bool node::on_nats() const noexcept { return impl_->conns.batched != nullptr; }
const node_config& node::config() const noexcept { return impl_->config; }

int node::run() {
  {
    std::lock_guard lock{impl_->mutex};
    if (impl_->stopping) return 0;
  }
  auto guard = asio::make_work_guard(impl_->signals_context);
  impl_->signals_context.run();
  // A signal or stop() ended the wait; shutdown() is idempotent.
  impl_->shutdown();
  return 0;
}

void node::stop() { impl_->shutdown(); }

} // namespace aether
