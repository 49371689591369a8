#include <aether/persistence/event_sourced_actor.hpp>

#include <aether/runtime/log.hpp>

#include <fmt/format.h>

namespace aether::detail {

namespace {
/// What an activation loaded: the latest snapshot and the events after it.
struct recovered {
  std::optional<snapshot> snap;
  std::vector<event> events;
};

using metrics_clock = std::chrono::steady_clock;

std::uint64_t ns_since(metrics_clock::time_point start) noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(metrics_clock::now() - start).count());
}

/// The metric cells of `id`'s namespace, or none.
persistence_metrics::cells* cells_of(const persistence& p, const actor_id& id) {
  return p.metrics ? &p.metrics->of(id.ns()) : nullptr;
}

/// The same, kept alive with its owner for a store's callback (a store
/// closing may answer after the stores are gone).
std::shared_ptr<persistence_metrics::cells> kept_cells_of(const persistence& p, const actor_id& id) {
  if (!p.metrics) return nullptr;
  return {p.metrics, &p.metrics->of(id.ns())};
}
} // namespace

void event_sourced_core::recover(context& ctx, std::function<expected<void>(const snapshot&)> restore) {
  if (!persistence_ || !persistence_->events) {
    ctx.stop(error{errc::invalid_argument, fmt::format("{} has no event store", ctx.self().to_string())});
    return;
  }
  auto [done, handle] = ctx.await_completion<recovered>(persistence_->timeout, true);
  const auto started = metrics_clock::now();
  auto load_events = [p = persistence_, id = ctx.self(), done](std::optional<snapshot> snap) {
    const auto from = snap ? snap->version + 1 : 1;
    const auto hint = snap ? snap->sequence : 0;
    p->events->read(id, from, hint, [done, snap = std::move(snap)](expected<std::vector<event>> events) mutable {
      if (!events) {
        done.fail(events.error());
      } else {
        done.complete(recovered{std::move(snap), std::move(*events)});
      }
    });
  };
  if (persistence_->snapshots) {
    persistence_->snapshots->load(
        ctx.self(), [load_events, id = ctx.self()](expected<std::optional<snapshot>> s) mutable {
          if (!s) {
            // Snapshots only save time: replay everything instead.
            log(log_level::warn, "ignoring the snapshot of {}: {}", id.to_string(), s.error().to_string());
            load_events(std::nullopt);
          } else {
            load_events(std::move(*s));
          }
        });
  } else {
    load_events(std::nullopt);
  }
  handle.then(
      [this, restore = std::move(restore), started](const recovered& r, context& c) {
        auto* m = cells_of(*persistence_, c.self());
        if (m != nullptr) m->replays.add();
        if (r.snap) {
          if (auto ok = restore(*r.snap); !ok) {
            // Snapshots only save time: one that does not decode (a changed
            // state type, a damaged value) is skipped for a full replay.
            log(log_level::warn, "{}: the snapshot at version {} does not restore ({}); replaying every event",
                c.self().to_string(), r.snap->version, ok.error().detail());
            replay_all(c);
            return;
          }
          version_ = snapshot_version_ = r.snap->version;
          last_sequence_ = r.snap->sequence;
        }
        if (auto ok = replay(c.self(), r.events); !ok) {
          if (m != nullptr) m->replay_failures.add();
          c.stop(ok.error());
        } else if (m != nullptr) {
          m->replay_latency.observe_ns(ns_since(started));
        }
      },
      [this](const error& e, context& c) {
        if (auto* m = cells_of(*persistence_, c.self())) m->replay_failures.add();
        c.stop(error{e.code(), fmt::format("activating {}: {}", c.self().to_string(), e.detail()), e.value()});
      });
}

void event_sourced_core::replay_all(context& ctx) {
  auto [done, handle] = ctx.await_completion<std::vector<event>>(persistence_->timeout, true);
  persistence_->events->read(ctx.self(), 1, 0, [done](expected<std::vector<event>> events) mutable {
    if (events) {
      done.complete(std::move(*events));
    } else {
      done.fail(events.error());
    }
  });
  handle.then(
      [this](const std::vector<event>& events, context& c) {
        if (auto ok = replay(c.self(), events); !ok) c.stop(ok.error());
      },
      [](const error& e, context& c) {
        c.stop(error{e.code(), fmt::format("activating {}: {}", c.self().to_string(), e.detail()), e.value()});
      });
}

expected<void> event_sourced_core::fold_snapshot(const snapshot& s) {
  if (auto ok = restore_state(s.state); !ok) return ok.error();
  version_ = snapshot_version_ = s.version;
  last_sequence_ = s.sequence;
  return {};
}

expected<void> event_sourced_core::replay(const actor_id& self, const std::vector<event>& events) {
  for (const auto& e : events) {
    if (e.version != version_ + 1) {
      return error{errc::replay_failed,
                   fmt::format("{}: version {} follows version {} (stream sequence {})", self.to_string(), e.version,
                               version_, e.sequence),
                   e.version};
    }
    auto applied = replay_one(e.type, e.schema_version, e.data);
    if (!applied) {
      return error{errc::replay_failed,
                   fmt::format("{} version {} (stream sequence {}): unknown event type {} (schema {})",
                               self.to_string(), e.version, e.sequence, e.type, e.schema_version),
                   e.version};
    }
    if (const auto& ok = *applied; !ok) {
      return error{errc::replay_failed,
                   fmt::format("{} version {} (stream sequence {}): {} does not decode: {}", self.to_string(),
                               e.version, e.sequence, e.type, ok.error().detail()),
                   e.version};
    }
    version_ = e.version;
    if (e.sequence != 0) last_sequence_ = e.sequence;
  }
  return {};
}

void event_sourced_core::write(context& ctx, std::vector<event> events, std::function<message()> on_stored) {
  auto promise = std::make_shared<response_promise>(ctx.promise());
  auto [done, handle] = ctx.await_completion<append_result>(persistence_->timeout, true);
  const auto count = events.size();
  persistence_->events->append(
      ctx.self(), version_, std::move(events),
      [done, m = kept_cells_of(*persistence_, ctx.self()), count,
       started = metrics_clock::now()](expected<append_result> r) {
        if (r) {
          if (m != nullptr) {
            m->appends.add();
            m->appended_events.add(0, count);
            m->append_latency.observe_ns(ns_since(started));
          }
          done.complete(*r);
        } else {
          if (m != nullptr) {
            (r.error().code() == errc::version_conflict ? m->version_conflicts : m->append_failures).add();
          }
          done.fail(r.error());
        }
      });
  handle.then(
      [this, promise, on_stored = std::move(on_stored)](const append_result& r, context& c) {
        version_ = r.last_version;
        if (r.sequence != 0) last_sequence_ = r.sequence;
        promise->deliver_message(on_stored());
        maybe_snapshot(c, false);
      },
      [this, promise](const error& e, context& c) {
        // A tell has nobody to hear of it: the log does.
        log(log_level::warn, "{}: writing at version {} failed: {}", c.self().to_string(), version_, e.to_string());
        promise->deliver(e);
        // The store may hold more than this actor knows (a conflict, or a
        // write whose outcome is unknown): catch up before the next command.
        reload(c);
      });
}

void event_sourced_core::reload(context& ctx) {
  auto [done, handle] = ctx.await_completion<std::vector<event>>(persistence_->timeout, true);
  persistence_->events->read(ctx.self(), version_ + 1, last_sequence_, [done](expected<std::vector<event>> r) {
    if (r) {
      done.complete(std::move(*r));
    } else {
      done.fail(r.error());
    }
  });
  handle.then(
      [this](const std::vector<event>& events, context& c) {
        if (auto ok = replay(c.self(), events); !ok) c.stop(ok.error());
      },
      [](const error& e, context& c) {
        // Unsure what the store holds: start over from it with the next message.
        c.stop(error{e.code(), fmt::format("reloading {}: {}", c.self().to_string(), e.detail()), e.value()});
      });
}

void event_sourced_core::maybe_snapshot(context& ctx, bool passivating) {
  if (!persistence_ || !persistence_->snapshots || version_ == snapshot_version_) return;
  const bool due =
      passivating ? persistence_->snapshot_on_passivate
                  : persistence_->snapshot_every > 0 && version_ - snapshot_version_ >= persistence_->snapshot_every;
  if (!due) return;
  auto state = encode_state();
  if (!state) return;
  snapshot_version_ = version_;
  persistence_->snapshots->save(ctx.self(), snapshot{version_, last_sequence_, 1, std::move(*state)},
                                [id = ctx.self(), m = kept_cells_of(*persistence_, ctx.self())](expected<void> r) {
                                  if (m != nullptr) (r ? m->snapshot_writes : m->snapshot_failures).add();
                                  if (!r)
                                    log(log_level::warn, "snapshot of {}: {}", id.to_string(), r.error().to_string());
                                });
}

} // namespace aether::detail
