#include <aether/persistence/snapshot_store.hpp>

#include <aether/runtime/json.hpp>

#include "names.hpp"
#include "wait.hpp"

#include <fmt/format.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace aether {

namespace {

struct stored_snapshot {
  std::uint64_t version = 0;
  std::uint64_t sequence = 0;
  std::uint32_t schema_version = 1;
  json::raw state;
};
AETHER_JSON_FIELDS(stored_snapshot, version, sequence, schema_version, state)

} // namespace

expected<void> snapshot_store::save_wait(const actor_id& actor, snapshot s) {
  return detail::wait_for<void>([&](auto cb) { save(actor, std::move(s), std::move(cb)); });
}

expected<std::optional<snapshot>> snapshot_store::load_wait(const actor_id& actor) {
  return detail::wait_for<std::optional<snapshot>>([&](auto cb) { load(actor, std::move(cb)); });
}

struct memory_snapshot_store::impl {
  std::mutex mutex;
  std::unordered_map<actor_id, snapshot> latest;
};

memory_snapshot_store::memory_snapshot_store() : impl_{std::make_unique<impl>()} {}
memory_snapshot_store::~memory_snapshot_store() = default;

void memory_snapshot_store::save(const actor_id& actor, snapshot s, save_callback done) {
  {
    std::lock_guard lock{impl_->mutex};
    auto& slot = impl_->latest[actor];
    if (s.version >= slot.version) slot = std::move(s);
  }
  done({});
}

void memory_snapshot_store::load(const actor_id& actor, load_callback done) {
  std::optional<snapshot> out;
  {
    std::lock_guard lock{impl_->mutex};
    if (auto it = impl_->latest.find(actor); it != impl_->latest.end()) out = it->second;
  }
  done(std::move(out));
}

struct kv_snapshot_store::impl {
  std::shared_ptr<nats::connection> conn;
  int replicas = 1;
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<unique_function<void()>> work;
  std::set<std::string, std::less<>> buckets;
  bool stopping = false;
  std::thread worker;

  void run() {
    for (;;) {
      unique_function<void()> task;
      {
        std::unique_lock lock{mutex};
        wake.wait(lock, [this] { return stopping || !work.empty(); });
        if (work.empty()) return;
        task = std::move(work.front());
        work.pop_front();
      }
      task();
    }
  }

  void post(unique_function<void()> fn) {
    {
      std::lock_guard lock{mutex};
      work.push_back(std::move(fn));
    }
    wake.notify_one();
  }

  expected<std::string> bucket(std::string_view ns) {
    auto name = bucket_name(ns);
    {
      std::lock_guard lock{mutex};
      if (buckets.contains(name)) return name;
    }
    if (auto r = conn->ensure_bucket(nats::bucket_config{name, replicas, 1}); !r) return r.error();
    std::lock_guard lock{mutex};
    buckets.insert(name);
    return name;
  }
};

kv_snapshot_store::kv_snapshot_store(std::shared_ptr<nats::connection> conn, int replicas)
    : impl_{std::make_shared<impl>()} {
  impl_->conn = std::move(conn);
  impl_->replicas = replicas;
  impl_->worker = std::thread{[self = impl_] { self->run(); }};
}

kv_snapshot_store::~kv_snapshot_store() {
  {
    std::lock_guard lock{impl_->mutex};
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  // Runs what was queued first. A callback on the worker may drop the last
  // reference: the worker cannot wait for itself, and keeps the state alive.
  if (impl_->worker.get_id() == std::this_thread::get_id()) {
    impl_->worker.detach();
  } else {
    impl_->worker.join();
  }
}

std::string kv_snapshot_store::bucket_name(std::string_view ns) {
  return detail::namespace_resource_name(ns, "snapshots");
}

std::string kv_snapshot_store::key_of(const actor_id& actor) {
  std::string out{actor.type()};
  out += '.';
  for (const char c : actor.key()) {
    const bool plain =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (plain) {
      out += c;
    } else {
      out += fmt::format("={:02X}", static_cast<unsigned char>(c));
    }
  }
  return out;
}

void kv_snapshot_store::save(const actor_id& actor, snapshot s, save_callback done) {
  impl_->post([p = impl_.get(), actor, s = std::move(s), done = std::move(done)]() mutable {
    auto bucket = p->bucket(actor.ns());
    if (!bucket) {
      done(bucket.error());
      return;
    }
    const auto key = key_of(actor);
    const auto value = json::encode(stored_snapshot{s.version, s.sequence, s.schema_version, json::raw{s.state}});
    // Compare-and-set so that an older snapshot never replaces a newer one.
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto current = p->conn->kv_get(*bucket, key);
      expected<std::uint64_t> written = std::uint64_t{0};
      if (!current && current.error().code() == errc::not_found) {
        written = p->conn->kv_create(*bucket, key, value);
      } else if (!current) {
        done(current.error());
        return;
      } else {
        auto old = json::decode<stored_snapshot>(current->value);
        if (old && old->version > s.version) {
          done({});
          return;
        }
        written = p->conn->kv_update(*bucket, key, value, current->revision);
      }
      if (written) {
        done({});
        return;
      }
      if (written.error().code() != errc::version_conflict) {
        done(written.error());
        return;
      }
    }
    done(error{errc::version_conflict, fmt::format("snapshot of {} kept changing", actor.to_string())});
  });
}

void kv_snapshot_store::load(const actor_id& actor, load_callback done) {
  impl_->post([p = impl_.get(), actor, done = std::move(done)]() mutable {
    auto bucket = p->bucket(actor.ns());
    if (!bucket) {
      done(bucket.error());
      return;
    }
    auto entry = p->conn->kv_get(*bucket, key_of(actor));
    if (!entry) {
      if (entry.error().code() == errc::not_found) {
        done(std::optional<snapshot>{});
      } else {
        done(entry.error());
      }
      return;
    }
    auto s = json::decode<stored_snapshot>(entry->value);
    if (!s) {
      done(error{errc::replay_failed,
                 fmt::format("the snapshot of {} does not decode: {}", actor.to_string(), s.error().detail())});
      return;
    }
    done(std::optional<snapshot>{snapshot{s->version, s->sequence, s->schema_version, std::move(s->state.text)}});
  });
}

} // namespace aether
