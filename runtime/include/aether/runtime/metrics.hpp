#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aether {

/// A label of a metric sample: name and value (an actor type or namespace,
/// never an actor key).
using metric_label = std::pair<std::string_view, std::string_view>;

/// A counter bumped from many threads: relaxed atomics on cells of their
/// own cache line, picked by a hint the caller has at hand (a lane, a shard
/// index), summed when read.
///
/// Thread-safety: `add` and `value` from any thread.
class striped_counter {
public:
  static constexpr std::size_t cells = 8;
  void add(std::size_t hint = 0, std::uint64_t n = 1) noexcept {
    cells_[hint % cells].value.fetch_add(n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t value() const noexcept {
    std::uint64_t sum = 0;
    for (const auto& c : cells_) sum += c.value.load(std::memory_order_relaxed);
    return sum;
  }

private:
  struct alignas(64) cell {
    std::atomic<std::uint64_t> value{0};
  };
  std::array<cell, cells> cells_{};
};

/// A latency histogram with fixed bucket bounds in seconds (from 50 µs to
/// 10 s, about 2.5x apart), kept in nanoseconds as relaxed atomics.
///
/// Thread-safety: `observe` and `read` from any thread; a reader sees each
/// cell's latest value, not one instant of all of them.
class latency_histogram {
public:
  static constexpr std::array<double, 14> bounds{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                 0.01,    0.025,  0.05,    0.1,    0.25,  1.0,    10.0};

  /// Counts one duration of `nanoseconds`.
  void observe_ns(std::uint64_t nanoseconds) noexcept;

  struct snapshot {
    std::array<std::uint64_t, bounds.size()> buckets{}; ///< per bucket, not cumulative
    std::uint64_t count = 0;                            ///< every observation (the +Inf bucket)
    std::uint64_t sum_ns = 0;
    snapshot& operator+=(const snapshot& o) noexcept;
  };
  [[nodiscard]] snapshot read() const noexcept;

private:
  std::array<std::atomic<std::uint64_t>, bounds.size()> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

/// Where a collector writes the samples it reads at scrape time. Samples of
/// one metric name from several collectors are written together, under one
/// `# HELP` and `# TYPE`; a name must keep its kind.
///
/// Thread-safety: one scrape at a time uses a sink.
class metric_sink {
public:
  enum class kind { counter, gauge, histogram };

  /// A counter sample; the name ends in `_total`.
  void counter(std::string_view name, std::string_view help, double value,
               std::initializer_list<metric_label> labels = {});
  void gauge(std::string_view name, std::string_view help, double value,
             std::initializer_list<metric_label> labels = {});
  void histogram(std::string_view name, std::string_view help, const latency_histogram::snapshot& h,
                 std::initializer_list<metric_label> labels = {});

  /// The Prometheus text exposition format (version 0.0.4) of what was written.
  [[nodiscard]] std::string text() const;

private:
  struct family {
    std::string name;
    std::string help;
    kind what;
    std::string samples; // already formatted lines
  };
  family& find(std::string_view name, std::string_view help, kind what);
  std::vector<family> families_;
};

/// The metrics of a node: collectors that read the node's counters, gauges
/// and histograms when scraped. Nothing here runs on a message's path; the
/// counters it reads are kept by the layers themselves.
///
/// Thread-safety: `add`, removing (by dropping the registration) and `text`
/// from any thread; a collector runs on the scraping thread and must only
/// read what is safe to read from there.
class metrics_registry {
public:
  using collector = std::function<void(metric_sink&)>;

  /// Removes its collector when dropped (waiting for a scrape that runs it).
  class registration {
  public:
    registration() = default;
    registration(registration&&) noexcept = default;
    registration& operator=(registration&&) noexcept = default;
    ~registration() = default;

  private:
    friend class metrics_registry;
    struct token;
    std::shared_ptr<token> token_;
  };

  metrics_registry();
  ~metrics_registry();
  metrics_registry(const metrics_registry&) = delete;
  metrics_registry& operator=(const metrics_registry&) = delete;

  [[nodiscard]] registration add(collector c);
  /// Runs every collector and returns the text exposition.
  [[nodiscard]] std::string text() const;

private:
  struct state;
  std::shared_ptr<state> state_;
};

} // namespace aether
