#pragma once

// Messages and actors shared by the actor tests.

#include <aether/actors/actor.hpp>
#include <aether/actors/actor_system.hpp>
#include <aether/runtime/manual_executor.hpp>

#include <doctest/doctest.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace test {

struct add {
  int amount;
};
struct get {};
struct boom {
  std::string why;
};
struct remember {
  int sender;
  int seq;
};
struct history {};

/// Counts; replies to `get` with its total; throws on `boom`.
class counter : public aether::actor {
public:
  counter() {
    on([this](const add& a) { total_ += a.amount; });
    on([this](const get&) { return total_; });
    on([](const boom& b) -> int { throw std::runtime_error{b.why}; });
  }
  int total_ = 0;
};

/// Records (sender, seq) pairs; replies with them to `history`.
class recorder : public aether::actor {
public:
  recorder() {
    on([this](const remember& r) { seen_.push_back(r); });
    on([this](const history&) { return seen_; });
  }
  std::vector<remember> seen_;
};

/// A deterministic system: one thread, a manual clock.
struct manual_fixture {
  aether::manual_executor exec{4}; // declared first: the system runs on it
  aether::actor_system system;

  explicit manual_fixture(aether::system_config cfg = small_config()) : system{std::move(cfg), exec} { exec.run(); }

  static aether::system_config small_config() {
    aether::system_config c;
    c.shard_count = 4;
    c.idle_timeout = std::chrono::seconds{60};
    return c;
  }

  /// Runs an external ask to completion on the manual executor.
  template <class R, class M>
  aether::expected<R> ask(const aether::actor_id& to, M m,
                          std::chrono::milliseconds timeout = std::chrono::seconds{5}) {
    auto p = system.ask<R>(to, std::move(m), timeout);
    std::optional<aether::expected<R>> out;
    p.then([&](aether::expected<R> r) { out.emplace(std::move(r)); });
    exec.run();
    if (!out) {
      exec.advance(timeout);
      exec.run();
    }
    REQUIRE(out.has_value());
    return std::move(*out);
  }
};

} // namespace test
