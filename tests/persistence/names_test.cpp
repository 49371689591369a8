// The names derived from namespaces: valid for NATS, reversible, and never
// shared by two namespaces.
#include "names.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

using aether::actor_id;
namespace detail = aether::detail;

namespace {

/// Every valid namespace of up to `max_length` characters over a few
/// letters and the separators that an encoding could confuse, plus long ones.
std::vector<std::string> adversarial(std::size_t max_length) {
  const std::string alphabet = "a_-.B";
  std::vector<std::string> out;
  std::vector<std::string> layer{""};
  for (std::size_t length = 1; length <= max_length; ++length) {
    std::vector<std::string> next;
    for (const auto& prefix : layer) {
      for (const char c : alphabet) next.push_back(prefix + c);
    }
    for (const auto& ns : next) {
      if (actor_id::validate_namespace(ns)) out.push_back(ns);
    }
    layer = std::move(next);
  }
  const auto longest = actor_id::max_namespace_size;
  out.push_back(std::string(longest, '_'));
  out.push_back(std::string(longest, '-'));
  std::string dots;
  while (dots.size() + 2 <= longest) dots += dots.empty() ? "_" : "._";
  out.push_back(dots);
  out.push_back("acme.billing");
  out.push_back("acme_billing");
  out.push_back("acme__billing");
  out.push_back("acme_-billing");
  out.push_back("tenant-a");
  return out;
}

bool name_chars(std::string_view s) {
  for (const char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return !s.empty();
}

bool subject_token(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '.' || c == '*' || c == '>') return false;
  }
  return !s.empty();
}

} // namespace

TEST_CASE("one-token namespaces keep the readable names") {
  CHECK(detail::namespace_stream_name("tenant-a") == "tenant-a_events");
  CHECK(detail::namespace_stream_name("tenant_a") == "tenant_a_events");
  CHECK(detail::namespace_resource_name("bank", "snapshots") == "bank_snapshots");
  CHECK(detail::namespace_token("tenant-a") == "tenant-a");
  CHECK(detail::store_subjects("bank") == "aether.bank.ev.>");
}

TEST_CASE("hierarchical namespaces get names of their own, spelled as documented") {
  CHECK(detail::namespace_stream_name("acme.billing") == "acme__billing-events");
  CHECK(detail::namespace_stream_name("a_b.c") == "a_-b__c-events");
  CHECK(detail::namespace_resource_name("acme.billing", "snapshots") == "acme__billing-snapshots");
  CHECK(detail::namespace_token("acme.billing") == "acme:billing");
  CHECK(detail::store_subjects("acme.billing") == "aether.acme:billing.ev.>");
  CHECK(detail::namespace_stream_name("acme.billing") != detail::namespace_stream_name("acme_billing"));
}

TEST_CASE("every name derived from a namespace is valid, reversible and belongs to that namespace only") {
  const auto namespaces = adversarial(7);
  REQUIRE(namespaces.size() > 5000);
  for (const std::string kind : {"events", "snapshots"}) {
    std::map<std::string, std::string> owner;
    std::map<std::string, std::string> token_owner;
    for (const auto& ns : namespaces) {
      CAPTURE(ns);
      const auto name = detail::namespace_resource_name(ns, kind);
      CHECK(name_chars(name));
      CHECK(name.size() <= 2 * actor_id::max_namespace_size + 1 + kind.size());
      const auto [it, fresh] = owner.emplace(name, ns);
      CHECK_MESSAGE(fresh, name << " is shared by " << ns << " and " << it->second);
      auto back = detail::namespace_from_resource_name(name, kind);
      REQUIRE_MESSAGE(back, back.error().to_string());
      CHECK(*back == ns);

      const auto token = detail::namespace_token(ns);
      CHECK(subject_token(token));
      const auto [t, token_fresh] = token_owner.emplace(token, ns);
      CHECK_MESSAGE(token_fresh, token << " is shared by " << ns << " and " << t->second);
      auto from_token = detail::namespace_from_token(token);
      REQUIRE(from_token);
      CHECK(*from_token == ns);
    }
  }
}

TEST_CASE("names that no namespace makes are refused with a typed error") {
  for (const char* name : {"events", "_events", "-events", "a.b_events", "a_x-events", "a_-events", "a__-events",
                           "abc-events", "a_b", "__a-events", "a__-events", "a____b-events"}) {
    CAPTURE(std::string{name});
    auto ns = detail::namespace_from_resource_name(name, "events");
    REQUIRE_FALSE(ns);
    CHECK(ns.error().code() == aether::errc::invalid_argument);
  }
  CHECK_FALSE(detail::namespace_from_token("a::b"));
  CHECK_FALSE(detail::namespace_from_token(":a"));
}

TEST_CASE("namespace patterns follow NATS's rules") {
  struct row {
    const char* pattern;
    const char* ns;
    bool match;
  };
  const row rows[] = {
      {"acme.*", "acme.orders", true},
      {"acme.*", "acme", false},
      {"acme.*", "acme.a.b", false},
      {"acme.>", "acme.orders", true},
      {"acme.>", "acme.a.b", true},
      {"acme.>", "acme", false},
      {"*.billing", "acme.billing", true},
      {"*.billing", "billing", false},
      {"*.billing", "a.b.billing", false},
      {">", "acme", true},
      {">", "a.b.c", true},
      {"*", "acme", true},
      {"*", "acme.b", false},
      {"acme", "acme", true},
      {"acme", "acme.b", false},
      {"acme", "acme_b", false},
      {"acme.billing", "acme_billing", false},
      {"a.*.c.>", "a.b.c.d", true},
      {"a.*.c.>", "a.b.c", false},
  };
  for (const auto& r : rows) {
    CAPTURE(std::string{r.pattern});
    CAPTURE(std::string{r.ns});
    REQUIRE(detail::validate_namespace_pattern(r.pattern));
    CHECK(detail::namespace_matches(r.pattern, r.ns) == r.match);
  }
  for (const char* bad : {"", "acme.>.x", "a..b", "*x", "x*", ".a", "a.", ">>", "a.>b", "a b", "a/b"}) {
    CAPTURE(std::string{bad});
    auto r = detail::validate_namespace_pattern(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == aether::errc::invalid_argument);
  }
  CHECK_FALSE(detail::validate_namespace_pattern(std::string(actor_id::max_namespace_size + 1, 'a')));
}

TEST_CASE("a namespace pattern is the tail of one bus subject filter") {
  CHECK(detail::bus_filter("pub", "*", "*", "acme.>") == "aether_bus.pub.*.*.*.acme.>");
  CHECK(detail::bus_filter("stored", "order", "*", "*.billing") == "aether_bus.stored.order.*.*.*.billing");
  CHECK(detail::bus_subject("pub", actor_id{"order", "o-1", "acme.billing"}, 7) ==
        "aether_bus.pub.order.o-1.7.acme.billing");
}
