#pragma once

// The checker of the bank workload: a Jepsen-style history of operations on
// event-sourced accounts, each ok, failed or unknown, held against what the
// event store holds of every account afterwards.
//
// Operations. A deposit puts money into one account. A transfer is two
// operations with ids of their own: a withdrawal from one account, then,
// only once that was acknowledged, a deposit into another (its `transfer`
// names the withdrawal). Each operation's event carries the operation's id,
// so the store says exactly which operations took effect.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bank_check {

enum class op_kind { deposit, withdraw, transfer_in };
enum class outcome { ok, failed, unknown };

[[nodiscard]] std::string_view to_string(op_kind k) noexcept;
[[nodiscard]] std::string_view to_string(outcome o) noexcept;

/// One operation as its client saw it.
struct operation {
  std::string id; ///< unique; the id its event carries
  op_kind kind = op_kind::deposit;
  std::string account;
  std::int64_t cents = 0;
  /// A transfer's deposit: the id of the withdrawal it follows; else empty.
  std::string transfer{};
  /// Nothing: invoked and never answered (its node died): unknown.
  std::optional<outcome> result{};
  std::uint64_t version = 0; ///< ok: the version acknowledged
  std::int64_t balance = 0;  ///< ok: the balance acknowledged
  std::string detail{};      ///< failed or unknown: the error
};

/// One event of an account's stream, as read back from the store.
struct stored_event {
  std::uint64_t version = 0;
  bool withdrawal = false; ///< a `withdrawn` event; else `deposited`
  std::string op;          ///< the operation id it carries
  std::int64_t cents = 0;
};

/// What the store and the actors hold of one account at the end.
struct account_view {
  std::vector<stored_event> events; ///< in the order read
  /// The balance and version the account's actor answered at the end, if asked.
  std::optional<std::int64_t> balance{};
  std::optional<std::uint64_t> version{};
};

/// The verdict: one line per violated rule, and the counts to print.
struct report {
  std::vector<std::string> problems;
  /// ok / failed / unknown per operation kind.
  std::map<op_kind, std::map<outcome, std::size_t>> counts;
  std::size_t unknown_stored = 0; ///< unknowns that took effect
  std::size_t stored_events = 0;
  [[nodiscard]] std::string summary() const;
};

/// The rules, over every account of `accounts`:
/// - versions are 1..n, each stored once (no version twice, no gap);
/// - every stored event names an operation that was invoked, on its account,
///   of its kind and amount, and no operation is stored twice;
/// - an ok operation is stored once, at the version acknowledged, and the
///   fold of the stream up to that version is the balance acknowledged;
/// - a failed operation is not stored; an unknown one is stored once or not;
/// - a transfer's deposit is stored only if its withdrawal is, of the same amount;
/// - the fold never goes below zero (withdrawals are refused past the balance);
/// - the balance and version an actor answered at the end are its stream's fold and length.
/// Operations of accounts missing from `accounts` count as not stored.
[[nodiscard]] report check(const std::vector<operation>& history, const std::map<std::string, account_view>& accounts);

/// Reads a history line a node writes (see bank_node.cpp) into `ops`:
///   inv <id> <kind> <account> <cents> [<transfer>]
///   ok <id> <version> <balance>
///   fail <id> <errc>     (certainly not stored)
///   unk <id> <errc>      (may be stored)
/// Returns false for a line that is not of the protocol (a line cut short
/// by a kill is ignored by the caller).
bool take_line(std::string_view line, std::map<std::string, operation>& ops);

} // namespace bank_check
