#include "nkey.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <vector>

namespace aether::nats {

namespace {

constexpr std::uint8_t prefix_seed = 18 << 3; // S
constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

std::uint16_t crc16(const std::uint8_t* data, std::size_t size) {
  std::uint16_t crc = 0;
  for (std::size_t i = 0; i < size; ++i) {
    crc ^= static_cast<std::uint16_t>(data[i] << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc =
          (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021) : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::string base32(const std::vector<std::uint8_t>& bytes) {
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const auto b : bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(buffer << (5 - bits)) & 31];
  return out;
}

bool unbase32(std::string_view text, std::vector<std::uint8_t>& out) {
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    const auto i = alphabet.find(c);
    if (i == std::string_view::npos) return false;
    buffer = (buffer << 5) | static_cast<std::uint32_t>(i);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<std::uint8_t>(buffer >> (bits - 8)));
      bits -= 8;
    }
  }
  return true;
}

/// `prefix` and `key`, their CRC16, in base32; the bytes are cleansed after.
std::string encode(std::initializer_list<std::uint8_t> prefix, const nkey_encoding::key_bytes& key) {
  std::vector<std::uint8_t> bytes{prefix};
  bytes.insert(bytes.end(), key.begin(), key.end());
  const auto sum = crc16(bytes.data(), bytes.size());
  bytes.push_back(static_cast<std::uint8_t>(sum & 0xff));
  bytes.push_back(static_cast<std::uint8_t>(sum >> 8));
  auto text = base32(bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return text;
}

error not_a_seed() { return error{errc::invalid_argument, "not a user NKey seed (SU...)"}; }

} // namespace

namespace nkey_encoding {

std::string encode_public(std::uint8_t type, const key_bytes& key) { return encode({type}, key); }

std::string encode_seed(std::uint8_t type, const key_bytes& seed) {
  return encode({static_cast<std::uint8_t>(prefix_seed | (type >> 5)), static_cast<std::uint8_t>((type & 31) << 3)},
                seed);
}

std::optional<decoded_seed> decode_seed(std::string_view text) {
  std::vector<std::uint8_t> raw;
  raw.reserve(text.size()); // no reallocation leaves seed bytes behind
  const bool ok = unbase32(text, raw) && raw.size() == 2 + 32 + 2 && (raw[0] & 0xf8) == prefix_seed &&
                  crc16(raw.data(), 34) == static_cast<std::uint16_t>(raw[34] | (raw[35] << 8));
  std::optional<decoded_seed> out;
  if (ok) {
    out.emplace();
    out->type = static_cast<std::uint8_t>(((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3));
    std::copy_n(raw.begin() + 2, out->seed.size(), out->seed.begin());
  }
  OPENSSL_cleanse(raw.data(), raw.size());
  return out;
}

std::optional<key_bytes> ed25519_public_key(const key_bytes& seed) {
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key{
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()), EVP_PKEY_free};
  key_bytes pub{};
  std::size_t size = pub.size();
  if (!key || EVP_PKEY_get_raw_public_key(key.get(), pub.data(), &size) != 1 || size != pub.size()) {
    return std::nullopt;
  }
  return pub;
}

} // namespace nkey_encoding

expected<std::string> nkey_public_key(std::string_view seed) {
  auto decoded = nkey_encoding::decode_seed(seed);
  if (!decoded) return not_a_seed();
  const auto pub =
      decoded->type == nkey_encoding::user ? nkey_encoding::ed25519_public_key(decoded->seed) : std::nullopt;
  OPENSSL_cleanse(decoded->seed.data(), decoded->seed.size());
  if (!pub) return not_a_seed();
  return nkey_encoding::encode_public(nkey_encoding::user, *pub);
}

expected<std::string> read_nkey_seed_file(const std::string& path) {
  std::ifstream in{path};
  if (!in) return error{errc::invalid_argument, fmt::format("cannot read the NKey seed file {}", path)};
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    const auto last = line.find_last_not_of(" \t\r");
    auto text = line.substr(first, last - first + 1);
    OPENSSL_cleanse(line.data(), line.size());
    if (text.starts_with("SU")) return text;
  }
  return error{errc::invalid_argument, fmt::format("no user NKey seed (SU...) in {}", path)};
}

} // namespace aether::nats
