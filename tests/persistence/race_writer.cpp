// A writer process for the fence's race test: for every number N read from
// stdin it appends version 1 of actor race/<prefix>N and prints
// "N win", "N conflict" or "N error <what>".
//
//   race_writer <nats-url> <replicas> <prefix>
#include <aether/persistence/jetstream_event_store.hpp>

#include <cstdio>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: race_writer <nats-url> <replicas> <prefix>\n");
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
  std::string n;
  while (std::getline(std::cin, n)) {
    aether::event e;
    e.type = "claimed";
    e.data = "{}";
    auto r = (*store)->append_wait(aether::actor_id{"race", std::string{argv[3]} + n}, 0, {e});
    if (r) {
      std::printf("%s win\n", n.c_str());
    } else if (r.error().code() == aether::errc::version_conflict) {
      std::printf("%s conflict\n", n.c_str());
    } else {
      std::printf("%s error %s\n", n.c_str(), r.error().to_string().c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}
