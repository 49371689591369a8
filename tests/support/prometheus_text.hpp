#pragma once

#include <cstdlib>
#include <sstream>
#include <string>

namespace aether::testing {

/// The value of the sample `name_and_labels` (a metric name and its labels
/// as written, `aether_x_total{type="a"}`) in Prometheus text `text`, or -1
/// when no line holds it.
inline double sample(const std::string& text, const std::string& name_and_labels) {
  std::istringstream lines{text};
  const auto prefix = name_and_labels + " ";
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(prefix)) return std::strtod(line.c_str() + prefix.size(), nullptr);
  }
  return -1;
}

} // namespace aether::testing
