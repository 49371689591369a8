// Declared message types with a wire form, shared by the placement, router
// and routing process tests: the account messages, and what the routing test
// node's actors say to each other.
#pragma once

#include <aether/runtime/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wire {

struct deposit {
  static constexpr std::string_view type_name = "wire.deposit";
  std::int64_t cents = 0;
};
AETHER_JSON_FIELDS(deposit, cents)

/// A balance, and the node that holds the account (empty where none is named).
struct balance {
  static constexpr std::string_view type_name = "wire.balance";
  std::int64_t cents = 0;
  std::string node;
};
AETHER_JSON_FIELDS(balance, cents, node)

struct get_balance {
  static constexpr std::string_view type_name = "wire.get_balance";
};
AETHER_JSON_FIELDS(get_balance)

/// Relays a deposit of 1 to another account, by tell or by ask.
struct relay {
  static constexpr std::string_view type_name = "wire.relay";
  std::string to;
  bool ask = false;
};
AETHER_JSON_FIELDS(relay, to, ask)

/// Answered with a version_conflict carrying a version, as a store refusal is.
struct conflicting_write {
  static constexpr std::string_view type_name = "wire.conflicting_write";
};
AETHER_JSON_FIELDS(conflicting_write)

/// A declared type no actor handles.
struct unhandled {
  static constexpr std::string_view type_name = "wire.unhandled";
};
AETHER_JSON_FIELDS(unhandled)

/// Tells `ping` to another actor, which answers the sender by ctx.sender().
struct ping_via {
  static constexpr std::string_view type_name = "wire.ping_via";
  std::string target;
};
AETHER_JSON_FIELDS(ping_via, target)

/// Asks another account for a deposit of 1 and answers with its reply.
struct ask_via {
  static constexpr std::string_view type_name = "wire.ask_via";
  std::string target;
};
AETHER_JSON_FIELDS(ask_via, target)

struct ping {
  static constexpr std::string_view type_name = "wire.ping";
};
AETHER_JSON_FIELDS(ping)

struct pong {
  static constexpr std::string_view type_name = "wire.pong";
  std::string node;
  std::string from;
};
AETHER_JSON_FIELDS(pong, node, from)

struct get_pongs {
  static constexpr std::string_view type_name = "wire.get_pongs";
};
AETHER_JSON_FIELDS(get_pongs)

struct text_list {
  static constexpr std::string_view type_name = "wire.text_list";
  std::vector<std::string> items;
};
AETHER_JSON_FIELDS(text_list, items)

/// One of a sender's numbered messages; `from` names the sender.
struct note {
  static constexpr std::string_view type_name = "wire.note";
  std::int64_t seq = 0;
  std::string from;
};
AETHER_JSON_FIELDS(note, seq, from)

struct send_notes {
  static constexpr std::string_view type_name = "wire.send_notes";
  std::string target;
  std::int64_t count = 0;
};
AETHER_JSON_FIELDS(send_notes, target, count)

struct get_notes {
  static constexpr std::string_view type_name = "wire.get_notes";
};
AETHER_JSON_FIELDS(get_notes)

struct note_list {
  static constexpr std::string_view type_name = "wire.note_list";
  std::vector<std::int64_t> seqs;
  std::string node;
};
AETHER_JSON_FIELDS(note_list, seqs, node)

} // namespace wire
