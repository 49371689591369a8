#pragma once

#include <aether/version.hpp>

#include <cstdio>
#include <optional>
#include <string_view>

namespace aether {

/// What a program says about itself on `--help`.
struct program_help {
  std::string_view name;
  /// Usage lines and what the program does.
  std::string_view usage;
  /// One line per exit code, e.g. "0  done\n2  bad input\n".
  std::string_view exit_codes;
};

/// Answers `--help` (usage and exit codes) and `--version` ("<name>
/// (aether X.Y.Z)") on stdout when one of them is among the arguments, and
/// returns the exit code 0 for `main` to return; nothing otherwise.
[[nodiscard]] inline std::optional<int> answer_help_or_version(int argc, const char* const* argv,
                                                               const program_help& help) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg{argv[i]};
    if (arg == "--version") {
      std::printf("%.*s (aether %s)\n", static_cast<int>(help.name.size()), help.name.data(), version_string);
      return 0;
    }
    if (arg == "--help" || arg == "-h") {
      std::printf("%.*s\n\nExit codes:\n%.*s\nSettings come from the AETHER_* variables (see the README).\n",
                  static_cast<int>(help.usage.size()), help.usage.data(), static_cast<int>(help.exit_codes.size()),
                  help.exit_codes.data());
      return 0;
    }
  }
  return std::nullopt;
}

} // namespace aether
