#include <aether/actors/actor_id.hpp>

#include <doctest/doctest.h>

#include <set>
#include <string>

using aether::actor_id;

TEST_CASE("an actor id has a namespace, a type and a key") {
  const actor_id id{"account", "acc-42"};
  CHECK(id.ns() == "default");
  CHECK(id.type() == "account");
  CHECK(id.key() == "acc-42");
  CHECK(id.to_string() == "default/account/acc-42");
  const actor_id scoped{"account", "acc-42", "tenant-a"};
  CHECK(scoped.ns() == "tenant-a");
  CHECK(scoped != id);
  CHECK(actor_id{"account", "acc-42"} == id);
}

TEST_CASE("invalid id parts get a typed error naming the part") {
  const char* bad_keys[] = {"", "a.b", "a*", "a>", "has space", "tab\t", "line\r\n", "$sys", "a/b", "\x7f"};
  for (const char* key : bad_keys) {
    CAPTURE(std::string{key});
    auto id = actor_id::make("account", key);
    REQUIRE_FALSE(id);
    CHECK(id.error().code() == aether::errc::invalid_id);
    CHECK(id.error().detail().find("actor key") != std::string::npos);
  }
  CHECK(actor_id::make("bad.type", "k").error().detail().find("actor type") != std::string::npos);
  CHECK(actor_id::make("t", "k", "").error().detail().find("namespace") != std::string::npos);
  for (const char* ns : {"a:b", "zoë", "a b", "$x"}) {
    CAPTURE(std::string{ns});
    auto id = actor_id::make("t", "k", ns);
    REQUIRE_FALSE(id);
    CHECK(id.error().detail().find("namespace") != std::string::npos);
  }
  CHECK(actor_id::make("t", "k", "tenant-a_2"));
  CHECK_FALSE(actor_id::make("t", "k", std::string(actor_id::max_namespace_size + 1, 'n')));
  CHECK_FALSE(actor_id::make("t", std::string(actor_id::max_part_size + 1, 'k')));
  CHECK(actor_id::make("t", std::string(actor_id::max_part_size, 'k')));
  CHECK_THROWS_AS(actor_id("t", "bad key"), aether::bad_expected_access);
}

TEST_CASE("a namespace is one or more dot-separated tokens") {
  for (const char* ns : {"acme", "acme.billing", "a.b.c.d", "tenant-a_2.x-y.Z9", "_._", "-"}) {
    CAPTURE(std::string{ns});
    auto id = actor_id::make("order", "o-1", ns);
    REQUIRE(id);
    CHECK(id->ns() == ns);
    CHECK(id->type() == "order");
    CHECK(id->key() == "o-1");
    auto parsed = actor_id::parse(id->to_string());
    REQUIRE(parsed);
    CHECK(*parsed == *id);
    CHECK(parsed->ns() == ns);
  }
  // The hash is over `ns.type.key`: a dotted namespace is hashed as it is.
  CHECK(actor_id{"order", "o-1", "acme.billing"}.hash() == aether::fnv1a_64("acme.billing.order.o-1"));
  CHECK(actor_id{"order", "o-1", "acme.billing"} != actor_id{"order", "o-1", "acme_billing"});
  CHECK(actor_id{"order", "o-1", "acme.billing"} != actor_id{"order", "o-1", "acme"});
}

TEST_CASE("a bad namespace gets a typed error saying what is wrong") {
  const struct {
    std::string ns;
    const char* says;
  } cases[] = {
      {"", "empty"},
      {".acme", "starts with a dot"},
      {"acme.", "ends with a dot"},
      {"a..b", "empty token"},
      {".", "starts with a dot"},
      {"acme.*", "wildcard"},
      {"acme.>", "wildcard"},
      {"*", "wildcard"},
      {"ac*me", "wildcard"},
      {"acme.bil ling", "0x20"},
      {"acme/billing", "'/'"},
      {"acme:billing", "':'"},
      {"acme.\x01", "0x01"},
      {std::string(actor_id::max_namespace_size + 1, 'n'), "more than"},
      {std::string(40, 'a') + "." + std::string(40, 'b'), "more than"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.ns);
    auto id = actor_id::make("t", "k", c.ns);
    REQUIRE_FALSE(id);
    CHECK(id.error().code() == aether::errc::invalid_id);
    CHECK(id.error().detail().find("namespace") != std::string::npos);
    CHECK(id.error().detail().find(c.says) != std::string::npos);
    CHECK_FALSE(actor_id::parse(c.ns + "/t/k"));
  }
  CHECK(actor_id::make("t", "k", std::string(actor_id::max_namespace_size, 'n')));
}

TEST_CASE("a flat name takes no dots") {
  CHECK(actor_id::validate_name("cluster-1_a", "cluster name"));
  auto dotted = actor_id::validate_name("a.b", "cluster name");
  REQUIRE_FALSE(dotted);
  CHECK(dotted.error().detail().find("cluster name") != std::string::npos);
  CHECK_FALSE(actor_id::validate_name("", "cluster name"));
  CHECK_FALSE(actor_id::validate_name(std::string(actor_id::max_namespace_size + 1, 'c'), "cluster name"));
}

TEST_CASE("utf-8 keys are allowed") {
  auto id = actor_id::make("user", "zoë-日本");
  REQUIRE(id);
  CHECK(id->key() == "zoë-日本");
}

TEST_CASE("an id round-trips through its text form") {
  const actor_id id{"order", "o-1", "shop"};
  auto parsed = actor_id::parse(id.to_string());
  REQUIRE(parsed);
  CHECK(*parsed == id);
  auto short_form = actor_id::parse("order/o-1");
  REQUIRE(short_form);
  CHECK(short_form->ns() == "default");
  CHECK_FALSE(actor_id::parse("no-slash"));
  CHECK_FALSE(actor_id::parse("a/b/c/d"));
}

TEST_CASE("the id hash is stable and spreads ids over shards") {
  // FNV-1a of "default.counter.c1": fixed forever, other processes and
  // machines route by it.
  CHECK(actor_id{"counter", "c1"}.hash() == aether::fnv1a_64("default.counter.c1"));
  CHECK(aether::fnv1a_64("") == 0xcbf29ce484222325ULL);
  CHECK(aether::fnv1a_64("a") == 0xaf63dc4c8601ec8cULL);
  std::set<std::uint32_t> shards;
  for (int i = 0; i < 1000; ++i) shards.insert(actor_id{"counter", "c" + std::to_string(i)}.shard(64));
  CHECK(shards.size() == 64);
}
