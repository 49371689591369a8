// The wire form of node-to-node messages: round trips and hostile input.
#include "remote_envelope.hpp"

#include <doctest/doctest.h>

#include <fmt/format.h>

#include <string>
#include <vector>

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

TEST_CASE("the direct encoder writes the bytes of the declared wire shape") {
  auto ask = an_ask();
  CHECK(encode_envelope(ask) == aether::detail::encode_envelope_reference(ask));
  ask.kind = remote_kind::tell;
  ask.sender = {};
  ask.hops = 2;
  ask.from.node = "n\"odd\\";
  CHECK(encode_envelope(ask) == aether::detail::encode_envelope_reference(ask));
  remote_envelope failed;
  failed.kind = remote_kind::answer;
  failed.from = aether::member_id{"n2", ~std::uint64_t{0}};
  failed.correlation = 6;
  failed.failure.emplace(errc::version_conflict, "a \"quoted\"\n detail \xff", 41);
  CHECK(encode_envelope(failed) == aether::detail::encode_envelope_reference(failed));
  remote_envelope released;
  released.kind = remote_kind::released;
  released.from = aether::member_id{"n3", 9};
  released.epoch = 12;
  released.shard = 3;
  CHECK(encode_envelope(released) == aether::detail::encode_envelope_reference(released));
}

namespace {

std::vector<remote_envelope> decode_all(std::string_view bytes) {
  auto parts = aether::split_batch(bytes);
  REQUIRE(parts);
  std::vector<remote_envelope> out;
  for (auto p : *parts) {
    auto e = decode_envelope(p);
    REQUIRE(e);
    out.push_back(std::move(*e));
  }
  return out;
}

} // namespace

TEST_CASE("a batch carries envelopes in order") {
  aether::envelope_batch batch;
  CHECK(batch.empty());
  CHECK(batch.finish().empty());
  for (int i = 0; i < 300; ++i) {
    auto e = an_ask();
    e.kind = remote_kind::tell;
    e.correlation = 0;
    e.payload = fmt::format(R"({{"seq":{}}})", i);
    batch.add(e);
  }
  CHECK(batch.count() == 300);
  const auto bytes = std::string{batch.finish()};
  CHECK(bytes.size() == batch.size());
  CHECK(aether::is_batch(bytes));
  CHECK(bytes.starts_with("#300\n"));
  const auto all = decode_all(bytes);
  REQUIRE(all.size() == 300);
  for (int i = 0; i < 300; ++i) CHECK(all[static_cast<std::size_t>(i)].payload == fmt::format(R"({{"seq":{}}})", i));

  // Cleared, it starts again; a batch of one also travels as that envelope alone.
  batch.clear();
  batch.add(an_ask());
  CHECK(batch.only() == encode_envelope(an_ask()));
  CHECK(decode_all(batch.finish()).size() == 1);
  CHECK(!aether::is_batch(encode_envelope(an_ask())));
}

TEST_CASE("hostile batches are typed errors: truncated, wrong counts, oversize") {
  const auto one = encode_envelope(an_ask());
  const auto record = fmt::format("{}\n{}", one.size(), one);
  const auto two = fmt::format("#2\n{}{}", record, record);
  REQUIRE(decode_all(two).size() == 2);
  const std::string hostile[] = {
      "#",
      "#\n",
      "#0\n",                                 // no envelopes
      "#-1\n" + record,                       // not a count
      "#1" + record,                          // no newline after the count
      "#x\n" + record,                        //
      "#65537\n" + record,                    // more than the limit
      "#99999999999999999999999\n" + record,  // not a number that fits
      "#3\n" + record + record,               // fewer envelopes than announced
      "#1\n" + record + record,               // more bytes than announced
      "#2\n" + record + record + "\n",        // a byte after the last envelope
      two.substr(0, two.size() - 1),          // the last envelope cut short
      two.substr(0, two.size() - one.size()), // the last envelope missing
      fmt::format("#1\n{}\n{}", one.size() + 1, one),
      fmt::format("#1\n{}\n{}", one.size() - 1, one),
      fmt::format("#1\n\n{}", one), // no length
      fmt::format("#1\n+{}\n{}", one.size(), one),
      fmt::format("#1\n 5\n{}", one),
      fmt::format("#1\n{}\n{}", 1, "["),                                             // not an object
      fmt::format("#1\n{}\n{}", 3 + one.size(), "#1\n" + one.substr(0, one.size())), // a batch in a batch
  };
  for (const auto& h : hostile) {
    CAPTURE(h);
    auto parts = aether::split_batch(h);
    REQUIRE(!parts);
    CHECK(parts.error() == errc::malformed_payload);
  }
  // An envelope announced over the envelope limit, and a batch over the batch limit.
  auto too_long = aether::split_batch(fmt::format("#1\n{}\n{}", aether::max_envelope_size + 1, one));
  REQUIRE(!too_long);
  CHECK(too_long.error() == errc::payload_too_large);
  auto too_big = aether::split_batch("#1\n" + std::string(aether::max_batch_size, '{'));
  REQUIRE(!too_big);
  CHECK(too_big.error() == errc::payload_too_large);
  // The framing is checked before anything is decoded; a record that frames
  // right but does not decode is the envelope decoder's typed error.
  auto bad = aether::split_batch("#1\n2\n{}");
  REQUIRE(bad);
  CHECK(decode_envelope((*bad)[0]).error() == errc::malformed_payload);
}

TEST_CASE("a batch's ids decode the same when the ids parsed before are remembered") {
  // As the inbox decodes a batch: a target or sender whose text repeats is
  // not parsed again, and one that changes (or is bad) is.
  auto e = an_ask();
  e.kind = remote_kind::tell;
  std::vector<std::string> wire;
  const std::vector<actor_id> targets{actor_id{"account", "alice", "bank"}, actor_id{"account", "alice", "bank"},
                                      actor_id{"account", "bob", "bank"}, actor_id{"account", "alice", "bank"},
                                      actor_id{"account", "bob"}};
  for (const auto& t : targets) {
    e.target = t;
    e.sender = t == targets[2] ? actor_id{} : actor_id{"teller", "t1", "bank"};
    wire.push_back(encode_envelope(e));
  }
  aether::envelope_ids ids;
  for (std::size_t i = 0; i < wire.size(); ++i) {
    auto remembering = decode_envelope(wire[i], &ids);
    REQUIRE(remembering);
    CHECK(remembering->target == targets[i]);
    CHECK(remembering->target.to_string() == targets[i].to_string());
    CHECK(remembering->sender == (i == 2 ? actor_id{} : actor_id{"teller", "t1", "bank"}));
  }
  // A bad target after a good one is refused as it is without the memory.
  e.target = targets[0];
  auto bad = encode_envelope(e);
  const auto alice = bad.find("bank/account/alice");
  REQUIRE(alice != std::string::npos);
  bad.replace(alice, 18, "bank/acc*unt/alice");
  REQUIRE(decode_envelope(encode_envelope(e), &ids));
  auto refused = decode_envelope(bad, &ids);
  REQUIRE(!refused);
  CHECK(refused.error() == errc::malformed_payload);
  CHECK(decode_envelope(bad).error() == errc::malformed_payload);
  // And the remembered id is still the good one.
  auto again = decode_envelope(encode_envelope(e), &ids);
  REQUIRE(again);
  CHECK(again->target == targets[0]);
}
