// The wire form of node-to-node messages: round trips and hostile input.
#include "remote_envelope.hpp"

#include <doctest/doctest.h>

#include <string>

using aether::actor_id;
using aether::decode_envelope;
using aether::encode_envelope;
using aether::errc;
using aether::remote_envelope;
using aether::remote_kind;

namespace {

remote_envelope an_ask() {
  remote_envelope e;
  e.kind = remote_kind::ask;
  e.from = aether::member_id{"n1", 0xfeedbeefcafe1234ULL};
  e.target = actor_id{"account", "alice", "bank"};
  e.sender = actor_id{"teller", "t1", "bank"};
  e.type = "bank.deposit";
  e.payload = R"({"cents":5,"memo":"a \"quoted\" memo"})";
  e.correlation = 17;
  e.timeout_ms = 2000;
  e.epoch = 9;
  e.shard = 200;
  return e;
}

} // namespace

TEST_CASE("an ask survives its wire form") {
  const auto e = an_ask();
  auto d = decode_envelope(encode_envelope(e));
  REQUIRE(d);
  CHECK(d->kind == remote_kind::ask);
  CHECK(d->from == e.from);
  CHECK(d->target == e.target);
  CHECK(d->sender == e.sender);
  CHECK(d->type == e.type);
  CHECK(d->payload == e.payload);
  CHECK(d->correlation == 17);
  CHECK(d->timeout_ms == 2000);
  CHECK(d->epoch == 9);
  CHECK(d->shard == 200);
  CHECK(!d->failure);
}

TEST_CASE("a tell from outside the actors has no sender") {
  auto e = an_ask();
  e.kind = remote_kind::tell;
  e.sender = {};
  e.correlation = 0;
  auto d = decode_envelope(encode_envelope(e));
  REQUIRE(d);
  CHECK(d->kind == remote_kind::tell);
  CHECK(d->sender.empty());
}

TEST_CASE("an answer carries a value or a typed error with its value") {
  remote_envelope ok;
  ok.kind = remote_kind::answer;
  ok.from = aether::member_id{"n2", 1};
  ok.correlation = 5;
  ok.type = "bank.balance";
  ok.payload = R"({"cents":12})";
  auto d = decode_envelope(encode_envelope(ok));
  REQUIRE(d);
  CHECK(d->payload == ok.payload);

  remote_envelope failed;
  failed.kind = remote_kind::answer;
  failed.from = aether::member_id{"n2", 1};
  failed.correlation = 6;
  failed.failure.emplace(errc::version_conflict, "account alice", 41);
  d = decode_envelope(encode_envelope(failed));
  REQUIRE(d);
  REQUIRE(d->failure);
  CHECK(d->failure->code() == errc::version_conflict);
  CHECK(d->failure->value() == 41);
  CHECK(d->failure->detail() == "account alice");

  remote_envelope no;
  no.kind = remote_kind::not_owner;
  no.from = aether::member_id{"n2", 1};
  no.correlation = 7;
  d = decode_envelope(encode_envelope(no));
  REQUIRE(d);
  CHECK(d->kind == remote_kind::not_owner);
}

TEST_CASE("hostile envelopes are malformed_payload, never a crash") {
  const std::string valid = encode_envelope(an_ask());
  auto replace = [&](std::string_view from, std::string_view to) {
    std::string s = valid;
    const auto at = s.find(from);
    REQUIRE(at != std::string::npos);
    s.replace(at, from.size(), to);
    return s;
  };
  const std::string hostile[] = {
      "",
      "null",
      "[]",
      "{}",
      valid.substr(0, valid.size() / 2),
      replace(R"("kind":"ask")", R"("kind":"shout")"),
      replace(R"("kind":"ask")", R"("kind":1)"),
      replace(R"("from_node":"n1")", R"("from_node":"n.1")"),
      replace(R"("from_node":"n1")", R"("from_node":"n1\r\nPUB x 1")"),
      replace(R"("from_node":"n1")", R"("from_node":"")"),
      replace(R"("target":"bank/account/alice")", R"("target":"bank/account/al ice")"),
      replace(R"("target":"bank/account/alice")", R"("target":null)"),
      replace(R"("sender":"bank/teller/t1")", R"("sender":"bank/teller/*")"),
      replace(R"("type":"bank.deposit")", R"("type":"")"),
      replace(R"("correlation":17)", R"("correlation":0)"),
      replace(R"("correlation":17)", R"("correlation":-1)"),
      replace(R"("shard":200)", R"("shard":4294967296)"),
      replace(R"("payload":{"cents":5,)", R"("payload":{"cents":5,,)"),
      replace(R"("failure":null)", R"("failure":{"code":"on_fire","detail":"","value":0})"),
  };
  for (const auto& h : hostile) {
    CAPTURE(h);
    auto d = decode_envelope(h);
    REQUIRE(!d);
    CHECK((d.error() == errc::malformed_payload || d.error() == errc::payload_too_large));
  }
  // An ask whose payload is missing carries nothing to deliver.
  auto e = an_ask();
  e.payload.clear();
  CHECK(!decode_envelope(encode_envelope(e)));
  // Oversized input is refused before it is parsed.
  const std::string big(9u << 20, ' ');
  CHECK(decode_envelope(big).error() == errc::payload_too_large);
}
