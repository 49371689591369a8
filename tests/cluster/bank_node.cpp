// A node process of the bank workload (tests/cluster/bank_cluster_test.cpp).
// Its clients send deposits and transfers to event-sourced accounts through
// this node, which routes each to the owner of the account's shard, and
// write every operation to a history file, one line each (a kill -9 keeps
// what was written):
//
//   inv <id> <kind> <account> <cents> [<withdrawal id>]   before it is sent
//   ok <id> <version> <balance>                           acknowledged
//   fail <id> <errc> <detail>                             certainly not stored
//   unk <id> <errc> <detail>                              may be stored
//
// A transfer is a withdrawal (kind `withdraw`), then, once acknowledged, a
// deposit into another account (kind `transfer_in`, naming the withdrawal).
//
//   bank_node <history file> <run tag> <clients> <accounts> <seed>
//
// The node's settings come from AETHER_* (AETHER_ROUTING=1, AETHER_NODE_ID,
// ...); AETHER_EXPECT_NODES says how many nodes the map must hold before it
// prints `serving <node>`. Commands on stdin, one answer on stdout:
//   stop              the clients stop after their current operation -> stopped <operations>
//   balances <n>      every account's balance and version, asked through this node:
//                     balance <account> <cents> <version> | balance <account> err <errc>, then `end`
//   quit (or EOF)     stops the node and exits 0
#include <aether/aether.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace bank {

struct deposit {
  static constexpr std::string_view type_name = "bk.deposit";
  std::string op;
  std::int64_t cents = 0;
};
AETHER_JSON_FIELDS(deposit, op, cents)

struct withdraw {
  static constexpr std::string_view type_name = "bk.withdraw";
  std::string op;
  std::int64_t cents = 0;
};
AETHER_JSON_FIELDS(withdraw, op, cents)

struct get_balance {
  static constexpr std::string_view type_name = "bk.get_balance";
};
AETHER_JSON_FIELDS(get_balance)

struct receipt {
  static constexpr std::string_view type_name = "bk.receipt";
  std::uint64_t version = 0;
  std::int64_t balance = 0;
};
AETHER_JSON_FIELDS(receipt, version, balance)

struct deposited {
  static constexpr std::string_view type_name = "bk.deposited";
  std::string op;
  std::int64_t cents = 0;
};
AETHER_JSON_FIELDS(deposited, op, cents)

struct withdrawn {
  static constexpr std::string_view type_name = "bk.withdrawn";
  std::string op;
  std::int64_t cents = 0;
};
AETHER_JSON_FIELDS(withdrawn, op, cents)

struct account_state {
  std::int64_t cents = 0;
  std::uint64_t events = 0;
};
AETHER_JSON_FIELDS(account_state, cents, events)

/// No deduplication by operation id on purpose: a command delivered twice
/// would be stored twice, and the checker would see it.
class account : public aether::event_sourced_actor<account_state> {
public:
  account() {
    apply([](account_state& s, const deposited& e) {
      s.cents += e.cents;
      ++s.events;
    });
    apply([](account_state& s, const withdrawn& e) {
      s.cents -= e.cents;
      ++s.events;
    });
    on([this](const deposit& d, aether::context& ctx) { persist_then(ctx, receipt_of, deposited{d.op, d.cents}); });
    on([this](const withdraw& w, aether::context& ctx) {
      if (w.cents > state().cents) {
        ctx.reply(aether::error{aether::errc::invalid_argument, "insufficient funds"});
        return;
      }
      persist_then(ctx, receipt_of, withdrawn{w.op, w.cents});
    });
    on([this](const get_balance&) { return receipt_of(state()); });
  }

private:
  static receipt receipt_of(const account_state& s) { return receipt{s.events, s.cents}; }
};

/// The history file: whole lines, each one write(2), so a kill -9 leaves
/// every line written before it.
class history {
public:
  explicit history(const std::string& path) : fd_{::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644)} {
    if (fd_ < 0) throw std::runtime_error{"cannot open " + path};
  }
  ~history() { ::close(fd_); }
  history(const history&) = delete;
  history& operator=(const history&) = delete;

  void line(const std::string& text) {
    const std::string l = text + "\n";
    std::lock_guard lock{mutex_};
    std::size_t done = 0;
    while (done < l.size()) {
      const auto n = ::write(fd_, l.data() + done, l.size() - done);
      if (n <= 0) return;
      done += static_cast<std::size_t>(n);
    }
  }

private:
  int fd_;
  std::mutex mutex_;
};

/// A refusal the store or the account made decisively: the command was not stored.
bool certainly_not_stored(const aether::error& e) {
  return e.code() == aether::errc::invalid_argument || e.code() == aether::errc::version_conflict;
}

std::string account_key(std::size_t i) { return "acct-" + std::to_string(i); }

constexpr std::chrono::seconds ask_timeout{5};

class clients {
public:
  clients(aether::node& node, history& log, std::string tag, std::size_t count, std::size_t accounts,
          std::uint64_t seed)
      : node_{node}, log_{log}, tag_{std::move(tag)}, accounts_{accounts} {
    for (std::size_t c = 0; c < count; ++c) threads_.emplace_back([this, c, seed] { run(c, seed + c * 7919); });
  }
  ~clients() { stop(); }
  clients(const clients&) = delete;
  clients& operator=(const clients&) = delete;

  std::size_t stop() {
    stop_.store(true);
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    return operations_.load();
  }

private:
  /// Sends one command and writes its outcome; the receipt if acknowledged.
  template <class M>
  std::optional<receipt> send(const std::string& id, const std::string& kind, std::size_t account, M m,
                              const std::string& transfer = {}) {
    log_.line(fmt::format("inv {} {} {} {}{}{}", id, kind, account_key(account), m.cents, transfer.empty() ? "" : " ",
                          transfer));
    ++operations_;
    auto r = node_.ask<receipt>(aether::actor_id{"account", account_key(account)}, std::move(m), ask_timeout).get();
    if (r) {
      log_.line(fmt::format("ok {} {} {}", id, r->version, r->balance));
      return *r;
    }
    std::string detail = r.error().detail();
    std::replace(detail.begin(), detail.end(), '\n', ' ');
    log_.line(fmt::format("{} {} {} {}", certainly_not_stored(r.error()) ? "fail" : "unk", id,
                          aether::to_string(r.error().code()), detail));
    return std::nullopt;
  }

  void run(std::size_t client, std::uint64_t seed) {
    std::mt19937_64 rng{seed};
    std::uniform_int_distribution<std::size_t> pick{0, accounts_ - 1};
    for (std::uint64_t n = 1; !stop_.load(); ++n) {
      const auto id = fmt::format("{}-{}-{}", tag_, client, n);
      const auto from = pick(rng);
      if (rng() % 100 < 55) {
        (void)send(id, "deposit", from, deposit{id, static_cast<std::int64_t>(1 + rng() % 9)});
        continue;
      }
      auto to = pick(rng);
      if (to == from) to = (to + 1) % accounts_;
      const auto cents = static_cast<std::int64_t>(1 + rng() % 5);
      if (send(id, "withdraw", from, withdraw{id, cents})) {
        const auto in = id + ".in";
        (void)send(in, "transfer_in", to, deposit{in, cents}, id);
      }
    }
  }

  aether::node& node_;
  history& log_;
  std::string tag_;
  std::size_t accounts_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> operations_{0};
  std::vector<std::thread> threads_;
};

/// Waits until this node serves and its map gives `expect` nodes shards.
void wait_serving(aether::node& node, std::size_t expect) {
  (void)node.cluster().wait_until(
      [expect](const aether::cluster_snapshot& s) { return s.serving && s.map->owning_members().size() == expect; },
      std::chrono::seconds{30});
}

/// Every account's receipt through this node, each asked until it answers (15 s at most).
void print_balances(aether::node& node, std::size_t accounts) {
  for (std::size_t i = 0; i < accounts; ++i) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{15};
    for (;;) {
      auto r = node.ask<receipt>(aether::actor_id{"account", account_key(i)}, get_balance{}, ask_timeout).get();
      if (r) {
        std::printf("balance %s %lld %llu\n", account_key(i).c_str(), static_cast<long long>(r->balance),
                    static_cast<unsigned long long>(r->version));
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        std::printf("balance %s err %s\n", account_key(i).c_str(), aether::to_string(r.error().code()).data());
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
  }
  std::printf("end\n");
  std::fflush(stdout);
}

} // namespace bank

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: bank_node <history file> <run tag> <clients> <accounts> <seed>\n");
    return 2;
  }
  auto cfg = aether::node_config::from_env();
  if (!cfg) {
    std::printf("error %s\n", cfg.error().to_string().c_str());
    return 3;
  }
  cfg->threads = 2;
  cfg->system.shard_count = 8;
  cfg->handle_signals = false;
  const auto expect = static_cast<std::size_t>(
      std::atoi(std::getenv("AETHER_EXPECT_NODES") ? std::getenv("AETHER_EXPECT_NODES") : "1"));
  const auto clients = static_cast<std::size_t>(std::stoul(argv[3]));
  const auto accounts = static_cast<std::size_t>(std::stoul(argv[4]));
  try {
    bank::history log{argv[1]};
    aether::node node{*cfg};
    node.register_event_sourced<bank::account>("account");
    bank::wait_serving(node, expect);
    std::printf("serving %s\n", node.cluster().snapshot()->self.node.c_str());
    std::fflush(stdout);
    auto load = std::make_unique<bank::clients>(node, log, argv[2], clients, accounts, std::stoull(argv[5]));
    std::string command;
    while (std::getline(std::cin, command)) {
      if (command == "quit") break;
      if (command == "stop") {
        std::printf("stopped %zu\n", load->stop());
      } else if (command == "balances") {
        bank::print_balances(node, accounts);
        continue;
      } else {
        std::printf("error unknown command %s\n", command.c_str());
      }
      std::fflush(stdout);
    }
    load.reset();
    node.stop();
    return 0;
  } catch (const aether::startup_error& e) {
    std::printf("error %s\n", e.what());
    return 3;
  }
}
