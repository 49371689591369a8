// namespaces and durables: the namespaces' event streams and the durable bus
// subscribers' consumers on them, through the JetStream API; the one write
// of aetherctl, `durables reset`.

#include "aetherctl.hpp"

// The names derived from a namespace, and their inverse, spelled once.
#include "names.hpp"

#include <aether/actors/actor_id.hpp>
#include <aether/runtime/json.hpp>

#include <fmt/format.h>

#include <unistd.h>

#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

namespace aetherctl {

namespace {

constexpr std::chrono::seconds api_timeout{5};

// The JetStream API's answers, as far as aetherctl reads them.
struct api_error {
  std::int64_t code = 0;
  std::int64_t err_code = 0;
  std::string description;
};
AETHER_JSON_FIELDS(api_error, code, err_code, description)

struct api_answer {
  std::optional<api_error> error;
};
AETHER_JSON_FIELDS(api_answer, error)

struct stream_config_js {
  std::string name;
};
AETHER_JSON_FIELDS(stream_config_js, name)

struct stream_state_js {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  std::uint64_t consumer_count = 0;
};
AETHER_JSON_FIELDS(stream_state_js, messages, bytes, first_seq, last_seq, consumer_count)

struct stream_info_js {
  stream_config_js config;
  stream_state_js state;
};
AETHER_JSON_FIELDS(stream_info_js, config, state)

struct stream_list_js {
  std::uint64_t total = 0;
  std::vector<stream_info_js> streams;
};
AETHER_JSON_FIELDS(stream_list_js, total, streams)

struct consumer_config_js {
  std::optional<std::string> durable_name;
  std::optional<std::string> deliver_subject;
  std::optional<std::string> filter_subject;
  std::optional<std::int64_t> ack_wait;
  std::optional<std::int64_t> max_ack_pending;
};
AETHER_JSON_FIELDS(consumer_config_js, durable_name, deliver_subject, filter_subject, ack_wait, max_ack_pending)

struct sequences_js {
  std::uint64_t consumer_seq = 0;
  std::uint64_t stream_seq = 0;
};
AETHER_JSON_FIELDS(sequences_js, consumer_seq, stream_seq)

struct consumer_info_js {
  std::string stream_name;
  std::string name;
  consumer_config_js config;
  sequences_js delivered;
  sequences_js ack_floor;
  std::uint64_t num_ack_pending = 0;
  std::uint64_t num_redelivered = 0;
  std::uint64_t num_pending = 0;
  std::optional<bool> push_bound;
};
AETHER_JSON_FIELDS(consumer_info_js, stream_name, name, config, delivered, ack_floor, num_ack_pending, num_redelivered,
                   num_pending, push_bound)

struct consumer_list_js {
  std::uint64_t total = 0;
  std::vector<consumer_info_js> consumers;
};
AETHER_JSON_FIELDS(consumer_list_js, total, consumers)

struct paged_request {
  std::uint64_t offset = 0;
};
AETHER_JSON_FIELDS(paged_request, offset)

// What aetherctl prints.
struct namespace_json {
  std::string ns;
  std::string stream;
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t first_sequence = 0;
  std::uint64_t last_sequence = 0;
  std::uint64_t consumers = 0;
};
AETHER_JSON_FIELDS(namespace_json, ns, stream, messages, bytes, first_sequence, last_sequence, consumers)

struct namespaces_json {
  std::vector<namespace_json> namespaces;
};
AETHER_JSON_FIELDS(namespaces_json, namespaces)

struct durable_json {
  std::string ns;
  std::string name;
  /// Every event up to this stream sequence is acknowledged.
  std::uint64_t acknowledged = 0;
  /// The stream sequence of the next event it gets.
  std::uint64_t next = 0;
  /// Stored events it has not acknowledged yet: `pending` not delivered,
  /// `unacknowledged` delivered.
  std::uint64_t lag = 0;
  std::uint64_t pending = 0;
  std::uint64_t unacknowledged = 0;
  std::uint64_t redelivered = 0;
  /// A subscriber holds it now.
  bool held = false;
};
AETHER_JSON_FIELDS(durable_json, ns, name, acknowledged, next, lag, pending, unacknowledged, redelivered, held)

struct durables_json {
  std::vector<durable_json> durables;
};
AETHER_JSON_FIELDS(durables_json, durables)

struct reset_json {
  durable_json before;
  durable_json after;
};
AETHER_JSON_FIELDS(reset_json, before, after)

template <class T>
T decode_answer(const std::string& text, std::string_view what) {
  auto v = aether::json::decode<T>(text, std::size_t{64} << 20);
  if (!v)
    throw failure{exit_failed, fmt::format("{}: the server's answer does not decode: {}", what, v.error().detail())};
  return std::move(*v);
}

/// Every stream, page by page.
std::vector<stream_info_js> list_streams(aether::nats::connection& conn) {
  std::vector<stream_info_js> out;
  for (;;) {
    const auto answer =
        need(js_api(conn, "$JS.API.STREAM.LIST", aether::json::encode(paged_request{out.size()})), "listing streams");
    auto page = decode_answer<stream_list_js>(answer, "listing streams");
    if (page.streams.empty()) break;
    for (auto& s : page.streams) out.push_back(std::move(s));
    if (out.size() >= page.total) break;
  }
  return out;
}

/// The namespaces with an event stream, by stream name.
std::vector<std::pair<std::string, stream_info_js>> namespace_streams(aether::nats::connection& conn) {
  std::vector<std::pair<std::string, stream_info_js>> out;
  for (auto& s : list_streams(conn)) {
    if (auto ns = aether::detail::namespace_from_resource_name(s.config.name, "events")) {
      out.emplace_back(std::move(*ns), std::move(s));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

std::vector<consumer_info_js> list_consumers(aether::nats::connection& conn, const std::string& stream) {
  std::vector<consumer_info_js> out;
  for (;;) {
    const auto answer =
        need(js_api(conn, "$JS.API.CONSUMER.LIST." + stream, aether::json::encode(paged_request{out.size()})),
             fmt::format("listing the consumers of {}", stream));
    auto page = decode_answer<consumer_list_js>(answer, "listing consumers");
    if (page.consumers.empty()) break;
    for (auto& c : page.consumers) out.push_back(std::move(c));
    if (out.size() >= page.total) break;
  }
  return out;
}

durable_json to_durable(const std::string& ns, const consumer_info_js& c) {
  durable_json d;
  d.ns = ns;
  d.name = c.config.durable_name.value_or(c.name);
  d.acknowledged = c.ack_floor.stream_seq;
  d.next = c.ack_floor.stream_seq + 1;
  d.pending = c.num_pending;
  d.unacknowledged = c.num_ack_pending;
  d.lag = c.num_pending + c.num_ack_pending;
  d.redelivered = c.num_redelivered;
  d.held = c.push_bound.value_or(false);
  return d;
}

/// The durable consumers of the namespaces named (all when `only` is empty).
std::vector<std::pair<durable_json, consumer_info_js>> durables_of(aether::nats::connection& conn,
                                                                   const std::string& only) {
  std::vector<std::pair<durable_json, consumer_info_js>> out;
  for (const auto& [ns, info] : namespace_streams(conn)) {
    if (!only.empty() && ns != only) continue;
    for (auto& c : list_consumers(conn, info.config.name)) {
      if (!c.config.durable_name || c.config.durable_name->empty()) continue; // a reader's ephemeral consumer
      auto d = to_durable(ns, c);
      out.emplace_back(std::move(d), std::move(c));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first.ns, a.first.name) < std::tie(b.first.ns, b.first.name);
  });
  return out;
}

void need_namespace(aether::nats::connection& conn, const std::string& ns) {
  if (auto r = aether::actor_id::validate_namespace(ns); !r)
    bad_input(fmt::format("namespace '{}': {}", ns, r.error().detail()));
  const auto stream = aether::detail::namespace_stream_name(ns);
  if (auto count = conn.stream_message_count(stream); !count) {
    if (count.error().code() == aether::errc::not_found) {
      bad_input(fmt::format("unknown namespace '{}': it has no event stream ({})", ns, stream));
    }
    fail(count.error(), fmt::format("reading stream {}", stream));
  }
}

void print_durables(const std::vector<durable_json>& ds) {
  std::vector<std::vector<std::string>> rows{
      {"NAMESPACE", "DURABLE", "ACKED", "NEXT", "LAG", "PENDING", "UNACKED", "HELD"}};
  for (const auto& d : ds) {
    rows.push_back({d.ns, d.name, std::to_string(d.acknowledged), std::to_string(d.next), std::to_string(d.lag),
                    std::to_string(d.pending), std::to_string(d.unacknowledged), d.held ? "yes" : "no"});
  }
  print_table(rows);
}

/// Asks on the terminal; false unless the answer is yes.
bool confirm(const std::string& question) {
  std::fprintf(stderr, "%s [y/N] ", question.c_str());
  std::fflush(stderr);
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  return answer == "y" || answer == "Y" || answer == "yes";
}

struct create_config_js {
  std::string durable_name;
  std::string deliver_subject;
  std::string deliver_policy;
  std::optional<std::uint64_t> opt_start_seq;
  std::string ack_policy = "all";
  std::optional<std::int64_t> ack_wait;
  std::int64_t max_ack_pending = 1;
};
AETHER_JSON_FIELDS(create_config_js, durable_name, deliver_subject, deliver_policy, opt_start_seq, ack_policy, ack_wait,
                   max_ack_pending)

struct create_request_js {
  std::string stream_name;
  create_config_js config;
};
AETHER_JSON_FIELDS(create_request_js, stream_name, config)

struct direct_get_js {
  std::uint64_t seq = 0;
  std::string next_by_subj = ">";
};
AETHER_JSON_FIELDS(direct_get_js, seq, next_by_subj)

stream_info_js stream_info(aether::nats::connection& conn, const std::string& stream) {
  return decode_answer<stream_info_js>(
      need(js_api(conn, "$JS.API.STREAM.INFO." + stream, ""), fmt::format("reading stream {}", stream)),
      "reading a stream");
}

/// The first message stored at or after `sequence`: its sequence and when it
/// was stored (Unix ns); nullopt when there is none.
std::optional<std::pair<std::uint64_t, std::int64_t>>
stored_at_or_after(aether::nats::connection& conn, const std::string& stream, std::uint64_t sequence) {
  auto m =
      need(conn.request("$JS.API.DIRECT.GET." + stream, aether::json::encode(direct_get_js{sequence}), api_timeout),
           fmt::format("reading stream {}", stream));
  const auto seq = m.header("Nats-Sequence");
  const auto stamp = m.header("Nats-Time-Stamp");
  if (!seq || !stamp) return std::nullopt; // a 404 status: nothing there
  std::uint64_t n = 0;
  std::from_chars(seq->data(), seq->data() + seq->size(), n);
  command_line probe;
  probe.values.emplace("time", std::string{*stamp});
  return std::pair{n, time_option(probe, "time").value_or(0)};
}

/// The first stream sequence stored at or after `unix_ns` (last + 1 when none
/// is): a binary search by direct gets (the server stamps messages in
/// sequence order).
std::uint64_t first_at_or_after(aether::nats::connection& conn, const std::string& stream, std::int64_t unix_ns) {
  const auto info = stream_info(conn, stream);
  auto lo = std::max<std::uint64_t>(info.state.first_seq, 1);
  auto hi = info.state.last_seq + 1;
  auto best = hi;
  while (lo < hi) {
    const auto mid = lo + (hi - lo) / 2;
    const auto found = stored_at_or_after(conn, stream, mid);
    if (!found || found->second >= unix_ns) {
      if (found) best = std::min(best, found->first);
      hi = mid;
    } else {
      lo = found->first + 1;
    }
  }
  return best;
}

/// Makes durable `name` anew so that the next subscriber gets stream sequence
/// `start` first. A subscriber starts after the consumer's acknowledgement
/// floor, and a new consumer has none: so it is made to deliver from
/// `start - 1` to this process, which acknowledges that one write and ends
/// its interest. Returns the consumer as the server then describes it.
consumer_info_js make_at(aether::nats::connection& conn, const consumer_info_js& old, const std::string& name,
                         std::uint64_t start) {
  struct first_delivery {
    std::mutex mutex;
    std::condition_variable arrived;
    std::optional<std::pair<std::uint64_t, std::string>> got;
  };
  auto first = std::make_shared<first_delivery>();
  const auto inbox = conn.new_inbox();
  auto sub = need(conn.subscribe(inbox,
                                 [first](const aether::nats::message_view& m) {
                                   auto position = m.sequence_and_pending();
                                   std::lock_guard lock{first->mutex};
                                   if (first->got || !position) return;
                                   first->got.emplace(position->first, std::string{m.reply()});
                                   first->arrived.notify_all();
                                 }),
                  "subscribing to the consumer's deliveries");
  need(conn.flush(api_timeout), "subscribing to the consumer's deliveries");
  create_request_js req;
  req.stream_name = old.stream_name;
  req.config.durable_name = name;
  req.config.deliver_subject = inbox;
  req.config.ack_wait = old.config.ack_wait;
  if (start > 1) {
    req.config.deliver_policy = "by_start_sequence";
    req.config.opt_start_seq = start - 1;
  } else {
    req.config.deliver_policy = "all";
  }
  // The server moves no consumer in place.
  need(conn.delete_consumer(old.stream_name, name), fmt::format("deleting consumer {}", name));
  const auto created = js_api(conn, fmt::format("$JS.API.CONSUMER.DURABLE.CREATE.{}.{}", old.stream_name, name),
                              aether::json::encode(req));
  if (!created) {
    throw failure{exit_failed, fmt::format("durable '{}' was deleted but not made again ({}); a subscriber that "
                                           "starts now gets every stored event",
                                           name, created.error().to_string())};
  }
  if (start > 1) {
    std::unique_lock lock{first->mutex};
    first->arrived.wait_for(lock, api_timeout, [&] { return first->got.has_value(); });
    // Acknowledged only if it is the write before `start` (none may be stored there).
    if (first->got && first->got->first == start - 1) {
      need(conn.ack(first->got->second), "acknowledging");
      need(conn.flush(api_timeout), "acknowledging");
      const auto deadline = std::chrono::steady_clock::now() + api_timeout;
      for (;;) {
        auto state = conn.consumer(old.stream_name, name);
        if (state && state->ack_floor >= start - 1) break;
        if (std::chrono::steady_clock::now() >= deadline) {
          throw failure{exit_failed, fmt::format("durable '{}': the server did not record its new position", name)};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{10});
      }
    }
  }
  sub.unsubscribe();
  need(conn.flush(api_timeout), "ending the consumer's deliveries");
  return decode_answer<consumer_info_js>(
      need(js_api(conn, fmt::format("$JS.API.CONSUMER.INFO.{}.{}", old.stream_name, name), ""),
           fmt::format("reading consumer {}", name)),
      "reading a consumer");
}

int run_reset(const command_line& cl) {
  cl.expect(2, 1, 1, {"to-version", "to-time", "yes"});
  const auto to_sequence = number_option(cl, "to-version");
  const auto to_time = time_option(cl, "to-time");
  if (to_sequence.has_value() == to_time.has_value()) {
    bad_input("durables reset: give one of --to-version SEQ and --to-time T");
  }
  if (to_sequence && *to_sequence == 0) bad_input("--to-version 0: stream sequences start at 1");
  std::string ns;
  std::string name = cl.words[2];
  if (const auto slash = name.find('/'); slash != std::string::npos) {
    ns = name.substr(0, slash);
    name = name.substr(slash + 1);
  }
  if (auto r = aether::actor_id::validate_name(name, "durable name"); !r) bad_input(r.error().detail());
  auto conn = connect(cl);
  if (!ns.empty()) need_namespace(*conn, ns);
  std::vector<std::pair<durable_json, consumer_info_js>> found;
  for (auto& d : durables_of(*conn, ns)) {
    if (d.first.name == name) found.push_back(std::move(d));
  }
  if (found.empty()) {
    bad_input(ns.empty() ? fmt::format("unknown durable '{}': no namespace has it", name)
                         : fmt::format("unknown durable '{}' on namespace '{}'", name, ns));
  }
  if (found.size() > 1) {
    bad_input(fmt::format("durable '{}' is on {} namespaces ({}, ...): name one as NS/{}", name, found.size(),
                          found.front().first.ns, name));
  }
  const auto& [before, info] = found.front();
  if (before.held) {
    throw failure{exit_failed, fmt::format("durable '{}' on namespace '{}' is held by a subscriber: stop it first",
                                           name, before.ns)};
  }
  const auto last = stream_info(*conn, info.stream_name).state.last_seq;
  if (to_sequence && *to_sequence > last + 1) {
    bad_input(fmt::format("--to-version {}: the stream of '{}' ends at sequence {} (at most {})", *to_sequence,
                          before.ns, last, last + 1));
  }
  const auto start = to_sequence ? *to_sequence : first_at_or_after(*conn, info.stream_name, *to_time);
  const auto target =
      to_sequence ? fmt::format("the event stored at sequence {}", start)
                  : fmt::format("the first event stored at or after {} (sequence {})", format_time(*to_time), start);
  const auto question = fmt::format("Reset durable '{}' on namespace '{}' (next event now at sequence {}, lag {}) "
                                    "so that it gets {} next?",
                                    name, before.ns, before.next, before.lag, target);
  if (!cl.yes) {
    if (isatty(STDIN_FILENO) == 0) {
      bad_input(
          fmt::format("durables reset changes what '{}' gets next: confirm with --yes (no terminal to ask on)", name));
    }
    if (!confirm(question)) throw failure{exit_failed, "reset declined; nothing changed"};
  }
  reset_json out{before, to_durable(before.ns, make_at(*conn, info, name, start))};
  if (cl.json) {
    std::puts(aether::json::encode(out).c_str());
  } else {
    std::printf("durable '%s' on namespace '%s' reset: next event at sequence %llu (was %llu), lag %llu\n",
                name.c_str(), before.ns.c_str(), static_cast<unsigned long long>(out.after.next),
                static_cast<unsigned long long>(before.next), static_cast<unsigned long long>(out.after.lag));
  }
  return exit_ok;
}

} // namespace

aether::expected<std::string> js_api(aether::nats::connection& conn, std::string_view subject, std::string_view body) {
  auto reply = conn.request(subject, body, api_timeout);
  if (!reply) return reply.error();
  auto answer = aether::json::decode<api_answer>(reply->data, std::size_t{64} << 20);
  if (answer && answer->error) {
    const auto& e = *answer->error;
    return aether::error{e.code == 404 ? aether::errc::not_found : aether::errc::unavailable,
                         fmt::format("{} ({} {})", e.description, e.code, e.err_code)};
  }
  return std::move(reply->data);
}

int run_namespaces(const command_line& cl) {
  cl.expect(1, 0, 0, {});
  auto conn = connect(cl);
  namespaces_json out;
  for (const auto& [ns, s] : namespace_streams(*conn)) {
    out.namespaces.push_back({ns, s.config.name, s.state.messages, s.state.bytes, s.state.first_seq, s.state.last_seq,
                              s.state.consumer_count});
  }
  if (cl.json) {
    std::puts(aether::json::encode(out).c_str());
    return exit_ok;
  }
  std::vector<std::vector<std::string>> rows{{"NAMESPACE", "STREAM", "MESSAGES", "BYTES", "LAST_SEQ", "CONSUMERS"}};
  for (const auto& n : out.namespaces) {
    rows.push_back({n.ns, n.stream, std::to_string(n.messages), std::to_string(n.bytes),
                    std::to_string(n.last_sequence), std::to_string(n.consumers)});
  }
  print_table(rows);
  return exit_ok;
}

int run_durables(const command_line& cl) {
  if (cl.words.size() >= 2 && cl.words[1] == "reset") return run_reset(cl);
  cl.expect(1, 0, 1, {});
  std::string ns = cl.words.size() > 1 ? cl.words[1] : "";
  auto conn = connect(cl);
  if (!ns.empty()) need_namespace(*conn, ns);
  durables_json out;
  for (auto& [d, info] : durables_of(*conn, ns)) out.durables.push_back(std::move(d));
  if (cl.json) {
    std::puts(aether::json::encode(out).c_str());
    return exit_ok;
  }
  print_durables(out.durables);
  return exit_ok;
}

} // namespace aetherctl
