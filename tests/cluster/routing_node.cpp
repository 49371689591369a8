// A node process for the routing tests, driven by commands on stdin, one
// answer line on stdout per command:
//
//   serving <node> <owned shards>      once it serves and every one of the
//                                      <expect> nodes named by AETHER_EXPECT_NODES is in its map
//   where <key>         -> here | remote <owner node> | none
//   ask <key> <what> [arg]  -> ok <reply> | err <errc> <value>
//                              (ask_via <key2>: the account asks <key2> itself)
//   tell <key> <what> [arg] -> sent | err <errc> <value>
//
// `what` names a message of the account actor below; keys are account keys.
#include <aether/aether.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace rt {

std::string this_node; // set once at start

struct deposit {
  static constexpr std::string_view type_name = "rt.deposit";
  std::int64_t cents = 0;
};
AETHER_JSON_FIELDS(deposit, cents)

struct balance {
  static constexpr std::string_view type_name = "rt.balance";
  std::int64_t cents = 0;
  std::string node;
};
AETHER_JSON_FIELDS(balance, cents, node)

struct get_balance {
  static constexpr std::string_view type_name = "rt.get_balance";
};
AETHER_JSON_FIELDS(get_balance)

/// Answered with a version_conflict carrying a version, as a store refusal is.
struct conflicting_write {
  static constexpr std::string_view type_name = "rt.conflicting_write";
};
AETHER_JSON_FIELDS(conflicting_write)

/// A declared type no actor handles.
struct unhandled {
  static constexpr std::string_view type_name = "rt.unhandled";
};
AETHER_JSON_FIELDS(unhandled)

/// A type with no wire form.
struct plain_get {};

struct ping_via {
  static constexpr std::string_view type_name = "rt.ping_via";
  std::string target;
};
AETHER_JSON_FIELDS(ping_via, target)

/// Asks another account for a deposit of 1 and answers with its reply.
struct ask_via {
  static constexpr std::string_view type_name = "rt.ask_via";
  std::string target;
};
AETHER_JSON_FIELDS(ask_via, target)

struct ping {
  static constexpr std::string_view type_name = "rt.ping";
};
AETHER_JSON_FIELDS(ping)

struct pong {
  static constexpr std::string_view type_name = "rt.pong";
  std::string node;
  std::string from;
};
AETHER_JSON_FIELDS(pong, node, from)

struct get_pongs {
  static constexpr std::string_view type_name = "rt.get_pongs";
};
AETHER_JSON_FIELDS(get_pongs)

struct text_list {
  static constexpr std::string_view type_name = "rt.text_list";
  std::vector<std::string> items;
};
AETHER_JSON_FIELDS(text_list, items)

struct note {
  static constexpr std::string_view type_name = "rt.note";
  std::int64_t seq = 0;
};
AETHER_JSON_FIELDS(note, seq)

struct send_notes {
  static constexpr std::string_view type_name = "rt.send_notes";
  std::string target;
  std::int64_t count = 0;
};
AETHER_JSON_FIELDS(send_notes, target, count)

struct get_notes {
  static constexpr std::string_view type_name = "rt.get_notes";
};
AETHER_JSON_FIELDS(get_notes)

struct note_list {
  static constexpr std::string_view type_name = "rt.note_list";
  std::vector<std::int64_t> seqs;
  std::string node;
};
AETHER_JSON_FIELDS(note_list, seqs, node)

class account : public aether::actor {
public:
  account() {
    on([this](const deposit& d) {
      cents_ += d.cents;
      return balance{cents_, this_node};
    });
    on([this](const get_balance&) { return balance{cents_, this_node}; });
    on([this](const plain_get&) { return cents_; });
    on([](const conflicting_write&) -> aether::expected<balance> {
      return aether::error{aether::errc::version_conflict, "the store holds a newer version", 41};
    });
    // Tells `ping` to another account, which answers this one by ctx.sender().
    on([](const ping_via& p, aether::context& ctx) {
      (void)ctx.tell(aether::actor_id::parse(p.target).value(), ping{});
    });
    on([](const ask_via& a, aether::context& ctx) {
      auto promise = std::make_shared<aether::response_promise>(ctx.promise());
      ctx.ask<balance>(aether::actor_id::parse(a.target).value(), deposit{1}, std::chrono::seconds{5})
          .then([promise](const balance& b) { promise->deliver(b); },
                [promise](const aether::error& e) { promise->deliver(e); });
    });
    on([](const ping&, aether::context& ctx) { ctx.reply(pong{this_node, ctx.sender().to_string()}); });
    on([this](const pong& p) { pongs_.push_back(p.node + "<-" + p.from); });
    on([this](const get_pongs&) { return text_list{pongs_}; });
    on([](const send_notes& s, aether::context& ctx) {
      const auto to = aether::actor_id::parse(s.target).value();
      for (std::int64_t i = 1; i <= s.count; ++i) (void)ctx.tell(to, note{i});
    });
    on([this](const note& n) { notes_.push_back(n.seq); });
    on([this](const get_notes&) { return note_list{notes_, this_node}; });
  }

private:
  std::int64_t cents_ = 0;
  std::vector<std::string> pongs_;
  std::vector<std::int64_t> notes_;
};

std::string failed(const aether::error& e) { return fmt::format("err {} {}", aether::to_string(e.code()), e.value()); }

template <class R, class M, class Show>
std::string ask(aether::node& node, const aether::actor_id& id, M m, Show show) {
  auto r = node.ask<R>(id, std::move(m), std::chrono::seconds{5}).get();
  return r ? "ok " + show(*r) : failed(r.error());
}

std::string join(const std::vector<std::int64_t>& v) {
  std::string out;
  for (auto x : v) out += (out.empty() ? "" : ",") + std::to_string(x);
  return out;
}

std::string run(aether::node& node, const std::string& command) {
  std::istringstream in{command};
  std::string verb, key, what, arg;
  in >> verb >> key >> what >> arg;
  const aether::actor_id id{"account", key};
  if (verb == "where") {
    const auto view = node.cluster().snapshot();
    const auto& owner = view->map->owner(id.shard(view->shard_count));
    if (owner.empty()) return "none";
    return owner == view->self ? "here" : "remote " + owner.node;
  }
  auto show_balance = [](const balance& b) { return fmt::format("{} {}", b.cents, b.node); };
  if (verb == "ask") {
    if (what == "deposit") return ask<balance>(node, id, deposit{std::stoll(arg)}, show_balance);
    if (what == "get") return ask<balance>(node, id, get_balance{}, show_balance);
    if (what == "ask_via") return ask<balance>(node, id, ask_via{"default/account/" + arg}, show_balance);
    if (what == "conflict") return ask<balance>(node, id, conflicting_write{}, show_balance);
    if (what == "unhandled") return ask<balance>(node, id, unhandled{}, show_balance);
    if (what == "plain")
      return ask<std::int64_t>(node, id, plain_get{}, [](std::int64_t c) { return std::to_string(c); });
    if (what == "pongs") {
      return ask<text_list>(node, id, get_pongs{}, [](const text_list& l) {
        std::string out;
        for (const auto& s : l.items) out += (out.empty() ? "" : ",") + s;
        return out.empty() ? std::string{"-"} : out;
      });
    }
    if (what == "notes") {
      return ask<note_list>(node, id, get_notes{}, [](const note_list& l) { return l.node + " " + join(l.seqs); });
    }
  }
  if (verb == "tell") {
    aether::expected<void> sent;
    if (what == "ping_via") {
      sent = node.tell(id, ping_via{"default/account/" + arg});
    } else if (what == "send_notes") {
      // arg: target:count
      const auto colon = arg.find(':');
      sent = node.tell(id, send_notes{"default/account/" + arg.substr(0, colon), std::stoll(arg.substr(colon + 1))});
    } else if (what == "notes") {
      // Notes 1..arg straight from outside, one tell each.
      for (std::int64_t i = 1; i <= std::stoll(arg) && sent; ++i) sent = node.tell(id, note{i});
    } else if (what == "plain") {
      sent = node.tell(id, plain_get{});
    } else {
      return "err unknown_command 0";
    }
    return sent ? "sent" : failed(sent.error());
  }
  return "err unknown_command 0";
}

} // namespace rt

int main() {
  auto cfg = aether::node_config::from_env();
  if (!cfg) {
    std::printf("error %s\n", cfg.error().to_string().c_str());
    return 3;
  }
  cfg->threads = 2;
  cfg->system.shard_count = 4;
  cfg->handle_signals = false;
  const auto expect = static_cast<std::size_t>(
      std::atoi(std::getenv("AETHER_EXPECT_NODES") ? std::getenv("AETHER_EXPECT_NODES") : "1"));
  try {
    aether::node node{*cfg};
    node.register_actor<rt::account>("account");
    rt::this_node = node.cluster().snapshot()->self.node;
    // Ready once serving, with a map that gives every expected node shards.
    {
      // Shared with the watch, whose last callback may still run as it ends.
      struct signal {
        std::mutex m;
        std::condition_variable cv;
      };
      auto changed = std::make_shared<signal>();
      auto ready = [expect](const aether::cluster_snapshot& s) {
        std::vector<aether::member_id> owners;
        for (const auto& o : s.map->owners()) {
          if (!o.empty() && std::find(owners.begin(), owners.end(), o) == owners.end()) owners.push_back(o);
        }
        return s.serving && owners.size() == expect;
      };
      auto watch = node.cluster().watch([changed](const aether::cluster_snapshot&) {
        { std::lock_guard lock{changed->m}; }
        changed->cv.notify_all();
      });
      std::unique_lock lock{changed->m};
      changed->cv.wait_for(lock, std::chrono::seconds{30}, [&] { return ready(*node.cluster().snapshot()); });
      const auto view = node.cluster().snapshot();
      std::printf("serving %s %zu\n", rt::this_node.c_str(), view->owned_shards.size());
      std::fflush(stdout);
    }
    std::string command;
    while (std::getline(std::cin, command)) {
      if (command == "quit") break;
      std::printf("%s\n", rt::run(node, command).c_str());
      std::fflush(stdout);
    }
    node.stop();
    return 0;
  } catch (const aether::startup_error& e) {
    std::printf("error %s\n", e.what());
    return 3;
  }
}
