// The NKey encoding the runtime reads seeds with and the tests make keys
// with, against a key computed apart from it (Python's base64, binascii
// CRC-CCITT and the cryptography package's ed25519).
#include "nkey.hpp"

#include <doctest/doctest.h>

#include <string>

namespace enc = aether::nats::nkey_encoding;

namespace {

// Seed bytes 0, 1, ..., 31 as a user seed, and its public key.
const std::string known_seed = "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y";
const std::string known_public = "UAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RLKK";

enc::key_bytes counting() {
  enc::key_bytes b{};
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i);
  return b;
}

} // namespace

TEST_CASE("a user seed and its public key encode as nkeys does") {
  CHECK(enc::encode_seed(enc::user, counting()) == known_seed);
  const auto pub = enc::ed25519_public_key(counting());
  REQUIRE(pub);
  CHECK(enc::encode_public(enc::user, *pub) == known_public);
  const auto r = aether::nats::nkey_public_key(known_seed);
  REQUIRE(r);
  CHECK(*r == known_public);
}

TEST_CASE("a seed decodes to its type and bytes, for every key type") {
  for (const auto type : {enc::user, enc::account, enc::operator_key}) {
    const auto text = enc::encode_seed(type, counting());
    CHECK(text.front() == 'S');
    const auto d = enc::decode_seed(text);
    REQUIRE(d);
    CHECK(d->type == type);
    CHECK(d->seed == counting());
  }
  CHECK(enc::encode_public(enc::account, counting()).front() == 'A');
  CHECK(enc::encode_public(enc::operator_key, counting()).front() == 'O');
}

TEST_CASE("text that is not a seed is refused: a changed character, a wrong length, a public key, not base32") {
  auto changed = known_seed;
  changed[20] = changed[20] == 'A' ? 'B' : 'A';
  CHECK_FALSE(enc::decode_seed(changed));
  CHECK_FALSE(enc::decode_seed(known_seed.substr(0, known_seed.size() - 2)));
  CHECK_FALSE(enc::decode_seed(known_public));
  CHECK_FALSE(enc::decode_seed("su" + known_seed.substr(2)));
  CHECK_FALSE(enc::decode_seed(""));
  // Only a user seed has a user public key.
  const auto account_seed = enc::encode_seed(enc::account, counting());
  const auto r = aether::nats::nkey_public_key(account_seed);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == aether::errc::invalid_argument);
  CHECK(r.error().detail().find(account_seed) == std::string::npos);
  CHECK_FALSE(aether::nats::nkey_public_key(changed));
}
