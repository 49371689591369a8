#include "support/eventually.hpp"
#include "support/nats_server.hpp"

#include <doctest/doctest.h>
#include <nats/nats.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using aether::testing::nats_cluster;
using aether::testing::nats_server;
using aether::testing::server_options;

namespace {

/// Tears nats.c down at the end of a test; declare it first, so that every
/// nats.c object of the test is destroyed before.
struct nats_library {
  nats_library() = default;
  ~nats_library() { nats_CloseAndWait(5000); }
  nats_library(const nats_library&) = delete;
  nats_library& operator=(const nats_library&) = delete;
};

template <typename T, void (*Destroy)(T*)>
struct destroy {
  void operator()(T* object) const noexcept { Destroy(object); }
};
using connection = std::unique_ptr<natsConnection, destroy<natsConnection, natsConnection_Destroy>>;
using subscription = std::unique_ptr<natsSubscription, destroy<natsSubscription, natsSubscription_Destroy>>;
using message = std::unique_ptr<natsMsg, destroy<natsMsg, natsMsg_Destroy>>;
using jetstream = std::unique_ptr<jsCtx, destroy<jsCtx, jsCtx_Destroy>>;
using stream_info = std::unique_ptr<jsStreamInfo, destroy<jsStreamInfo, jsStreamInfo_Destroy>>;
using publish_ack = std::unique_ptr<jsPubAck, destroy<jsPubAck, jsPubAck_Destroy>>;

/// A connection to `url`, or null if none can be made.
connection connect(const std::string& url) {
  natsConnection* raw = nullptr;
  return natsConnection_ConnectTo(&raw, url.c_str()) == NATS_OK ? connection{raw} : connection{};
}

jetstream jetstream_of(const connection& nc) {
  jsCtx* raw = nullptr;
  return natsConnection_JetStream(&raw, nc.get(), nullptr) == NATS_OK ? jetstream{raw} : jetstream{};
}

/// Creates a file-storage stream `name` on subjects `name.>`.
natsStatus add_stream(const jetstream& js, const std::string& name, int replicas) {
  const std::string subjects = name + ".>";
  const char* subject_list[] = {subjects.c_str()};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = name.c_str();
  config.Subjects = subject_list;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  config.Replicas = replicas;
  jsStreamInfo* raw = nullptr;
  const auto status = js_AddStream(&raw, js.get(), &config, nullptr, nullptr);
  stream_info info{raw};
  return status;
}

/// Publishes with a message id, so that retrying a publish stores it once.
natsStatus publish(const jetstream& js, const std::string& subject, const std::string& data, const std::string& id) {
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MsgId = id.c_str();
  options.MaxWait = 2000;
  jsPubAck* raw = nullptr;
  const auto status =
      js_Publish(&raw, js.get(), subject.c_str(), data.data(), static_cast<int>(data.size()), &options, nullptr);
  publish_ack ack{raw};
  return status;
}

std::optional<std::uint64_t> stream_messages(const jetstream& js, const std::string& stream) {
  jsStreamInfo* raw = nullptr;
  if (js_GetStreamInfo(&raw, js.get(), stream.c_str(), nullptr, nullptr) != NATS_OK) return std::nullopt;
  stream_info info{raw};
  return info->State.Msgs;
}

std::optional<std::string> stream_message(const jetstream& js, const std::string& stream, std::uint64_t sequence) {
  natsMsg* raw = nullptr;
  if (js_GetMsg(&raw, js.get(), stream.c_str(), sequence, nullptr, nullptr) != NATS_OK) return std::nullopt;
  message msg{raw};
  return std::string{natsMsg_GetData(msg.get()), static_cast<std::size_t>(natsMsg_GetDataLength(msg.get()))};
}

/// The shared poll with a deadline (the caller asserts the result).
template <typename Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = 20s) {
  return aether::testing::poll_until(condition, timeout, 50ms);
}

/// Points $TMPDIR at a fresh directory for the lifetime of the object.
class scoped_tmpdir {
public:
  scoped_tmpdir() {
    const char* old = std::getenv("TMPDIR");
    if (old != nullptr) old_ = old;
    std::string pattern = (std::filesystem::temp_directory_path() / "aether-tmpdir-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
    ::setenv("TMPDIR", path_.c_str(), 1);
  }
  ~scoped_tmpdir() {
    if (old_)
      ::setenv("TMPDIR", old_->c_str(), 1);
    else
      ::unsetenv("TMPDIR");
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  scoped_tmpdir(const scoped_tmpdir&) = delete;
  scoped_tmpdir& operator=(const scoped_tmpdir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
  std::filesystem::path path_;
  std::optional<std::string> old_;
};

} // namespace

TEST_CASE("a server delivers a published message to a subscriber") {
  nats_library library;
  nats_server server;
  CHECK(server.running());
  CHECK(server.url() == "nats://127.0.0.1:" + std::to_string(server.port()));

  auto nc = connect(server.url());
  REQUIRE(nc);
  natsSubscription* raw = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&raw, nc.get(), "greetings") == NATS_OK);
  subscription sub{raw};
  REQUIRE(natsConnection_PublishString(nc.get(), "greetings", "hello") == NATS_OK);
  REQUIRE(natsConnection_FlushTimeout(nc.get(), 5000) == NATS_OK);
  natsMsg* received = nullptr;
  REQUIRE(natsSubscription_NextMsg(&received, sub.get(), 5000) == NATS_OK);
  message msg{received};
  CHECK(std::string{natsMsg_GetData(msg.get()), static_cast<std::size_t>(natsMsg_GetDataLength(msg.get()))} == "hello");
}

TEST_CASE("a killed server refuses connections until a restart brings it back with its JetStream data") {
  nats_library library;
  nats_server server;
  const int port = server.port();
  {
    auto nc = connect(server.url());
    REQUIRE(nc);
    auto js = jetstream_of(nc);
    REQUIRE(js);
    REQUIRE(add_stream(js, "orders", 1) == NATS_OK);
    REQUIRE(publish(js, "orders.placed", "first", "m1") == NATS_OK);
  }

  server.kill();
  CHECK_FALSE(server.running());
  CHECK(server.pid() == -1);
  CHECK_FALSE(connect(server.url()));

  server.restart();
  CHECK(server.running());
  CHECK(server.port() == port);
  auto nc = connect(server.url());
  REQUIRE(nc);
  auto js = jetstream_of(nc);
  REQUIRE(js);
  CHECK(stream_messages(js, "orders") == std::optional<std::uint64_t>{1});
  CHECK(stream_message(js, "orders", 1) == std::optional<std::string>{"first"});
}

TEST_CASE("a paused server answers nothing until it is resumed") {
  nats_library library;
  nats_server server;
  auto nc = connect(server.url());
  REQUIRE(nc);
  REQUIRE(natsConnection_FlushTimeout(nc.get(), 5000) == NATS_OK);

  server.pause();
  CHECK(server.running());
  CHECK(natsConnection_FlushTimeout(nc.get(), 200) == NATS_TIMEOUT);

  server.resume();
  CHECK(natsConnection_FlushTimeout(nc.get(), 5000) == NATS_OK);
}

TEST_CASE("a terminated server shuts down gracefully and logs it") {
  nats_server server{server_options{.jetstream = false}};
  server.terminate();
  CHECK_FALSE(server.running());
  CHECK(server.log_tail().find("Server Exiting") != std::string::npos);
}

TEST_CASE("a server whose port is taken fails to start with its log in the error") {
  nats_server first{server_options{.jetstream = false}};
  server_options options;
  options.jetstream = false;
  options.port = first.port();
  CHECK_THROWS_WITH_AS(nats_server{options}, doctest::Contains("address already in use"), std::runtime_error);
  CHECK(first.running());
}

TEST_CASE("a destroyed server leaves no process and no files behind") {
  scoped_tmpdir tmpdir;
  int pid = -1;
  {
    nats_server server;
    pid = server.pid();
    REQUIRE(pid > 0);
    CHECK_FALSE(std::filesystem::is_empty(tmpdir.path()));
  }
  const int signalled = ::kill(pid, 0);
  const int error = errno;
  CHECK(signalled == -1);
  CHECK(error == ESRCH);
  CHECK(std::filesystem::is_empty(tmpdir.path()));
}

TEST_CASE("a three-server cluster keeps an R3 stream writable with one server down and takes it back") {
  nats_library library;
  nats_cluster cluster;
  REQUIRE(cluster.size() == 3);
  auto writer = connect(cluster.server(0).url());
  auto reader = connect(cluster.server(2).url());
  REQUIRE(writer);
  REQUIRE(reader);
  auto writer_js = jetstream_of(writer);
  auto reader_js = jetstream_of(reader);
  REQUIRE(writer_js);
  REQUIRE(reader_js);

  // No retry: a ready cluster takes a stream with a replica on every server.
  REQUIRE(add_stream(writer_js, "orders", 3) == NATS_OK);
  REQUIRE(publish(writer_js, "orders.placed", "first", "m1") == NATS_OK);
  CHECK(stream_message(reader_js, "orders", 1) == std::optional<std::string>{"first"});

  cluster.server(1).kill();
  // Two of three replicas keep a quorum; if the stream leader was killed, a new
  // one is elected first.
  CHECK(eventually([&] { return publish(writer_js, "orders.placed", "second", "m2") == NATS_OK; }));
  CHECK(eventually([&] { return stream_messages(reader_js, "orders") == std::optional<std::uint64_t>{2}; }));

  cluster.server(1).restart();
  auto rejoined = connect(cluster.server(1).url());
  REQUIRE(rejoined);
  auto rejoined_js = jetstream_of(rejoined);
  REQUIRE(rejoined_js);
  // Ready means its replicas are current on 2.9.10 (/healthz); the read is
  // still polled so that the test does not rest on that.
  CHECK(eventually([&] { return stream_messages(rejoined_js, "orders") == std::optional<std::uint64_t>{2}; }));
}

TEST_CASE("a cluster elects a new meta leader when its leader is killed and takes the old one back") {
  nats_cluster cluster;
  CHECK(cluster.urls() == cluster.server(0).url() + "," + cluster.server(1).url() + "," + cluster.server(2).url());
  const auto leader = cluster.meta_leader();
  REQUIRE(leader);

  cluster.server(*leader).kill();
  cluster.wait_until_ready();
  const auto next = cluster.meta_leader();
  REQUIRE(next);
  CHECK(*next != *leader);

  cluster.server(*leader).restart();
  CHECK(cluster.server(*leader).running());
  cluster.wait_until_ready();
  CHECK(cluster.meta_leader());
}
