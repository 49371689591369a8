#pragma once

// An event-sourced actor for the state-fold tests, and its history folded
// by hand: the reference the node's folds are checked against.

#include <aether/persistence/event_sourced_actor.hpp>
#include <aether/runtime/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace state_test {

struct tally_state {
  std::int64_t sum = 0;
  std::int64_t count = 0;
  std::vector<std::string> labels;
};
AETHER_JSON_FIELDS(tally_state, sum, count, labels)

struct tallied {
  static constexpr std::string_view type_name = "state_test.tallied";
  std::int64_t n = 0;
  std::string label;
};
AETHER_JSON_FIELDS(tallied, n, label)

struct add {
  static constexpr std::string_view type_name = "state_test.add";
  std::int64_t n = 0;
  std::string label;
};
AETHER_JSON_FIELDS(add, n, label)

/// What the live actor holds: its state and version.
struct peek {
  static constexpr std::string_view type_name = "state_test.peek";
};
AETHER_JSON_FIELDS(peek)

struct seen {
  static constexpr std::string_view type_name = "state_test.seen";
  tally_state state;
  std::uint64_t version = 0;
};
AETHER_JSON_FIELDS(seen, state, version)

class tally : public aether::event_sourced_actor<tally_state> {
public:
  tally() {
    apply([](tally_state& s, const tallied& e) {
      s.sum += e.n;
      s.count += 1;
      s.labels.push_back(e.label);
    });
    on([this](const add& a, aether::context& ctx) {
      persist_then(
          ctx, [this](const tally_state&) { return static_cast<std::int64_t>(version()); }, tallied{a.n, a.label});
    });
    on([this](const peek&) { return seen{state(), version()}; });
  }
};

/// An actor type that is not event-sourced.
class plain : public aether::actor {
public:
  plain() {
    on([](const peek&) { return seen{}; });
  }
};

/// The state after the first `v` of `adds`, folded by hand.
inline tally_state fold_by_hand(const std::vector<add>& adds, std::uint64_t v) {
  tally_state s;
  for (std::uint64_t i = 0; i < v && i < adds.size(); ++i) {
    s.sum += adds[i].n;
    s.count += 1;
    s.labels.push_back(adds[i].label);
  }
  return s;
}

/// The `i`-th command of a test history (1-based): varied numbers, labels
/// that need escaping.
inline add nth_add(std::uint64_t i) {
  return add{static_cast<std::int64_t>(i * 7 % 11) - 3, "l\"" + std::to_string(i) + "\\"};
}

} // namespace state_test
