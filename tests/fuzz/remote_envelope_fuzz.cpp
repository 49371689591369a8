// Decodes arbitrary bytes as a message on a node's inbox: one envelope, or a batch of them. A decode must fail
// with malformed_payload or payload_too_large, or succeed, exactly as the general JSON decoder alone decides; what
// succeeds must encode and decode to the same envelopes again (the direct encoder writing the bytes of the declared
// wire shape), a batch in the same order; a batch's envelopes decode alike whether the ids parsed before are remembered
// (as the inbox does) or not.
#include "remote_envelope.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void fail() { __builtin_trap(); }

bool same(const aether::remote_envelope& a, const aether::remote_envelope& b) {
  const bool same_failure =
      a.failure.has_value() == b.failure.has_value() &&
      (!a.failure || (a.failure->code() == b.failure->code() && a.failure->detail() == b.failure->detail() &&
                      a.failure->value() == b.failure->value()));
  return a.kind == b.kind && a.from == b.from && a.target == b.target && a.sender == b.sender && a.type == b.type &&
         a.payload == b.payload && a.correlation == b.correlation && a.timeout_ms == b.timeout_ms &&
         a.epoch == b.epoch && a.shard == b.shard && a.hops == b.hops && same_failure;
}

void expect_typed(const aether::error& e) {
  if (e.code() != aether::errc::malformed_payload && e.code() != aether::errc::payload_too_large) fail();
}

/// Decodes one envelope; checks that it decodes as through the general JSON decoder alone (the fast reader
/// accepts only what that decoder accepts, with the same fields) and the round trip of what decodes.
std::optional<aether::remote_envelope> one(std::string_view bytes) {
  auto decoded = aether::decode_envelope(bytes);
  auto general = aether::detail::decode_envelope_general(bytes);
  if (decoded.has_value() != general.has_value()) fail();
  if (!decoded) {
    expect_typed(decoded.error());
    if (decoded.error().code() != general.error().code()) fail();
    return std::nullopt;
  }
  if (!same(*decoded, *general)) fail();
  const auto encoded = aether::encode_envelope(*decoded);
  if (encoded != aether::detail::encode_envelope_reference(*decoded)) fail();
  // What the fast reader took, encoded again, it takes again.
  if (aether::detail::decode_envelope_fast(bytes) && !aether::detail::decode_envelope_fast(encoded)) fail();
  auto again = aether::decode_envelope(encoded);
  if (!again || !same(*decoded, *again)) fail();
  return std::move(*decoded);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes{reinterpret_cast<const char*>(data), size};
  if (!aether::is_batch(bytes)) {
    (void)one(bytes);
    return 0;
  }
  auto parts = aether::split_batch(bytes);
  if (!parts) {
    expect_typed(parts.error());
    return 0;
  }
  if (parts->empty()) fail(); // a batch announces at least one envelope
  std::vector<aether::remote_envelope> decoded;
  aether::envelope_ids ids; // as the inbox decodes a batch: ids that repeat are parsed once
  for (auto p : *parts) {
    if (p.empty() || p.front() != '{') fail();
    auto remembering = aether::decode_envelope(p, &ids);
    auto e = one(p);
    // The same result, and the same error, with the ids remembered or not.
    if (e.has_value() != remembering.has_value()) fail();
    if (!e) continue;
    if (!same(*e, *remembering)) fail();
    decoded.push_back(std::move(*e));
  }
  if (decoded.empty()) return 0;
  aether::envelope_batch batch;
  aether::envelope_encoder encoder; // as the outbox encodes a sender's envelopes one after another
  for (const auto& e : decoded) {
    batch.add(e);
    fmt::memory_buffer remembered;
    encoder.encode(remembered, e);
    if (std::string_view{remembered.data(), remembered.size()} != aether::encode_envelope(e)) fail();
  }
  auto again = aether::split_batch(batch.finish());
  if (!again || again->size() != decoded.size()) fail();
  for (std::size_t i = 0; i < decoded.size(); ++i) {
    auto e = aether::decode_envelope((*again)[i]);
    if (!e || !same(decoded[i], *e)) fail();
  }
  return 0;
}
