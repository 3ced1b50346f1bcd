/* Install test consumer (C, shared library; built with pkg-config and with find_package):
 * hashes a document through the C ABI and checks the digest. */
#include <stdio.h>
#include <string.h>

#include <tdscache.h>

int main(void) {
  /* sha256 of {"a": 1}, the legacy canonical form, as CPython's json + hashlib give it. */
  static const char expected[] = "f9d86028c6e0d64e225186f96acb69338b2c59764df79162107f5c4bb34d1310";
  tds_hasher *hasher = NULL;
  char hex[65];
  int rc = tds_hasher_new(&hasher, NULL);
  if (rc == TDS_OK) rc = tds_hash_hex(hex, hasher, "{\"a\":1}", 7);
  tds_hasher_free(hasher);
  if (rc != TDS_OK) {
    fprintf(stderr, "c consumer: %s: %s\n", tds_status_name(rc), tds_last_error());
    return 1;
  }
  if (strcmp(hex, expected) != 0 || strcmp(tds_version(), TDS_VERSION_STRING) != 0) {
    fprintf(stderr, "c consumer: digest %s, library %s, header %s\n", hex, tds_version(), TDS_VERSION_STRING);
    return 1;
  }
  printf("c consumer: ok %s (libtdscache %s)\n", hex, tds_version());
  return 0;
}
