// A program built against an installed Aether.
#include <aether/aether.hpp>
#include <aether/version.hpp>

#include <cstdio>

struct add {
  int n;
};
struct total {};

class counter : public aether::actor {
public:
  counter() {
    on([this](const add& a) { sum_ += a.n; });
    on([this](const total&) { return sum_; });
  }

private:
  int sum_ = 0;
};

int main() {
  aether::node_config cfg;
  cfg.handle_signals = false;
  aether::node node{cfg};
  node.register_actor<counter>("counter");
  const aether::actor_id id{"counter", "c"};
  (void)node.tell(id, add{40});
  (void)node.tell(id, add{2});
  auto sum = node.ask<int>(id, total{}, std::chrono::seconds{5}).get();
  std::printf("aether %s total %d\n", aether::version_string, sum ? *sum : -1);
  node.stop();
  return sum ? 0 : 1;
}
