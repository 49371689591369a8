#pragma once

#include <aether/actors/actor_id.hpp>
#include <aether/runtime/expected.hpp>
#include <aether/runtime/nats.hpp>
#include <aether/runtime/unique_function.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace aether {

/// An actor's state after its event `version`, so that activation replays
/// only what came after.
struct snapshot {
  std::uint64_t version = 0;
  std::uint64_t sequence = 0; ///< stream sequence of the event at `version` (0 when unknown)
  std::uint32_t schema_version = 1;
  std::string state; ///< JSON
};

/// Where snapshots live: the latest per actor.
///
/// Thread-safety: every member from any thread; callbacks may run inline or
/// on a store thread.
class snapshot_store {
public:
  using save_callback = unique_function<void(expected<void>)>;
  using load_callback = unique_function<void(expected<std::optional<snapshot>>)>;

  virtual ~snapshot_store() = default;
  /// Keeps `s` as the actor's latest unless a newer one is already there.
  virtual void save(const actor_id& actor, snapshot s, save_callback done) = 0;
  /// The latest snapshot, or nullopt when there is none.
  virtual void load(const actor_id& actor, load_callback done) = 0;

  expected<void> save_wait(const actor_id& actor, snapshot s);
  expected<std::optional<snapshot>> load_wait(const actor_id& actor);
};

/// Snapshots in memory: the embedded default.
class memory_snapshot_store final : public snapshot_store {
public:
  memory_snapshot_store();
  ~memory_snapshot_store() override;
  void save(const actor_id& actor, snapshot s, save_callback done) override;
  void load(const actor_id& actor, load_callback done) override;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Snapshots in a JetStream key-value bucket per namespace,
/// `{ns}_snapshots`, under the key `{type}.{key}` (key bytes outside what
/// bucket keys allow are escaped reversibly as `=XX`). Calls block a store
/// thread, never the caller's.
class kv_snapshot_store final : public snapshot_store {
public:
  explicit kv_snapshot_store(std::shared_ptr<nats::connection> conn, int replicas = 1);
  ~kv_snapshot_store() override;
  void save(const actor_id& actor, snapshot s, save_callback done) override;
  void load(const actor_id& actor, load_callback done) override;

  [[nodiscard]] static std::string bucket_name(std::string_view ns);
  /// The bucket key of an actor: `{type}.{escaped key}`.
  [[nodiscard]] static std::string key_of(const actor_id& actor);

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace aether
