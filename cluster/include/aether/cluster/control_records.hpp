#pragma once

#include <aether/cluster/member.hpp>
#include <aether/cluster/shard_map.hpp>
#include <aether/runtime/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace aether {

/// A control record to write: a subject (relative to the cluster) never used
/// before, and its JSON.
struct control_write {
  std::string subject;
  std::string data;
};

/// The records of the control log and their subjects, spelled here only.
///
/// - `config`: the cluster's shard count, written once when it is created.
/// - `member.{node}.{inc}`: a member joins.
/// - `left.{node}.{inc}`: a member leaves gracefully.
/// - `dead.{node}.{inc}.{term}`: the leader of `term` declares it dead.
/// - `term.{T}`: a member claims term T; the first record stored wins.
/// - `map.{E}`: the shard map of epoch E, carrying the term that issued it.
namespace control_records {

[[nodiscard]] control_write config(std::uint32_t shards);
[[nodiscard]] control_write join(const member_id& m);
[[nodiscard]] control_write leave(const member_id& m);
[[nodiscard]] control_write death(const member_id& m, std::uint64_t term);
[[nodiscard]] control_write term(std::uint64_t term, const member_id& candidate);
[[nodiscard]] control_write map(const shard_map& m);

/// A decoded record.
struct decoded {
  enum class kind { config, join, leave, death, term, map } what = kind::config;
  member_id member;         ///< join, leave, death; the candidate of a term
  std::uint64_t number = 0; ///< the term of a term or death record, the shard count of config
  shard_map map;            ///< for map records
};

/// Decodes a record; `malformed_payload` for anything the cluster does not write.
[[nodiscard]] expected<decoded> decode(std::string_view subject, std::string_view data);

} // namespace control_records

} // namespace aether
