// The actor-to-shard hash is frozen: these values must never change, or every
// actor of every cluster would move to another shard.
#include <aether/actors/actor_id.hpp>

#include <doctest/doctest.h>

using aether::actor_id;

TEST_CASE("the shard hash is FNV-1a 64 of ns.type.key, with frozen values") {
  CHECK(aether::fnv1a_64("") == 0xcbf29ce484222325ULL);
  CHECK(aether::fnv1a_64("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(aether::fnv1a_64("foobar") == 0x85944171f73967e8ULL);
  CHECK(actor_id{"account", "alice"}.hash() == aether::fnv1a_64("default.account.alice"));
  CHECK(actor_id{"account", "alice", "bank"}.hash() == aether::fnv1a_64("bank.account.alice"));
}

TEST_CASE("golden hashes and shards of a few ids") {
  struct golden {
    const char* ns;
    const char* type;
    const char* key;
    std::uint64_t hash;
    std::uint32_t shard_of_100;
    std::uint32_t shard_of_256;
  };
  const golden cases[] = {
      {"default", "account", "alice", 0x9541ef4ee6da7455ULL, 65, 85},
      {"default", "room", "lobby", 0x7cbacafc918defa5ULL, 69, 165},
      {"shop", "order", "o-17", 0x2e6ba4d8cb6aedf3ULL, 27, 243},
      {"default", "counter", "c1", 0x1a6900a73aedf952ULL, 34, 82},
  };
  for (const auto& c : cases) {
    const actor_id id{c.type, c.key, c.ns};
    CHECK(id.hash() == c.hash);
    CHECK(id.shard(100) == c.shard_of_100);
    CHECK(id.shard(256) == c.shard_of_256);
  }
}
