// A writer process for the fence's race tests: for every line "N H" read
// from stdin it appends one event, version H+1, to actor race/<prefix>N
// (whose history holds H events) with data {"writer":"<name>"}, and prints
// "N win <last version>", "N conflict <current version>" or "N error <what>".
//
//   race_writer <nats-url> <replicas> <prefix> <name>
#include <aether/persistence/jetstream_event_store.hpp>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: race_writer <nats-url> <replicas> <prefix> <name>\n");
    return 2;
  }
  aether::nats::connect_options o;
  o.url = argv[1];
  auto conn = aether::nats::connection::connect(o);
  if (!conn) {
    std::fprintf(stderr, "race_writer: %s\n", conn.error().to_string().c_str());
    return 1;
  }
  aether::jetstream_store_options js;
  js.replicas = std::stoi(argv[2]);
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
    e.type = "claimed";
    e.data = "{\"writer\":\"" + name + "\"}";
    auto r = (*store)->append_wait(aether::actor_id{"race", prefix + n}, history, {e});
    if (r) {
      std::printf("%s win %llu\n", n.c_str(), static_cast<unsigned long long>(r->last_version));
    } else if (r.error().code() == aether::errc::version_conflict) {
      std::printf("%s conflict %llu\n", n.c_str(), static_cast<unsigned long long>(r.error().value()));
    } else {
      std::printf("%s error %s\n", n.c_str(), r.error().to_string().c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}
