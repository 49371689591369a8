// aetherctl: looks at an Aether cluster through NATS alone.

#include "aetherctl.hpp"

#include <aether/runtime/command_line.hpp>
#include <aether/runtime/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace aetherctl {

namespace {

constexpr std::string_view usage =
    "Usage: aetherctl [--server URL] [--cluster NAME] [--json] COMMAND [ARGS]\n"
    "\n"
    "Looks at an Aether cluster through NATS alone; no command but 'durables reset'\n"
    "writes anything.\n"
    "\n"
    "Commands:\n"
    "  status                     members (incarnation, status in the control log, heard\n"
    "                             now by heartbeat), leader and term, map epoch\n"
    "  shards                     the shard map: which member owns each cluster shard\n"
    "  history NS/TYPE/KEY [--from V] [--limit N]\n"
    "                             an actor's events from version V (1), N at a time (100);\n"
    "                             writes that do not decode are shown as such\n"
    "  state NS/TYPE/KEY [--at-version V | --at-time T]\n"
    "                             the actor's state folded to that point, by a node that\n"
    "                             has its type registered (never the live actor)\n"
    "  tail NS-PATTERN [--type T]... [--actor PATTERN]\n"
    "                             events as they are stored or published, until Ctrl-C;\n"
    "                             NS-PATTERN as on the bus: shop, acme.*, acme.>, >\n"
    "  namespaces                 the namespaces that have an event stream\n"
    "  durables [NS]              durable bus subscribers: position, lag, whether held\n"
    "  durables reset [NS/]NAME (--to-version SEQ | --to-time T) [--yes]\n"
    "                             moves an idle durable subscriber so that the next event\n"
    "                             it gets is the one stored at stream sequence SEQ (the\n"
    "                             SEQ column of history), or the first stored at or after\n"
    "                             T; asks first (--yes: does not ask; without a terminal\n"
    "                             and without --yes it refuses)\n"
    "\n"
    "Options:\n"
    "  --server URL   NATS servers, comma separated (default: AETHER_NATS_URL, else\n"
    "                 nats://127.0.0.1:4222); credentials and TLS from the AETHER_NATS_*\n"
    "                 variables\n"
    "  --cluster NAME the cluster (default: AETHER_CLUSTER, else aether)\n"
    "  --json         JSON for programs: status, shards, history, state, namespaces and\n"
    "                 durables print one JSON document; tail prints one JSON object per\n"
    "                 line, one per event\n"
    "  --listen-ms MS how long status listens for heartbeats (default 500)\n"
    "  T (a time)     RFC 3339 (2026-11-27T12:00:00Z, 2026-11-27T13:00:00.5+01:00) or\n"
    "                 @UNIX-SECONDS";

constexpr std::string_view exit_codes =
    "  0  done (tail: stopped by Ctrl-C)\n"
    "  1  the command failed on the server, or a reset was declined\n"
    "  2  bad input or nothing to talk to: unknown command or option, bad id, pattern or\n"
    "     time, unknown namespace, cluster or durable, no server answering or credentials\n"
    "     refused, a reset without --yes and without a terminal\n";

/// Options that take a value.
constexpr std::string_view value_options[] = {"server",     "cluster", "from",    "limit",      "type",     "actor",
                                              "to-version", "to-time", "at-time", "at-version", "listen-ms"};

command_line parse(int argc, char** argv) {
  command_line cl;
  const char* env_url = std::getenv("AETHER_NATS_URL");
  cl.server = env_url != nullptr && *env_url != '\0' ? env_url : "nats://127.0.0.1:4222";
  const char* env_cluster = std::getenv("AETHER_CLUSTER");
  cl.cluster = env_cluster != nullptr && *env_cluster != '\0' ? env_cluster : "aether";
  for (int i = 1; i < argc; ++i) {
    std::string_view arg{argv[i]};
    if (arg.size() < 3 || arg.substr(0, 2) != "--") {
      if (arg.size() > 1 && arg[0] == '-' && arg != "-") bad_input(fmt::format("unknown option '{}'", arg));
      cl.words.emplace_back(arg);
      continue;
    }
    arg.remove_prefix(2);
    std::optional<std::string> inline_value;
    if (const auto eq = arg.find('='); eq != std::string_view::npos) {
      inline_value = std::string{arg.substr(eq + 1)};
      arg = arg.substr(0, eq);
    }
    if (arg == "json" || arg == "yes") {
      if (inline_value) bad_input(fmt::format("option --{} takes no value", arg));
      (arg == "json" ? cl.json : cl.yes) = true;
      continue;
    }
    if (std::find(std::begin(value_options), std::end(value_options), arg) == std::end(value_options)) {
      bad_input(fmt::format("unknown option '--{}'", arg));
    }
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      bad_input(fmt::format("option --{} needs a value", arg));
    }
    if (arg == "server") {
      cl.server = value;
    } else if (arg == "cluster") {
      cl.cluster = value;
    } else {
      cl.values.emplace(std::string{arg}, value);
    }
  }
  return cl;
}

} // namespace

std::optional<std::string> command_line::value(std::string_view name) const {
  const auto [first, last] = values.equal_range(name);
  if (first == last) return std::nullopt;
  if (std::next(first) != last) bad_input(fmt::format("option --{} is given twice", name));
  return first->second;
}

std::vector<std::string> command_line::all(std::string_view name) const {
  std::vector<std::string> out;
  const auto [first, last] = values.equal_range(name);
  for (auto it = first; it != last; ++it) out.push_back(it->second);
  return out;
}

void command_line::expect(std::size_t skip, std::size_t min, std::size_t max,
                          std::initializer_list<std::string_view> allowed) const {
  const auto command = fmt::format("{}", fmt::join(words.begin(), words.begin() + static_cast<long>(skip), " "));
  for (const auto& [name, value] : values) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      bad_input(fmt::format("option --{} does not apply to '{}'", name, command));
    }
  }
  if (yes && std::find(allowed.begin(), allowed.end(), "yes") == allowed.end()) {
    bad_input(fmt::format("option --yes does not apply to '{}'", command));
  }
  const auto given = words.size() - skip;
  if (given < min) bad_input(fmt::format("'{}' needs {} argument{}; see --help", command, min, min == 1 ? "" : "s"));
  if (given > max) bad_input(fmt::format("'{}' takes no argument '{}'; see --help", command, words[skip + max]));
}

std::optional<std::uint64_t> number_option(const command_line& cl, std::string_view name) {
  const auto text = cl.value(name);
  if (!text) return std::nullopt;
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
  if (text->empty() || ec != std::errc{} || end != text->data() + text->size()) {
    bad_input(fmt::format("--{} '{}': not a number", name, *text));
  }
  return n;
}

namespace {

/// Parses `count` digits at `p` into `out`; false if they are not digits.
bool digits(std::string_view& s, std::size_t count, int& out) {
  if (s.size() < count) return false;
  out = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  s.remove_prefix(count);
  return true;
}

bool literal(std::string_view& s, char c) {
  if (s.empty() || (s[0] != c && !(c == 'T' && (s[0] == 't' || s[0] == ' ')))) return false;
  s.remove_prefix(1);
  return true;
}

std::optional<std::int64_t> parse_time(std::string_view text) {
  if (!text.empty() && text[0] == '@') {
    std::int64_t seconds = 0;
    const auto body = text.substr(1);
    const auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), seconds);
    if (body.empty() || ec != std::errc{} || end != body.data() + body.size()) return std::nullopt;
    return seconds * 1'000'000'000;
  }
  std::tm tm{};
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  auto s = text;
  if (!digits(s, 4, year) || !literal(s, '-') || !digits(s, 2, month) || !literal(s, '-') || !digits(s, 2, day) ||
      !literal(s, 'T') || !digits(s, 2, hour) || !literal(s, ':') || !digits(s, 2, minute) || !literal(s, ':') ||
      !digits(s, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  std::int64_t fraction_ns = 0;
  if (!s.empty() && s[0] == '.') {
    s.remove_prefix(1);
    std::int64_t scale = 100'000'000;
    std::size_t n = 0;
    while (n < s.size() && s[n] >= '0' && s[n] <= '9') {
      fraction_ns += (s[n] - '0') * scale;
      scale /= 10;
      ++n;
    }
    if (n == 0) return std::nullopt;
    s.remove_prefix(n);
  }
  std::int64_t offset_s = 0;
  if (s == "Z" || s == "z") {
    s = {};
  } else if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    const int sign = s[0] == '-' ? -1 : 1;
    s.remove_prefix(1);
    int oh = 0, om = 0;
    if (!digits(s, 2, oh) || !literal(s, ':') || !digits(s, 2, om) || !s.empty() || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_s = sign * (oh * 3600 + om * 60);
  } else {
    return std::nullopt; // a time without its offset is ambiguous
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const std::int64_t seconds = static_cast<std::int64_t>(timegm(&tm)) - offset_s;
  return seconds * 1'000'000'000 + fraction_ns;
}

} // namespace

std::optional<std::int64_t> time_option(const command_line& cl, std::string_view name) {
  const auto text = cl.value(name);
  if (!text) return std::nullopt;
  auto t = parse_time(*text);
  if (!t) {
    bad_input(fmt::format("--{} '{}': not a time (RFC 3339 with its offset, e.g. 2026-11-27T12:00:00Z, or "
                          "@UNIX-SECONDS)",
                          name, *text));
  }
  return t;
}

std::string format_time(std::int64_t unix_ns) {
  auto seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  auto micros = (unix_ns % 1'000'000'000) / 1'000;
  if (micros < 0) {
    micros += 1'000'000;
    --seconds;
  }
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
}

void fail(const aether::error& e, std::string_view doing) {
  using aether::errc;
  const auto code = e.code();
  const bool input = code == errc::invalid_argument || code == errc::invalid_id || code == errc::not_found ||
                     code == errc::unauthorized;
  throw failure{input ? exit_bad_input : exit_failed, fmt::format("{}: {}", doing, e.to_string())};
}

std::shared_ptr<aether::nats::connection> connect(const command_line& cl) {
  aether::nats::connect_options o;
  o.url = cl.server;
  o.name = "aetherctl";
  o.max_reconnects = 0;
  auto security = aether::nats::security_options::from_env();
  if (!security) bad_input(security.error().to_string());
  o.security = std::move(*security);
  auto conn = aether::nats::connection::connect(o);
  if (!conn) {
    bad_input(fmt::format("no NATS server to talk to at {}: {}", aether::nats::redact_url(cl.server),
                          conn.error().to_string()));
  }
  return std::move(*conn);
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size());
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    out += line;
    out += '\n';
  }
  std::fputs(out.c_str(), stdout);
}

} // namespace aetherctl

int main(int argc, char** argv) {
  using namespace aetherctl;
  if (auto answered = aether::answer_help_or_version(argc, argv, {"aetherctl", usage, exit_codes})) return *answered;
  // The program's own lines say what went wrong; the library's warnings are
  // for nodes (AETHER_LOG still sets the level).
  if (std::getenv("AETHER_LOG") == nullptr) aether::set_log_level(aether::log_level::error);
  try {
    const auto cl = parse(argc, argv);
    if (cl.words.empty()) bad_input("no command; see --help");
    const auto& command = cl.words.front();
    int rc = exit_ok;
    if (command == "status") {
      rc = run_status(cl);
    } else if (command == "shards") {
      rc = run_shards(cl);
    } else if (command == "history") {
      rc = run_history(cl);
    } else if (command == "state") {
      rc = run_state(cl);
    } else if (command == "tail") {
      rc = run_tail(cl);
    } else if (command == "namespaces") {
      rc = run_namespaces(cl);
    } else if (command == "durables") {
      rc = run_durables(cl);
    } else {
      bad_input(fmt::format("unknown command '{}'; see --help", command));
    }
    std::fflush(stdout);
    return rc;
  } catch (const failure& f) {
    std::fflush(stdout);
    std::fprintf(stderr, "aetherctl: %s\n", f.what());
    return f.code();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "aetherctl: %s\n", e.what());
    return exit_failed;
  }
}
