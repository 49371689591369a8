#pragma once

#include <aether/runtime/expected.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace aether::nats {

/// The public key (`U...`) of a user NKey seed (`SU...`): base32 of a prefix,
/// the 32-byte ed25519 seed and a CRC16. `invalid_argument` for text that is
/// not a user seed; the message never holds the seed.
[[nodiscard]] expected<std::string> nkey_public_key(std::string_view seed);

/// The first line of a seed file that looks like a user seed, trimmed;
/// `invalid_argument` (naming the file only) when there is none.
[[nodiscard]] expected<std::string> read_nkey_seed_file(const std::string& path);

/// The nkeys encoding as nats-server and nats.c read it: base32 (RFC 4648,
/// no padding) of a type prefix, a 32-byte ed25519 key and a CRC16 (XMODEM,
/// little-endian) of both. A seed's first two bytes hold the seed prefix
/// (`S`) and the type of key it makes. Used by the functions above and by the
/// tests that make keys and sign JWTs.
namespace nkey_encoding {

using key_bytes = std::array<std::uint8_t, 32>;

/// Key types (the first letter of a public key).
inline constexpr std::uint8_t user = 20 << 3;         // U
inline constexpr std::uint8_t account = 0;            // A
inline constexpr std::uint8_t operator_key = 14 << 3; // O

/// A public key of `type`.
[[nodiscard]] std::string encode_public(std::uint8_t type, const key_bytes& key);
/// A seed (`S` and the letter of `type`).
[[nodiscard]] std::string encode_seed(std::uint8_t type, const key_bytes& seed);

struct decoded_seed {
  std::uint8_t type = 0;
  key_bytes seed{};
};
/// The type and ed25519 seed of an encoded seed; nothing for text that is
/// not one (not base32, the wrong length or prefix, a bad CRC). The caller
/// cleanses the seed when done.
[[nodiscard]] std::optional<decoded_seed> decode_seed(std::string_view text);

/// The ed25519 public key of a seed; nothing when libcrypto refuses it.
[[nodiscard]] std::optional<key_bytes> ed25519_public_key(const key_bytes& seed);

} // namespace nkey_encoding

} // namespace aether::nats
