#include "handoff.hpp"

#include <algorithm>

namespace aether {

std::string_view to_string(shard_state s) noexcept {
  switch (s) {
  case shard_state::remote:
    return "remote";
  case shard_state::serving:
    return "serving";
  case shard_state::draining:
    return "draining";
  case shard_state::incoming:
    return "incoming";
  }
  return "unknown";
}

namespace {

bool alive(const cluster_snapshot& view, const member_id& m) {
  return std::any_of(view.members.begin(), view.members.end(),
                     [&](const member& x) { return x.id == m && x.status == member_status::alive; });
}

/// Alive, or left gracefully (a leaving node releases what it served).
bool releases(const cluster_snapshot& view, const member_id& m) {
  return std::any_of(view.members.begin(), view.members.end(), [&](const member& x) {
    return x.id == m && (x.status == member_status::alive || x.status == member_status::left);
  });
}

bool others_alive(const cluster_snapshot& view) {
  return std::any_of(view.members.begin(), view.members.end(),
                     [&](const member& x) { return x.id != view.self && x.status == member_status::alive; });
}

} // namespace

handoff::handoff(std::uint32_t shards, executor::duration release_timeout, std::size_t hold_limit)
    : shards_(shards), release_timeout_{release_timeout}, hold_limit_{hold_limit} {}

handoff_step handoff::apply(const cluster_snapshot& view, executor::time_point now) {
  handoff_step step;
  const auto previous = view_ ? view_->map : nullptr;
  std::vector<bool> mine(shards_.size(), false);
  for (auto s : view.owned_shards) {
    if (s < mine.size()) mine[s] = true;
  }
  for (std::uint32_t s = 0; s < shards_.size(); ++s) {
    auto& p = shards_[s];
    const auto& owner = view.map->owner(s);
    switch (p.state) {
    case shard_state::serving:
      if (mine[s]) break;
      if (view.serving && !owner.empty() && owner != view.self && alive(view, owner)) {
        p.state = shard_state::draining;
        step.drain.push_back(s);
      } else {
        p.state = shard_state::remote;
        step.drop.push_back(s);
      }
      break;
    case shard_state::draining:
      // The drain ends by itself (`drained`); a shard that came back is served.
      if (mine[s]) {
        p.state = shard_state::serving;
        step.serve.push_back(s);
      }
      break;
    case shard_state::incoming:
      if (!mine[s]) {
        p.state = shard_state::remote;
        p.early_release.reset();
        p.fenced = false;
        p.ready = false;
        if (!p.held.empty()) step.rehome.push_back(s);
      } else if (!p.releaser.empty() && !releases(view, p.releaser)) {
        // The old owner died: nothing more will come from it.
        serve(s, step);
      }
      break;
    case shard_state::remote:
      if (mine[s]) {
        const member_id before = previous ? previous->owner(s) : member_id{};
        p.fenced = false;
        p.ready = false;
        if (!previous && others_alive(view)) {
          // This node's first map: who served the shard before is not
          // known here; any node's release (or the deadline) lets it serve.
          p.state = shard_state::incoming;
          p.releaser = member_id{};
          p.deadline = now + release_timeout_;
          p.waited = false;
          step.query.emplace_back(s, member_id{});
        } else if (!before.empty() && before != view.self && releases(view, before) &&
                   (p.early_release != before || !alive(view, before))) {
          // Won from a node that still runs: wait for its release. One that
          // left released the shard to everyone before it knew the new
          // owner: it is asked even after its release, and answers once what
          // it holds for the shard went on here.
          p.state = shard_state::incoming;
          p.releaser = before;
          p.deadline = now + release_timeout_;
          p.waited = false;
          step.query.emplace_back(s, before);
        } else {
          p.state = shard_state::serving;
          step.serve.push_back(s);
        }
        p.early_release.reset();
        p.released_here = false;
        p.forward_to = member_id{};
      } else if (!p.held.empty() && !owner.empty() && owner != view.self) {
        step.rehome.push_back(s);
      }
      break;
    }
  }
  view_ = std::make_shared<const cluster_snapshot>(view);
  return step;
}

handoff_step handoff::released(std::uint32_t shard, const member_id& from, std::uint64_t /*epoch*/) {
  handoff_step step;
  if (shard >= shards_.size()) return step;
  auto& p = shards_[shard];
  if (p.state == shard_state::incoming && (p.releaser == from || p.releaser.empty())) {
    serve(shard, step);
  } else if (p.state == shard_state::remote) {
    // The old owner applied the moving map first: remember, in case this
    // node is about to win the shard from it.
    p.early_release = from;
  }
  return step;
}

std::optional<member_id> handoff::drained(std::uint32_t shard) {
  if (shard >= shards_.size()) return std::nullopt;
  auto& p = shards_[shard];
  if (p.state != shard_state::draining) return std::nullopt;
  p.state = shard_state::remote;
  p.released_here = true;
  p.released_to = member_id{};
  if (!view_ || leaving_) return std::nullopt; // forward_to: whoever asked for it
  const auto& owner = view_->map->owner(shard);
  if (owner.empty() || owner == view_->self) return std::nullopt;
  p.released_to = owner;
  p.forward_to = owner;
  return owner;
}

handoff_step handoff::leave() {
  handoff_step step;
  leaving_ = true;
  for (std::uint32_t s = 0; s < shards_.size(); ++s) {
    if (shards_[s].state == shard_state::serving) {
      shards_[s].state = shard_state::draining;
      step.drain.push_back(s);
    }
  }
  return step;
}

handoff_step handoff::expire(executor::time_point now) {
  handoff_step step;
  for (std::uint32_t s = 0; s < shards_.size(); ++s) {
    auto& p = shards_[s];
    if (p.state != shard_state::incoming || p.ready || now < p.deadline) continue;
    if (p.waited) {
      // The old owner still works on it: ask again, wait on.
      p.waited = false;
      p.deadline = now + release_timeout_;
      step.query.emplace_back(s, p.releaser);
    } else {
      serve(s, step);
    }
  }
  return step;
}

void handoff::serve(std::uint32_t shard, handoff_step& step) {
  auto& p = shards_[shard];
  if (p.fenced) {
    p.state = shard_state::incoming;
    p.ready = true;
    return;
  }
  p.state = shard_state::serving;
  p.ready = false;
  p.forward_to = member_id{};
  step.serve.push_back(shard);
}

void handoff::hold_back(std::uint32_t shard) {
  if (shard >= shards_.size()) return;
  auto& p = shards_[shard];
  if (p.state == shard_state::serving) {
    p.state = shard_state::incoming;
    p.ready = true;
    p.fenced = true;
  } else if (p.state == shard_state::incoming) {
    p.fenced = true;
  }
}

handoff_step handoff::unfence(std::uint32_t shard) {
  handoff_step step;
  if (shard >= shards_.size()) return step;
  auto& p = shards_[shard];
  if (!p.fenced) return step;
  p.fenced = false;
  if (p.state == shard_state::incoming && p.ready) serve(shard, step);
  return step;
}

void handoff::waiting(std::uint32_t shard, const member_id& from) {
  if (shard >= shards_.size()) return;
  auto& p = shards_[shard];
  if (p.state == shard_state::incoming && (p.releaser == from || p.releaser.empty())) p.waited = true;
}

void handoff::learned_owner(std::uint32_t shard, const member_id& to) {
  if (shard >= shards_.size() || !view_ || to == view_->self) return;
  // Not of a shard this node waits for itself: a node's first map asks
  // every member, the shard's next owner or not. One it serves may be asked
  // by its next owner before it starts to drain (it leaves).
  auto& p = shards_[shard];
  if (p.state != shard_state::incoming) p.forward_to = to;
}

bool handoff::hold(std::uint32_t shard, remote_envelope&& e) {
  if (shard >= shards_.size() || held_count_ >= hold_limit_) return false;
  shards_[shard].held.push_back(std::move(e));
  ++held_count_;
  return true;
}

std::deque<remote_envelope> handoff::take_held(std::uint32_t shard) {
  auto out = std::exchange(shards_[shard].held, {});
  held_count_ -= out.size();
  return out;
}

} // namespace aether
