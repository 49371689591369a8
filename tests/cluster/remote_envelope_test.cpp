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

namespace {

/// Envelopes of every kind, with payloads that use all of plain JSON.
std::vector<remote_envelope> every_kind() {
  std::vector<remote_envelope> out;
  out.push_back(an_ask());
  auto tell = an_ask();
  tell.kind = remote_kind::tell;
  tell.correlation = 0;
  tell.sender = {};
  tell.hops = 3;
  tell.payload = R"({"a":[1,-2.5,0,true,false,null,{"b":"x\"y\\z\n\t\/"}],"u":"é漢😀","e":{},"l":[]})";
  out.push_back(tell);
  remote_envelope answer;
  answer.kind = remote_kind::answer;
  answer.from = aether::member_id{"n2", 0};
  answer.correlation = ~std::uint64_t{0};
  answer.type = "bank.balance";
  answer.payload = "{}";
  out.push_back(answer);
  remote_envelope failed = answer;
  failed.type.clear();
  failed.payload.clear();
  failed.failure.emplace(errc::version_conflict, "expected 3", 41);
  out.push_back(failed);
  remote_envelope not_owner;
  not_owner.kind = remote_kind::not_owner;
  not_owner.from = aether::member_id{"n3", 1};
  not_owner.correlation = 5;
  out.push_back(not_owner);
  remote_envelope released;
  released.kind = remote_kind::released;
  released.from = aether::member_id{"n3", 9};
  released.epoch = 12;
  released.shard = 4294967295u;
  out.push_back(released);
  remote_envelope query = released;
  query.kind = remote_kind::query;
  query.hops = 1;
  out.push_back(query);
  return out;
}

/// `bytes` with the first `from` replaced by `to`.
std::string replaced(std::string bytes, std::string_view from, std::string_view to) {
  const auto at = bytes.find(from);
  REQUIRE(at != std::string::npos);
  bytes.replace(at, from.size(), to);
  return bytes;
}

} // namespace

TEST_CASE("what the encoder writes is read in one pass, and as the general decoder reads it") {
  for (const auto& e : every_kind()) {
    const auto bytes = encode_envelope(e);
    CAPTURE(bytes);
    auto fast = aether::detail::decode_envelope_fast(bytes);
    REQUIRE(fast); // the encoder's shape never needs the general decoder
    REQUIRE(*fast);
    auto general = aether::detail::decode_envelope_general(bytes);
    REQUIRE(general);
    CHECK(encode_envelope(**fast) == bytes);
    CHECK(encode_envelope(*general) == bytes);
    CHECK((*fast)->failure.has_value() == e.failure.has_value());
    CHECK((*fast)->target == e.target);
    CHECK((*fast)->sender == e.sender);
  }
}

TEST_CASE("an envelope in another shape is left to the general decoder, which reads it") {
  auto ask = an_ask();
  ask.payload = R"({"cents":5})";
  const auto valid = encode_envelope(ask);
  const auto kind_last = replaced(valid, R"("kind":"ask",)", "");
  const std::string others[] = {
      replaced(valid, R"("kind":"ask")", R"("kind" : "ask")"),
      replaced(kind_last, R"("failure":null)", R"("failure":null,"kind":"ask")"), // fields reordered
      replaced(valid, R"("type":"bank.deposit")", R"("type":"bank.dep\u006fsit")"),
      replaced(valid, R"("from_node":"n1")", R"("from_node":"\u006e1")"),
      replaced(valid, R"({"cents":5})", R"({"cents":5e0})"),
      replaced(valid, R"({"cents":5})", R"({ "cents": 5 })"),
      replaced(valid, R"({"cents":5})", R"({"cents":"\u00e9"})"),
      replaced(valid, R"("hops":null)", R"("hops":null,"later":[1,2])"), // a field from a newer node
      valid + "\n",
  };
  for (const auto& o : others) {
    CAPTURE(o);
    CHECK(!aether::detail::decode_envelope_fast(o));
    auto d = decode_envelope(o);
    REQUIRE(d);
    CHECK(d->kind == remote_kind::ask);
    CHECK(d->from == ask.from);
    CHECK(d->type == "bank.deposit");
    CHECK(d->target == ask.target);
    CHECK(d->correlation == 17);
    CHECK(d->payload.starts_with("{"));
  }
}

TEST_CASE("hostile envelopes in the encoder's shape are typed errors from either reader, never a crash") {
  const auto tells = every_kind();
  const auto valid = encode_envelope(tells[1]); // the tell with a payload of every JSON kind
  std::vector<std::string> hostile;
  // Every truncation.
  for (std::size_t n = 0; n < valid.size(); ++n) hostile.push_back(valid.substr(0, n));
  // Wrong types and bad numbers in each field.
  const std::pair<std::string_view, std::string_view> swaps[] = {
      {R"("kind":"tell")", R"("kind":"TELL")"},
      {R"("kind":"tell")", R"("kind":null)"},
      {R"("from_node":"n1")", R"("from_node":1)"},
      {R"("from_incarnation":)", R"("from_incarnation":-)"},
      {R"("from_incarnation":)", R"("from_incarnation":"1)"},
      {R"("target":"bank/account/alice")", R"("target":5)"},
      {R"("target":"bank/account/alice")", R"("target":"bank//alice")"},
      {R"("sender":null)", R"("sender":"x")"},
      {R"("type":"bank.deposit")", R"("type":true)"},
      {R"("type":"bank.deposit")", R"("type":null)"},
      {R"("payload":{)", R"("payload":"x",{)"},
      {R"("payload":{"a":[1,)", R"("payload":[{"a":[1,)"},
      {R"("a":[1,)", R"("a":[01,)"},
      {R"("a":[1,)", R"("a":[1.,)"},
      {R"("a":[1,)", R"("a":[-,)"},
      {R"("a":[1,)", R"("a":[1e,)"},
      {R"("a":[1,)", R"("a":[1e999,)"},
      {R"(true,)", R"(tru,)"},
      {R"(null,)", R"(nul,)"},
      {R"("u":"é)", "\"u\":\"\x01"},
      {R"("u":"é)", R"("u":"\q)"},
      {R"("u":"é)", R"("u":"\u12)"},
      {R"("u":"é)", R"("u":"\ud800)"},
      {R"("u":"é)", "\"u\":\"\xc0\xaf"},         // overlong
      {R"("u":"é)", "\"u\":\"\xed\xa0\x80"},     // a surrogate
      {R"("u":"é)", "\"u\":\"\xf4\x90\x80\x80"}, // above U+10FFFF
      {R"("u":"é)", "\"u\":\"\xe6\xbc"},         // cut short
      {R"("u":"é)", "\"u\":\"\x80"},
      {R"("e":{})", R"("e":{)"},
      {R"("e":{})", R"("e":{1:2})"},
      {R"("e":{})", R"("e":{"k"})"},
      {R"("l":[])", R"("l":[,])"},
      {R"("l":[])", R"("l":[1,])"},
      {R"("correlation":0)", R"("correlation":00)"},
      {R"("timeout_ms":2000)", R"("timeout_ms":18446744073709551616)"},
      {R"("epoch":9)", R"("epoch":1.5)"},
      {R"("shard":200)", R"("shard":4294967296)"},
      {R"("hops":3)", R"("hops":4294967296)"},
      {R"("hops":3)", R"("hops":"3")"},
      {R"("failure":null)", R"("failure":{"code":"no_such_code","detail":"","value":0})"},
      {R"("failure":null)", R"("failure":{"code":"timeout","detail":7,"value":0})"},
      {R"("failure":null)", R"("failure":"timeout")"},
      {R"("failure":null})", R"("failure":null}})"},
      {R"("failure":null})", R"("failure":null}x)"},
  };
  for (const auto& [from, to] : swaps) hostile.push_back(replaced(valid, from, to));
  // Nested deeper than any decoder goes.
  hostile.push_back(replaced(valid, R"("e":{})", R"("e":)" + std::string(300, '[') + std::string(300, ']')));
  // Unknown kinds and answers without a correlation, in the exact shape.
  auto released = encode_envelope(tells[5]);
  hostile.push_back(replaced(released, R"("kind":"released")", R"("kind":"handover")"));
  hostile.push_back(replaced(encode_envelope(tells[2]), R"("correlation":18446744073709551615)", R"("correlation":0)"));
  for (const auto& h : hostile) {
    CAPTURE(h);
    auto d = decode_envelope(h);
    REQUIRE(!d);
    CHECK((d.error() == errc::malformed_payload || d.error() == errc::payload_too_large));
    auto general = aether::detail::decode_envelope_general(h);
    REQUIRE(!general);
    CHECK(general.error().code() == d.error().code());
  }
  // Oversized, in the exact shape: refused before it is read.
  auto big = tells[1];
  big.payload = fmt::format(R"({{"s":"{}"}})", std::string(9u << 20, 'a'));
  CHECK(decode_envelope(encode_envelope(big)).error() == errc::payload_too_large);
  // An unknown message type name is well-formed here: the receiving actor's
  // handler table refuses it with unknown_message_type (tests/cluster/shard_router_test.cpp).
  auto unknown = tells[1];
  unknown.type = "no.such.type";
  auto d = decode_envelope(encode_envelope(unknown));
  REQUIRE(d);
  CHECK(d->type == "no.such.type");
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

namespace {

/// Envelopes one after another as a node sends them: runs that repeat the
/// fields before or after the payload, and changes of each of those fields.
std::vector<remote_envelope> a_stream() {
  std::vector<remote_envelope> out;
  auto tell = an_ask();
  tell.kind = remote_kind::tell;
  tell.correlation = 0;
  tell.timeout_ms = 0;
  for (int i = 0; i < 3; ++i) {
    tell.payload = fmt::format(R"({{"cents":{}}})", i);
    out.push_back(tell);
  }
  auto change = [&](auto&& edit) {
    edit(tell);
    out.push_back(tell);
    out.push_back(tell); // and once more unchanged
  };
  change([](remote_envelope& e) { e.target = actor_id{"account", "bob", "bank"}; });
  change([](remote_envelope& e) { e.sender = {}; });
  change([](remote_envelope& e) { e.type = "bank.withdraw"; });
  change([](remote_envelope& e) { e.from.incarnation += 1; });
  change([](remote_envelope& e) { e.from.node = "n2"; });
  change([](remote_envelope& e) { e.epoch += 1; });
  change([](remote_envelope& e) { e.shard = 7; });
  change([](remote_envelope& e) { e.hops = 2; });
  change([](remote_envelope& e) { e.payload = R"({"memo":"\u00e9t\u00e9 \"x\""})"; });
  auto ask = tell;
  ask.kind = remote_kind::ask;
  for (std::uint64_t c = 1; c <= 3; ++c) {
    ask.correlation = c;
    ask.timeout_ms = 1000 - c;
    out.push_back(ask);
  }
  remote_envelope failed;
  failed.kind = remote_kind::answer;
  failed.from = tell.from;
  failed.correlation = 3;
  failed.failure.emplace(errc::version_conflict, "stale", 41);
  out.push_back(failed);
  out.push_back(failed);
  failed.failure.emplace(errc::timeout, "late", 0);
  out.push_back(failed);
  out.push_back(tell);
  return out;
}

void check_same(const remote_envelope& a, const remote_envelope& b) {
  CHECK(a.kind == b.kind);
  CHECK(a.from == b.from);
  CHECK(a.target == b.target);
  CHECK(a.sender == b.sender);
  CHECK(a.type == b.type);
  CHECK(a.payload == b.payload);
  CHECK(a.correlation == b.correlation);
  CHECK(a.timeout_ms == b.timeout_ms);
  CHECK(a.epoch == b.epoch);
  CHECK(a.shard == b.shard);
  CHECK(a.hops == b.hops);
  REQUIRE(a.failure.has_value() == b.failure.has_value());
  if (a.failure) {
    CHECK(a.failure->code() == b.failure->code());
    CHECK(a.failure->detail() == b.failure->detail());
    CHECK(a.failure->value() == b.failure->value());
  }
}

} // namespace

TEST_CASE("the remembering encoder writes what encode_envelope writes, envelope after envelope") {
  aether::envelope_encoder encoder;
  for (const auto& e : a_stream()) {
    fmt::memory_buffer out;
    out.append(std::string_view{"prefix"}); // it appends
    encoder.encode(out, e);
    CHECK(std::string{out.data(), out.size()} == "prefix" + encode_envelope(e));
  }
}

TEST_CASE("repeated fields before and after the payload decode as they do without memory") {
  aether::envelope_ids ids;
  for (const auto& e : a_stream()) {
    const auto bytes = encode_envelope(e);
    CAPTURE(bytes);
    auto remembering = decode_envelope(bytes, &ids);
    auto plain = decode_envelope(bytes);
    REQUIRE(remembering);
    REQUIRE(plain);
    check_same(*remembering, e);
    check_same(*plain, e);
  }
  // Bytes that repeat the remembered ones but go wrong after them are
  // refused as they are without the memory, and the memory stays good.
  auto tell = a_stream().front();
  const auto good = encode_envelope(tell);
  REQUIRE(decode_envelope(good, &ids));
  const auto payload_at = good.find(R"("payload":)") + 10;
  for (const std::string& bad :
       {good.substr(0, payload_at) + R"([1],"correlation":0)" + good.substr(good.find(R"(,"timeout_ms")")),
        good.substr(0, good.size() - 1), good + " ",
        good.substr(0, payload_at) + R"({"a":"\ud800"})" + good.substr(good.find(R"(,"correlation")"))}) {
    CAPTURE(bad);
    auto remembering = decode_envelope(bad, &ids);
    auto plain = decode_envelope(bad);
    REQUIRE(remembering.has_value() == plain.has_value());
    if (!plain) {
      CHECK(remembering.error() == plain.error().code());
    } else {
      check_same(*remembering, *plain);
    }
  }
  // A known tail after an ask's head is still checked against the kind:
  // an ask without a correlation is malformed either way.
  auto ask = tell;
  ask.kind = remote_kind::ask;
  auto no_correlation = encode_envelope(ask); // correlation 0, the tell's tail
  CHECK(decode_envelope(no_correlation, &ids).error() == errc::malformed_payload);
  CHECK(decode_envelope(no_correlation).error() == errc::malformed_payload);
  auto again = decode_envelope(good, &ids);
  REQUIRE(again);
  check_same(*again, tell);
}
