#pragma once

#include <aether/runtime/expected.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aether::nats {

/// How a client proves who it is to the servers and how it checks them.
/// At most one of `credentials_file`, `nkey_seed_file`, `token` and `user`
/// (with `password`); TLS goes with any of them. Nothing here is ever
/// written to a log or an error message.
struct security_options {
  /// A `.creds` file: a user JWT and the NKey seed that signs for it
  /// (operator mode).
  std::string credentials_file{};
  /// A file holding a user NKey seed (`SU...`); the public key is derived.
  std::string nkey_seed_file{};
  std::string token{};
  std::string user{};
  std::string password{};
  /// TLS: the CA certificates that sign the server's certificate (PEM);
  /// setting it, or `tls_cert_file`, or a `tls://` URL turns TLS on.
  std::string tls_ca_file{};
  /// TLS client certificate and its key (PEM), for servers that verify clients.
  std::string tls_cert_file{};
  std::string tls_key_file{};

  /// The options from the `AETHER_NATS_CREDS`, `AETHER_NATS_NKEY_SEED` (a
  /// file), `AETHER_NATS_TOKEN`, `AETHER_NATS_USER`, `AETHER_NATS_PASSWORD`,
  /// `AETHER_NATS_TLS_CA`, `AETHER_NATS_TLS_CERT` and `AETHER_NATS_TLS_KEY`
  /// variables that are set; `invalid_argument` naming the variables (never
  /// their values) when they do not go together.
  [[nodiscard]] static expected<security_options> from_env();
  /// `invalid_argument` when two ways of authenticating are set, a password
  /// comes without a user or a certificate without its key.
  [[nodiscard]] expected<void> validate() const;
  [[nodiscard]] bool tls() const noexcept { return !tls_ca_file.empty() || !tls_cert_file.empty(); }
};

/// How to reach the servers.
struct connect_options {
  /// One URL or several, comma separated; the client fails over between them.
  std::string url = "nats://127.0.0.1:4222";
  std::string name = "aether";
  std::chrono::milliseconds connect_timeout{2'000};
  std::chrono::milliseconds reconnect_wait{100};
  /// Reconnect attempts per server after a disconnect; negative: forever.
  int max_reconnects = -1;
  /// Write every publish to the socket at once instead of letting nats.c
  /// batch them (it waits up to 1 ms): lower latency, lower throughput.
  bool send_asap = false;
  /// Credentials and TLS; none by default.
  security_options security{};
};

/// `url` with any `user:password@` or `token@` left out, for messages.
[[nodiscard]] std::string redact_url(std::string_view url);

/// A header of a message to publish.
struct header {
  std::string_view name;
  std::string_view value;
};

/// A message received from the server, valid only during the callback that
/// gets it.
/// Where a message a JetStream consumer delivered stands.
struct delivery_position {
  std::uint64_t stream_sequence = 0;
  /// The consumer's count of deliveries, this one included: a number
  /// skipped is a delivery that never arrived.
  std::uint64_t delivery_sequence = 0;
  /// Messages the consumer still has after this one.
  std::uint64_t pending = 0;
};

class message_view {
public:
  explicit message_view(void* native) noexcept : msg_{native} {}
  [[nodiscard]] std::string_view subject() const noexcept;
  [[nodiscard]] std::string_view reply() const noexcept;
  [[nodiscard]] std::string_view data() const noexcept;
  /// The first value of a header, if present.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
  /// For messages delivered by a JetStream consumer: the stream sequence and
  /// how many messages the consumer still has after this one.
  [[nodiscard]] expected<std::pair<std::uint64_t, std::uint64_t>> sequence_and_pending() const;
  /// For messages delivered by a JetStream consumer: where it stands.
  [[nodiscard]] expected<delivery_position> delivery() const;

private:
  void* msg_;
};

/// An owned copy of a message, returned by requests and direct gets.
struct message {
  std::string subject;
  std::string data;
  std::vector<std::pair<std::string, std::string>> headers;
  std::uint64_t sequence = 0; ///< stream sequence, when read from a stream

  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
};

/// A subscription; unsubscribes when destroyed.
///
/// Thread-safety: its handler runs on a nats.c thread, one message at a time.
class subscription {
public:
  subscription() noexcept = default;
  subscription(subscription&&) noexcept;
  subscription& operator=(subscription&&) noexcept;
  ~subscription();

  /// Messages the client dropped because this subscriber fell behind.
  [[nodiscard]] std::int64_t dropped() const noexcept;
  [[nodiscard]] bool active() const noexcept { return state_ != nullptr; }
  void unsubscribe() noexcept;

  struct state;

private:
  friend class connection;
  std::shared_ptr<state> state_;
};

/// A JetStream stream to create or update.
struct stream_config {
  std::string name;
  std::vector<std::string> subjects;
  int replicas = 1;
  bool memory_storage = false;
  /// The window in which a repeated `Nats-Msg-Id` is recognised as a duplicate.
  std::chrono::milliseconds duplicate_window{std::chrono::minutes{2}};
  std::int32_t max_message_size = -1;
  /// When set, every message stored on `republish_source` is published again
  /// by the server on the matching `republish_destination` subject (with its
  /// headers and `Nats-Sequence`): subscribers there see only what was stored.
  std::string republish_source;
  std::string republish_destination;
  /// Messages the stream keeps; past it the oldest go first (-1: no limit).
  std::int64_t max_messages = -1;
};

/// A durable push consumer: it stays on the server between subscriptions,
/// and acknowledging a message acknowledges every one before it.
struct durable_consumer_config {
  std::string stream;
  std::string name;
  /// The first stream sequence to deliver (1: everything stored).
  std::uint64_t start_sequence = 1;
  /// Messages delivered and not yet acknowledged that the server allows;
  /// it sends no more until some are acknowledged.
  int max_ack_pending = 1024;
  /// When the server sends an unacknowledged message again.
  std::chrono::milliseconds ack_wait{std::chrono::minutes{5}};
  /// While it has nothing to deliver, the server sends a status message
  /// (`Status: 100`, no reply subject) this often, naming in
  /// `Nats-Last-Stream` the stream sequence it delivered last; 0: none.
  std::chrono::milliseconds idle_heartbeat{0};
};

/// What the server knows of a durable consumer.
struct consumer_state {
  /// The stream sequence up to which its messages are all acknowledged.
  std::uint64_t ack_floor = 0;
  /// Someone listens on its deliver subject.
  bool bound = false;
  /// Messages not yet acknowledged: waiting to be delivered, or delivered
  /// and not acknowledged.
  std::uint64_t pending = 0;
};

/// A key-value bucket to create or open.
struct bucket_config {
  std::string name;
  int replicas = 1;
  int history = 1;
};

/// A value read from a bucket with the revision that wrote it.
struct kv_entry {
  std::string value;
  std::uint64_t revision = 0;
};

/// A connection to NATS, with the JetStream and key-value operations Aether
/// uses. The only place where nats.c statuses become `aether::error`s.
///
/// Thread-safety: every member may be called from any thread. Callbacks run
/// on nats.c threads: hop to a strand before touching anything else.
class connection {
public:
  using handler = std::function<void(const message_view&)>;

  /// Connects; `unavailable` when no server answers.
  [[nodiscard]] static expected<std::shared_ptr<connection>> connect(const connect_options& options);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  [[nodiscard]] bool connected() const noexcept;
  /// The client's counts since it connected (for metrics).
  struct traffic {
    std::uint64_t in_messages = 0, in_bytes = 0, out_messages = 0, out_bytes = 0, reconnects = 0;
  };
  [[nodiscard]] traffic counts() const noexcept;
  /// Messages dropped by slow subscriptions, counted by the error handler.
  [[nodiscard]] std::uint64_t slow_consumer_events() const noexcept;
  /// The largest payload the server accepts.
  [[nodiscard]] std::int64_t max_payload() const noexcept;
  [[nodiscard]] std::string new_inbox() const;
  /// The version of the server this connection is on (e.g. "2.9.10"), from
  /// the INFO line the server sends to every client; `unavailable` when it
  /// cannot be read. nats.c 3.4.1 keeps INFO to itself, so this opens a
  /// short plain TCP connection to the same server and reads its INFO.
  [[nodiscard]] expected<std::string> server_version() const;

  expected<void> publish(std::string_view subject, std::string_view data, std::span<const header> headers = {},
                         std::string_view reply = {});
  /// Sends a request and waits for the first answer: `timeout` when none
  /// comes in time (`unavailable` when the connection is lost by then),
  /// `not_found` at once when nobody subscribes to `subject`.
  [[nodiscard]] expected<message> request(std::string_view subject, std::string_view data,
                                          std::chrono::milliseconds timeout, std::span<const header> headers = {});
  /// What an asynchronous request answers: the reply, or the error.
  using reply_callback = std::function<void(expected<message>)>;
  /// Sends a request without waiting: `done` runs exactly once, on a nats.c
  /// or the connection's timer thread, with the first reply, `timeout` when
  /// none came by `timeout` (`unavailable` when the connection was lost by
  /// then), `not_found` when nobody subscribes to `subject`,
  /// `permission_denied`, or `unavailable` when the connection closes first.
  /// A reply after that is dropped. Every request shares one wildcard reply
  /// subscription; `done` must not wait for another request's reply.
  void request_async(std::string_view subject, std::string_view data, std::chrono::milliseconds timeout,
                     reply_callback done, std::span<const header> headers = {});
  /// Requests waiting for their reply or deadline (for tests and metrics).
  [[nodiscard]] std::size_t async_requests_pending() const;
  /// Subscribes; at most `pending_messages` may wait for the handler before
  /// the client drops (and counts) what comes next.
  [[nodiscard]] expected<subscription> subscribe(std::string_view subject, handler h, int pending_messages = 65536);
  /// Subscribes as a member of queue group `queue`: each message goes to
  /// one member of the group.
  [[nodiscard]] expected<subscription> queue_subscribe(std::string_view subject, std::string_view queue, handler h,
                                                       int pending_messages = 65536);
  expected<void> flush(std::chrono::milliseconds timeout);
  /// `permission_denied` in the server's words when the server refused this
  /// connection a publish or a subscription on exactly `subject` (the last 64
  /// refusals are kept). The server reports a refused subscription only
  /// asynchronously: call it after a `flush` that followed the subscribe.
  [[nodiscard]] expected<void> check_permitted(std::string_view subject) const;

  // JetStream

  /// Creates the stream, or updates it when it exists with another config.
  expected<void> ensure_stream(const stream_config& config);
  expected<void> delete_stream(std::string_view name);
  /// Messages stored in a stream.
  [[nodiscard]] expected<std::uint64_t> stream_message_count(std::string_view name);
  /// The name of the server that leads a replicated stream (empty for a
  /// stream that is not clustered).
  [[nodiscard]] expected<std::string> stream_leader(std::string_view name);
  /// The last message on `subject` (wildcards allowed); `not_found` if none.
  [[nodiscard]] expected<message> direct_get_last(std::string_view stream, std::string_view subject);
  /// The last message on `subject`, read through the stream leader (never
  /// stale, slower than a direct get); `not_found` if none.
  [[nodiscard]] expected<message> leader_get_last(std::string_view stream, std::string_view subject);
  /// `leader_get_last` without waiting, as `request_async` answers: the
  /// message, `not_found` if none (or no such stream), or the error
  /// (`unavailable` when nobody answers the API).
  void leader_get_last_async(std::string_view stream, std::string_view subject, std::chrono::milliseconds timeout,
                             reply_callback done);
  /// The message at `sequence`; `not_found` if none.
  [[nodiscard]] expected<message> direct_get(std::string_view stream, std::uint64_t sequence);
  /// The first message on `subject` (by stream sequence); `not_found` if none.
  [[nodiscard]] expected<message> direct_get_first(std::string_view stream, std::string_view subject);
  /// Publishes to a stream and waits for the server's acknowledgement:
  /// the stored sequence, `version_conflict` when an expectation in
  /// `headers` (e.g. `Nats-Expected-Last-Subject-Sequence`) refused it, or
  /// `unavailable` when no acknowledgement came (the outcome is unknown).
  [[nodiscard]] expected<std::uint64_t> stream_publish(std::string_view subject, std::string_view data,
                                                       std::span<const header> headers = {});
  /// Delivers every message of `stream` on `filter`, from the first on, in
  /// order, and goes on with each new one for as long as the subscription
  /// lives, through an ordered consumer (which nats.c recreates after a gap
  /// or a lost server, from where it was). `on_closed` runs once when the
  /// subscription ends, whether dropped or closed with the connection.
  [[nodiscard]] expected<subscription> follow(std::string_view stream, std::string_view filter, handler on_message,
                                              std::function<void()> on_closed = {});

  /// Delivers every message of `stream` on `filter` from stream sequence
  /// `start` on, in order, through an ordered consumer: `on_message` for each
  /// (return false to stop), then `on_done` once with success or the error.
  /// The returned subscription must be kept until `on_done`.
  [[nodiscard]] expected<subscription> replay(std::string_view stream, std::string_view filter, std::uint64_t start,
                                              std::function<bool(const message_view&)> on_message,
                                              std::function<void(expected<void>)> on_done);

  /// Creates the durable consumer `config` (it must not exist) and
  /// subscribes to it. Messages carry their stream sequence
  /// (`sequence_and_pending`); acknowledge them with `ack`. The consumer
  /// stays when the subscription ends.
  [[nodiscard]] expected<subscription> consume_durable(const durable_consumer_config& config, handler h);
  /// A durable consumer's acknowledgement floor and whether someone listens
  /// to it; `not_found` when there is no such consumer.
  [[nodiscard]] expected<consumer_state> consumer(std::string_view stream, std::string_view name);
  /// Deletes a consumer; `not_found` when there is none.
  expected<void> delete_consumer(std::string_view stream, std::string_view name);
  /// Acknowledges a message a consumer delivered, by its reply subject.
  expected<void> ack(std::string_view reply);

  // Key-value

  expected<void> ensure_bucket(const bucket_config& config);
  expected<void> delete_bucket(std::string_view name);
  /// `not_found` when the key has no value.
  [[nodiscard]] expected<kv_entry> kv_get(std::string_view bucket, std::string_view key);
  /// Writes unconditionally; returns the new revision.
  expected<std::uint64_t> kv_put(std::string_view bucket, std::string_view key, std::string_view value);
  /// Writes only if the key has no value (`version_conflict` otherwise).
  expected<std::uint64_t> kv_create(std::string_view bucket, std::string_view key, std::string_view value);
  /// Writes only if the key's revision is still `revision` (`version_conflict` otherwise).
  expected<std::uint64_t> kv_update(std::string_view bucket, std::string_view key, std::string_view value,
                                    std::uint64_t revision);

  struct impl;

private:
  explicit connection(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

} // namespace aether::nats
