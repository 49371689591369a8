// A node process under load, for fault tests: clients deposit into their own
// event-sourced accounts, one command at a time, and print every
// acknowledged deposit as "ack <account> <version>".
//
//   load_node <nats-url> <clients>
#include "bank.hpp"

#include <aether/aether.hpp>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: load_node <nats-url> <clients>\n");
    return 2;
  }
  aether::node_config cfg;
  cfg.nats_url = argv[1];
  cfg.threads = 2;
  cfg.system.shard_count = 8;
  cfg.snapshot_every = 25;
  try {
    aether::node node{cfg};
    node.register_event_sourced<bank::account>("account");
    std::vector<std::thread> clients;
    for (int c = 0; c < std::stoi(argv[2]); ++c) {
      clients.emplace_back([&node, c] {
        const aether::actor_id account{"account", "load-" + std::to_string(c)};
        while (true) {
          auto r = node.ask<std::int64_t>(account, bank::deposit{1}, std::chrono::seconds{10}).get();
          if (r) {
            // Every deposit is 1 cent: the balance is the version just stored.
            // One whole line per write, so a reader never sees half of one.
            std::printf("ack %s %lld\n", std::string{account.key()}.c_str(), static_cast<long long>(*r));
            std::fflush(stdout);
          } else if (r.error().code() == aether::errc::shutting_down) {
            return;
          }
        }
      });
    }
    const int code = node.run();
    for (auto& t : clients) t.join();
    return code;
  } catch (const aether::startup_error& e) {
    std::fprintf(stderr, "load_node: %s\n", e.what());
    return 1;
  }
}
