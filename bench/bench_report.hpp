// Helpers shared by the benchmark programs: timing, workload sizes, the JSON
// lines they print on stdout, diagnostics on stderr and latency statistics.
//
// A result line names its workload `case`: the key bench/run.sh pairs an
// Aether row with its peers' rows by (the peers print the same key for the
// same work). Its `impl` is "aether" or starts with "aether." for Aether's
// rows; anything else is a peer or a floor.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace bench {

/// The clock every benchmark measures with.
using bench_clock = std::chrono::steady_clock;

/// Seconds from `start` until now.
inline double seconds_since(bench_clock::time_point start) {
  return std::chrono::duration<double>(bench_clock::now() - start).count();
}

/// One worker per hardware thread, at least one.
inline unsigned hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

/// Worker threads of the runtime under test: `--threads N`, else one per
/// hardware thread.
inline unsigned& worker_threads() {
  static unsigned n = hardware_threads();
  return n;
}
inline unsigned worker_count() { return worker_threads(); }

/// Prints one result as a flat JSON object on a line of its own on stdout:
/// {"bench":B,"case":C,"impl":I,"metric":M,"value":V,"unit":U,<params>}.
/// Units "count" and "bytes" mark figures that explain others (refusals,
/// bytes on the wire); they are never compared as wins or losses.
inline void emit(std::string_view bench, std::string_view case_key, std::string_view impl, std::string_view metric,
                 double value, std::string_view unit, const std::string& params) {
  fmt::print(
      "{{\"bench\":\"{}\",\"case\":\"{}\",\"impl\":\"{}\",\"metric\":\"{}\",\"value\":{:.6g},\"unit\":\"{}\"{}}}\n",
      bench, case_key, impl, metric, value, unit, params);
  std::fflush(stdout);
}

/// A numeric parameter to append to `emit`'s params: ,"key":value.
inline std::string param(std::string_view key, std::int64_t value) { return fmt::format(",\"{}\":{}", key, value); }

/// A string parameter to append to `emit`'s params: ,"key":"value".
inline std::string param(std::string_view key, std::string_view value) {
  return fmt::format(",\"{}\":\"{}\"", key, value);
}

/// A workload size: `base` times `scale`, rounded, at least 1.
inline std::int64_t scaled(double base, double scale) { return std::max<std::int64_t>(1, std::llround(base * scale)); }

/// Prints a diagnostic line on stderr.
template <class... Args>
inline void note(fmt::format_string<Args...> format, Args&&... args) {
  fmt::print(stderr, "{}\n", fmt::format(format, std::forward<Args>(args)...));
  std::fflush(stderr);
}

/// Nearest-rank percentile of latencies in nanoseconds, in microseconds.
/// Reorders `ns`.
inline double percentile_us(std::vector<std::int64_t>& ns, double p) {
  if (ns.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(ns.size())));
  const auto index = std::min(ns.size() - 1, rank == 0 ? 0 : rank - 1);
  std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(index), ns.end());
  return static_cast<double>(ns[index]) / 1e3;
}

/// The upper median of `v`; 0 when empty.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

} // namespace bench
