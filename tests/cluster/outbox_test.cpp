// The outbox on a real nats-server: tells gathered per node into batches
// (full ones published at once, the rest by the posted flush), everything
// else published at once after what was gathered for its node, so each
// receiver sees the sender's order.
#include "outbox.hpp"
#include "support/eventually.hpp"
#include "support/nats_server.hpp"

#include <aether/runtime/manual_executor.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using aether::member_id;
using aether::remote_envelope;
using aether::remote_kind;

namespace {

std::shared_ptr<aether::nats::connection> connect(const std::string& url) {
  aether::nats::connect_options o;
  o.url = url;
  o.send_asap = true;
  auto c = aether::nats::connection::connect(o);
  REQUIRE(c);
  return *c;
}

/// What one node's inbox received: each NATS message, and the envelopes in order.
struct inbox {
  std::mutex mutex;
  std::vector<std::string> messages;
  std::vector<remote_envelope> envelopes;
  int bad = 0; // messages or envelopes that did not decode
  std::optional<aether::nats::subscription> sub;

  inbox(aether::nats::connection& conn, const std::string& subject) {
    auto s = conn.subscribe(subject, [this](const aether::nats::message_view& m) {
      std::lock_guard lock{mutex};
      messages.emplace_back(m.data());
      std::vector<std::string_view> parts{m.data()};
      if (aether::is_batch(m.data())) {
        auto split = aether::split_batch(m.data());
        if (!split) {
          ++bad;
          return;
        }
        parts = *split;
      }
      for (auto p : parts) {
        auto e = aether::decode_envelope(p);
        if (!e) {
          ++bad;
          continue;
        }
        envelopes.push_back(std::move(*e));
      }
    });
    REQUIRE(s);
    sub.emplace(std::move(*s));
    REQUIRE(conn.flush(5s));
  }
  std::size_t count() {
    std::lock_guard lock{mutex};
    return envelopes.size();
  }
  ~inbox() { CHECK(bad == 0); }
};

remote_envelope tell(int seq) {
  remote_envelope e;
  e.kind = remote_kind::tell;
  e.from = member_id{"sender", 1};
  e.target = aether::actor_id{"echo", "k1"};
  e.type = "t.seq";
  e.payload = fmt::format(R"({{"seq":{}}})", seq);
  return e;
}

remote_envelope ask(int seq) {
  auto e = tell(seq);
  e.kind = remote_kind::ask;
  e.correlation = static_cast<std::uint64_t>(seq) + 1;
  return e;
}

int seq_of(const remote_envelope& e) { return std::stoi(e.payload.substr(7)); }

std::string subject_of(const member_id& m) { return "outbox_test." + m.node; }

} // namespace

TEST_CASE("tells are gathered per node, an ask leaves after them, full batches leave at once") {
  aether::testing::nats_server server;
  auto sender = connect(server.url());
  auto receiver = connect(server.url());
  inbox a{*receiver, subject_of({"a", 1})};
  inbox b{*receiver, subject_of({"b", 1})};
  aether::manual_executor exec;
  auto out = std::make_shared<aether::outbox>(exec, 0, sender, subject_of, aether::outbox::limits{1u << 20, 100});
  const member_id to_a{"a", 1};
  const member_id to_b{"b", 1};

  // 250 tells to a: two full batches leave at once, 50 wait; 3 to b wait.
  for (int i = 0; i < 250; ++i) REQUIRE(out->send(to_a, tell(i)));
  for (int i = 0; i < 3; ++i) REQUIRE(out->send(to_b, tell(1000 + i)));
  AETHER_EVENTUALLY(a.count() == 200, 10s);
  // The ask to a takes the 50 with it, first; b's tells still wait for the flush.
  REQUIRE(out->send(to_a, ask(250)));
  AETHER_EVENTUALLY(a.count() == 251, 10s);
  REQUIRE(sender->flush(5s));
  CHECK(b.count() == 0);
  CHECK(exec.run() >= 1); // the flush posted by the first tell
  AETHER_EVENTUALLY(b.count() == 3, 10s);

  std::lock_guard lock{a.mutex};
  REQUIRE(a.messages.size() == 4);
  CHECK(a.messages[0].starts_with("#100\n"));
  CHECK(a.messages[1].starts_with("#100\n"));
  CHECK(a.messages[2].starts_with("#50\n"));
  CHECK(a.messages[3].starts_with("{")); // the ask, alone
  for (int i = 0; i <= 250; ++i) CHECK(seq_of(a.envelopes[static_cast<std::size_t>(i)]) == i);
  CHECK(a.envelopes.back().kind == remote_kind::ask);
  CHECK(out->messages() == 5);
  CHECK(out->envelopes() == 254);
  CHECK(out->lost() == 0);
}

TEST_CASE("a flush sends one message per node, a lone tell travels as its envelope") {
  aether::testing::nats_server server;
  auto sender = connect(server.url());
  auto receiver = connect(server.url());
  inbox a{*receiver, subject_of({"a", 1})};
  aether::manual_executor exec;
  auto out = std::make_shared<aether::outbox>(exec, 0, sender, subject_of);
  const member_id to_a{"a", 1};
  for (int i = 0; i < 3; ++i) REQUIRE(out->send(to_a, tell(i)));
  CHECK(exec.run() == 1); // one flush posted for all three
  AETHER_EVENTUALLY(a.count() == 3, 10s);
  REQUIRE(out->send(to_a, tell(3)));
  out->flush(); // as a stopping router does, without the lane
  AETHER_EVENTUALLY(a.count() == 4, 10s);
  (void)exec.run(); // the posted flush finds nothing left
  REQUIRE(sender->flush(5s));
  std::lock_guard lock{a.mutex};
  REQUIRE(a.messages.size() == 2);
  CHECK(a.messages[0].starts_with("#3\n"));
  CHECK(a.messages[1] == aether::encode_envelope(tell(3)));
  for (int i = 0; i < 4; ++i) CHECK(seq_of(a.envelopes[static_cast<std::size_t>(i)]) == i);
}

TEST_CASE("senders on many threads keep each one's order at the receiver") {
  aether::testing::nats_server server;
  auto sender = connect(server.url());
  auto receiver = connect(server.url());
  inbox a{*receiver, subject_of({"a", 1})};
  aether::thread_pool_executor exec{1, 1}; // the posted flushes run too
  auto out = std::make_shared<aether::outbox>(exec, 0, sender, subject_of, aether::outbox::limits{4096, 64});
  constexpr int threads = 4;
  constexpr int each = 2000;
  std::atomic<int> failed{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < threads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < each; ++i) {
        auto e = (i % 97 == 96) ? ask(t * each + i) : tell(t * each + i);
        if (!out->send({"a", 1}, e)) ++failed;
        if (i % 500 == 0) out->flush();
      }
    });
  }
  for (auto& s : senders) s.join();
  CHECK(failed == 0);
  out->flush();
  AETHER_EVENTUALLY(a.count() == threads * each, 20s);
  std::lock_guard lock{a.mutex};
  std::vector<int> last(threads, -1);
  for (const auto& e : a.envelopes) {
    const int seq = seq_of(e);
    const int t = seq / each;
    CHECK(seq > last[static_cast<std::size_t>(t)]);
    last[static_cast<std::size_t>(t)] = seq;
  }
  CHECK(a.messages.size() < static_cast<std::size_t>(threads * each));
}
