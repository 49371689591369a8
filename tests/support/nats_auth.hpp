#pragma once

#include <string>

/// Credentials and TLS material for servers that require them, generated at
/// test time in a temporary directory (removed on destruction).
///
/// - NKeys: a random ed25519 seed (libcrypto) in the nkeys encoding, written
///   and read by the runtime's own (`aether::nats::nkey_encoding`).
/// - JWTs for operator mode: `base64url(header).base64url(claims).
///   base64url(ed25519 signature)` with `"alg":"ed25519-nkey"`, an operator
///   signing an account (JetStream allowed) and the account signing a user;
///   the server config uses `resolver: MEMORY` with the account preloaded.
/// - TLS: a CA, a server certificate for 127.0.0.1 and a client certificate,
///   made with the `openssl` command.
///
/// Not thread-safe.
namespace aether::testing {

/// An NKey: its seed (`S?...`) and public key.
struct nkey {
  std::string seed;
  std::string public_key;
};

/// A fresh user (`U`), account (`A`) or operator (`O`) NKey.
[[nodiscard]] nkey make_nkey(char type);

/// A JWT for `subject` named `name` with `nats_claims` as its `nats` claim
/// (a JSON object), issued and signed by `issuer` (`jti`, `iat`, `iss` added).
[[nodiscard]] std::string sign_jwt(const nkey& issuer, const std::string& subject, const std::string& name,
                                   const std::string& nats_claims);

class auth_material {
public:
  /// Makes the directory; TLS files and operator setup on demand.
  auth_material();
  ~auth_material();
  auth_material(const auth_material&) = delete;
  auth_material& operator=(const auth_material&) = delete;

  [[nodiscard]] const std::string& dir() const noexcept { return dir_; }
  /// Writes `text` to `dir()/name` (mode 0600) and returns the path.
  std::string write(const std::string& name, const std::string& text) const;

  /// Makes ca.pem, server-cert.pem, server-key.pem, client-cert.pem and
  /// client-key.pem in dir() with `openssl`; throws std::runtime_error when
  /// it fails.
  void make_tls();
  [[nodiscard]] std::string ca() const { return dir_ + "/ca.pem"; }
  [[nodiscard]] std::string client_cert() const { return dir_ + "/client-cert.pem"; }
  [[nodiscard]] std::string client_key() const { return dir_ + "/client-key.pem"; }
  /// The server's `tls { ... }` block, verifying client certificates if `verify`.
  [[nodiscard]] std::string server_tls_config(bool verify) const;

  /// An operator, an account with JetStream and a user of it: returns the
  /// server's configuration lines (operator, resolver MEMORY, preload) and
  /// writes the user's `.creds` file to `creds_path()`.
  [[nodiscard]] std::string make_operator_mode();
  [[nodiscard]] std::string creds_path() const { return dir_ + "/user.creds"; }

private:
  std::string dir_;
};

} // namespace aether::testing
