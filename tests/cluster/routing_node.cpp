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
//   lwhere <key>                       -> as where, for the ledger <key>
//   ledger <key> deposit <n> | get     -> ok <balance> <node> | err <errc> <value> (ask, 2 s)
//   versions <key>                     -> the versions of the ledger's stored events, in order
//   stream <key> <from> <count> <ms>   -> started: a thread tells note 1..count from <from>
//                                         to ledger <key>, one every <ms> ms (each one an event)
//   notes_of <key> <from>              -> ok <node> <seqs> (the ledger's notes from <from>, in order)
//   load <keys> <ms> / load_stop       -> started / ok <n> failed <n> [<first error>]: a thread asks
//                                         ledger deposits of 1 round-robin over <keys> keys (timeout 5 s)
//   spray <prefix> <keys> <from> <count> <ms> [<type>]
//                                      -> started: a thread tells note 1..count from <from> to each of
//                                         the actors <prefix>0..<prefix><keys-1> of <type> (ledger, or
//                                         tally) (round i tells note i to every one of them), pausing
//                                         <ms> ms after each round
//   leads                              -> yes | no: whether this node leads the cluster now
//   spray_wait                         -> ok <sent> failed <n> [<first error>], once every spray ended
//   tallied                            -> how many notes this node's tally actors handled
//   served                             -> yes | no <shard>: whether every shard this node owns in its
//                                         newest map is served here (an ask to an account of each is
//                                         answered here within 1 s)
//
// `what` names a message of the account actor below; keys are account keys.
//
// A `tally` actor keeps nothing: it appends each note it handles to the file
// $AETHER_TALLY_FILE as "<steady clock ns> <key> <from> <seq>" (closed when
// the process ends), so that what every node handled can be merged in order.
#include "wire_messages.hpp"

#include <aether/aether.hpp>

#include <fmt/format.h>

#include <aether/persistence/event_sourced_actor.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace rt {

// Set before the node starts its threads, which read it without a lock.
std::string this_node;

using namespace wire;

struct get_notes_of {
  static constexpr std::string_view type_name = "rt.get_notes_of";
  std::string from;
};
AETHER_JSON_FIELDS(get_notes_of, from)

/// A type with no wire form.
struct plain_get {};

struct ledger_state {
  std::int64_t cents = 0;
  std::map<std::string, std::vector<std::int64_t>> notes; // by sender, in arrival order
};
AETHER_JSON_FIELDS(ledger_state, cents, notes)

struct noted {
  static constexpr std::string_view type_name = "rt.noted";
  std::int64_t seq = 0;
  std::string from;
};
AETHER_JSON_FIELDS(noted, seq, from)

struct deposited {
  static constexpr std::string_view type_name = "rt.deposited";
  std::int64_t cents = 0;
};
AETHER_JSON_FIELDS(deposited, cents)

/// An event-sourced account: its state survives its node.
class ledger : public aether::event_sourced_actor<ledger_state> {
public:
  ledger() {
    apply([](ledger_state& s, const deposited& e) { s.cents += e.cents; });
    apply([](ledger_state& s, const noted& e) { s.notes[e.from].push_back(e.seq); });
    on([this](const note& n, aether::context& ctx) { persist(ctx, noted{n.seq, n.from}); });
    on([this](const get_notes_of& g) {
      auto it = state().notes.find(g.from);
      return note_list{it == state().notes.end() ? std::vector<std::int64_t>{} : it->second, this_node};
    });
    on([this](const deposit& d, aether::context& ctx) {
      persist_then(
          ctx,
          [](const ledger_state& s) {
            return balance{s.cents, this_node};
          },
          deposited{d.cents});
    });
    on([this](const get_balance&) { return balance{state().cents, this_node}; });
  }
};

/// Where tally actors record the notes they handle, one line each.
struct tally_file {
  std::mutex mutex;
  std::FILE* file = nullptr;
  std::int64_t handled = 0;
  ~tally_file() {
    if (file != nullptr) std::fclose(file);
  }
};
tally_file tallies;

class tally : public aether::actor {
public:
  tally() {
    on([](const note& n, aether::context& ctx) {
      const auto ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
              .count();
      const auto key = ctx.self().key();
      std::lock_guard lock{tallies.mutex};
      if (tallies.file == nullptr) return;
      ++tallies.handled;
      std::fprintf(tallies.file, "%lld %.*s %s %lld\n", static_cast<long long>(ns), static_cast<int>(key.size()),
                   key.data(), n.from.c_str(), static_cast<long long>(n.seq));
    });
  }
};

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
      for (std::int64_t i = 1; i <= s.count; ++i) (void)ctx.tell(to, note{i, {}});
    });
    on([this](const note& n) {
      notes_.push_back(n.seq);
      by_sender_[n.from].push_back(n.seq);
    });
    on([this](const get_notes&) { return note_list{notes_, this_node}; });
    on([this](const get_notes_of& g) { return note_list{by_sender_[g.from], this_node}; });
  }

private:
  std::int64_t cents_ = 0;
  std::vector<std::string> pongs_;
  std::vector<std::int64_t> notes_;
  std::map<std::string, std::vector<std::int64_t>> by_sender_;
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

/// Background senders of the `stream` and `load` commands.
struct background {
  std::vector<std::thread> threads;
  std::atomic<bool> stop_load{false};
  std::atomic<std::int64_t> load_ok{0};
  std::atomic<std::int64_t> load_failed{0};
  std::mutex mutex;
  std::string first_error;
  std::thread load;
  std::vector<std::thread> sprays;
  std::atomic<std::int64_t> spray_sent{0};
  std::atomic<std::int64_t> spray_failed{0};
  std::string spray_error;

  void join_sprays() {
    for (auto& t : sprays) t.join();
    sprays.clear();
  }

  void join() {
    stop_load = true;
    if (load.joinable()) load.join();
    for (auto& t : threads) t.join();
    threads.clear();
    join_sprays();
  }
};

std::string where(aether::node& node, const aether::actor_id& id) {
  const auto view = node.cluster().snapshot();
  const auto& owner = view->map->owner(id.shard(view->shard_count));
  if (owner.empty()) return "none";
  return owner == view->self ? "here" : "remote " + owner.node;
}

std::string run(aether::node& node, background& bg, const std::string& command) {
  std::istringstream in{command};
  std::string verb, key, what, arg;
  in >> verb >> key >> what >> arg;
  if (verb == "load_stop") {
    bg.stop_load = true;
    if (bg.load.joinable()) bg.load.join();
    std::lock_guard lock{bg.mutex};
    return fmt::format("ok {} failed {} {}", bg.load_ok.load(), bg.load_failed.load(), bg.first_error);
  }
  if (verb == "leads") {
    const auto view = node.cluster().snapshot();
    return view->leader == view->self ? "yes" : "no";
  }
  if (verb == "tallied") {
    std::lock_guard lock{tallies.mutex};
    return std::to_string(tallies.handled);
  }
  if (verb == "spray_wait") {
    bg.join_sprays();
    std::lock_guard lock{bg.mutex};
    return fmt::format("ok {} failed {} {}", bg.spray_sent.load(), bg.spray_failed.load(), bg.spray_error);
  }
  if (verb == "served") {
    const auto view = node.cluster().snapshot();
    for (auto s : view->owned_shards) {
      aether::actor_id probe;
      for (int i = 0;; ++i) {
        probe = aether::actor_id{"account", "served" + std::to_string(i)};
        if (probe.shard(view->shard_count) == s) break;
      }
      auto r = node.ask<balance>(probe, get_balance{}, std::chrono::seconds{1}).get();
      if (!r || r->node != this_node) return "no " + std::to_string(s);
    }
    return "yes";
  }
  if (key.empty()) return "err unknown_command 0";
  if (verb == "spray") {
    // prefix keys from count ms
    const auto prefix = key;
    const auto keys = std::stoi(what);
    const auto from = arg;
    std::int64_t count = 0;
    std::int64_t ms = 0;
    std::string type = "ledger";
    in >> count >> ms >> type;
    bg.sprays.emplace_back([&node, &bg, prefix, keys, from, count, ms, type] {
      std::vector<aether::actor_id> to;
      for (int k = 0; k < keys; ++k) to.emplace_back(type, prefix + std::to_string(k));
      for (std::int64_t i = 1; i <= count; ++i) {
        for (const auto& id : to) {
          if (auto sent = node.tell(id, note{i, from}); sent) {
            ++bg.spray_sent;
          } else {
            ++bg.spray_failed;
            std::lock_guard lock{bg.mutex};
            if (bg.spray_error.empty()) bg.spray_error = id.to_string() + ":" + sent.error().to_string();
          }
        }
        if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds{ms});
      }
    });
    return "started";
  }
  const aether::actor_id id{"account", key};
  const aether::actor_id lid{"ledger", key};
  auto show_balance = [](const balance& b) { return fmt::format("{} {}", b.cents, b.node); };
  if (verb == "lwhere") return where(node, lid);
  if (verb == "ledger") {
    auto r = what == "deposit" ? node.ask<balance>(lid, deposit{std::stoll(arg)}, std::chrono::seconds{2}).get()
                               : node.ask<balance>(lid, get_balance{}, std::chrono::seconds{2}).get();
    return r ? "ok " + show_balance(*r) : failed(r.error());
  }
  if (verb == "versions") {
    std::promise<std::string> done;
    node.stores()->events->read(lid, 1, 0, [&done](aether::expected<std::vector<aether::event>> r) {
      if (!r) {
        done.set_value(failed(r.error()));
        return;
      }
      std::string out = "ok";
      for (const auto& e : *r) out += " " + std::to_string(e.version);
      done.set_value(out);
    });
    return done.get_future().get();
  }
  if (verb == "stream") {
    // key from count ms
    const auto from = what;
    const auto count = std::stoll(arg);
    std::int64_t ms = 0;
    in >> ms;
    bg.threads.emplace_back([&node, lid, from, count, ms] {
      for (std::int64_t i = 1; i <= count; ++i) {
        if (auto sent = node.tell(lid, note{i, from}); !sent) {
          std::fprintf(stderr, "stream %s %s: note %lld not sent: %s\n", lid.to_string().c_str(), from.c_str(),
                       static_cast<long long>(i), sent.error().to_string().c_str());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{ms});
      }
    });
    return "started";
  }
  if (verb == "notes_of") {
    return ask<note_list>(node, lid, get_notes_of{what},
                          [](const note_list& l) { return l.node + " " + join(l.seqs); });
  }
  if (verb == "load") {
    const auto keys = std::stoi(key);
    const auto ms = std::stoi(what);
    bg.stop_load = false;
    bg.load = std::thread{[&node, &bg, keys, ms] {
      for (std::int64_t i = 0; !bg.stop_load; ++i) {
        const aether::actor_id to{"ledger", "load" + std::to_string(i % keys)};
        auto r = node.ask<balance>(to, deposit{1}, std::chrono::seconds{5}).get();
        if (r) {
          ++bg.load_ok;
        } else {
          ++bg.load_failed;
          std::lock_guard lock{bg.mutex};
          if (bg.first_error.empty()) bg.first_error = to.to_string() + ":" + r.error().to_string();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{ms});
      }
    }};
    return "started";
  }
  if (verb == "where") return where(node, id);
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
      for (std::int64_t i = 1; i <= std::stoll(arg) && sent; ++i) sent = node.tell(id, note{i, {}});
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
  // A message nobody could take is named on stderr (the test's output), so
  // that a lost one says where it went.
  cfg->system.on_dead_letter = [](const aether::dead_letter& d) {
    std::fprintf(stderr, "dead letter: %s %.*s %s\n", d.target.to_string().c_str(),
                 static_cast<int>(d.message_type.size()), d.message_type.data(),
                 std::string{aether::to_string(d.reason)}.c_str());
  };
  const auto expect = static_cast<std::size_t>(
      std::atoi(std::getenv("AETHER_EXPECT_NODES") ? std::getenv("AETHER_EXPECT_NODES") : "1"));
  // Messages from other nodes reach the actors on the node's threads, with
  // no synchronization with this one: the name they read is set before
  // those threads start.
  if (cfg->cluster.node_id.empty()) cfg->cluster.node_id = aether::default_node_id();
  rt::this_node = cfg->cluster.node_id;
  // Opened before the node starts the threads its tally actors run on.
  if (const char* path = std::getenv("AETHER_TALLY_FILE"); path != nullptr) {
    rt::tallies.file = std::fopen(path, "w");
  }
  try {
    aether::node node{*cfg};
    node.register_actor<rt::account>("account");
    node.register_event_sourced<rt::ledger>("ledger");
    node.register_actor<rt::tally>("tally");
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
    rt::background bg;
    while (std::getline(std::cin, command)) {
      if (command == "quit") break;
      std::printf("%s\n", rt::run(node, bg, command).c_str());
      std::fflush(stdout);
    }
    bg.join();
    node.stop();
    std::printf("stopped\n");
    std::fflush(stdout);
    return 0;
  } catch (const aether::startup_error& e) {
    std::printf("error %s\n", e.what());
    return 3;
  }
}
