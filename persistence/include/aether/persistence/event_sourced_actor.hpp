#pragma once

#include <aether/actors/actor.hpp>
#include <aether/actors/actor_system.hpp>
#include <aether/actors/context.hpp>
#include <aether/persistence/event.hpp>
#include <aether/persistence/event_store.hpp>
#include <aether/persistence/persistence_metrics.hpp>
#include <aether/persistence/snapshot_store.hpp>
#include <aether/runtime/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace aether {

/// The stores event-sourced actors use, and when they take snapshots.
struct persistence {
  std::shared_ptr<event_store> events;
  std::shared_ptr<snapshot_store> snapshots; ///< optional: no snapshots when null
  /// A snapshot after every this many events; 0: never by count.
  std::uint64_t snapshot_every = 0;
  /// A snapshot when the actor is passivated (if it changed since the last).
  bool snapshot_on_passivate = true;
  /// How long an activation or an append may take.
  std::chrono::milliseconds timeout{10'000};
  /// What actors count of these stores (shown by a node's metrics endpoint).
  std::shared_ptr<persistence_metrics> metrics = std::make_shared<persistence_metrics>();
};

/// The reply to a command that persisted events, when the handler gives no other.
struct persisted {
  static constexpr std::string_view type_name = "aether.persisted";
  std::uint64_t version = 0;
};

namespace detail {

template <class E>
constexpr std::uint32_t schema_version_of() {
  if constexpr (requires { E::schema_version; }) {
    return static_cast<std::uint32_t>(E::schema_version);
  } else {
    return 1;
  }
}

/// What an event-sourced actor's replay of one stored event found: applied,
/// or the type has no replayer (nullopt), or it did not decode.
using replay_outcome = std::optional<expected<void>>;

/// The untyped half of an event-sourced actor: versions, stores, recovery.
class event_sourced_core {
public:
  void set_persistence(std::shared_ptr<const persistence> p) noexcept { persistence_ = std::move(p); }
  [[nodiscard]] std::uint64_t version() const noexcept { return version_; }

  // A read-only fold (`fold_state`) of an instance that is never activated:
  // the stores, a snapshot's state, the events after it, the state as JSON.
  [[nodiscard]] const std::shared_ptr<const persistence>& stores() const noexcept { return persistence_; }
  /// Takes `s`'s state and version; an error when the state does not decode.
  expected<void> fold_snapshot(const snapshot& s);
  /// Applies `events` (in version order, right after `version()`); stops at
  /// the first that does not follow, decode or apply, with `replay_failed`.
  expected<void> fold_events(const actor_id& self, const std::vector<event>& events) { return replay(self, events); }
  /// The state as JSON (the snapshots' encoding); nullopt when the state
  /// type is not a declared JSON type.
  [[nodiscard]] std::optional<std::string> folded_state() const { return encode_state(); }

protected:
  /// Loads snapshot and events under an exclusive wait; then `restore` (with
  /// the snapshot's state, if any) and the replayers run on the actor's turn.
  void recover(context& ctx, std::function<expected<void>(const snapshot&)> restore);
  /// Reads and replays every event under an exclusive wait: activation
  /// without a snapshot, after one that does not restore.
  void replay_all(context& ctx);
  /// Appends `events` after the current version under an exclusive wait;
  /// `on_stored` applies them and makes the reply; on failure the sender
  /// gets the error and the actor reloads what the store has.
  void write(context& ctx, std::vector<event> events, std::function<message()> on_stored);
  /// Takes a snapshot if the policy asks for one now.
  void maybe_snapshot(context& ctx, bool passivating);
  /// The state as JSON, for a snapshot; nullopt when it cannot be encoded.
  [[nodiscard]] virtual std::optional<std::string> encode_state() const = 0;
  /// Replaces the state with one decoded from a snapshot's JSON.
  virtual expected<void> restore_state(std::string_view json) = 0;
  /// Decodes and applies one stored event of `type` at `schema_version`.
  virtual replay_outcome replay_one(const std::string& type, std::uint32_t schema_version, std::string_view data) = 0;

  ~event_sourced_core() = default;

private:
  expected<void> replay(const actor_id& self, const std::vector<event>& events);
  void reload(context& ctx);

  std::shared_ptr<const persistence> persistence_;
  std::uint64_t version_ = 0;
  std::uint64_t last_sequence_ = 0;
  std::uint64_t snapshot_version_ = 0;
};

/// How an event-sourced actor type over `State` applies and replays events:
/// built by the constructor of the first instance and shared by the later
/// ones, since it depends on the type only. Its functions take the instance.
///
/// Thread-safety: filled by one constructor at a time (`register_event_sourced`
/// holds `build`), read-only once `sealed`.
template <class Actor, class State>
struct event_tables {
  using applier = std::function<void(State&, const void*)>;
  using replayer = std::function<expected<void>(Actor&, std::string_view)>;
  std::map<const message_type*, applier> appliers;
  std::map<std::pair<std::string, std::uint32_t>, replayer> replayers;
  /// Whether every registered function is stateless, so one instance's
  /// functions serve all of them.
  bool shareable = true;
  /// Complete: constructors of later instances register nothing.
  std::atomic<bool> sealed{false};
  std::mutex build;
};

/// The shared tables the next event-sourced actor constructed on this thread
/// takes (set by `register_event_sourced` around the constructor).
inline thread_local void* tables_in_construction = nullptr;

} // namespace detail

/// The base of event-sourced actors over a state type `State` (a declared
/// JSON type when snapshots are used). Commands decide and persist events;
/// `apply` functions fold events into the state; the reply goes out only
/// after the store acknowledged the events. A failed persist leaves the
/// state as it was, answers the sender with the error and reloads from the
/// store before the next command.
///
///     struct deposited { static constexpr std::string_view type_name = "bank.deposited"; std::int64_t cents; };
///     AETHER_JSON_FIELDS(deposited, cents)
///
///     class account : public aether::event_sourced_actor<account_state> {
///     public:
///       account() {
///         apply([](account_state& s, const deposited& e) { s.cents += e.cents; });
///         on([this](const deposit& d, aether::context& ctx) {
///           persist_then(ctx, [](const account_state& s) { return s.cents; }, deposited{d.cents});
///         });
///       }
///     };
///
/// Activation restores the latest snapshot plus the events after it (a
/// snapshot that does not decode is skipped for a full replay); a
/// stored event that cannot be decoded or applied stops the activation with
/// `replay_failed` naming the actor, version and stream sequence.
///
/// Thread-safety: like any actor, touched only on its turn.
template <class State>
class event_sourced_actor : public actor, public detail::event_sourced_core {
public:
  using state_type = State;
  using tables = detail::event_tables<event_sourced_actor, State>;

  [[nodiscard]] const State& state() const noexcept { return state_; }

  void on_activate(context& ctx) final {
    recover(ctx, [this](const snapshot& s) { return restore_state(s.state); });
  }
  void on_passivate(context& ctx) final {
    maybe_snapshot(ctx, true);
    on_stop(ctx);
  }

protected:
  /// Takes the type's shared tables when `register_event_sourced` offers
  /// them, else tables of its own.
  event_sourced_actor() {
    if (auto* shared = static_cast<std::shared_ptr<tables>*>(detail::tables_in_construction)) {
      detail::tables_in_construction = nullptr; // for this instance only, not for actors it makes
      tables_ = *shared;
    } else {
      tables_ = std::make_shared<tables>();
    }
  }

  /// Called before the actor is dropped (the snapshot, if due, is taken).
  virtual void on_stop(context&) {}

  /// Registers how an event type changes the state: `f(State&, const E&)`.
  /// A stateless `f` (no captures) is registered once per actor type.
  template <class F>
  void apply(F f) {
    using traits = detail::callable_traits<std::decay_t<F>>;
    using E = std::remove_cvref_t<std::tuple_element_t<1, typename traits::args>>;
    static_assert(json::declared_type<E>, "events are declared with AETHER_JSON_FIELDS");
    static_assert(detail::self_named<E>, "events name themselves with a static type_name");
    if (tables_->sealed.load(std::memory_order_acquire)) return;
    if constexpr (!std::is_empty_v<F>) tables_->shareable = false;
    auto fn = std::make_shared<F>(std::move(f));
    tables_->appliers[message_type_of<E>()] = [fn](State& s, const void* e) { (*fn)(s, *static_cast<const E*>(e)); };
    tables_->replayers[{std::string{E::type_name}, detail::schema_version_of<E>()}] =
        [fn](event_sourced_actor& self, std::string_view json) -> expected<void> {
      auto e = json::decode<E>(json);
      if (!e) return e.error();
      (*fn)(self.state_, *e);
      return {};
    };
  }

  /// Registers an upcaster: stored events of `Old` (same `type_name`, an
  /// older `schema_version`) become the current type by `f(Old) -> E`.
  template <class Old, class F>
  void upcast(F f) {
    static_assert(json::declared_type<Old>, "old event versions are declared too");
    if (tables_->sealed.load(std::memory_order_acquire)) return;
    if constexpr (!std::is_empty_v<F>) tables_->shareable = false;
    tables_->replayers[{std::string{Old::type_name}, detail::schema_version_of<Old>()}] =
        [f = std::move(f)](event_sourced_actor& self, std::string_view json) -> expected<void> {
      auto old = json::decode<Old>(json);
      if (!old) return old.error();
      auto current = f(std::move(*old));
      return self.apply_typed(current);
    };
  }

  /// Persists `events`, applies them once stored and replies `persisted`.
  template <class... E>
  void persist(context& ctx, E&&... events) {
    persist_then(
        ctx, [this](const State&) { return persisted{version()}; }, std::forward<E>(events)...);
  }

  /// Persists `events`, applies them once stored and replies with
  /// `reply(state())`.
  template <class Reply, class... E>
  void persist_then(context& ctx, Reply reply, E&&... events) {
    static_assert(sizeof...(E) > 0, "persist at least one event");
    std::vector<event> out;
    out.reserve(sizeof...(E));
    (out.push_back(to_event(events)), ...);
    for (const auto* t : {message_type_of<E>()...}) {
      if (!tables_->appliers.contains(t)) {
        ctx.reply(error{errc::unknown_message_type, fmt::format("no apply function for {}", t->name)});
        return;
      }
    }
    write(ctx, std::move(out),
          [this, typed = std::make_tuple(std::decay_t<E>(std::forward<E>(events))...),
           reply = std::move(reply)]() mutable {
            // Every type has an apply function: checked before writing.
            std::apply([this](const auto&... e) { ((void)apply_typed(e), ...); }, typed);
            return message{reply(state_)};
          });
  }

private:
  [[nodiscard]] std::optional<std::string> encode_state() const final {
    if constexpr (json::declared_type<State>) {
      return json::encode(state_);
    } else {
      return std::nullopt;
    }
  }

  expected<void> restore_state(std::string_view json) final {
    if constexpr (json::declared_type<State>) {
      auto restored = json::decode<State>(json);
      if (!restored) return restored.error();
      state_ = std::move(*restored);
      return {};
    } else {
      return error{errc::replay_failed, "the state type is not a declared JSON type"};
    }
  }

  template <class E>
  static event to_event(const E& e) {
    event out;
    out.type = std::string{E::type_name};
    out.schema_version = detail::schema_version_of<E>();
    out.data = json::encode(e);
    return out;
  }

  detail::replay_outcome replay_one(const std::string& type, std::uint32_t schema_version,
                                    std::string_view data) final {
    auto it = tables_->replayers.find(std::pair{type, schema_version});
    if (it == tables_->replayers.end()) return std::nullopt;
    return it->second(*this, data);
  }

  template <class E>
  expected<void> apply_typed(const E& e) {
    auto it = tables_->appliers.find(message_type_of<E>());
    if (it == tables_->appliers.end()) return error{errc::unknown_message_type, std::string{E::type_name}};
    it->second(state_, &e);
    return {};
  }

  State state_{};
  std::shared_ptr<tables> tables_;
};

/// Registers event-sourced actor type `T` (default-constructed) on `system`,
/// backed by `p`. The first instance's constructor fills the type's apply
/// and replay tables; later instances share them (unless a registered
/// function has captures, which may refer to its instance).
template <class T>
void register_event_sourced(actor_system& system, std::string_view type, std::shared_ptr<const persistence> p,
                            actor_options options = {}) {
  using tables = typename T::tables;
  static_assert(std::is_base_of_v<event_sourced_actor<typename T::state_type>, T>, "T is an event_sourced_actor");
  system.register_actor(
      type,
      [p = std::move(p), shared = std::make_shared<tables>()](const actor_id&) {
        auto make = [&] {
          auto offered = shared;
          detail::tables_in_construction = &offered;
          auto a = std::make_unique<T>();
          detail::tables_in_construction = nullptr;
          a->set_persistence(p);
          return a;
        };
        if (shared->sealed.load(std::memory_order_acquire)) return make();
        std::lock_guard lock{shared->build};
        if (shared->sealed.load(std::memory_order_acquire) || shared->shareable) {
          auto a = make();
          if (shared->shareable) shared->sealed.store(true, std::memory_order_release);
          return a;
        }
        // A registered function has captures: every instance builds its own tables.
        auto a = std::make_unique<T>();
        a->set_persistence(p);
        return a;
      },
      options);
}

} // namespace aether
