#include <aether/runtime/metrics.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

namespace aether {

namespace {

constexpr std::uint64_t ns_of(double seconds) noexcept { return static_cast<std::uint64_t>(seconds * 1e9); }

void append_escaped(std::string& out, std::string_view v, bool label) {
  for (const char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && label) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void append_value(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
}

/// One sample line: name, labels (with an optional extra one, as `le`), value.
void append_sample(std::string& out, std::string_view name, std::initializer_list<metric_label> labels,
                   const metric_label* extra, double value) {
  out += name;
  if (labels.size() != 0 || extra != nullptr) {
    out += '{';
    bool first = true;
    auto put = [&](const metric_label& l) {
      if (!first) out += ',';
      first = false;
      out += l.first;
      out += "=\"";
      append_escaped(out, l.second, true);
      out += '"';
    };
    for (const auto& l : labels) put(l);
    if (extra != nullptr) put(*extra);
    out += '}';
  }
  out += ' ';
  append_value(out, value);
  out += '\n';
}

} // namespace

void latency_histogram::observe_ns(std::uint64_t nanoseconds) noexcept {
  static constexpr auto limits = [] {
    std::array<std::uint64_t, bounds.size()> l{};
    for (std::size_t i = 0; i < bounds.size(); ++i) l[i] = ns_of(bounds[i]);
    return l;
  }();
  const auto it = std::lower_bound(limits.begin(), limits.end(), nanoseconds);
  if (it != limits.end())
    buckets_[static_cast<std::size_t>(it - limits.begin())].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(nanoseconds, std::memory_order_relaxed);
}

latency_histogram::snapshot latency_histogram::read() const noexcept {
  snapshot s;
  for (std::size_t i = 0; i < bounds.size(); ++i) s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
  s.count = count_.load(std::memory_order_relaxed);
  s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
  // Cells are read one by one: never report fewer in total than in the buckets.
  std::uint64_t in_buckets = 0;
  for (const auto b : s.buckets) in_buckets += b;
  s.count = std::max(s.count, in_buckets);
  return s;
}

latency_histogram::snapshot& latency_histogram::snapshot::operator+=(const snapshot& o) noexcept {
  for (std::size_t i = 0; i < buckets.size(); ++i) buckets[i] += o.buckets[i];
  count += o.count;
  sum_ns += o.sum_ns;
  return *this;
}

metric_sink::family& metric_sink::find(std::string_view name, std::string_view help, kind what) {
  for (auto& f : families_) {
    if (f.name == name) {
      if (f.what != what) throw std::logic_error{fmt::format("metric {} written as two kinds", name)};
      return f;
    }
  }
  families_.push_back(family{std::string{name}, std::string{help}, what, {}});
  return families_.back();
}

void metric_sink::counter(std::string_view name, std::string_view help, double value,
                          std::initializer_list<metric_label> labels) {
  append_sample(find(name, help, kind::counter).samples, name, labels, nullptr, value);
}

void metric_sink::gauge(std::string_view name, std::string_view help, double value,
                        std::initializer_list<metric_label> labels) {
  append_sample(find(name, help, kind::gauge).samples, name, labels, nullptr, value);
}

void metric_sink::histogram(std::string_view name, std::string_view help, const latency_histogram::snapshot& h,
                            std::initializer_list<metric_label> labels) {
  auto& out = find(name, help, kind::histogram).samples;
  const std::string bucket = fmt::format("{}_bucket", name);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < latency_histogram::bounds.size(); ++i) {
    cumulative += h.buckets[i];
    const std::string le = fmt::format("{}", latency_histogram::bounds[i]);
    const metric_label extra{"le", le};
    append_sample(out, bucket, labels, &extra, static_cast<double>(cumulative));
  }
  const metric_label inf{"le", "+Inf"};
  append_sample(out, bucket, labels, &inf, static_cast<double>(h.count));
  append_sample(out, fmt::format("{}_sum", name), labels, nullptr, static_cast<double>(h.sum_ns) / 1e9);
  append_sample(out, fmt::format("{}_count", name), labels, nullptr, static_cast<double>(h.count));
}

std::string metric_sink::text() const {
  std::string out;
  for (const auto& f : families_) {
    out += "# HELP ";
    out += f.name;
    out += ' ';
    append_escaped(out, f.help, false);
    out += "\n# TYPE ";
    out += f.name;
    out += f.what == kind::counter ? " counter\n" : f.what == kind::gauge ? " gauge\n" : " histogram\n";
    out += f.samples;
  }
  return out;
}

struct metrics_registry::state {
  mutable std::mutex mutex; // held while collectors run: a removal waits for the scrape
  std::map<std::uint64_t, collector> collectors;
  std::uint64_t next = 1;
};

struct metrics_registry::registration::token {
  std::weak_ptr<metrics_registry::state> owner;
  std::uint64_t id = 0;
  token(std::weak_ptr<metrics_registry::state> o, std::uint64_t i) : owner{std::move(o)}, id{i} {}
  token(const token&) = delete;
  token& operator=(const token&) = delete;
  ~token() {
    if (auto s = owner.lock()) {
      std::lock_guard lock{s->mutex};
      s->collectors.erase(id);
    }
  }
};

metrics_registry::metrics_registry() : state_{std::make_shared<state>()} {}
metrics_registry::~metrics_registry() = default;

metrics_registry::registration metrics_registry::add(collector c) {
  std::lock_guard lock{state_->mutex};
  const auto id = state_->next++;
  state_->collectors.emplace(id, std::move(c));
  registration r;
  r.token_ = std::make_shared<registration::token>(state_, id);
  return r;
}

std::string metrics_registry::text() const {
  metric_sink sink;
  std::lock_guard lock{state_->mutex};
  for (const auto& [id, c] : state_->collectors) c(sink);
  return sink.text();
}

} // namespace aether
