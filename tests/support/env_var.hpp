#pragma once

#include <cstdlib>
#include <optional>
#include <string>

namespace aether::testing {

/// Sets an environment variable while it lives, then puts back the value it
/// had (or unsets it). Not thread-safe: the environment is the process's.
class env_var {
public:
  env_var(const char* name, const char* value) : name_{name} {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ~env_var() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  env_var(const env_var&) = delete;
  env_var& operator=(const env_var&) = delete;

private:
  std::string name_;
  std::optional<std::string> old_;
};

} // namespace aether::testing
