// Install test consumer (C++, static library through find_package): hashes a document with the
// C++ API and opens a client, which pulls hiredis, OpenSSL and simdjson into the link.
#include <cstdio>
#include <string>

#include <tdscache.h>
#include <tdscache/canonical.hpp>
#include <tdscache/client.hpp>

int main() {
  // sha256 of {"a": 1}, the legacy canonical form, as CPython's json + hashlib give it.
  const std::string expected = "f9d86028c6e0d64e225186f96acb69338b2c59764df79162107f5c4bb34d1310";
  auto digest = tds::hash_json(R"({"a":1})");
  if (!digest || digest.value().hex() != expected) {
    std::fprintf(stderr, "cxx consumer: wrong digest\n");
    return 1;
  }
  // Opening does not connect (it happens on first use), so no server is needed here.
  auto client = tds::client::from_url("redis://127.0.0.1:1/0");
  if (!client) {
    std::fprintf(stderr, "cxx consumer: %s\n", client.error().message.c_str());
    return 1;
  }
  if (std::string(tds_version()) != TDS_VERSION_STRING) {
    std::fprintf(stderr, "cxx consumer: header %s, library %s\n", TDS_VERSION_STRING, tds_version());
    return 1;
  }
  std::printf("cxx consumer: ok %s\n", digest.value().hex().c_str());
  return 0;
}
