// Compiled (never run) by the header tests: tdscache.h must build as C++11 with every warning an
// error, with C linkage for its functions. Nothing else lives here.
#include "tdscache.h"

#include <type_traits>

static_assert(std::is_same<decltype(&tds_version), const char *(*)()>::value,
              "tds_version keeps its signature");

int tds_header_probe();

int tds_header_probe() {
  tds_hash_options hash = TDS_HASH_OPTIONS_INIT;
  tds_page_options page = TDS_PAGE_OPTIONS_INIT;
  tds_client_options client = TDS_CLIENT_OPTIONS_INIT;
  tds_stats stats = TDS_STATS_INIT;
  tds_digest digest = {{0}};
  return static_cast<int>(hash.version + page.version + client.version + stats.version) + digest.bytes[0] +
         TDS_VERSION_NUMBER + static_cast<int>(sizeof(TDS_VERSION_STRING));
}
