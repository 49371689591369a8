#include <aether/runtime/log.hpp>
#include <aether/runtime/nats.hpp>

#include "support/nats_auth.hpp"
#include "support/nats_server.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

using aether::errc;
using aether::nats::connect_options;
using aether::nats::connection;
using aether::nats::security_options;
using aether::testing::auth_material;
using aether::testing::nats_server;

namespace {

using namespace std::chrono_literals;

connect_options options_for(const nats_server& server, security_options security = {}) {
  connect_options o;
  o.url = server.url();
  o.connect_timeout = 5s;
  o.max_reconnects = 0;
  o.security = std::move(security);
  return o;
}

/// A connection that works: a message published comes back to a subscriber.
void check_round_trip(const std::shared_ptr<connection>& conn) {
  REQUIRE(conn->connected());
  std::atomic<int> got{0};
  auto sub = conn->subscribe("secured.echo", [&](const aether::nats::message_view&) { ++got; });
  REQUIRE(sub.has_value());
  REQUIRE(conn->publish("secured.echo", "hello").has_value());
  REQUIRE(conn->flush(5s).has_value());
  for (int i = 0; i < 500 && got.load() == 0; ++i) std::this_thread::sleep_for(10ms);
  CHECK(got.load() == 1);
}

/// Refused with `unauthorized`, and the message holds none of `secrets`.
void check_refused(const connect_options& o, std::initializer_list<std::string> secrets = {}) {
  auto conn = connection::connect(o);
  REQUIRE_FALSE(conn.has_value());
  CHECK_MESSAGE(conn.error().code() == errc::unauthorized, conn.error().to_string());
  for (const auto& s : secrets) CHECK(conn.error().to_string().find(s) == std::string::npos);
}

} // namespace

TEST_CASE("a server that requires a token refuses a client without it or with another and takes the right one") {
  const std::string token = "tok-7f3a9c21d0";
  nats_server server{{.jetstream = false, .extra_config = "authorization {\n  token: \"" + token + "\"\n}\n"}};
  check_refused(options_for(server));
  check_refused(options_for(server, {.token = "tok-wrong-55"}), {"tok-wrong-55"});
  auto conn = connection::connect(options_for(server, {.token = token}));
  REQUIRE_MESSAGE(conn.has_value(), (conn ? "" : conn.error().to_string()));
  check_round_trip(*conn);
}

TEST_CASE("a server that requires a user and password refuses a wrong password and never shows it") {
  nats_server server{
      {.jetstream = false,
       .extra_config = "authorization {\n  users = [ { user: alice, password: \"pw-c0ffee-91\" } ]\n}\n"}};
  check_refused(options_for(server));
  check_refused(options_for(server, {.user = "alice", .password = "pw-wrong-13"}), {"pw-wrong-13"});
  // Credentials in the URL are left out of messages too.
  auto in_url = options_for(server);
  in_url.url = "nats://alice:pw-wrong-14@127.0.0.1:" + std::to_string(server.port());
  check_refused(in_url, {"pw-wrong-14"});
  auto conn = connection::connect(options_for(server, {.user = "alice", .password = "pw-c0ffee-91"}));
  REQUIRE_MESSAGE(conn.has_value(), (conn ? "" : conn.error().to_string()));
  check_round_trip(*conn);
}

TEST_CASE("a server that requires an NKey takes a client with the seed file and refuses one with another seed") {
  auth_material m;
  const auto user = aether::testing::make_nkey('U');
  const auto other = aether::testing::make_nkey('U');
  nats_server server{
      {.jetstream = false, .extra_config = "authorization {\n  users = [ { nkey: " + user.public_key + " } ]\n}\n"}};
  check_refused(options_for(server));
  const auto other_file = m.write("other.nk", other.seed + "\n");
  check_refused(options_for(server, {.nkey_seed_file = other_file}), {other.seed});
  auto conn = connection::connect(options_for(server, {.nkey_seed_file = m.write("user.nk", user.seed + "\n")}));
  INFO("seed " << user.seed << " public " << user.public_key);
  REQUIRE_MESSAGE(conn.has_value(), (conn ? "" : conn.error().to_string()));
  check_round_trip(*conn);

  SUBCASE("a file without a user seed is an invalid argument naming the file, not its content") {
    const auto bad = m.write("bad.nk", "SUNOTASEEDATALL\n");
    auto refused = connection::connect(options_for(server, {.nkey_seed_file = bad}));
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code() == errc::invalid_argument);
    CHECK(refused.error().detail().find("bad.nk") != std::string::npos);
    CHECK(refused.error().detail().find("SUNOTASEED") == std::string::npos);
  }
}

TEST_CASE("a server that verifies client certificates refuses plain clients and clients without a certificate") {
  auth_material m;
  m.make_tls();
  nats_server server{{.jetstream = false, .extra_config = m.server_tls_config(true)}};
  check_refused(options_for(server));
  check_refused(options_for(server, {.tls_ca_file = m.ca()}));
  auto conn = connection::connect(
      options_for(server, {.tls_ca_file = m.ca(), .tls_cert_file = m.client_cert(), .tls_key_file = m.client_key()}));
  REQUIRE_MESSAGE(conn.has_value(), (conn ? "" : conn.error().to_string()));
  check_round_trip(*conn);
  // The plain connection that reads the server's version still works.
  CHECK((*conn)->server_version().has_value());
}

TEST_CASE("a server in operator mode takes a user's credentials file, JetStream included, and refuses others") {
  auth_material m;
  const auto config = m.make_operator_mode();
  nats_server server{{.extra_config = config}};
  check_refused(options_for(server));
  check_refused(options_for(server, {.token = "tok-nothing"}));
  auto conn = connection::connect(options_for(server, {.credentials_file = m.creds_path()}));
  REQUIRE_MESSAGE(conn.has_value(), (conn ? "" : conn.error().to_string()));
  check_round_trip(*conn);
  aether::nats::stream_config stream;
  stream.name = "SECURED";
  stream.subjects = {"secured.js.>"};
  REQUIRE((*conn)->ensure_stream(stream).has_value());
  auto stored = (*conn)->stream_publish("secured.js.one", "x");
  REQUIRE(stored.has_value());
  CHECK(*stored == 1);
}

TEST_CASE("security options come from the AETHER_NATS_ variables and conflicting ones are refused by name") {
  const char* names[] = {"AETHER_NATS_CREDS",    "AETHER_NATS_NKEY_SEED", "AETHER_NATS_TOKEN",
                         "AETHER_NATS_USER",     "AETHER_NATS_PASSWORD",  "AETHER_NATS_TLS_CA",
                         "AETHER_NATS_TLS_CERT", "AETHER_NATS_TLS_KEY"};
  for (const auto* n : names) ::unsetenv(n);
  auto none = security_options::from_env();
  REQUIRE(none.has_value());
  CHECK_FALSE(none->tls());

  ::setenv("AETHER_NATS_USER", "bob", 1);
  ::setenv("AETHER_NATS_PASSWORD", "pw-env-77", 1);
  ::setenv("AETHER_NATS_TLS_CA", "/etc/ca.pem", 1);
  ::setenv("AETHER_NATS_TLS_CERT", "/etc/c.pem", 1);
  ::setenv("AETHER_NATS_TLS_KEY", "/etc/k.pem", 1);
  auto read = security_options::from_env();
  REQUIRE(read.has_value());
  CHECK(read->user == "bob");
  CHECK(read->password == "pw-env-77");
  CHECK(read->tls_ca_file == "/etc/ca.pem");
  CHECK(read->tls_cert_file == "/etc/c.pem");
  CHECK(read->tls_key_file == "/etc/k.pem");
  CHECK(read->tls());

  ::setenv("AETHER_NATS_TOKEN", "tok-env-88", 1);
  auto both = security_options::from_env();
  REQUIRE_FALSE(both.has_value());
  CHECK(both.error().code() == errc::invalid_argument);
  CHECK(both.error().detail().find("AETHER_NATS_TOKEN") != std::string::npos);
  CHECK(both.error().detail().find("tok-env-88") == std::string::npos);
  CHECK(both.error().detail().find("pw-env-77") == std::string::npos);

  ::unsetenv("AETHER_NATS_TOKEN");
  ::unsetenv("AETHER_NATS_TLS_KEY");
  auto no_key = security_options::from_env();
  REQUIRE_FALSE(no_key.has_value());
  CHECK(no_key.error().detail().find("AETHER_NATS_TLS_KEY") != std::string::npos);
  for (const auto* n : names) ::unsetenv(n);
}

TEST_CASE("URLs lose their user information in messages") {
  CHECK(aether::nats::redact_url("nats://u:p@h:1,tls://tok@h2:2,nats://h3:3") ==
        "nats://***@h:1,tls://***@h2:2,nats://h3:3");
  CHECK(aether::nats::redact_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222");
}

TEST_CASE("a subject the user may not publish to is logged with the server's words and never the password") {
  nats_server server{{.jetstream = false,
                      .extra_config = "authorization {\n  users = [ { user: carol, password: \"pw-log-4242\", "
                                      "permissions: { publish: { deny: [\"secret.>\"] } } } ]\n}\n"}};
  std::mutex mutex;
  std::vector<std::string> lines;
  aether::set_log_sink(
      [&](aether::log_level, std::string_view, std::string_view message, std::span<const aether::log_field>) {
        std::lock_guard lock{mutex};
        lines.emplace_back(message);
      });
  auto conn = connection::connect(options_for(server, {.user = "carol", .password = "pw-log-4242"}));
  REQUIRE_MESSAGE(conn.has_value(), (conn ? "" : conn.error().to_string()));
  REQUIRE((*conn)->publish("secret.plans", "x").has_value());
  (void)(*conn)->flush(5s);
  bool logged = false;
  for (int i = 0; i < 500 && !logged; ++i) {
    {
      std::lock_guard lock{mutex};
      for (const auto& l : lines) logged = logged || l.find("secret.plans") != std::string::npos;
    }
    if (!logged) std::this_thread::sleep_for(10ms);
  }
  aether::set_log_sink(nullptr);
  CHECK(logged);
  for (const auto& l : lines) CHECK(l.find("pw-log-4242") == std::string::npos);
}
