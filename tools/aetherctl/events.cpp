// history and tail: an actor's stored events read with the event store's
// reporting read, and events as they arrive read with the NATS event bus.

#include "aetherctl.hpp"

#include <aether/actors/actor_id.hpp>
#include <aether/persistence/event_bus.hpp>
#include <aether/persistence/jetstream_event_store.hpp>
#include <aether/runtime/json.hpp>
#include <aether/runtime/signal_waiter.hpp>
#include <aether/runtime/thread_pool_executor.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <mutex>

namespace aetherctl {

namespace {

struct event_json {
  std::string actor;
  std::uint64_t version = 0;
  std::uint64_t sequence = 0;
  std::string time;
  std::int64_t timestamp_ns = 0;
  std::string type;
  std::uint32_t schema_version = 1;
  std::string id;
  aether::json::raw data;
  std::map<std::string, std::string> metadata;
};
AETHER_JSON_FIELDS(event_json, actor, version, sequence, time, timestamp_ns, type, schema_version, id, data, metadata)

/// A stored write the read could not use: `undecodable` (damaged) or
/// `skipped` (stored beside the history).
struct unread_json {
  std::string kind;
  std::uint64_t version = 0;
  std::uint64_t sequence = 0;
  std::string reason;
};
AETHER_JSON_FIELDS(unread_json, kind, version, sequence, reason)

struct history_json {
  std::string actor;
  std::uint64_t from = 1;
  std::uint64_t limit = 0;
  std::vector<event_json> events;
  std::vector<unread_json> unread;
  /// The `--from` of the next page; absent on the last page.
  std::optional<std::uint64_t> next_from;
};
AETHER_JSON_FIELDS(history_json, actor, from, limit, events, unread, next_from)

/// Any JSON value, to check that a payload is one.
struct any_value {
  aether::json::raw value;
};
AETHER_JSON_FIELDS(any_value, value)

event_json to_json(const aether::event& e) {
  event_json j;
  j.actor = e.actor.to_string();
  j.version = e.version;
  j.sequence = e.sequence;
  j.time = format_time(e.timestamp_ns);
  j.timestamp_ns = e.timestamp_ns;
  j.type = e.type;
  j.schema_version = e.schema_version;
  j.id = e.id;
  // The store's payloads are JSON; anything else is shown as a string.
  // The whole payload must be that one value (`1,"x":2` is not).
  const auto first = e.data.find_first_not_of(" \t\r\n");
  const auto trimmed =
      first == std::string::npos ? std::string{} : e.data.substr(first, e.data.find_last_not_of(" \t\r\n") - first + 1);
  auto checked = aether::json::decode<any_value>(R"({"value":)" + e.data + "}");
  if (!trimmed.empty() && checked && checked->value.text == trimmed) {
    j.data.text = trimmed;
  } else {
    j.data.text = aether::json::encode(e.data);
  }
  j.metadata = e.metadata;
  return j;
}

std::string one_line(std::string_view text, std::size_t limit = 200) {
  std::string out;
  for (const char c : text) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (out.size() > limit) out = out.substr(0, limit - 3) + "...";
  return out;
}

aether::actor_id parse_actor(const std::string& text) {
  if (std::count(text.begin(), text.end(), '/') != 2) {
    bad_input(fmt::format("actor id '{}': write it NS/TYPE/KEY (e.g. shop/order/o-17)", text));
  }
  auto id = aether::actor_id::parse(text);
  if (!id) bad_input(fmt::format("actor id '{}': {}", text, id.error().detail()));
  return std::move(*id);
}

/// `bad_input` when the namespace has no event stream (nothing was ever
/// stored there, or the name is mistyped).
void need_namespace(aether::nats::connection& conn, std::string_view ns) {
  const auto stream = aether::jetstream_event_store::stream_name(ns);
  auto count = conn.stream_message_count(stream);
  if (!count) {
    if (count.error().code() == aether::errc::not_found) {
      bad_input(fmt::format("unknown namespace '{}': it has no event stream ({})", ns, stream));
    }
    fail(count.error(), fmt::format("reading stream {}", stream));
  }
}

} // namespace

int run_history(const command_line& cl) {
  cl.expect(1, 1, 1, {"from", "limit"});
  const auto actor = parse_actor(cl.words[1]);
  const auto from = std::max<std::uint64_t>(number_option(cl, "from").value_or(1), 1);
  const auto limit = number_option(cl, "limit").value_or(100);
  if (limit == 0) bad_input("--limit 0: show at least one event");
  auto conn = connect(cl);
  need_namespace(*conn, actor.ns());
  auto store = need(aether::jetstream_event_store::open(conn), "opening the event store");
  auto report = need(store->read_report_wait(actor, from), fmt::format("reading the history of {}", actor.to_string()));

  // Events and unread writes in version order, one page.
  struct row {
    std::uint64_t version;
    std::uint64_t sequence;
    const aether::event* e;
    const aether::unread_write* w;
    std::string_view kind;
  };
  std::vector<row> rows;
  for (const auto& e : report.events) rows.push_back({e.version, e.sequence, &e, nullptr, "event"});
  for (const auto& w : report.undecodable) {
    if (w.version == 0 || w.version >= from) rows.push_back({w.version, w.sequence, nullptr, &w, "undecodable"});
  }
  for (const auto& w : report.skipped) {
    if (w.version == 0 || w.version >= from) rows.push_back({w.version, w.sequence, nullptr, &w, "skipped"});
  }
  std::stable_sort(rows.begin(), rows.end(), [](const row& a, const row& b) {
    return a.version != b.version ? a.version < b.version : a.sequence < b.sequence;
  });
  history_json out;
  out.actor = actor.to_string();
  out.from = from;
  out.limit = limit;
  std::size_t shown_events = 0;
  for (const auto& r : rows) {
    if (r.e != nullptr) {
      if (shown_events == limit) {
        out.next_from = r.version;
        break;
      }
      ++shown_events;
      out.events.push_back(to_json(*r.e));
    } else {
      out.unread.push_back({std::string{r.kind}, r.w->version, r.w->sequence, r.w->reason});
    }
  }
  if (cl.json) {
    std::puts(aether::json::encode(out).c_str());
    return exit_ok;
  }
  std::vector<std::vector<std::string>> table{{"VERSION", "SEQ", "TIME", "TYPE", "DATA"}};
  for (const auto& r : rows) {
    if (out.next_from && r.version >= *out.next_from) break;
    if (r.e != nullptr) {
      table.push_back({std::to_string(r.version), std::to_string(r.sequence), format_time(r.e->timestamp_ns), r.e->type,
                       one_line(r.e->data)});
    } else {
      table.push_back({r.version == 0 ? "?" : std::to_string(r.version), std::to_string(r.sequence), "-",
                       r.kind == "undecodable" ? "<undecodable>" : "<skipped>", one_line(r.w->reason)});
    }
  }
  std::printf("%s: %zu event%s from version %llu\n", out.actor.c_str(), out.events.size(),
              out.events.size() == 1 ? "" : "s", static_cast<unsigned long long>(from));
  print_table(table);
  if (out.next_from) {
    std::printf("more: aetherctl history %s --from %llu --limit %llu\n", out.actor.c_str(),
                static_cast<unsigned long long>(*out.next_from), static_cast<unsigned long long>(limit));
  }
  return exit_ok;
}

int run_tail(const command_line& cl) {
  cl.expect(1, 1, 1, {"type", "actor"});
  const auto& pattern = cl.words[1];
  aether::event_filter filter;
  for (const auto& t : cl.all("type")) filter.event_types.push_back(t);
  filter.actor_pattern = cl.value("actor").value_or("");
  auto conn = connect(cl);
  aether::signal_waiter stop{true};
  aether::thread_pool_executor ex{1, 1};
  auto bus = need(aether::nats_event_bus::open(ex, conn), "opening the event bus");
  std::mutex out_mutex;
  aether::subscribe_options options;
  options.buffer = 65536;
  options.on_error = [&](const aether::error& e) {
    std::lock_guard lock{out_mutex};
    std::fprintf(stderr, "aetherctl: %s\n", e.to_string().c_str());
  };
  const bool json = cl.json;
  auto sub = bus->subscribe(
      pattern, filter,
      [&, json](const aether::event& e) {
        std::lock_guard lock{out_mutex};
        if (json) {
          std::puts(aether::json::encode(to_json(e)).c_str());
        } else {
          std::printf("%s  %s  v%llu  seq %llu  %s  %s\n", format_time(e.timestamp_ns).c_str(),
                      e.actor.to_string().c_str(), static_cast<unsigned long long>(e.version),
                      static_cast<unsigned long long>(e.sequence), e.type.c_str(), one_line(e.data).c_str());
        }
        std::fflush(stdout);
      },
      options);
  if (!sub) fail(sub.error(), "tail");
  {
    std::lock_guard lock{out_mutex};
    std::fprintf(stderr, "aetherctl: tailing namespaces '%s' (Ctrl-C to stop)\n", pattern.c_str());
  }
  stop.wait();
  sub->unsubscribe();
  bus->close();
  ex.stop();
  return exit_ok;
}

} // namespace aetherctl
