#pragma once

#include <aether/actors/actor.hpp>
#include <aether/actors/actor_system.hpp>
#include <aether/actors/context.hpp>
#include <aether/persistence/event.hpp>
#include <aether/persistence/event_store.hpp>
#include <aether/persistence/snapshot_store.hpp>
#include <aether/runtime/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
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

/// The untyped half of an event-sourced actor: versions, stores, recovery.
class event_sourced_core {
public:
  using decode_apply = std::function<expected<void>(std::string_view json)>;

  void set_persistence(std::shared_ptr<const persistence> p) noexcept { persistence_ = std::move(p); }
  [[nodiscard]] std::uint64_t version() const noexcept { return version_; }

protected:
  /// How a stored event of `type` at `schema_version` is decoded and applied.
  void add_replayer(std::string_view type, std::uint32_t schema_version, decode_apply fn);
  /// Loads snapshot and events under an exclusive wait; then `restore` (with
  /// the snapshot's state, if any) and the replayers run on the actor's turn.
  void recover(context& ctx, std::function<expected<void>(const snapshot&)> restore);
  /// Appends `events` after the current version under an exclusive wait;
  /// `on_stored` applies them and makes the reply; on failure the sender
  /// gets the error and the actor reloads what the store has.
  void write(context& ctx, std::vector<event> events, std::function<message()> on_stored);
  /// Takes a snapshot if the policy asks for one now.
  void maybe_snapshot(context& ctx, bool passivating);
  /// The state as JSON, for a snapshot; nullopt when it cannot be encoded.
  [[nodiscard]] virtual std::optional<std::string> encode_state() const = 0;

  ~event_sourced_core() = default;

private:
  expected<void> replay(const actor_id& self, const std::vector<event>& events);
  void reload(context& ctx);

  std::shared_ptr<const persistence> persistence_;
  std::map<std::pair<std::string, std::uint32_t>, decode_apply> replayers_;
  std::uint64_t version_ = 0;
  std::uint64_t last_sequence_ = 0;
  std::uint64_t snapshot_version_ = 0;
};

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
/// Activation restores the latest snapshot plus the events after it; a
/// stored event that cannot be decoded or applied stops the activation with
/// `replay_failed` naming the actor, version and stream sequence.
///
/// Thread-safety: like any actor, touched only on its turn.
template <class State>
class event_sourced_actor : public actor, public detail::event_sourced_core {
public:
  [[nodiscard]] const State& state() const noexcept { return state_; }

  void on_activate(context& ctx) final {
    recover(ctx, [this](const snapshot& s) -> expected<void> {
      if constexpr (json::declared_type<State>) {
        auto restored = json::decode<State>(s.state);
        if (!restored) return restored.error();
        state_ = std::move(*restored);
        return {};
      } else {
        return error{errc::replay_failed, "the state type is not a declared JSON type"};
      }
    });
  }
  void on_passivate(context& ctx) final {
    maybe_snapshot(ctx, true);
    on_stop(ctx);
  }

protected:
  event_sourced_actor() = default;

  /// Called before the actor is dropped (the snapshot, if due, is taken).
  virtual void on_stop(context&) {}

  /// Registers how an event type changes the state: `f(State&, const E&)`.
  template <class F>
  void apply(F f) {
    using traits = detail::callable_traits<std::decay_t<F>>;
    using E = std::remove_cvref_t<std::tuple_element_t<1, typename traits::args>>;
    static_assert(json::declared_type<E>, "events are declared with AETHER_JSON_FIELDS");
    static_assert(detail::self_named<E>, "events name themselves with a static type_name");
    auto fn = std::make_shared<F>(std::move(f));
    appliers_[message_type_of<E>()] = [this, fn](const void* e) { (*fn)(state_, *static_cast<const E*>(e)); };
    add_replayer(E::type_name, detail::schema_version_of<E>(), [this, fn](std::string_view json) -> expected<void> {
      auto e = json::decode<E>(json);
      if (!e) return e.error();
      (*fn)(state_, *e);
      return {};
    });
  }

  /// Registers an upcaster: stored events of `Old` (same `type_name`, an
  /// older `schema_version`) become the current type by `f(Old) -> E`.
  template <class Old, class F>
  void upcast(F f) {
    static_assert(json::declared_type<Old>, "old event versions are declared too");
    add_replayer(Old::type_name, detail::schema_version_of<Old>(),
                 [this, f = std::move(f)](std::string_view json) -> expected<void> {
                   auto old = json::decode<Old>(json);
                   if (!old) return old.error();
                   auto current = f(std::move(*old));
                   return apply_typed(current);
                 });
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
      if (!appliers_.contains(t)) {
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

  template <class E>
  static event to_event(const E& e) {
    event out;
    out.type = std::string{E::type_name};
    out.schema_version = detail::schema_version_of<E>();
    out.data = json::encode(e);
    return out;
  }

  template <class E>
  expected<void> apply_typed(const E& e) {
    auto it = appliers_.find(message_type_of<E>());
    if (it == appliers_.end()) return error{errc::unknown_message_type, std::string{E::type_name}};
    it->second(&e);
    return {};
  }

  State state_{};
  std::map<const message_type*, std::function<void(const void*)>> appliers_;
};

/// Registers event-sourced actor type `T` (default-constructed) on `system`,
/// backed by `p`.
template <class T>
void register_event_sourced(actor_system& system, std::string_view type, std::shared_ptr<const persistence> p,
                            actor_options options = {}) {
  system.register_actor(
      type,
      [p = std::move(p)](const actor_id&) {
        auto a = std::make_unique<T>();
        a->set_persistence(p);
        return a;
      },
      options);
}

} // namespace aether
