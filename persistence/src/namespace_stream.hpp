#pragma once

// A namespace's JetStream stream, shared by the event store and the NATS bus
// so both create it with the same configuration and agree on its layout.

#include "names.hpp"

#include <aether/runtime/json.hpp>
#include <aether/runtime/nats.hpp>

#include <fmt/format.h>

#include <charconv>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace aether::detail {

/// Names the process that published a message, so its own bus can skip it.
inline constexpr std::string_view origin_header = "Aether-Origin";

/// How a namespace's stream keeps its actors' writes (docs/WIRE_FORMAT.md).
enum class stream_layout : unsigned char {
  /// One subject per write, `aether.{token}.ev.{type}.{key}.{first version}`,
  /// each published expecting an empty subject. Safe on replicated streams
  /// of servers whose per-subject sequence check is not atomic; the server
  /// keeps state for every write ever made.
  per_write,
  /// One subject per actor, `aether.{token}.ev.{type}.{key}`, each write
  /// published expecting the stream sequence of the actor's last write. The
  /// server keeps state per actor.
  per_actor,
};

[[nodiscard]] inline std::string_view layout_name(stream_layout l) noexcept {
  return l == stream_layout::per_actor ? "per-actor" : "per-write";
}

/// The stream description that records a layout. A stream without one was
/// written before layouts were recorded: one subject per write.
inline constexpr std::string_view layout_description_prefix = "aether events, layout ";

/// The command that copies a namespace's per-write stream into the
/// per-actor layout (tools/aether-migrate).
[[nodiscard]] inline std::string migrate_command(std::string_view ns) {
  return fmt::format("aether-migrate --url <nats-url> --namespace {}", ns);
}

/// Whether a server of `version` ("2.9.21") checks a subject's last
/// sequence atomically on replicated streams (2.9.21 and later; measured
/// not atomic on 2.9.10). Unknown versions are assumed not to.
[[nodiscard]] inline bool atomic_subject_check(std::string_view version) noexcept {
  unsigned part[3] = {0, 0, 0};
  std::size_t i = 0;
  const char* p = version.data();
  const char* end = p + version.size();
  while (i < 3 && p < end) {
    const auto [next, ec] = std::from_chars(p, end, part[i]);
    if (ec != std::errc{}) return false;
    ++i;
    p = next;
    if (p < end && *p == '.') {
      ++p;
    } else {
      break;
    }
  }
  if (i < 2) return false;
  if (part[0] != 2) return part[0] > 2;
  if (part[1] != 9) return part[1] > 9;
  return part[2] >= 21;
}

/// The layout a new stream gets unless told otherwise: one subject per actor
/// wherever the server checks a subject's sequence atomically (R1 on any
/// server, R3 from 2.9.21), one per write elsewhere (R3 on older servers).
[[nodiscard]] inline stream_layout choose_layout(int replicas, const std::optional<std::string>& server_version) {
  if (replicas <= 1) return stream_layout::per_actor;
  return server_version && atomic_subject_check(*server_version) ? stream_layout::per_actor : stream_layout::per_write;
}

/// The stream of `ns` (names.hpp): its actors' writes (`aether.{token}.ev.>`,
/// subjects by layout) and the events published on its bus
/// (`aether_bus.pub.{type}.{key}.{version}.{ns}`; exactly the namespace's
/// tokens, so the streams of `acme` and `acme.billing` never overlap). A
/// write is also seen by plain subscribers of its subject when the server
/// refuses to store it, so the bus listens where the server republishes what
/// it stored: `aether_bus.stored.{type}.{key}.{version}.{ns}`, the version
/// being the write's first in the per-write layout and `0` in the per-actor
/// one (whose events carry their versions in the payload).
inline nats::stream_config namespace_stream(std::string_view ns, int replicas,
                                            stream_layout layout = stream_layout::per_write) {
  nats::stream_config c;
  c.name = namespace_stream_name(ns);
  c.subjects = {store_subjects(ns), bus_filter("pub", "*", "*", ns)};
  c.replicas = replicas;
  if (layout == stream_layout::per_actor) {
    c.republish_source = fmt::format("aether.{}.ev.*.*", namespace_token(ns));
    c.republish_destination = fmt::format("{}.stored.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.0.{}", bus_root, ns);
  } else {
    c.republish_source = fmt::format("aether.{}.ev.*.*.*", namespace_token(ns));
    c.republish_destination =
        fmt::format("{}.stored.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}.{}", bus_root, ns);
  }
  return c;
}

namespace stream_api {
struct api_error {
  std::int64_t code = 0;
  std::int64_t err_code = 0;
  std::string description;
};
AETHER_JSON_FIELDS(api_error, code, err_code, description)
struct republish_config {
  std::string src;
  std::string dest;
};
AETHER_JSON_FIELDS(republish_config, src, dest)
struct stream_config {
  std::string name;
  std::optional<std::string> description;
  std::vector<std::string> subjects;
  std::string retention = "limits";
  std::int64_t max_consumers = -1;
  std::int64_t max_msgs = -1;
  std::int64_t max_bytes = -1;
  std::int64_t max_age = 0;
  std::int64_t max_msgs_per_subject = -1;
  std::int64_t max_msg_size = -1;
  std::string discard = "old";
  std::string storage = "file";
  std::int64_t num_replicas = 1;
  std::int64_t duplicate_window = 0;
  bool allow_direct = true;
  std::optional<republish_config> republish;
};
AETHER_JSON_FIELDS(stream_config, name, description, subjects, retention, max_consumers, max_msgs, max_bytes, max_age,
                   max_msgs_per_subject, max_msg_size, discard, storage, num_replicas, duplicate_window, allow_direct,
                   republish)
struct response {
  std::optional<api_error> error;
  std::optional<stream_config> config;
};
AETHER_JSON_FIELDS(response, error, config)
inline constexpr std::int64_t stream_not_found = 10059;
inline constexpr std::int64_t name_in_use = 10058;
inline constexpr std::chrono::milliseconds timeout{5'000};
} // namespace stream_api

/// The layout recorded in a stream's description: `per_write` for none,
/// an error naming the layout for one this build does not read.
[[nodiscard]] inline expected<stream_layout> recorded_layout(std::string_view stream,
                                                             const std::optional<std::string>& description) {
  if (!description || !description->starts_with(layout_description_prefix)) return stream_layout::per_write;
  const auto name = std::string_view{*description}.substr(layout_description_prefix.size());
  if (name == layout_name(stream_layout::per_actor)) return stream_layout::per_actor;
  if (name == layout_name(stream_layout::per_write)) return stream_layout::per_write;
  return error{errc::invalid_argument,
               fmt::format("stream {} holds events in the layout '{}', which this build of Aether does not read; use "
                           "the build that wrote it, or one that reads it",
                           stream, name)};
}

/// What a request to the JetStream API answered; `unavailable` when nothing did.
[[nodiscard]] inline expected<stream_api::response> stream_request(nats::connection& conn, std::string_view subject,
                                                                   std::string_view body, std::string_view what) {
  auto reply = conn.request(subject, body, stream_api::timeout);
  if (!reply) return error{reply.error().code(), fmt::format("{}: {}", what, reply.error().detail())};
  auto r = json::decode<stream_api::response>(reply->data);
  if (!r) return error{errc::io_error, fmt::format("{}: an unreadable answer: {}", what, r.error().detail())};
  return r;
}

/// The layout of the namespace's stream, read from the server; nullopt when
/// there is no stream.
[[nodiscard]] inline expected<std::optional<stream_layout>> read_layout(nats::connection& conn, std::string_view ns) {
  const auto name = namespace_stream_name(ns);
  auto r =
      stream_request(conn, fmt::format("$JS.API.STREAM.INFO.{}", name), "", fmt::format("reading stream {}", name));
  if (!r) return r.error();
  if (r->error) {
    if (r->error->err_code == stream_api::stream_not_found) return std::optional<stream_layout>{};
    return error{errc::io_error, fmt::format("reading stream {}: {}", name, r->error->description)};
  }
  if (!r->config) return error{errc::io_error, fmt::format("reading stream {}: no configuration", name)};
  auto layout = recorded_layout(name, r->config->description);
  if (!layout) return layout.error();
  return std::optional<stream_layout>{*layout};
}

/// The namespaces whose stream is known to exist, with its layout, so that
/// each is set up once per store or bus rather than asked of the server on
/// every use.
///
/// Thread-safety: every member may be called from any thread.
class namespace_streams {
public:
  /// The layout of the stream of `ns`, creating the stream unless it exists.
  /// A new stream gets `wanted`, or the layout `choose_layout` picks from
  /// the replicas and the server's version. An existing stream keeps its layout;
  /// one without a recorded layout (per-write) is updated to today's
  /// per-write configuration. `invalid_argument` when `wanted` is not the
  /// existing stream's layout (naming it and how to migrate it), or is
  /// per-actor where the server cannot check it atomically.
  expected<stream_layout> ensure(nats::connection& conn, std::string_view ns, int replicas,
                                 std::optional<stream_layout> wanted = std::nullopt) {
    if (auto l = known(ns)) return check_wanted(ns, *l, wanted);
    for (int attempt = 0;; ++attempt) {
      auto existing = read_layout(conn, ns);
      if (!existing) return existing.error();
      if (*existing) {
        if (**existing == stream_layout::per_write) {
          if (auto r = conn.ensure_stream(namespace_stream(ns, replicas, stream_layout::per_write)); !r) {
            return r.error();
          }
        }
        learn(ns, **existing);
        return check_wanted(ns, **existing, wanted);
      }
      std::optional<std::string> version;
      if (auto v = conn.server_version()) version = std::move(*v);
      const auto safe = choose_layout(replicas, version);
      const auto layout = wanted.value_or(safe);
      if (layout == stream_layout::per_actor && safe != stream_layout::per_actor) {
        return error{errc::invalid_argument,
                     fmt::format("the per-actor layout needs a server that checks a subject's sequence atomically on "
                                 "replicated streams (nats-server 2.9.21 or later); this one is {}: use the "
                                 "per-write layout or replicas=1",
                                 version ? *version : std::string{"of unknown version"})};
      }
      if (layout == stream_layout::per_write) {
        if (auto r = conn.ensure_stream(namespace_stream(ns, replicas, layout)); !r) return r.error();
        learn(ns, layout);
        return layout;
      }
      auto created = create_per_actor(conn, ns, replicas);
      if (!created) return created.error();
      if (*created) {
        learn(ns, layout);
        return layout;
      }
      // Created by someone else meanwhile: read what it is.
      if (attempt >= 2) return error{errc::unavailable, fmt::format("creating the stream of namespace {}", ns)};
    }
  }

  /// The layout of the stream of `ns` without creating it: nullopt when
  /// there is none.
  expected<std::optional<stream_layout>> lookup(nats::connection& conn, std::string_view ns) {
    if (auto l = known(ns)) return l;
    auto existing = read_layout(conn, ns);
    if (existing && *existing) learn(ns, **existing);
    return existing;
  }

  [[nodiscard]] std::optional<stream_layout> known(std::string_view ns) const {
    std::lock_guard lock{mutex_};
    const auto it = known_.find(ns);
    if (it == known_.end()) return std::nullopt;
    return it->second;
  }
  /// Records a stream seen to exist.
  void learn(std::string_view ns, stream_layout layout) {
    std::lock_guard lock{mutex_};
    known_.insert_or_assign(std::string{ns}, layout);
  }

  /// `layout` if it is `wanted` (or nothing is wanted); otherwise
  /// `invalid_argument` naming the stream's layout and how to migrate it.
  static expected<stream_layout> check_wanted(std::string_view ns, stream_layout layout,
                                              std::optional<stream_layout> wanted) {
    if (!wanted || *wanted == layout) return layout;
    const auto stream = namespace_stream_name(ns);
    if (layout == stream_layout::per_write) {
      return error{errc::invalid_argument,
                   fmt::format("stream {} holds its events in the per-write layout (one subject per write), not {}; "
                               "copy it into the per-actor layout with `{}`",
                               stream, layout_name(*wanted), migrate_command(ns))};
    }
    return error{errc::invalid_argument, fmt::format("stream {} holds its events in the {} layout, not {}", stream,
                                                     layout_name(layout), layout_name(*wanted))};
  }

private:
  /// Creates the per-actor stream with its layout in the description:
  /// false when a stream of that name exists already.
  static expected<bool> create_per_actor(nats::connection& conn, std::string_view ns, int replicas) {
    const auto c = namespace_stream(ns, replicas, stream_layout::per_actor);
    stream_api::stream_config body;
    body.name = c.name;
    body.description = fmt::format("{}{}", layout_description_prefix, layout_name(stream_layout::per_actor));
    body.subjects = c.subjects;
    body.num_replicas = replicas;
    body.duplicate_window = std::chrono::duration_cast<std::chrono::nanoseconds>(c.duplicate_window).count();
    body.republish = stream_api::republish_config{c.republish_source, c.republish_destination};
    auto r = stream_request(conn, fmt::format("$JS.API.STREAM.CREATE.{}", c.name), json::encode(body),
                            fmt::format("creating stream {}", c.name));
    if (!r) return r.error();
    if (r->error) {
      if (r->error->err_code == stream_api::name_in_use) return false;
      return error{errc::io_error, fmt::format("creating stream {}: {}", c.name, r->error->description)};
    }
    return true;
  }

  mutable std::mutex mutex_;
  std::map<std::string, stream_layout, std::less<>> known_;
};

} // namespace aether::detail
