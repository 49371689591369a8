// Decodes arbitrary bytes as a node-to-node envelope. A decode must fail with malformed_payload or
// payload_too_large, or succeed; what succeeds must encode and decode to the same envelope again.
#include "remote_envelope.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

[[noreturn]] void fail() { __builtin_trap(); }

bool same(const aether::remote_envelope& a, const aether::remote_envelope& b) {
  const bool same_failure =
      a.failure.has_value() == b.failure.has_value() &&
      (!a.failure || (a.failure->code() == b.failure->code() && a.failure->detail() == b.failure->detail() &&
                      a.failure->value() == b.failure->value()));
  return a.kind == b.kind && a.from == b.from && a.target == b.target && a.sender == b.sender && a.type == b.type &&
         a.payload == b.payload && a.correlation == b.correlation && a.timeout_ms == b.timeout_ms &&
         a.epoch == b.epoch && a.shard == b.shard && same_failure;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes{reinterpret_cast<const char*>(data), size};
  auto decoded = aether::decode_envelope(bytes);
  if (!decoded) {
    const auto code = decoded.error().code();
    if (code != aether::errc::malformed_payload && code != aether::errc::payload_too_large) fail();
    return 0;
  }
  auto again = aether::decode_envelope(aether::encode_envelope(*decoded));
  if (!again || !same(*decoded, *again)) fail();
  return 0;
}
