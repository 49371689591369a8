#include "support/nats_auth.hpp"

#include "nkey.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#include <sys/stat.h>

namespace aether::testing {

namespace {

namespace nkey_encoding = aether::nats::nkey_encoding;
using pkey_ptr = std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)>;

std::string base64url(std::string_view data) {
  constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const char c : data) {
    buffer = (buffer << 8) | static_cast<std::uint8_t>(c);
    bits += 8;
    while (bits >= 6) {
      out += alphabet[(buffer >> (bits - 6)) & 63];
      bits -= 6;
    }
  }
  if (bits > 0) out += alphabet[(buffer << (6 - bits)) & 63];
  return out;
}

std::uint8_t prefix_of(char type) {
  switch (type) {
  case 'U':
    return nkey_encoding::user;
  case 'A':
    return nkey_encoding::account;
  case 'O':
    return nkey_encoding::operator_key;
  default:
    throw std::invalid_argument("an NKey type is U, A or O");
  }
}

void run(const std::string& command) {
  if (std::system((command + " >/dev/null 2>&1").c_str()) != 0) {
    throw std::runtime_error("failed: " + command);
  }
}

} // namespace

nkey make_nkey(char type) {
  const auto prefix = prefix_of(type);
  nkey_encoding::key_bytes seed{};
  if (RAND_bytes(seed.data(), static_cast<int>(seed.size())) != 1) throw std::runtime_error("RAND_bytes");
  const auto pub = nkey_encoding::ed25519_public_key(seed);
  if (!pub) throw std::runtime_error("ed25519");
  return {nkey_encoding::encode_seed(prefix, seed), nkey_encoding::encode_public(prefix, *pub)};
}

std::string sign_jwt(const nkey& issuer, const std::string& subject, const std::string& name,
                     const std::string& nats_claims) {
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  const auto header = base64url(R"({"typ":"JWT","alg":"ed25519-nkey"})");
  const auto claims = base64url(fmt::format(R"({{"jti":"{}","iat":{},"iss":"{}","name":"{}","sub":"{}","nats":{}}})",
                                            make_nkey('U').public_key.substr(1, 52), now.count() - 60,
                                            issuer.public_key, name, subject, nats_claims));
  const auto input = header + "." + claims;
  const auto seed = nkey_encoding::decode_seed(issuer.seed);
  if (!seed) throw std::runtime_error("not an NKey seed");
  pkey_ptr key{EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed->seed.data(), seed->seed.size()),
               EVP_PKEY_free};
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx{EVP_MD_CTX_new(), EVP_MD_CTX_free};
  std::array<std::uint8_t, 64> signature{};
  std::size_t size = signature.size();
  if (!key || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), signature.data(), &size, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) != 1) {
    throw std::runtime_error("signing a JWT");
  }
  return input + "." + base64url({reinterpret_cast<const char*>(signature.data()), size});
}

auth_material::auth_material() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string{tmp != nullptr && *tmp != '\0' ? tmp : "/tmp"} + "/aether-auth-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern);
  dir_ = pattern;
}

auth_material::~auth_material() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string auth_material::write(const std::string& name, const std::string& text) const {
  const auto path = dir_ + "/" + name;
  {
    std::ofstream out{path, std::ios::trunc};
    out << text;
    if (!out.flush()) throw std::runtime_error("cannot write " + path);
  }
  ::chmod(path.c_str(), 0600);
  return path;
}

void auth_material::make_tls() {
  const auto d = dir_;
  run(fmt::format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                  "-subj /CN=aether-test-ca -keyout {0}/ca-key.pem -out {0}/ca.pem",
                  d));
  write("server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  write("client.ext", "extendedKeyUsage=clientAuth\n");
  for (const std::string who : {"server", "client"}) {
    run(fmt::format("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=aether-test-{1} "
                    "-keyout {0}/{1}-key.pem -out {0}/{1}.csr",
                    d, who));
    run(fmt::format("openssl x509 -req -in {0}/{1}.csr -CA {0}/ca.pem -CAkey {0}/ca-key.pem -CAcreateserial "
                    "-days 2 -extfile {0}/{1}.ext -out {0}/{1}-cert.pem",
                    d, who));
  }
}

std::string auth_material::server_tls_config(bool verify) const {
  return fmt::format("tls {{\n  cert_file: \"{0}/server-cert.pem\"\n  key_file: \"{0}/server-key.pem\"\n"
                     "  ca_file: \"{0}/ca.pem\"\n  verify: {1}\n  timeout: 5\n}}\n",
                     dir_, verify ? "true" : "false");
}

std::string auth_material::make_operator_mode() {
  const auto op = make_nkey('O');
  const auto account = make_nkey('A');
  const auto user = make_nkey('U');
  const auto op_jwt = sign_jwt(op, op.public_key, "aether-test-operator", R"({"type":"operator","version":2})");
  const auto account_jwt =
      sign_jwt(op, account.public_key, "aether-test-account",
               R"({"limits":{"subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,"wildcards":true,)"
               R"("conn":-1,"leaf":-1,"mem_storage":-1,"disk_storage":-1,"streams":-1,"consumer":-1},)"
               R"("type":"account","version":2})");
  const auto user_jwt = sign_jwt(account, user.public_key, "aether-test-user",
                                 R"({"pub":{},"sub":{},"subs":-1,"data":-1,"payload":-1,"type":"user","version":2})");
  // JetStream needs a system account in operator mode.
  const auto system = make_nkey('A');
  const auto system_jwt = sign_jwt(op, system.public_key, "SYS",
                                   R"({"limits":{"subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,)"
                                   R"("wildcards":true,"conn":-1,"leaf":-1},"type":"account","version":2})");
  write("operator.jwt", op_jwt);
  write("user.creds", fmt::format("-----BEGIN NATS USER JWT-----\n{}\n------END NATS USER JWT------\n\n"
                                  "-----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
                                  user_jwt, user.seed));
  return fmt::format("operator: \"{}/operator.jwt\"\nsystem_account: {}\nresolver: MEMORY\n"
                     "resolver_preload: {{\n  {}: \"{}\"\n  {}: \"{}\"\n}}\n",
                     dir_, system.public_key, account.public_key, account_jwt, system.public_key, system_jwt);
}

} // namespace aether::testing
