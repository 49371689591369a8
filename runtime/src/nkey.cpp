#include "nkey.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <memory>
#include <vector>

namespace aether::nats {

namespace {

// The nkeys encoding: a seed starts with 'S' (18 << 3) and the key type in
// two bytes; a public key with its type's byte; both end in a CRC16
// (XMODEM, little-endian) and are base32 (RFC 4648, no padding).
constexpr std::uint8_t prefix_seed = 18 << 3;
constexpr std::uint8_t prefix_user = 20 << 3;
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

error not_a_seed() { return error{errc::invalid_argument, "not a user NKey seed (SU...)"}; }

} // namespace

expected<std::string> nkey_public_key(std::string_view seed) {
  std::vector<std::uint8_t> raw;
  if (!unbase32(seed, raw) || raw.size() != 2 + 32 + 2) return not_a_seed();
  const auto crc = static_cast<std::uint16_t>(raw[34] | (raw[35] << 8));
  const auto type = static_cast<std::uint8_t>(((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3));
  if (crc16(raw.data(), 34) != crc || (raw[0] & 0xf8) != prefix_seed || type != prefix_user) return not_a_seed();
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key{
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, raw.data() + 2, 32), EVP_PKEY_free};
  std::array<std::uint8_t, 32> pub{};
  std::size_t size = pub.size();
  const bool ok = key && EVP_PKEY_get_raw_public_key(key.get(), pub.data(), &size) == 1 && size == pub.size();
  OPENSSL_cleanse(raw.data(), raw.size());
  if (!ok) return not_a_seed();
  std::vector<std::uint8_t> out{prefix_user};
  out.insert(out.end(), pub.begin(), pub.end());
  const auto sum = crc16(out.data(), out.size());
  out.push_back(static_cast<std::uint8_t>(sum & 0xff));
  out.push_back(static_cast<std::uint8_t>(sum >> 8));
  return base32(out);
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
