// A node process that registers the state tests' event-sourced type and
// answers state queries for it on NATS, driven by lines on stdin:
//
//   ready <node>                     once it serves (printed at start)
//   add <key> <n> <label>  -> ok <version> | err <errc>
//
// It runs until its input ends, then stops gracefully.
#include "state_tally.hpp"

#include <aether/aether.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>

int main() {
  using namespace std::chrono_literals;
  auto cfg = aether::node_config::from_env();
  if (!cfg) {
    fmt::print(stderr, "state_node: {}\n", cfg.error().to_string());
    return 2;
  }
  cfg->handle_signals = false;
  aether::node node{*cfg};
  node.register_event_sourced<state_test::tally>("tally");
  fmt::print("ready {}\n", node.config().cluster.node_id);
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in{line};
    std::string cmd, key, label;
    std::int64_t n = 0;
    in >> cmd >> key >> n >> label;
    if (cmd != "add") {
      fmt::print("err unknown_command\n");
    } else {
      auto r = node.ask<std::int64_t>(aether::actor_id{"tally", key}, state_test::add{n, label}, 10s).get();
      if (r) {
        fmt::print("ok {}\n", *r);
      } else {
        fmt::print("err {}\n", aether::to_string(r.error().code()));
      }
    }
    std::fflush(stdout);
  }
  node.stop();
  return 0;
}
