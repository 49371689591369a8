// Chat rooms as virtual actors: rooms keep their members and fan posts out to
// user actors, which print what they receive. Run it, read along, copy it.
//
//   chat_room            a scripted conversation, then a clean shutdown
//   chat_room --serve    the same, then keeps running until Ctrl-C
#include <aether/aether.hpp>
#include <aether/runtime/command_line.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;

// Messages are plain structs.
struct join {
  std::string user;
};
struct leave {
  std::string user;
};
struct post {
  std::string from;
  std::string text;
};
struct delivered {
  std::string room;
  std::string from;
  std::string text;
};
struct who {};
struct inbox_size {};
struct remind {};

/// A room: its members, and a fan-out of every post to them.
class room : public aether::actor {
public:
  room() {
    on([this](const join& j, aether::context& ctx) {
      members_.insert(j.user);
      broadcast(ctx, "aether", fmt::format("{} joined", j.user));
    });
    on([this](const leave& l, aether::context& ctx) {
      members_.erase(l.user);
      broadcast(ctx, "aether", fmt::format("{} left", l.user));
    });
    on([this](const post& p, aether::context& ctx) { broadcast(ctx, p.from, p.text); });
    on([this](const who&) { return std::vector<std::string>(members_.begin(), members_.end()); });
  }

  void on_activate(aether::context& ctx) override { fmt::print("  [room {} opened]\n", ctx.self().key()); }
  void on_passivate(aether::context& ctx) override { fmt::print("  [room {} closed]\n", ctx.self().key()); }

private:
  void broadcast(aether::context& ctx, const std::string& from, const std::string& text) {
    for (const auto& m : members_) {
      if (auto sent = ctx.tell(aether::actor_id{"user", m}, delivered{std::string{ctx.self().key()}, from, text});
          !sent) {
        fmt::print("  [{} missed a message: {}]\n", m, sent.error().to_string());
      }
    }
  }

  std::set<std::string> members_;
};

/// A user: prints what reaches it and nudges itself if it stays quiet.
class user : public aether::actor {
public:
  user() {
    on([this](const delivered& d, aether::context& ctx) {
      ++received_;
      if (d.from != ctx.self().key()) {
        fmt::print("{:>6} sees in #{}: <{}> {}\n", ctx.self().key(), d.room, d.from, d.text);
      }
    });
    on([this](const inbox_size&) { return received_; });
    on([](const remind&, aether::context& ctx) { fmt::print("{:>6}: (still here)\n", ctx.self().key()); });
  }
  void on_activate(aether::context& ctx) override { ctx.schedule_once(200ms, remind{}); }

private:
  int received_ = 0;
};

/// A coroutine that asks several actors in turn.
aether::task<int> total_received(aether::node& node, std::vector<std::string> users) {
  int total = 0;
  for (const auto& u : users) {
    auto n = co_await node.ask<int>(aether::actor_id{"user", u}, inbox_size{}, 2s);
    if (n) total += *n;
  }
  co_return total;
}

int main(int argc, char** argv) {
  if (auto answered = aether::answer_help_or_version(
          argc, argv,
          {"chat_room",
           "Usage: chat_room [--serve]\n"
           "Chat rooms as virtual actors: a scripted conversation, then a clean shutdown;\n"
           "with --serve it goes on serving until SIGINT or SIGTERM (under systemd: Type=notify).",
           "  0  done (or stopped by a signal)\n  1  the node could not start (e.g. no NATS server answered)\n"
           "  2  an AETHER_* variable is invalid\n"})) {
    return *answered;
  }
  const bool serve = argc > 1 && std::string_view{argv[1]} == "--serve";
  auto config = aether::node_config::from_env();
  if (!config) {
    std::fprintf(stderr, "chat_room: %s\n", config.error().to_string().c_str());
    return 2;
  }
  std::optional<aether::node> started;
  try {
    started.emplace(*config);
  } catch (const aether::startup_error& e) {
    std::fprintf(stderr, "chat_room: %s\n", e.what());
    return 1;
  }
  aether::node& node = *started;
  node.register_actor<room>("room");
  node.register_actor<user>("user");

  const aether::actor_id lobby{"room", "lobby"};
  const aether::actor_id dev{"room", "dev"};
  auto say = [&](const aether::actor_id& room_id, auto message) {
    if (auto r = node.tell(room_id, std::move(message)); !r) fmt::print("send failed: {}\n", r.error().to_string());
  };
  // Tells from one thread to one room arrive in order; asks wait for the answer.
  for (const char* name : {"ada", "linus", "grace"}) say(lobby, join{name});
  say(dev, join{"linus"});
  say(dev, join{"grace"});
  say(lobby, post{"ada", "hello, everyone"});
  say(dev, post{"grace", "the build is green"});
  say(lobby, leave{"linus"});
  say(lobby, post{"grace", "bye linus"});

  if (auto members = node.ask<std::vector<std::string>>(lobby, who{}, 2s).get(); members) {
    fmt::print("lobby members: {}\n", fmt::join(*members, ", "));
  }
  // Invalid input gets a typed error, not a crash.
  if (auto bad = aether::actor_id::make("room", "no spaces please"); !bad) {
    fmt::print("rejected id: {}\n", bad.error().to_string());
  }
  if (auto nobody = node.ask<int>(aether::actor_id{"ghost", "g"}, who{}, 1s).get(); !nobody) {
    fmt::print("ask to an unknown type: {}\n", nobody.error().to_string());
  }
  fmt::print("messages received in total: {}\n", total_received(node, {"ada", "linus", "grace"}).get());

  if (serve) {
    fmt::print("serving; Ctrl-C to stop\n");
    std::fflush(stdout);
    node.run();
  } else {
    node.stop();
  }
  const auto m = node.metrics();
  fmt::print("handled {} messages, {} activations, {} passivations, {} dead letters\n", m.messages, m.activations,
             m.passivations, m.dead_letters);
  return 0;
}
