#include <aether/cluster/cluster_state.hpp>
#include <aether/cluster/control_records.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace aether {

cluster_state::cluster_state() : map_{std::make_shared<const shard_map>()} {}

member* cluster_state::find(const member_id& m) {
  for (auto& x : members_) {
    if (x.id == m) return &x;
  }
  return nullptr;
}

void cluster_state::mark(member& m, member_status s) {
  m.status = s;
  if (m.id == leader_) leader_ = {};
}

std::vector<member_id> cluster_state::alive_members() const {
  std::vector<member_id> out;
  for (const auto& m : members_) {
    if (m.status == member_status::alive) out.push_back(m.id);
  }
  return out;
}

std::optional<member_status> cluster_state::status_of(const member_id& m) const {
  for (const auto& x : members_) {
    if (x.id == m) return x.status;
  }
  return std::nullopt;
}

bool cluster_state::alive(const member_id& m) const { return status_of(m) == member_status::alive; }

state_change cluster_state::apply(const control_record& r) {
  using kind = control_records::decoded::kind;
  state_change out;
  last_sequence_ = std::max(last_sequence_, r.sequence);
  auto d = control_records::decode(r.subject, r.data);
  if (!d) {
    out.detail = d.error().to_string();
    return out;
  }
  switch (d->what) {
  case kind::config:
    if (shard_count_ != 0) {
      out.detail = "the shard count is set already";
      return out;
    }
    shard_count_ = static_cast<std::uint32_t>(d->number);
    out.what = state_change::kind::config;
    return out;
  case kind::join: {
    if (find(d->member) != nullptr) {
      out.detail = fmt::format("{} joined already", d->member.to_string());
      return out;
    }
    for (auto& m : members_) {
      if (m.id.node == d->member.node && m.status == member_status::alive) {
        out.replaced = m.id;
        mark(m, member_status::dead);
      }
    }
    members_.push_back(member{d->member, member_status::alive});
    out.what = state_change::kind::joined;
    out.member = d->member;
    return out;
  }
  case kind::leave:
  case kind::death: {
    auto* m = find(d->member);
    if (m == nullptr || m->status != member_status::alive) {
      out.detail = fmt::format("{} is not an alive member", d->member.to_string());
      return out;
    }
    if (d->what == kind::death && d->number != term_) {
      out.detail = fmt::format("a death written in term {} during term {}", d->number, term_);
      return out;
    }
    mark(*m, d->what == kind::leave ? member_status::left : member_status::dead);
    out.what = d->what == kind::leave ? state_change::kind::left : state_change::kind::died;
    out.member = d->member;
    return out;
  }
  case kind::term:
    if (d->number <= term_) {
      out.detail = fmt::format("term {} is not above term {}", d->number, term_);
      return out;
    }
    term_ = d->number;
    leader_ = alive(d->member) ? d->member : member_id{};
    out.what = state_change::kind::new_term;
    out.member = leader_;
    return out;
  case kind::map: {
    highest_map_epoch_ = std::max(highest_map_epoch_, d->map.epoch());
    if (d->map.epoch() <= map_->epoch()) {
      out.detail = fmt::format("map {} is not above map {}", d->map.epoch(), map_->epoch());
      return out;
    }
    if (d->map.term() != term_ || term_ == 0) {
      out.detail = fmt::format("map {} of term {} during term {}", d->map.epoch(), d->map.term(), term_);
      return out;
    }
    if (d->map.shard_count() != shard_count_) {
      out.detail =
          fmt::format("map {} has {} shards, the cluster {}", d->map.epoch(), d->map.shard_count(), shard_count_);
      return out;
    }
    map_ = std::make_shared<const shard_map>(std::move(d->map));
    out.what = state_change::kind::new_map;
    return out;
  }
  }
  return out;
}

} // namespace aether
