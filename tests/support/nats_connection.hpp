#pragma once

#include <aether/runtime/nats.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>

namespace aether::testing {

/// A connection to `url` with the default options; the test fails (with the
/// reason) when there is none.
inline std::shared_ptr<aether::nats::connection> connect(const std::string& url) {
  aether::nats::connect_options o;
  o.url = url;
  auto c = aether::nats::connection::connect(o);
  REQUIRE_MESSAGE(c, (c ? "" : c.error().to_string()));
  return *c;
}

} // namespace aether::testing
