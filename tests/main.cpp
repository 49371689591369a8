#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <nats/nats.h>

int main(int argc, char** argv) {
  doctest::Context context{argc, argv};
  const int result = context.run();
  // nats.c ends a connection's threads after the connection is destroyed; wait
  // for them, so that none still takes an OpenSSL lock while exit runs
  // OpenSSL's cleanup (a TLS test would end in a use of a freed lock).
  nats_CloseAndWait(5000);
  return result;
}
