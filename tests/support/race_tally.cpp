#include "support/race_tally.hpp"

#include <fmt/format.h>

#include <charconv>
#include <set>

namespace aether::testing {
namespace {

std::optional<std::uint64_t> number(std::string_view text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::string describe(const std::optional<write_outcome>& o) { return o ? o->to_line() : std::string{"(no answer)"}; }

} // namespace

std::string write_outcome::to_line() const {
  switch (what) {
  case kind::won:
    return fmt::format("win {}", version);
  case kind::conflict:
    return fmt::format("conflict {}", version);
  case kind::failed:
    return fmt::format("error {}", detail);
  case kind::no_answer:
    break;
  }
  return "(no answer)";
}

write_outcome write_outcome::from_line(std::string_view line) {
  write_outcome o;
  const auto space = line.find(' ');
  const auto word = line.substr(0, space);
  const auto rest = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
  if (word == "win" || word == "conflict") {
    if (auto v = number(rest)) {
      o.what = word == "win" ? kind::won : kind::conflict;
      o.version = *v;
      return o;
    }
  }
  o.what = kind::failed;
  o.detail = word == "error" ? std::string{rest} : std::string{line};
  return o;
}

void race_tally::record(std::size_t trial, std::size_t writer, write_outcome outcome) {
  std::lock_guard lock{mutex_};
  auto& t = trials_[trial];
  t.outcomes.resize(writers_);
  t.outcomes.at(writer) = std::move(outcome);
}

void race_tally::expect_version(std::size_t trial, std::uint64_t version) {
  std::lock_guard lock{mutex_};
  auto& t = trials_[trial];
  t.outcomes.resize(writers_);
  t.expected = version;
}

void race_tally::stored(std::size_t trial, std::optional<std::size_t> writer) {
  std::lock_guard lock{mutex_};
  auto& t = trials_[trial];
  t.outcomes.resize(writers_);
  t.checked_store = true;
  t.stored_writer = writer;
}

std::vector<std::string> race_tally::problems() const {
  std::lock_guard lock{mutex_};
  std::vector<std::string> out;
  for (const auto& [n, t] : trials_) {
    std::vector<std::string> seen;
    std::optional<std::size_t> winner;
    int winners = 0;
    for (std::size_t w = 0; w < t.outcomes.size(); ++w) {
      seen.push_back(describe(t.outcomes[w]));
      if (t.outcomes[w] && t.outcomes[w]->what == write_outcome::kind::won) {
        ++winners;
        winner = w;
      }
    }
    std::vector<std::string> wrong;
    if (winners != 1) wrong.push_back(fmt::format("{} winners", winners));
    if (winners == 1) {
      const auto version = t.outcomes[*winner]->version;
      if (t.expected && version != *t.expected) wrong.push_back(fmt::format("won at {}, not {}", version, *t.expected));
      for (std::size_t w = 0; w < t.outcomes.size(); ++w) {
        if (w == *winner) continue;
        const auto& o = t.outcomes[w];
        if (!o || o->what != write_outcome::kind::conflict) {
          wrong.push_back(fmt::format("writer {} did not get a conflict", w));
        } else if (o->version != version) {
          wrong.push_back(fmt::format("writer {} was told version {}, the winner stored {}", w, o->version, version));
        }
      }
      if (t.checked_store && t.stored_writer != winner) {
        wrong.push_back(t.stored_writer ? fmt::format("the store holds writer {}'s event", *t.stored_writer)
                                        : std::string{"the store holds no winner's event"});
      }
    }
    if (!wrong.empty()) {
      out.push_back(fmt::format("trial {}: {} ({})", n, fmt::join(seen, " / "), fmt::join(wrong, "; ")));
    }
  }
  return out;
}

std::size_t race_tally::trials() const {
  std::lock_guard lock{mutex_};
  return trials_.size();
}

std::size_t race_tally::wins(std::size_t writer) const {
  std::lock_guard lock{mutex_};
  std::size_t n = 0;
  for (const auto& [k, t] : trials_) {
    if (writer < t.outcomes.size() && t.outcomes[writer] && t.outcomes[writer]->what == write_outcome::kind::won) ++n;
  }
  return n;
}

bool race_tally::every_writer_won() const {
  for (std::size_t w = 0; w < writers_; ++w) {
    if (wins(w) == 0) return false;
  }
  return true;
}

std::string race_tally::summary() const {
  std::vector<std::size_t> w;
  for (std::size_t i = 0; i < writers_; ++i) w.push_back(wins(i));
  return fmt::format("wins per writer: {} of {} trials", fmt::join(w, " / "), trials());
}

void write_history::invoke(const std::string& id, std::string writer, std::uint64_t version) {
  std::lock_guard lock{mutex_};
  auto& o = ops_[id];
  o.writer = std::move(writer);
  o.version = version;
}

void write_history::complete(const std::string& id, result r, std::uint64_t version, std::string detail) {
  std::lock_guard lock{mutex_};
  auto& o = ops_[id];
  o.outcome = r;
  if (r == result::ok) o.version = version;
  o.detail = std::move(detail);
}

std::vector<std::string> write_history::check(const std::vector<stored_event>& stored) const {
  std::lock_guard lock{mutex_};
  std::vector<std::string> out;
  std::map<std::string, std::vector<std::uint64_t>> found;
  std::set<std::uint64_t> versions;
  for (const auto& e : stored) {
    found[e.id].push_back(e.version);
    if (!versions.insert(e.version).second) out.push_back(fmt::format("version {} is stored twice", e.version));
  }
  for (const auto& [id, o] : ops_) {
    const auto it = found.find(id);
    const std::size_t copies = it == found.end() ? 0 : it->second.size();
    const auto r = o.outcome.value_or(result::unknown);
    if (r == result::ok) {
      if (copies != 1) {
        out.push_back(
            fmt::format("{}'s acknowledged write {} (version {}) is stored {} times", o.writer, id, o.version, copies));
      } else if (it->second.front() != o.version) {
        out.push_back(fmt::format("{}'s write {} was acknowledged at version {} but is stored at {}", o.writer, id,
                                  o.version, it->second.front()));
      }
    } else if (r == result::failed && copies != 0) {
      out.push_back(fmt::format("{}'s write {} was reported not stored ({}) but is there", o.writer, id, o.detail));
    } else if (copies > 1) {
      out.push_back(fmt::format("{}'s write {} is stored {} times", o.writer, id, copies));
    }
  }
  for (const auto& [id, v] : found) {
    if (!ops_.contains(id)) out.push_back(fmt::format("event {} (version {}) was written by nobody", id, v.front()));
  }
  return out;
}

std::size_t write_history::count(result r) const {
  std::lock_guard lock{mutex_};
  std::size_t n = 0;
  for (const auto& [id, o] : ops_) n += o.outcome.value_or(result::unknown) == r ? 1 : 0;
  return n;
}

std::size_t write_history::size() const {
  std::lock_guard lock{mutex_};
  return ops_.size();
}

} // namespace aether::testing
