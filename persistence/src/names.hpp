#pragma once

// Every name derived from a namespace, spelled here only: the namespace's
// subject token, its stream and bucket names, the bus subjects, and the
// namespace patterns of subscriptions.
//
// A namespace is one or more dot-separated tokens of `[A-Za-z0-9_-]`
// (`actor_id::validate_namespace`). NATS takes it in three shapes:
// - as subject tokens, as it is (`acme.billing`), at the end of the bus
//   subjects so that a namespace pattern is the tail of one subject filter;
// - as one subject token, in the store's subjects `aether.{token}.ev.>`:
//   itself for one token, its tokens joined by `:` otherwise
//   (`acme:billing`), a character no one-token namespace holds;
// - in stream and bucket names (`[A-Za-z0-9_-]` only): `{ns}_{kind}` for one
//   token, as the seeds name them (`tenant-a_events`); for more tokens,
//   `{escaped}-{kind}`, where the escaped form writes `.` as `__` and `_` as
//   `_-` (`acme.billing` -> `acme__billing-events`, `a_b.c` ->
//   `a_-b__c-events`). One-token names end in `_{kind}` and the others in
//   `-{kind}`, so the two never meet; every `_` of an escaped form starts a
//   two-character code, so it decodes one way only. Each mapping is
//   injective and reversed by the `*_from_*` functions below.

#include <aether/actors/actor_id.hpp>
#include <aether/runtime/expected.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace aether::detail {

/// The first token of the bus subjects; differs from the store's `aether`
/// (whose second token is any namespace) and the cluster's `aether_cluster`.
inline constexpr std::string_view bus_root = "aether_bus";

/// Whether `ns` has more than one token (it is assumed valid).
[[nodiscard]] inline bool hierarchical(std::string_view ns) noexcept { return ns.find('.') != std::string_view::npos; }

/// The namespace as one subject token (`acme`, `acme:billing`).
[[nodiscard]] inline std::string namespace_token(std::string_view ns) {
  std::string out{ns};
  for (auto& c : out) {
    if (c == '.') c = ':';
  }
  return out;
}

/// The namespace of a subject token made by `namespace_token`.
[[nodiscard]] inline expected<std::string> namespace_from_token(std::string_view token) {
  std::string ns{token};
  for (auto& c : ns) {
    if (c == ':') c = '.';
  }
  if (auto r = actor_id::validate_namespace(ns); !r) return r.error();
  return ns;
}

/// The name of one of the namespace's JetStream resources: `kind` is
/// `events` (the stream) or `snapshots` (the key-value bucket).
[[nodiscard]] inline std::string namespace_resource_name(std::string_view ns, std::string_view kind) {
  if (!hierarchical(ns)) return fmt::format("{}_{}", ns, kind);
  std::string out;
  out.reserve(ns.size() * 2 + kind.size() + 1);
  for (const char c : ns) {
    if (c == '.') {
      out += "__";
    } else if (c == '_') {
      out += "_-";
    } else {
      out += c;
    }
  }
  out += '-';
  out += kind;
  return out;
}

/// The namespace a resource name of `kind` was made for.
[[nodiscard]] inline expected<std::string> namespace_from_resource_name(std::string_view name, std::string_view kind) {
  const auto bad = [&](std::string_view why) {
    return error{errc::invalid_argument, fmt::format("'{}' names no namespace's {}: {}", name, kind, why)};
  };
  if (name.size() <= kind.size() + 1 || name.substr(name.size() - kind.size()) != kind) {
    return bad(fmt::format("it does not end in {}", kind));
  }
  const auto body = name.substr(0, name.size() - kind.size() - 1);
  const char separator = name[body.size()];
  if (separator == '_') {
    if (auto r = actor_id::validate_name(body, "namespace"); !r) return bad(r.error().detail());
    return std::string{body};
  }
  if (separator != '-') return bad("no '_' or '-' before the kind");
  std::string ns;
  for (std::size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '_') {
      ns += body[i];
      continue;
    }
    if (i + 1 == body.size()) return bad("a '_' ends it");
    const char code = body[++i];
    if (code == '_') {
      ns += '.';
    } else if (code == '-') {
      ns += '_';
    } else {
      return bad("a '_' not followed by '_' or '-'");
    }
  }
  if (auto r = actor_id::validate_namespace(ns); !r) return bad(r.error().detail());
  if (!hierarchical(ns)) return bad("a one-token namespace's name ends in _" + std::string{kind});
  return ns;
}

/// The stream of a namespace (`tenant-a_events`, `acme__billing-events`).
[[nodiscard]] inline std::string namespace_stream_name(std::string_view ns) {
  return namespace_resource_name(ns, "events");
}

/// The subjects of the namespace's actors' writes in its stream.
[[nodiscard]] inline std::string store_subjects(std::string_view ns) {
  return fmt::format("aether.{}.ev.>", namespace_token(ns));
}

/// The bus subject of an event: `aether_bus.{kind}.{type}.{key}.{version}.{ns}`,
/// `kind` being `pub` (published) or `stored` (republished once stored).
[[nodiscard]] inline std::string bus_subject(std::string_view kind, const actor_id& actor, std::uint64_t version) {
  return fmt::format("{}.{}.{}.{}.{}.{}", bus_root, kind, actor.type(), actor.key(), version, actor.ns());
}

/// A bus subscription's subject filter: the actor's type and key (or `*`),
/// any version, then the namespace pattern.
[[nodiscard]] inline std::string bus_filter(std::string_view kind, std::string_view type, std::string_view key,
                                            std::string_view ns_pattern) {
  return fmt::format("{}.{}.{}.{}.*.{}", bus_root, kind, type, key, ns_pattern);
}

/// Checks a namespace pattern: dot-separated tokens, each a namespace token,
/// `*` (any one token) or, last only, `>` (one or more tokens).
/// `invalid_argument` naming what is wrong.
[[nodiscard]] inline expected<void> validate_namespace_pattern(std::string_view pattern) {
  const auto bad = [&](std::string_view why) {
    const auto shown = pattern.size() > 80 ? std::string{pattern.substr(0, 80)} + "..." : std::string{pattern};
    return error{errc::invalid_argument, fmt::format("namespace pattern '{}': {}", shown, why)};
  };
  if (pattern.empty()) return bad("it is empty; use '>' for every namespace");
  if (pattern.size() > actor_id::max_namespace_size) {
    return bad(
        fmt::format("it is {} bytes, more than a namespace can be ({})", pattern.size(), actor_id::max_namespace_size));
  }
  std::size_t start = 0;
  for (;;) {
    const auto dot = pattern.find('.', start);
    const auto token = pattern.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (token.empty()) return bad("an empty token (a leading, trailing or double dot)");
    if (token == ">") {
      if (dot != std::string_view::npos) return bad("'>' must be the last token");
    } else if (token != "*") {
      if (token.find_first_of("*>") != std::string_view::npos) {
        return bad(fmt::format("'{}' mixes a wildcard with other characters; '*' and '>' stand alone", token));
      }
      if (auto r = actor_id::validate_name(token, "a token"); !r) return bad(r.error().detail());
    }
    if (dot == std::string_view::npos) return {};
    start = dot + 1;
  }
}

/// Whether namespace `ns` matches a valid `pattern`, by NATS's rules: `*`
/// is one token, `>` one or more.
[[nodiscard]] inline bool namespace_matches(std::string_view pattern, std::string_view ns) noexcept {
  std::size_t p = 0;
  std::size_t n = 0;
  for (;;) {
    const auto pdot = pattern.find('.', p);
    const auto ptoken = pattern.substr(p, pdot == std::string_view::npos ? std::string_view::npos : pdot - p);
    if (ptoken == ">") return n <= ns.size();
    if (n > ns.size()) return false;
    const auto ndot = ns.find('.', n);
    const auto ntoken = ns.substr(n, ndot == std::string_view::npos ? std::string_view::npos : ndot - n);
    if (ptoken != "*" && ptoken != ntoken) return false;
    const bool pend = pdot == std::string_view::npos;
    const bool nend = ndot == std::string_view::npos;
    if (pend || nend) return pend && nend;
    p = pdot + 1;
    n = ndot + 1;
  }
}

} // namespace aether::detail
