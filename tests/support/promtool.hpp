#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace aether::testing {

/// Runs `promtool check metrics` (Debian's prometheus package) on `text`:
/// its exit code, and what it said in `said`.
inline int promtool_check(const std::string& text, std::string& said) {
  char dir[] = "/tmp/aether-promtool-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string in = std::string{dir} + "/metrics.txt";
  const std::string out = std::string{dir} + "/promtool.txt";
  std::ofstream{in} << text;
  const int rc = std::system(("promtool check metrics < " + in + " > " + out + " 2>&1").c_str());
  std::stringstream s;
  s << std::ifstream{out}.rdbuf();
  said = s.str();
  std::remove(in.c_str());
  std::remove(out.c_str());
  ::rmdir(dir);
  return rc;
}

} // namespace aether::testing
