#include <aether/runtime/log.hpp>

#include "support/env_var.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <regex>
#include <string>
#include <unistd.h>
#include <vector>

using aether::testing::env_var;

namespace {

/// Captures what is written to stderr while it lives.
class stderr_capture {
public:
  stderr_capture() {
    std::fflush(stderr);
    saved_ = ::dup(2);
    file_ = std::tmpfile();
    ::dup2(::fileno(file_), 2);
  }
  ~stderr_capture() {
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    std::fclose(file_);
  }
  stderr_capture(const stderr_capture&) = delete;
  stderr_capture& operator=(const stderr_capture&) = delete;

  std::string text() {
    std::fflush(stderr);
    std::string out;
    std::rewind(file_);
    char buf[4096];
    while (const auto n = std::fread(buf, 1, sizeof buf, file_)) out.append(buf, n);
    return out;
  }

private:
  int saved_;
  std::FILE* file_;
};

/// Restores the level, format and sink after a test.
struct log_defaults {
  log_defaults() = default;
  log_defaults(const log_defaults&) = delete;
  log_defaults& operator=(const log_defaults&) = delete;
  ~log_defaults() {
    aether::set_log_sink({});
    aether::set_log_level(aether::log_level::warn);
    aether::set_log_format(aether::log_format::text);
  }
};

const std::string rfc3339_ms = R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)";

} // namespace

TEST_CASE("a text line starts with an RFC 3339 UTC timestamp with milliseconds") {
  log_defaults restore;
  stderr_capture cap;
  aether::log(aether::log_level::warn, "disk {} is {}% full", "sda", 93);
  aether::log(aether::log_level::info, "not shown at warn");
  const auto out = cap.text();
  CHECK(std::regex_match(out, std::regex{rfc3339_ms + " aether warn: disk sda is 93% full\n"}));
}

TEST_CASE("text lines end in the fields as logfmt pairs, quoted where a value needs it") {
  log_defaults restore;
  stderr_capture cap;
  aether::log_event(aether::log_level::warn, "http", "slow client", {{"peer", "127.0.0.1"}, {"why", "a=b"}});
  const auto out = cap.text();
  CHECK(std::regex_match(out, std::regex{rfc3339_ms + R"( http warn: slow client peer=127.0.0.1 why="a=b"\n)"}));
}

TEST_CASE("logfmt lines carry time, level, component, a quoted message and the fields") {
  log_defaults restore;
  aether::set_log_format(aether::log_format::logfmt);
  stderr_capture cap;
  aether::log_event(aether::log_level::error, "http", "cannot listen",
                    {{"address", "127.0.0.1:80"}, {"why", "in use"}});
  const auto out = cap.text();
  CHECK(std::regex_match(
      out, std::regex{"time=" + rfc3339_ms +
                      R"( level=error component=http msg="cannot listen" address=127.0.0.1:80 why="in use"\n)"}));
}

TEST_CASE("json lines are one object each, with strings escaped") {
  log_defaults restore;
  aether::set_log_format(aether::log_format::json);
  stderr_capture cap;
  aether::log_event(aether::log_level::warn, "aether", "a \"quoted\"\nline", {{"actor", "default/a/b"}});
  const auto out = cap.text();
  CHECK(std::regex_match(
      out,
      std::regex{R"(\{"time":")" + rfc3339_ms +
                 R"(","level":"warn","component":"aether","msg":"a \\"quoted\\"\\nline","actor":"default/a/b"\}\n)"}));
}

TEST_CASE("a sink receives every enabled line instead of stderr") {
  log_defaults restore;
  struct line {
    aether::log_level level;
    std::string component, message, fields;
  };
  std::mutex m;
  std::vector<line> got;
  aether::set_log_sink(
      [&](aether::log_level l, std::string_view c, std::string_view msg, std::span<const aether::log_field> f) {
        std::string fs;
        for (const auto& x : f) fs += std::string{x.key} + "=" + x.value + ";";
        std::lock_guard lock{m};
        got.push_back({l, std::string{c}, std::string{msg}, fs});
      });
  aether::set_log_level(aether::log_level::info);
  stderr_capture cap;
  aether::log(aether::log_level::info, "joined {}", "n1");
  aether::log_event(aether::log_level::warn, "http", "slow client", {{"peer", "127.0.0.1"}});
  aether::log(aether::log_level::debug, "below the level");
  CHECK(cap.text().empty());
  REQUIRE(got.size() == 2);
  CHECK(got[0].level == aether::log_level::info);
  CHECK(got[0].component == "aether");
  CHECK(got[0].message == "joined n1");
  CHECK(got[1].component == "http");
  CHECK(got[1].fields == "peer=127.0.0.1;");
  // An empty sink sends lines back to stderr.
  aether::set_log_sink({});
  aether::log(aether::log_level::warn, "back");
  CHECK(cap.text().find("aether warn: back\n") != std::string::npos);
}

TEST_CASE("an unknown AETHER_LOG or AETHER_LOG_FORMAT is an error naming the variable, and changes nothing") {
  log_defaults restore;
  {
    env_var v{"AETHER_LOG", "verbose"};
    auto r = aether::configure_log_from_env();
    REQUIRE(!r);
    CHECK(r.error().code() == aether::errc::invalid_argument);
    CHECK(r.error().detail().find("AETHER_LOG=verbose") != std::string::npos);
  }
  {
    env_var v{"AETHER_LOG", "debug"};
    env_var f{"AETHER_LOG_FORMAT", "xml"};
    auto r = aether::configure_log_from_env();
    REQUIRE(!r);
    CHECK(r.error().detail().find("AETHER_LOG_FORMAT=xml") != std::string::npos);
    CHECK(aether::current_log_level() == aether::log_level::warn); // nothing applied
  }
  {
    env_var v{"AETHER_LOG", "info"};
    env_var f{"AETHER_LOG_FORMAT", "json"};
    REQUIRE(aether::configure_log_from_env());
    CHECK(aether::current_log_level() == aether::log_level::info);
    stderr_capture cap;
    aether::log(aether::log_level::info, "x");
    CHECK(cap.text().starts_with("{\"time\":"));
  }
}

TEST_CASE("off writes nothing") {
  log_defaults restore;
  aether::set_log_level(aether::log_level::off);
  stderr_capture cap;
  aether::log(aether::log_level::error, "silent");
  CHECK(cap.text().empty());
}
