#include <aether/runtime/error.hpp>
#include <aether/runtime/expected.hpp>

#include <doctest/doctest.h>

#include <ostream>
#include <set>
#include <string>

TEST_CASE("an errc converts to a std::error_code of the aether category") {
  const std::error_code ec = aether::errc::mailbox_full;
  CHECK(ec.category().name() == std::string{"aether"});
  CHECK(ec.message() == "mailbox_full");
  CHECK(ec == aether::errc::mailbox_full);
}

TEST_CASE("every errc has a name of its own") {
  std::set<std::string_view> names;
  for (int c = static_cast<int>(aether::errc::invalid_id); c <= static_cast<int>(aether::errc::permission_denied);
       ++c) {
    const auto name = aether::to_string(static_cast<aether::errc>(c));
    CHECK(name != "unknown");
    CHECK(names.insert(name).second);
  }
  // permission_denied is the last code: one added after it must extend the loop above.
  CHECK(aether::to_string(static_cast<aether::errc>(static_cast<int>(aether::errc::permission_denied) + 1)) ==
        "unknown");
}

TEST_CASE("an error prints its code and detail") {
  const aether::error e{aether::errc::invalid_id, "actor key is empty"};
  CHECK(e.to_string() == "aether: invalid_id: actor key is empty");
  CHECK(e == aether::errc::invalid_id);
}

TEST_CASE("an expected holds a value or an error") {
  aether::expected<int> ok = 7;
  REQUIRE(ok);
  CHECK(*ok == 7);
  aether::expected<int> bad = aether::errc::timeout;
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == aether::errc::timeout);
  CHECK_THROWS_AS((void)bad.value(), aether::bad_expected_access);
  aether::expected<void> fine;
  CHECK(fine.has_value());
  aether::expected<void> failed = aether::error{aether::errc::shutting_down};
  CHECK_THROWS_AS(failed.value(), aether::bad_expected_access);
}
