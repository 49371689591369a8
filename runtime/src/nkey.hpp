#pragma once

#include <aether/runtime/expected.hpp>

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

} // namespace aether::nats
