// aether-migrate: copies a namespace's event stream from the per-write
// layout (one subject per write) into the per-actor layout (one subject per
// actor), keeping every event's id, type, schema version, time, data and
// metadata, and every event published on the namespace's bus.
//
// Steps, each checked before the next:
//  1. read every actor's history from the per-write stream (the first
//     stored write of a version wins, as any read decides); a write that
//     does not decode stops the migration;
//  2. copy every message of the stream, as it is, into a backup stream
//     `{stream}-backup` (subjects `aether_migrate.{stream}.{subject}`) and
//     check its count;
//  3. delete the stream, create it again in the per-actor layout, append
//     each actor's history from version 1 and publish the bus's events;
//  4. read every history back and compare it event by event.
// The backup stays; delete it once satisfied. Writers of the namespace must
// be stopped while it runs. `--restore` puts the backup back as it was.

#include "namespace_stream.hpp"

#include <aether/persistence/jetstream_event_store.hpp>
#include <aether/runtime/command_line.hpp>
#include <aether/runtime/nats.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace detail = aether::detail;

constexpr aether::program_help help{
    "aether-migrate",
    "Usage: aether-migrate --url <nats-url> --namespace <ns> [--replicas <n>] [--restore]\n"
    "\n"
    "Copies the event stream of namespace <ns> from the per-write layout (one subject per write: server memory\n"
    "and restart time grow with every write) into the per-actor layout (one subject per actor). Stop every\n"
    "writer of the namespace first. The original messages are kept in the stream <stream>-backup; --restore\n"
    "puts them back (deleting the per-actor stream and whatever was written to it since). Prints one JSON line\n"
    "with what it did.",
    "  0  migrated (or nothing to do)\n  1  failed; the message says what is where\n  2  bad arguments\n"};

struct raw_message {
  std::string subject;
  std::string data;
  std::vector<std::pair<std::string, std::string>> headers;
};

constexpr std::string_view kept_headers[] = {"Aether-Last-Version", "Aether-Write-Id", "Aether-Origin"};

/// Every message of `stream` on `filter`, in order.
aether::expected<std::vector<raw_message>> read_all(aether::nats::connection& conn, const std::string& stream,
                                                    const std::string& filter) {
  std::vector<raw_message> out;
  std::promise<aether::expected<void>> done;
  auto sub = conn.replay(
      stream, filter, 1,
      [&](const aether::nats::message_view& m) {
        raw_message r{std::string{m.subject()}, std::string{m.data()}, {}};
        for (const auto name : kept_headers) {
          if (auto h = m.header(name)) r.headers.emplace_back(std::string{name}, std::string{*h});
        }
        out.push_back(std::move(r));
        return true;
      },
      [&](aether::expected<void> r) { done.set_value(std::move(r)); });
  if (!sub) {
    if (sub.error().code() == aether::errc::not_found) return out;
    return sub.error();
  }
  if (auto r = done.get_future().get(); !r && r.error().code() != aether::errc::not_found) return r.error();
  return out;
}

aether::expected<std::uint64_t> publish(aether::nats::connection& conn, const std::string& subject,
                                        const raw_message& m) {
  std::vector<aether::nats::header> headers;
  for (const auto& [k, v] : m.headers) headers.push_back({k, v});
  return conn.stream_publish(subject, m.data, headers);
}

template <class T, class Call>
T wait_for(Call&& call) {
  std::promise<T> p;
  call([&p](T r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

struct counts {
  std::size_t actors = 0;
  std::size_t events = 0;
  std::size_t writes = 0;
  std::size_t published = 0;
  std::size_t skipped = 0;
};

aether::expected<std::shared_ptr<aether::jetstream_event_store>> open_store(const std::string& url, int replicas,
                                                                            aether::event_layout layout) {
  aether::nats::connect_options o;
  o.url = url;
  auto conn = aether::nats::connection::connect(o);
  if (!conn) return conn.error();
  aether::jetstream_store_options so;
  so.replicas = replicas;
  so.layout = layout;
  return aether::jetstream_event_store::open(*conn, so);
}

aether::expected<counts> migrate(const std::string& url, const std::string& ns, int replicas,
                                 aether::nats::connection& conn) {
  const auto stream = detail::namespace_stream_name(ns);
  const auto backup = stream + "-backup";
  auto layout = detail::read_layout(conn, ns);
  if (!layout) return layout.error();
  if (!*layout) return aether::error{aether::errc::not_found, fmt::format("namespace {} has no stream", ns)};
  if (**layout == detail::stream_layout::per_actor) return counts{};
  // 1. Every actor's history, read as any reader decides.
  auto writes = read_all(conn, stream, detail::store_subjects(ns));
  if (!writes) return writes.error();
  auto published = read_all(conn, stream, detail::bus_filter("pub", "*", "*", ns));
  if (!published) return published.error();
  std::set<std::pair<std::string, std::string>> names;
  for (const auto& w : *writes) {
    // aether.{token}.ev.{type}.{key}.{version}
    std::vector<std::string_view> t;
    std::string_view rest{w.subject};
    for (;;) {
      const auto dot = rest.find('.');
      t.push_back(rest.substr(0, dot));
      if (dot == std::string_view::npos) break;
      rest.remove_prefix(dot + 1);
    }
    if (t.size() != 6) {
      return aether::error{aether::errc::invalid_argument,
                           fmt::format("{} holds a message on {}, which is no per-write subject", stream, w.subject)};
    }
    names.emplace(std::string{t[3]}, std::string{t[4]});
  }
  auto source = open_store(url, replicas, aether::event_layout::per_write);
  if (!source) return source.error();
  counts c;
  std::map<std::string, std::vector<aether::event>> histories;
  for (const auto& [type, key] : names) {
    const aether::actor_id a{type, key, ns};
    auto report = wait_for<aether::expected<aether::history_report>>(
        [&](auto done) { (*source)->read_report(a, 1, std::move(done)); });
    if (!report)
      return aether::error{report.error().code(),
                           fmt::format("reading {}: {}", a.to_string(), report.error().detail())};
    if (!report->undecodable.empty()) {
      const auto& u = report->undecodable.front();
      return aether::error{aether::errc::replay_failed,
                           fmt::format("{} version {} (stream sequence {}) does not decode ({}); nothing was changed",
                                       a.to_string(), u.version, u.sequence, u.reason)};
    }
    c.skipped += report->skipped.size();
    c.events += report->events.size();
    if (report->events.empty()) continue; // nothing but writes beside the history
    histories.emplace(a.to_string(), std::move(report->events));
  }
  c.actors = histories.size();
  source->reset();
  // 2. The backup, checked.
  aether::nats::stream_config b;
  b.name = backup;
  b.subjects = {fmt::format("aether_migrate.{}.>", stream)};
  b.replicas = replicas;
  if (auto r = conn.ensure_stream(b); !r) return r.error();
  if (auto n = conn.stream_message_count(backup); !n || *n != 0) {
    return aether::error{aether::errc::invalid_argument,
                         fmt::format("the backup stream {} exists and is not empty; delete it first", backup)};
  }
  for (const auto* all : {&*writes, &*published}) {
    for (const auto& m : *all) {
      if (auto r = publish(conn, fmt::format("aether_migrate.{}.{}", stream, m.subject), m); !r) return r.error();
    }
  }
  const auto total = writes->size() + published->size();
  if (auto n = conn.stream_message_count(backup); !n || *n != total) {
    return aether::error{
        aether::errc::io_error,
        fmt::format("the backup {} holds {} messages, not {}; nothing was changed", backup, n ? *n : 0, total)};
  }
  // 3. The stream again, per actor.
  if (auto r = conn.delete_stream(stream); !r) return r.error();
  auto target = open_store(url, replicas, aether::event_layout::per_actor);
  if (!target) return target.error();
  if (auto r = (*target)->prepare(ns); !r) return r.error();
  constexpr std::size_t batch_bytes = 256 * 1024;
  for (auto& [name, events] : histories) {
    const auto a = events.front().actor;
    std::size_t i = 0;
    while (i < events.size()) {
      std::vector<aether::event> batch;
      std::size_t bytes = 0;
      const auto first = i;
      while (i < events.size() && (batch.empty() || bytes + events[i].data.size() + 512 < batch_bytes)) {
        bytes += events[i].data.size() + 512;
        batch.push_back(events[i++]);
      }
      auto r = wait_for<aether::expected<aether::append_result>>(
          [&](auto done) { (*target)->append(a, first, std::move(batch), std::move(done)); });
      if (!r) {
        return aether::error{r.error().code(), fmt::format("appending {} after version {}: {}; the originals are in {}",
                                                           name, first, r.error().detail(), backup)};
      }
      ++c.writes;
    }
  }
  for (const auto& m : *published) {
    if (auto r = publish(conn, m.subject, m); !r) return r.error();
    ++c.published;
  }
  // 4. Every history read back, event by event.
  for (const auto& [name, events] : histories) {
    const auto a = events.front().actor;
    auto back = wait_for<aether::expected<std::vector<aether::event>>>(
        [&](auto done) { (*target)->read(a, 1, 0, std::move(done)); });
    if (!back)
      return aether::error{back.error().code(), fmt::format("reading {} back: {}", name, back.error().detail())};
    bool same = back->size() == events.size();
    for (std::size_t i = 0; same && i < events.size(); ++i) {
      const auto& x = (*back)[i];
      const auto& y = events[i];
      same = x.version == y.version && x.id == y.id && x.type == y.type && x.data == y.data &&
             x.schema_version == y.schema_version && x.timestamp_ns == y.timestamp_ns && x.metadata == y.metadata;
    }
    if (!same) {
      return aether::error{aether::errc::io_error,
                           fmt::format("{} reads back otherwise than it was; the originals are in {} (aether-migrate "
                                       "--restore puts them back)",
                                       name, backup)};
    }
  }
  if (auto l = detail::read_layout(conn, ns); !l || *l != detail::stream_layout::per_actor) {
    return aether::error{aether::errc::io_error,
                         fmt::format("{} is not in the per-actor layout after the copy", stream)};
  }
  return c;
}

/// Puts the backup's messages back into a per-write stream of the namespace.
aether::expected<std::size_t> restore(const std::string& ns, int replicas, aether::nats::connection& conn) {
  const auto stream = detail::namespace_stream_name(ns);
  const auto backup = stream + "-backup";
  const auto prefix = fmt::format("aether_migrate.{}.", stream);
  auto all = read_all(conn, backup, prefix + ">");
  if (!all) return all.error();
  if (all->empty()) return aether::error{aether::errc::not_found, fmt::format("{} holds nothing", backup)};
  if (auto r = conn.delete_stream(stream); !r && r.error().code() != aether::errc::not_found) return r.error();
  if (auto r = conn.ensure_stream(detail::namespace_stream(ns, replicas, detail::stream_layout::per_write)); !r) {
    return r.error();
  }
  for (const auto& m : *all) {
    if (auto r = publish(conn, m.subject.substr(prefix.size()), m); !r) return r.error();
  }
  return all->size();
}

} // namespace

int main(int argc, char** argv) {
  if (auto code = aether::answer_help_or_version(argc, argv, help)) return *code;
  std::string url;
  std::string ns;
  int replicas = 1;
  bool undo = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg{argv[i]};
    const bool has_value = i + 1 < argc;
    if (arg == "--url" && has_value) {
      url = argv[++i];
    } else if (arg == "--namespace" && has_value) {
      ns = argv[++i];
    } else if (arg == "--replicas" && has_value) {
      replicas = std::atoi(argv[++i]);
    } else if (arg == "--restore") {
      undo = true;
    } else {
      std::fprintf(stderr, "aether-migrate: unknown or incomplete argument '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  if (url.empty() || ns.empty() || (replicas != 1 && replicas != 3)) {
    std::fprintf(stderr, "aether-migrate: --url and --namespace are needed, --replicas is 1 or 3 (see --help)\n");
    return 2;
  }
  if (auto ok = aether::actor_id::validate_namespace(ns); !ok) {
    std::fprintf(stderr, "aether-migrate: %s\n", ok.error().to_string().c_str());
    return 2;
  }
  aether::nats::connect_options o;
  o.url = url;
  auto conn = aether::nats::connection::connect(o);
  if (!conn) {
    std::fprintf(stderr, "aether-migrate: %s\n", conn.error().to_string().c_str());
    return 1;
  }
  if (undo) {
    auto n = restore(ns, replicas, **conn);
    if (!n) {
      std::fprintf(stderr, "aether-migrate: restoring: %s\n", n.error().to_string().c_str());
      return 1;
    }
    std::printf("{\"namespace\":\"%s\",\"restored\":%zu}\n", ns.c_str(), *n);
    return 0;
  }
  auto c = migrate(url, ns, replicas, **conn);
  if (!c) {
    std::fprintf(stderr, "aether-migrate: %s\n", c.error().to_string().c_str());
    return 1;
  }
  std::printf("{\"namespace\":\"%s\",\"stream\":\"%s\",\"layout\":\"per-actor\",\"actors\":%zu,\"events\":%zu,"
              "\"writes\":%zu,\"published\":%zu,\"skipped\":%zu,\"backup\":\"%s-backup\"}\n",
              ns.c_str(), detail::namespace_stream_name(ns).c_str(), c->actors, c->events, c->writes, c->published,
              c->skipped, detail::namespace_stream_name(ns).c_str());
  return 0;
}
