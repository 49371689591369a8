#include "bank_checker.hpp"

#include <fmt/format.h>

#include <charconv>
#include <set>

namespace bank_check {

namespace {

template <class T>
std::optional<T> number(std::string_view text) {
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    const auto start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::optional<op_kind> kind_of(std::string_view s) {
  if (s == "deposit") return op_kind::deposit;
  if (s == "withdraw") return op_kind::withdraw;
  if (s == "transfer_in") return op_kind::transfer_in;
  return std::nullopt;
}

} // namespace

std::string_view to_string(op_kind k) noexcept {
  switch (k) {
  case op_kind::deposit:
    return "deposit";
  case op_kind::withdraw:
    return "withdraw";
  case op_kind::transfer_in:
    return "transfer_in";
  }
  return "?";
}

std::string_view to_string(outcome o) noexcept {
  switch (o) {
  case outcome::ok:
    return "ok";
  case outcome::failed:
    return "failed";
  case outcome::unknown:
    return "unknown";
  }
  return "?";
}

std::string report::summary() const {
  std::string out;
  for (const auto& [kind, by] : counts) {
    auto at = [&](outcome o) {
      auto it = by.find(o);
      return it == by.end() ? std::size_t{0} : it->second;
    };
    out += fmt::format("{}{}: {} ok, {} failed, {} unknown", out.empty() ? "" : "; ", to_string(kind), at(outcome::ok),
                       at(outcome::failed), at(outcome::unknown));
  }
  out += fmt::format("; {} events stored, {} unknowns took effect", stored_events, unknown_stored);
  return out;
}

report check(const std::vector<operation>& history, const std::map<std::string, account_view>& accounts) {
  report r;
  std::map<std::string, const operation*> by_id;
  for (const auto& op : history) {
    if (!by_id.emplace(op.id, &op).second) r.problems.push_back(fmt::format("operation {} invoked twice", op.id));
    ++r.counts[op.kind][op.result.value_or(outcome::unknown)];
  }

  struct placed {
    std::string account;
    std::uint64_t version = 0;
    std::int64_t balance_after = 0;
    std::int64_t cents = 0;
  };
  std::map<std::string, std::vector<placed>> stored; // operation id -> where it is stored
  for (const auto& [account, view] : accounts) {
    std::set<std::uint64_t> versions;
    std::int64_t balance = 0;
    for (const auto& e : view.events) {
      ++r.stored_events;
      if (!versions.insert(e.version).second) {
        r.problems.push_back(fmt::format("{}: version {} is stored twice", account, e.version));
      }
      balance += e.withdrawal ? -e.cents : e.cents;
      if (balance < 0) {
        r.problems.push_back(fmt::format("{}: the balance is {} after version {}", account, balance, e.version));
      }
      stored[e.op].push_back({account, e.version, balance, e.cents});
      auto it = by_id.find(e.op);
      if (it == by_id.end()) {
        r.problems.push_back(fmt::format("{}: version {} holds {}, which nobody invoked", account, e.version, e.op));
        continue;
      }
      const auto& op = *it->second;
      const bool withdrawal = op.kind == op_kind::withdraw;
      if (op.account != account || withdrawal != e.withdrawal || op.cents != e.cents) {
        r.problems.push_back(fmt::format("{}: version {} holds {} as {} {} cents; it was a {} of {} cents on {}",
                                         account, e.version, e.op, e.withdrawal ? "a withdrawal of" : "a deposit of",
                                         e.cents, to_string(op.kind), op.cents, op.account));
      }
    }
    // Versions 1..n with no gap (a gap would also shift every fold).
    std::uint64_t expect = 1;
    for (auto v : versions) {
      if (v != expect) {
        r.problems.push_back(fmt::format("{}: version {} is missing (next stored: {})", account, expect, v));
        break;
      }
      ++expect;
    }
    if (view.balance && *view.balance != balance) {
      r.problems.push_back(fmt::format("{}: the actor answered balance {}, the fold of its stream is {}", account,
                                       *view.balance, balance));
    }
    if (view.version && *view.version != view.events.size()) {
      r.problems.push_back(fmt::format("{}: the actor answered version {}, its stream holds {} events", account,
                                       *view.version, view.events.size()));
    }
  }

  for (const auto& op : history) {
    auto it = stored.find(op.id);
    const std::size_t times = it == stored.end() ? 0 : it->second.size();
    const auto result = op.result.value_or(outcome::unknown);
    if (times > 1) {
      r.problems.push_back(
          fmt::format("{} ({} {}) is stored {} times", op.id, to_string(op.kind), to_string(result), times));
    }
    switch (result) {
    case outcome::ok:
      if (times == 0) {
        r.problems.push_back(fmt::format("{} ({} of {} on {}) was acknowledged at version {} but is not stored", op.id,
                                         to_string(op.kind), op.cents, op.account, op.version));
      } else if (times == 1) {
        const auto& p = it->second.front();
        if (p.version != op.version) {
          r.problems.push_back(fmt::format("{} was acknowledged at version {} of {}, stored at version {}", op.id,
                                           op.version, op.account, p.version));
        } else if (p.balance_after != op.balance) {
          r.problems.push_back(fmt::format("{} acknowledged balance {} at version {} of {}; the fold there is {}",
                                           op.id, op.balance, op.version, op.account, p.balance_after));
        }
      }
      break;
    case outcome::failed:
      if (times > 0) {
        r.problems.push_back(fmt::format("{} failed ({}) but is stored at version {} of {}", op.id, op.detail,
                                         it->second.front().version, it->second.front().account));
      }
      break;
    case outcome::unknown:
      if (times == 1) ++r.unknown_stored;
      break;
    }
    if (op.kind == op_kind::transfer_in && times > 0) {
      auto w = by_id.find(op.transfer);
      auto ws = stored.find(op.transfer);
      if (w == by_id.end() || ws == stored.end()) {
        r.problems.push_back(
            fmt::format("transfer deposit {} is stored, its withdrawal {} is not", op.id, op.transfer));
      } else if (w->second->cents != op.cents) {
        r.problems.push_back(fmt::format("transfer deposit {} of {} cents follows withdrawal {} of {}", op.id, op.cents,
                                         op.transfer, w->second->cents));
      }
    }
  }
  return r;
}

bool take_line(std::string_view line, std::map<std::string, operation>& ops) {
  const auto w = split(line);
  if (w.empty()) return false;
  if (w[0] == "inv") {
    if (w.size() != 5 && w.size() != 6) return false;
    const auto kind = kind_of(w[2]);
    const auto cents = number<std::int64_t>(w[4]);
    if (!kind || !cents) return false;
    operation op;
    op.id = std::string{w[1]};
    op.kind = *kind;
    op.account = std::string{w[3]};
    op.cents = *cents;
    if (w.size() == 6) op.transfer = std::string{w[5]};
    return ops.emplace(op.id, std::move(op)).second;
  }
  auto it = ops.find(std::string{w.size() > 1 ? w[1] : std::string_view{}});
  if (it == ops.end() || it->second.result) return false;
  auto& op = it->second;
  if (w[0] == "ok" && w.size() == 4) {
    const auto version = number<std::uint64_t>(w[2]);
    const auto balance = number<std::int64_t>(w[3]);
    if (!version || !balance) return false;
    op.result = outcome::ok;
    op.version = *version;
    op.balance = *balance;
    return true;
  }
  if ((w[0] == "fail" || w[0] == "unk") && w.size() >= 3) {
    op.result = w[0] == "fail" ? outcome::failed : outcome::unknown;
    op.detail = std::string{line.substr(static_cast<std::size_t>(w[2].data() - line.data()))};
    return true;
  }
  return false;
}

} // namespace bank_check
