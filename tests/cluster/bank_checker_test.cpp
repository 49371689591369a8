// The bank workload's checker, on hand-made histories: a correct one passes,
// and each kind of broken one is named.
#include "cluster/bank_checker.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

using namespace bank_check;

namespace {

operation op(std::string id, op_kind kind, std::string account, std::int64_t cents, std::optional<outcome> result,
             std::uint64_t version = 0, std::int64_t balance = 0, std::string transfer = {}) {
  operation o;
  o.id = std::move(id);
  o.kind = kind;
  o.account = std::move(account);
  o.cents = cents;
  o.result = result;
  o.version = version;
  o.balance = balance;
  o.transfer = std::move(transfer);
  return o;
}

stored_event dep(std::uint64_t v, std::string id, std::int64_t cents) { return {v, false, std::move(id), cents}; }
stored_event wd(std::uint64_t v, std::string id, std::int64_t cents) { return {v, true, std::move(id), cents}; }

/// A correct run: a deposits 10 and 5, transfers 4 to b (both legs ok), a
/// failed withdrawal, an unknown deposit that took effect and one that did not.
struct fixture {
  std::vector<operation> history{
      op("d1", op_kind::deposit, "a", 10, outcome::ok, 1, 10),
      op("d2", op_kind::deposit, "a", 5, outcome::ok, 2, 15),
      op("t1", op_kind::withdraw, "a", 4, outcome::ok, 3, 11),
      op("t1.in", op_kind::transfer_in, "b", 4, outcome::ok, 1, 4, "t1"),
      op("w9", op_kind::withdraw, "b", 100, outcome::failed),
      op("u1", op_kind::deposit, "b", 7, outcome::unknown),
      op("u2", op_kind::deposit, "b", 3, std::nullopt), // its node died before it answered
  };
  std::map<std::string, account_view> accounts{
      {"a", {{dep(1, "d1", 10), dep(2, "d2", 5), wd(3, "t1", 4)}, 11, 3}},
      {"b", {{dep(1, "t1.in", 4), dep(2, "u1", 7)}, 11, 2}},
  };

  [[nodiscard]] std::vector<std::string> problems() const { return check(history, accounts).problems; }
};

bool mentions(const std::vector<std::string>& problems, const std::string& text) {
  return std::any_of(problems.begin(), problems.end(),
                     [&](const std::string& p) { return p.find(text) != std::string::npos; });
}

} // namespace

TEST_CASE("a correct bank history passes, with its counts") {
  fixture f;
  const auto r = check(f.history, f.accounts);
  CHECK(r.problems.empty());
  CHECK(r.counts.at(op_kind::deposit).at(outcome::ok) == 2);
  CHECK(r.counts.at(op_kind::deposit).at(outcome::unknown) == 2);
  CHECK(r.counts.at(op_kind::withdraw).at(outcome::failed) == 1);
  CHECK(r.unknown_stored == 1);
  CHECK(r.stored_events == 5);
}

TEST_CASE("a lost acknowledged deposit fails the check") {
  fixture f;
  f.accounts["a"] = {{dep(1, "d1", 10), wd(2, "t1", 4)}, std::nullopt, std::nullopt};
  const auto p = f.problems();
  CHECK(mentions(p, "d2 (deposit of 5 on a) was acknowledged at version 2 but is not stored"));
}

TEST_CASE("a deposit stored twice fails the check") {
  fixture f;
  f.accounts["a"].events.push_back(dep(4, "d2", 5));
  f.accounts["a"].balance = 16;
  f.accounts["a"].version = 4;
  CHECK(mentions(f.problems(), "d2 (deposit ok) is stored 2 times"));
}

TEST_CASE("an acknowledged balance that is not the fold of the stream fails the check") {
  fixture f;
  f.history[2].balance = 12; // the withdrawal acknowledged a balance the stream does not make
  CHECK(mentions(f.problems(), "t1 acknowledged balance 12 at version 3 of a; the fold there is 11"));
}

TEST_CASE("a final balance that is not the fold of the stream fails the check") {
  fixture f;
  f.accounts["b"].balance = 4;
  CHECK(mentions(f.problems(), "b: the actor answered balance 4, the fold of its stream is 11"));
  fixture g;
  g.accounts["b"].version = 1;
  CHECK(mentions(g.problems(), "b: the actor answered version 1, its stream holds 2 events"));
}

TEST_CASE("a version stored twice fails the check") {
  fixture f;
  f.history.push_back(op("u3", op_kind::deposit, "b", 1, outcome::unknown));
  f.accounts["b"].events.push_back(dep(2, "u3", 1));
  f.accounts["b"].balance = 12;
  f.accounts["b"].version = std::nullopt;
  CHECK(mentions(f.problems(), "b: version 2 is stored twice"));
}

TEST_CASE("an unknown operation stored twice fails the check, once, either way, passes") {
  fixture f;
  f.accounts["b"].events.push_back(dep(3, "u1", 7));
  f.accounts["b"].balance = 18;
  f.accounts["b"].version = 3;
  CHECK(mentions(f.problems(), "u1 (deposit unknown) is stored 2 times"));
  fixture once;
  once.accounts["b"].events.push_back(dep(3, "u2", 3));
  once.accounts["b"].balance = 14;
  once.accounts["b"].version = 3;
  CHECK(once.problems().empty());
}

TEST_CASE("a failed operation that is stored, and a version gap, fail the check") {
  fixture f;
  f.accounts["b"].events.push_back(wd(3, "w9", 100));
  const auto p = f.problems();
  CHECK(mentions(p, "w9 failed"));
  CHECK(mentions(p, "b: the balance is -89 after version 3"));
  fixture g;
  g.accounts["a"].events[2].version = 4;
  CHECK(mentions(g.problems(), "a: version 3 is missing"));
}

TEST_CASE("a transfer deposit without its withdrawal, or an event nobody invoked, fails the check") {
  fixture f;
  f.accounts["a"] = {{dep(1, "d1", 10), dep(2, "d2", 5)}, std::nullopt, std::nullopt};
  f.history[2].result = outcome::unknown;
  CHECK(mentions(f.problems(), "transfer deposit t1.in is stored, its withdrawal t1 is not"));
  fixture g;
  g.accounts["b"].events.push_back(dep(3, "x1", 2));
  g.accounts["b"].balance = std::nullopt;
  g.accounts["b"].version = std::nullopt;
  CHECK(mentions(g.problems(), "b: version 3 holds x1, which nobody invoked"));
  fixture h;
  h.accounts["b"].events[1].cents = 8; // u1 stored with another amount
  h.accounts["b"].balance = 12;
  CHECK(mentions(h.problems(), "it was a deposit of 7 cents on b"));
}

TEST_CASE("history lines of the node protocol are read into operations") {
  std::map<std::string, operation> ops;
  CHECK(take_line("inv n1-0-1 deposit acct-3 7", ops));
  CHECK(take_line("inv n1-0-2 transfer_in acct-4 2 n1-0-0", ops));
  CHECK(take_line("inv n1-0-3 withdraw acct-4 2", ops));
  CHECK(take_line("ok n1-0-1 12 40", ops));
  CHECK(take_line("unk n1-0-2 timeout the ask timed out", ops));
  CHECK(take_line("fail n1-0-3 invalid_argument insufficient funds", ops));
  CHECK_FALSE(take_line("ok n1-0-1 13 41", ops)); // answered once
  CHECK_FALSE(take_line("ok n9-0-1 1 1", ops));   // never invoked
  CHECK_FALSE(take_line("inv n1-0-4 deposit acct", ops));
  CHECK_FALSE(take_line("ok n1-0", ops));
  CHECK(ops.at("n1-0-1").result == outcome::ok);
  CHECK(ops.at("n1-0-1").version == 12);
  CHECK(ops.at("n1-0-1").balance == 40);
  CHECK(ops.at("n1-0-2").transfer == "n1-0-0");
  CHECK(ops.at("n1-0-2").result == outcome::unknown);
  CHECK(ops.at("n1-0-2").detail == "timeout the ask timed out");
  CHECK(ops.at("n1-0-3").result == outcome::failed);
}
