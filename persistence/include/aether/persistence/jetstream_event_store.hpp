#pragma once

#include <aether/persistence/event_store.hpp>
#include <aether/runtime/nats.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace aether {

/// How a namespace's stream keeps its actors' writes (docs/WIRE_FORMAT.md).
enum class event_layout {
  /// For a new stream, per-actor wherever the server checks a subject's
  /// sequence atomically (R1 on any server, R3 from nats-server 2.9.21),
  /// per-write elsewhere (R3 on older servers); an existing stream keeps its
  /// own.
  automatic,
  /// One subject per write: server memory and restart time grow with the
  /// number of writes.
  per_write,
  /// One subject per actor: they grow with the number of actors. Refused
  /// for replicated streams on servers before nats-server 2.9.21.
  per_actor,
};

/// Settings of the JetStream event store.
struct jetstream_store_options {
  /// Replicas of each namespace's stream (1, or 3 on a three-server cluster).
  int replicas = 1;
  /// How long a write waits for its acknowledgement before it is sent again.
  std::chrono::milliseconds ack_timeout{2'000};
  /// Sends of one write before its outcome is read back from the stream.
  int max_attempts = 3;
  /// Threads of the store for the steps of a read that wait holding one
  /// (1 to 64): looking up a namespace's stream not seen yet, creating the
  /// ordered consumer of a long history, and finding the end of a history
  /// whose last write is a stray. A read's gets of single writes, and
  /// `latest_version`'s gets, wait on no thread. Appends never wait for reads.
  int readers = 4;
  /// History reads and `latest_version` calls in progress at once; more
  /// wait in order.
  int reads_in_flight = 1024;
  /// How long a replay may wait for the next message.
  std::chrono::milliseconds read_timeout{30'000};
  /// Stamped on every write (`Aether-Origin`): the origin of this process's
  /// NATS event bus, which delivers the events locally and so skips them
  /// when they come back from the server.
  std::string origin;
  /// The layout new streams get; a stream in another layout is refused
  /// (`invalid_argument` naming its layout and how to migrate it).
  event_layout layout = event_layout::automatic;
};

/// What a JetStream store has done that a user may want to watch.
struct jetstream_store_stats {
  /// Appends whose expected version the store read from the stream before
  /// writing (one round trip each): those after a version it had not seen
  /// end the actor's history. An actor appending after its own version
  /// never needs one.
  std::uint64_t version_checks = 0;
  /// Stored writes that reads left out of a history (see `read`): written
  /// beside the history by a writer that did not follow the rules.
  std::uint64_t skipped_writes = 0;
};

/// Events in JetStream: one stream per namespace, `{ns}_events`, capturing
/// `aether.{ns}.ev.>` (and the bus's published events). An append of events
/// v+1..v+n of an actor is ONE message, in one of two layouts recorded in
/// the stream (see `event_layout`):
/// - per-actor: on the subject `aether.{ns}.ev.{type}.{key}`, published with
///   `Nats-Expected-Last-Subject-Sequence` set to the stream sequence of the
///   actor's last write (0 for none): the server stores it only if no other
///   write came in between, so of two writers of the same version exactly
///   one wins. The store remembers each actor's last write's sequence; an
///   actor's next write waits for the previous one's acknowledgement.
/// - per-write: on `aether.{ns}.ev.{type}.{key}.{v+1}`, published with
///   `Nats-Expected-Last-Subject-Sequence: 0`: the server stores it only if
///   that subject is empty. This holds on replicated streams of nats-server
///   before 2.9.21, whose check of a sequence other than 0 is not atomic.
/// For the same reason a resend after a lost acknowledgement can never store
/// a second copy; when the server refuses a resend, or after the last one,
/// the outcome is read back by the write's id (`Aether-Write-Id`), so a
/// write is reported stored only if it is, and a conflict only if another
/// write won.
///
/// Appends from many actors are pipelined: published asynchronously and
/// matched to their acknowledgements through one inbox subscription. On R1
/// a write is sent again only when its copy cannot have reached the stream
/// (a failed send, "no responders", a reconnect since); the read-back of an
/// unacknowledged write tries several times, each waiting longer.
///
/// Reads and `latest_version` run beside the appends, `reads_in_flight` at
/// a time; one waiting on a slow or stopped server holds no thread, so it
/// does not hold up reads of other streams. Closing the store answers the
/// reads, version queries and version checks still queued, and the reads
/// and version queries in progress, `shutting_down`.
///
/// Thread-safety: every member from any thread; callbacks run on nats.c or
/// store threads.
class jetstream_event_store final : public event_store {
public:
  /// Opens the store on `conn`. `quick`, optional, is a connection to the
  /// same servers opened with `send_asap`: writes go out on it while few are
  /// in flight (an actor waiting alone does not wait for nats.c's batching),
  /// and on `conn`, batched, under load.
  [[nodiscard]] static expected<std::shared_ptr<jetstream_event_store>>
  open(std::shared_ptr<nats::connection> conn, jetstream_store_options options = {},
       std::shared_ptr<nats::connection> quick = nullptr);
  ~jetstream_event_store() override;

  /// Creates the namespace's stream now (appends also do it on first use).
  expected<void> prepare(std::string_view ns);
  /// The layout of the namespace's stream, creating the stream as `prepare`.
  expected<event_layout> layout(std::string_view ns);

  void append(const actor_id& actor, std::uint64_t expected_version, std::vector<event> events,
              append_callback done) override;
  void read(const actor_id& actor, std::uint64_t from_version, std::uint64_t hint, read_callback done) override;
  void latest_version(const actor_id& actor, version_callback done) override;
  void read_report(const actor_id& actor, std::uint64_t from_version, report_callback done) override;

  [[nodiscard]] jetstream_store_stats stats() const noexcept;

  [[nodiscard]] static std::string stream_name(std::string_view ns);
  /// Per-write layout: the subject of the write whose first version is `first_version`.
  [[nodiscard]] static std::string subject(const actor_id& actor, std::uint64_t first_version);
  /// Per-write layout: the subjects of all of an actor's writes.
  [[nodiscard]] static std::string actor_filter(const actor_id& actor);
  /// Per-actor layout: the subject of all of an actor's writes.
  [[nodiscard]] static std::string actor_subject(const actor_id& actor);

  struct impl;

private:
  explicit jetstream_event_store(std::shared_ptr<impl> p) noexcept;
  void start_read(const actor_id& actor, std::uint64_t from_version, std::uint64_t hint, bool tolerant,
                  report_callback done);
  std::shared_ptr<impl> impl_;
};

} // namespace aether
