// A pipelining writer process for the leader-kill race test: for every line
// "N H" read from stdin it starts one append (without waiting for earlier
// ones) of event `<name>-N`, version H+1, to actor race/<prefix>N, with data
// {"writer":"<name>"}, and prints, as each one ends, "N win <last version>
// <stream sequence>", "N conflict <current version>" or "N error <what>". At
// the end of its input it waits for every append to end, then exits.
//
//   leader_race_writer <nats-urls> <replicas> <prefix> <name> <ack-timeout-ms>
#include <aether/persistence/jetstream_event_store.hpp>

#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>

namespace {

std::mutex out_mutex;
std::condition_variable all_done;
int in_flight = 0;

void answer(const std::string& line) {
  std::lock_guard lock{out_mutex};
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
  --in_flight;
  all_done.notify_all();
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: leader_race_writer <nats-urls> <replicas> <prefix> <name> <ack-timeout-ms>\n");
    return 2;
  }
  aether::nats::connect_options o;
  o.url = argv[1];
  o.name = std::string{"leader-race-"} + argv[4];
  auto conn = aether::nats::connection::connect(o);
  if (!conn) {
    std::fprintf(stderr, "leader_race_writer: %s\n", conn.error().to_string().c_str());
    return 1;
  }
  aether::jetstream_store_options js;
  js.replicas = std::stoi(argv[2]);
  js.ack_timeout = std::chrono::milliseconds{std::stoi(argv[5])};
  js.max_attempts = 8;
  auto store = aether::jetstream_event_store::open(*conn, js);
  if (!store || !(*store)->prepare("default")) return 1;
  std::printf("ready\n");
  std::fflush(stdout);
  const std::string prefix = argv[3];
  const std::string name = argv[4];
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in{line};
    std::string n;
    std::uint64_t history = 0;
    in >> n >> history;
    aether::event e;
    e.id = name + "-" + n;
    e.type = "claimed";
    e.data = "{\"writer\":\"" + name + "\"}";
    {
      std::lock_guard lock{out_mutex};
      ++in_flight;
    }
    (*store)->append(
        aether::actor_id{"race", prefix + n}, history, {e}, [n](aether::expected<aether::append_result> r) {
          if (r) {
            answer(n + " win " + std::to_string(r->last_version) + " " + std::to_string(r->sequence) + "\n");
          } else if (r.error().code() == aether::errc::version_conflict) {
            answer(n + " conflict " + std::to_string(r.error().value()) + "\n");
          } else {
            answer(n + " error " + r.error().to_string() + "\n");
          }
        });
  }
  std::unique_lock lock{out_mutex};
  all_done.wait(lock, [] { return in_flight == 0; });
  return 0;
}
