#include "bank.hpp"
#include "store_fixtures.hpp"
#include "support/pending_ask.hpp"

#include <aether/runtime/manual_executor.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include "support/scale.hpp"

#include <barrier>
#include <future>
#include <thread>

using namespace std::chrono_literals;
using aether::actor_id;
using aether::errc;

namespace {

/// Actor systems over one set of stores, as separate nodes would be.
template <class Stores>
struct bank_fixture {
  Stores stores;

  std::shared_ptr<aether::persistence> persistence(std::uint64_t snapshot_every = 0, bool with_snapshots = true) {
    auto p = std::make_shared<aether::persistence>();
    p->events = stores.events;
    if (with_snapshots) p->snapshots = stores.snapshots;
    p->snapshot_every = snapshot_every;
    return p;
  }

  /// One node: a pool and a system with the account type.
  struct node {
    explicit node(std::shared_ptr<aether::persistence> p) : system{config(), pool} {
      aether::register_event_sourced<bank::account>(system, "account", std::move(p));
    }
    ~node() { aether::close_and_join(system, pool); }
    static aether::system_config config() {
      aether::system_config c;
      c.shard_count = 8;
      return c;
    }
    template <class R, class M>
    aether::expected<R> ask(const actor_id& id, M m) {
      return system.ask<R>(id, std::move(m), 20s).get();
    }
    aether::thread_pool_executor pool{2, 8};
    aether::actor_system system;
  };
};

} // namespace

TEST_CASE_TEMPLATE("a command's events are stored, applied and answered, and survive reactivation", S,
                   test::memory_stores, test::jetstream_stores, test::jetstream_per_actor_stores) {
  bank_fixture<S> f;
  const actor_id acc{"account", "alice"};
  {
    typename bank_fixture<S>::node n{f.persistence()};
    CHECK(*n.template ask<std::int64_t>(acc, bank::deposit{500}) == 500);
    CHECK(*n.template ask<std::int64_t>(acc, bank::withdraw{200}) == 300);
    auto refused = n.template ask<std::int64_t>(acc, bank::withdraw{1000});
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code() == errc::invalid_argument);
    CHECK(*n.template ask<std::uint64_t>(acc, bank::current_version{}) == 2);
  }
  // Another node activates it from the store: the same state, every time.
  for (int i = 0; i < 2; ++i) {
    typename bank_fixture<S>::node n{f.persistence()};
    CHECK(*n.template ask<std::int64_t>(acc, bank::balance{}) == 300);
    CHECK(*n.template ask<std::uint64_t>(acc, bank::current_version{}) == 2);
  }
  auto events = f.stores.events->read_wait(acc);
  REQUIRE(events);
  REQUIRE(events->size() == 2);
  CHECK((*events)[0].type == "bank.deposited");
  CHECK((*events)[0].schema_version == 2);
  CHECK((*events)[1].type == "bank.withdrawn");
}

TEST_CASE_TEMPLATE("a writer that lost the version race answers with the conflict and reloads before its next command",
                   S, test::memory_stores, test::jetstream_stores, test::jetstream_per_actor_stores) {
  bank_fixture<S> f;
  const actor_id acc{"account", "bob"};
  typename bank_fixture<S>::node n{f.persistence()};
  CHECK(*n.template ask<std::int64_t>(acc, bank::deposit{5}) == 5);
  // Another owner (a stale node, say) writes version 2 behind this actor's back.
  REQUIRE(f.stores.events->append_wait(acc, 1, {bank::stored("bank.deposited", R"({"cents":100,"memo":""})", 2)}));
  auto lost = n.template ask<std::int64_t>(acc, bank::deposit{1});
  REQUIRE_FALSE(lost);
  CHECK(lost.error().code() == errc::version_conflict);
  CHECK(lost.error().value() == 2);
  // The actor caught up: its state includes the other write, and it goes on.
  CHECK(*n.template ask<std::int64_t>(acc, bank::balance{}) == 105);
  CHECK(*n.template ask<std::int64_t>(acc, bank::deposit{1}) == 106);
  CHECK(*f.stores.events->latest_version_wait(acc) == 3);
}

TEST_CASE_TEMPLATE("a snapshot plus the events after it gives the state of a full replay", S, test::memory_stores,
                   test::jetstream_stores, test::jetstream_per_actor_stores) {
  bank_fixture<S> f;
  const actor_id acc{"account", "carol"};
  {
    typename bank_fixture<S>::node n{f.persistence(3)};
    for (int i = 1; i <= 10; ++i) REQUIRE(n.template ask<std::int64_t>(acc, bank::deposit{i}));
  }
  // Snapshots every 3 events, and on passivation: the last one is at 10.
  auto snap = f.stores.snapshots->load_wait(acc);
  REQUIRE(snap);
  REQUIRE(snap->has_value());
  CHECK((*snap)->version == 10);
  // A snapshot mid-history plus the tail must give what a full replay gives.
  REQUIRE(f.stores.snapshots->save_wait(acc, aether::snapshot{10, (*snap)->sequence, 1, (*snap)->state}));
  REQUIRE(f.stores.events->append_wait(acc, 10, {bank::stored("bank.withdrawn", R"({"cents":5})")}));
  typename bank_fixture<S>::node with_snapshot{f.persistence(3)};
  typename bank_fixture<S>::node without{f.persistence(0, false)};
  const auto a = with_snapshot.template ask<std::int64_t>(acc, bank::balance{});
  const auto b = without.template ask<std::int64_t>(acc, bank::balance{});
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a == 50);
  CHECK(*a == *b);
  CHECK(*with_snapshot.template ask<std::uint64_t>(acc, bank::current_version{}) == 11);
}

TEST_CASE_TEMPLATE("an older event version is upcast to the current type on replay", S, test::memory_stores,
                   test::jetstream_stores, test::jetstream_per_actor_stores) {
  bank_fixture<S> f;
  const actor_id acc{"account", "dave"};
  REQUIRE(f.stores.events->append_wait(acc, 0, {bank::stored("bank.deposited", R"({"amount":7})", 1)}));
  typename bank_fixture<S>::node n{f.persistence()};
  CHECK(*n.template ask<std::int64_t>(acc, bank::balance{}) == 7);
  CHECK(*n.template ask<std::int64_t>(acc, bank::deposit{3}) == 10);
}

TEST_CASE_TEMPLATE("an unknown or undecodable stored event stops the activation with replay_failed", S,
                   test::memory_stores, test::jetstream_stores, test::jetstream_per_actor_stores) {
  bank_fixture<S> f;
  const actor_id unknown{"account", "erin"};
  REQUIRE(f.stores.events->append_wait(
      unknown, 0, {bank::stored("bank.deposited", R"({"cents":1,"memo":""})", 2), bank::stored("bank.mystery", "{}")}));
  const actor_id undecodable{"account", "frank"};
  REQUIRE(f.stores.events->append_wait(undecodable, 0, {bank::stored("bank.withdrawn", R"({"cents":"lots"})")}));
  typename bank_fixture<S>::node n{f.persistence()};

  auto r = n.template ask<std::int64_t>(unknown, bank::balance{});
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::replay_failed);
  CHECK(r.error().value() == 2);
  CHECK(r.error().detail().find("default/account/erin version 2") != std::string::npos);
  CHECK(r.error().detail().find("bank.mystery") != std::string::npos);

  auto d = n.template ask<std::int64_t>(undecodable, bank::balance{});
  REQUIRE_FALSE(d);
  CHECK(d.error().code() == errc::replay_failed);
  CHECK(d.error().detail().find("cents") != std::string::npos);
  // Nothing was skipped or rewritten: the history is as it was.
  CHECK(*f.stores.events->latest_version_wait(unknown) == 2);
}

namespace {

/// A store that holds appends until told, or fails them.
class gated_store final : public aether::event_store {
public:
  explicit gated_store(std::shared_ptr<aether::event_store> inner) : inner_{std::move(inner)} {}
  void append(const actor_id& a, std::uint64_t v, std::vector<aether::event> e, append_callback done) override {
    if (fail_) {
      done(aether::error{errc::unavailable, "the server is gone"});
      return;
    }
    held_.push_back([this, a, v, e = std::move(e), done = std::move(done)]() mutable {
      inner_->append(a, v, std::move(e), std::move(done));
    });
  }
  void read(const actor_id& a, std::uint64_t from, std::uint64_t hint, read_callback done) override {
    inner_->read(a, from, hint, std::move(done));
  }
  void latest_version(const actor_id& a, version_callback done) override { inner_->latest_version(a, std::move(done)); }
  void release() {
    auto held = std::move(held_);
    for (auto& h : held) h();
  }
  bool fail_ = false;

private:
  std::shared_ptr<aether::event_store> inner_;
  std::vector<aether::unique_function<void()>> held_;
};

} // namespace

TEST_CASE("the reply waits for the store, and later commands wait behind it in order") {
  auto store = std::make_shared<gated_store>(std::make_shared<aether::memory_event_store>());
  auto p = std::make_shared<aether::persistence>();
  p->events = store;
  aether::manual_executor exec{2};
  aether::system_config cfg;
  cfg.shard_count = 2;
  aether::actor_system system{cfg, exec};
  aether::register_event_sourced<bank::account>(system, "account", p);
  exec.run();
  const actor_id acc{"account", "gina"};

  std::vector<std::int64_t> answers;
  auto record = [&](aether::expected<std::int64_t> r) { answers.push_back(r ? *r : -1); };
  system.ask<std::int64_t>(acc, bank::deposit{5}, 10s).then(record);
  system.ask<std::int64_t>(acc, bank::balance{}, 10s).then(record);
  exec.run();
  CHECK(answers.empty()); // not stored yet: no reply, and the balance query waits
  store->release();
  exec.run();
  CHECK(answers == std::vector<std::int64_t>{5, 5});

  // A persist that fails: the state stays, the sender gets the error.
  store->fail_ = true;
  test::answer<std::int64_t> failed{system.ask<std::int64_t>(acc, bank::deposit{7}, 10s)};
  exec.run();
  REQUIRE(failed.ready());
  CHECK(failed.value().error().code() == errc::unavailable);
  store->fail_ = false;
  system.ask<std::int64_t>(acc, bank::balance{}, 10s).then(record);
  exec.run();
  CHECK(answers.back() == 5);
}

TEST_CASE("a persist that times out: the sender hears timeout, a write the store still makes is neither lost nor "
          "doubled, and the actor catches up") {
  auto memory = std::make_shared<aether::memory_event_store>();
  auto store = std::make_shared<gated_store>(memory);
  auto p = std::make_shared<aether::persistence>();
  p->events = store;
  p->timeout = 100ms;
  aether::manual_executor exec{2};
  aether::system_config cfg;
  cfg.shard_count = 2;
  aether::actor_system system{cfg, exec};
  aether::register_event_sourced<bank::account>(system, "account", p);
  exec.run();
  const actor_id acc{"account", "slow-store"};

  test::answer<std::int64_t> first{system.ask<std::int64_t>(acc, bank::deposit{5}, 10s)};
  exec.run();
  CHECK_FALSE(first.ready()); // the store holds the write
  exec.advance(100ms);
  REQUIRE(first.ready());
  CHECK(first.value().error().code() == errc::timeout);
  // The store writes it after all.
  store->release();
  exec.run();
  CHECK(*memory->latest_version_wait(acc) == 1);
  // The actor did not apply it; its next write meets the stored one, the
  // sender hears the conflict, and the actor reloads what the store holds.
  test::answer<std::int64_t> second{system.ask<std::int64_t>(acc, bank::deposit{1}, 10s)};
  exec.run();
  store->release();
  exec.run();
  REQUIRE(second.ready());
  const bool caught_up =
      second.value() ? *second.value() == 6 : second.value().error().code() == errc::version_conflict;
  CHECK_MESSAGE(caught_up, (second.value() ? std::to_string(*second.value()) : second.value().error().to_string()));
  test::answer<std::int64_t> third{system.ask<std::int64_t>(acc, bank::deposit{1}, 10s)};
  exec.run();
  store->release();
  exec.run();
  REQUIRE(third.ready());
  REQUIRE(third.value());
  CHECK(*third.value() == (second.value() ? 7 : 6));
  // The store holds each acknowledged deposit once, and the timed-out one once.
  const auto events = memory->read_wait(acc);
  REQUIRE(events);
  CHECK(events->size() == (second.value() ? 3u : 2u));
}

TEST_CASE_TEMPLATE("a snapshot that does not decode is skipped for a full replay", S, test::memory_stores,
                   test::jetstream_stores, test::jetstream_per_actor_stores) {
  bank_fixture<S> f;
  const actor_id acc{"account", "damaged"};
  {
    typename bank_fixture<S>::node n{f.persistence()};
    for (int i = 1; i <= 5; ++i) REQUIRE(n.template ask<std::int64_t>(acc, bank::deposit{i}));
  }
  // A newer snapshot whose state is not the account's (a changed state type, a damaged value).
  REQUIRE(f.stores.snapshots->save_wait(acc, aether::snapshot{5, 0, 1, R"({"cents":"not a number"})"}));
  typename bank_fixture<S>::node n{f.persistence(3)};
  const auto balance = n.template ask<std::int64_t>(acc, bank::balance{});
  REQUIRE_MESSAGE(balance, (balance ? "" : balance.error().to_string()));
  CHECK(*balance == 15);
  CHECK(*n.template ask<std::uint64_t>(acc, bank::current_version{}) == 5);
  CHECK(*n.template ask<std::int64_t>(acc, bank::deposit{1}) == 16);
}

namespace {

/// Event and snapshot stores on an R3 stream and bucket of a three-server
/// cluster, and a second snapshot store on another server.
struct r3_stores {
  aether::testing::nats_cluster cluster{3};
  std::shared_ptr<aether::nats::connection> conn = test::connect(cluster.server(0).url());
  std::shared_ptr<aether::nats::connection> other = test::connect(cluster.server(1).url());
  std::shared_ptr<aether::event_store> events = test::open_store(conn, [] {
    aether::jetstream_store_options o;
    o.replicas = 3;
    return o;
  }());
  std::shared_ptr<aether::snapshot_store> snapshots = std::make_shared<aether::kv_snapshot_store>(conn, 3);
  std::shared_ptr<aether::snapshot_store> other_snapshots = std::make_shared<aether::kv_snapshot_store>(other, 3);
};

} // namespace

TEST_CASE("on R3, whichever of two racing snapshots is kept, an activation folds to the right state") {
  // nats-server 2.9.10 does not check a KV update's expected revision
  // atomically on a clustered stream, so of two racing saves an older
  // snapshot may replace a newer one. A snapshot is always the state at its
  // own version (taken after the store acknowledged), so any one of them
  // plus the events after it folds to the same state.
  bank_fixture<r3_stores> f;
  const int trials = aether::testing::scaled(20);
  int stale_kept = 0;
  for (int t = 0; t < trials; ++t) {
    CAPTURE(t);
    const actor_id acc{"account", "r3-" + std::to_string(t)};
    std::int64_t total = 0;
    {
      typename bank_fixture<r3_stores>::node n{f.persistence(0, false)}; // no snapshots of its own
      for (int i = 1; i <= 6; ++i) {
        REQUIRE(n.template ask<std::int64_t>(acc, bank::deposit{i}));
        total += i;
      }
    }
    // A snapshot at version 1 is there; two writers replace it at once (each
    // an update expecting its revision), one with the state at version 6 and
    // one with the state at version 2.
    REQUIRE(f.stores.snapshots->save_wait(acc, aether::snapshot{1, 0, 1, R"({"cents":1,"deposits":1})"}));
    const aether::snapshot newer{6, 0, 1, R"({"cents":21,"deposits":6})"};
    const aether::snapshot older{2, 0, 1, R"({"cents":3,"deposits":2})"};
    std::barrier start{2};
    aether::expected<void> a, b;
    std::thread x{[&] {
      start.arrive_and_wait();
      a = f.stores.snapshots->save_wait(acc, newer);
    }};
    std::thread y{[&] {
      start.arrive_and_wait();
      b = f.stores.other_snapshots->save_wait(acc, older);
    }};
    x.join();
    y.join();
    CHECK_MESSAGE(a, (a ? "" : a.error().to_string()));
    CHECK_MESSAGE(b, (b ? "" : b.error().to_string()));
    auto kept = f.stores.snapshots->load_wait(acc);
    REQUIRE(kept);
    REQUIRE(kept->has_value());
    CHECK(((*kept)->version == 6 || (*kept)->version == 2));
    stale_kept += (*kept)->version == 2 ? 1 : 0;
    typename bank_fixture<r3_stores>::node n{f.persistence(0)};
    CHECK(*n.template ask<std::int64_t>(acc, bank::balance{}) == total);
    CHECK(*n.template ask<std::uint64_t>(acc, bank::current_version{}) == 6);
  }
  MESSAGE("the older snapshot was kept in " << stale_kept << " of " << trials << " races");
}

namespace {

struct fail_now {};

/// An account whose `fail_now` handler throws.
class fragile_account : public bank::account {
public:
  fragile_account() {
    on([](const fail_now&) -> std::int64_t { throw std::runtime_error{"a bug in a handler"}; });
  }
};

} // namespace

TEST_CASE("an event-sourced actor under each supervision policy keeps what was stored") {
  for (const auto policy : {aether::supervision::resume, aether::supervision::restart, aether::supervision::stop}) {
    CAPTURE(static_cast<int>(policy));
    test::memory_stores stores;
    auto p = std::make_shared<aether::persistence>();
    p->events = stores.events;
    p->snapshots = stores.snapshots;
    aether::thread_pool_executor pool{2, 4};
    aether::actor_system system{aether::system_config{}, pool};
    aether::actor_options o;
    o.on_failure = policy;
    o.restart.min_backoff = 10ms;
    aether::register_event_sourced<fragile_account>(system, "account", p, o);
    const actor_id acc{"account", "fragile"};
    REQUIRE(*system.ask<std::int64_t>(acc, bank::deposit{5}, 30s).get() == 5);
    REQUIRE(*system.ask<std::int64_t>(acc, bank::deposit{2}, 30s).get() == 7);
    auto failed = system.ask<std::int64_t>(acc, fail_now{}, 30s).get();
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code() == errc::handler_failed);
    // Resumed, restarted from the store, or activated again by the next
    // message: the state is what was stored, and the next write goes on from it.
    CHECK(*system.ask<std::int64_t>(acc, bank::balance{}, 30s).get() == 7);
    CHECK(*system.ask<std::int64_t>(acc, bank::deposit{1}, 30s).get() == 8);
    CHECK(*system.ask<std::uint64_t>(acc, bank::current_version{}, 30s).get() == 3);
    CHECK(system.metrics().restarts == (policy == aether::supervision::restart ? 1u : 0u));
    aether::close_and_join(system, pool);
  }
}
