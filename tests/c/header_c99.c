/* Compiled (never run) by the header tests: tdscache.h must build as strict C99 with every
 * warning an error, including its _INIT macros and version macros. Nothing else lives here. */
#include "tdscache.h"
#include "tdscache.h" /* the include guard holds */

int tds_header_probe(void);

int tds_header_probe(void) {
  tds_hash_options hash = TDS_HASH_OPTIONS_INIT;
  tds_page_options page = TDS_PAGE_OPTIONS_INIT;
  tds_client_options client = TDS_CLIENT_OPTIONS_INIT;
  tds_stats stats = TDS_STATS_INIT;
  static const char version[] = TDS_VERSION_STRING;
  tds_digest digest = {{0}};
  enum tds_status status = TDS_OK;
  enum tds_reason reason = TDS_REASON_UNCHANGED;
  return (int)(hash.version + page.version + client.version + stats.version) + (int)sizeof version +
         digest.bytes[0] + (int)status + (int)reason + TDS_VERSION_NUMBER;
}
