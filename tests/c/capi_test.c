/* The C API test: every tds_ function, from plain C99, against a real redis-server that this
 * program starts itself (fork/exec on a unix socket in a mkdtemp dir) and stops by PID.
 * Error paths included: NULL arguments, bad URLs and options, malformed JSON, an unreachable
 * server, a server that goes away. Prints "capi: N passed, M failed" and exits non-zero on any
 * failure. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tdscache.h"

/* --------------------------------------------------------------------------------------------
 * A tiny harness */

static int passed;
static int failed;
/* Checks run on several threads (the shared-client and per-thread error tests): TSan found the
 * counters racing. */
static pthread_mutex_t counts_lock = PTHREAD_MUTEX_INITIALIZER;

static void count(int *counter) {
  pthread_mutex_lock(&counts_lock);
  ++*counter;
  pthread_mutex_unlock(&counts_lock);
}

static int check_impl(int ok, const char *what, int line) {
  if (ok) {
    count(&passed);
  } else {
    count(&failed);
    fprintf(stderr, "capi_test.c:%d: FAILED: %s\n    last error: %s\n", line, what, tds_last_error());
  }
  return ok;
}

#define CHECK(cond) check_impl((cond) ? 1 : 0, #cond, __LINE__)

static int check_rc_impl(int got, int want, const char *what, int line) {
  if (got == want) {
    count(&passed);
    return 1;
  }
  count(&failed);
  fprintf(stderr, "capi_test.c:%d: FAILED: %s gave %d (%s), expected %d (%s)\n    last error: %s\n", line,
          what, got, tds_status_name(got), want, tds_status_name(want), tds_last_error());
  return 0;
}

#define CHECK_RC(call, want) check_rc_impl((call), (want), #call, __LINE__)
#define CHECK_STR(got, want) CHECK((got) != NULL && strcmp((got), (want)) == 0)

/* The last error names what was wrong. */
#define CHECK_ERROR_MENTIONS(text) CHECK(strstr(tds_last_error(), (text)) != NULL)

#define LEN(s) (sizeof(s) - 1)

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --------------------------------------------------------------------------------------------
 * Documents with digests computed by CPython's json + hashlib (the legacy service's algorithm)
 * and by hand per RFC 8785: an oracle independent of tdscache. */

static const char widget[] =
    "{\"name\": \"Widget\", \"item_id\": 2646610000000113574, \"rate\": 12.5, \"updated_at\": \"x\", "
    "\"note\": null, \"tags\": [\"a\", null]}";
static const char widget_legacy[] =
    "{\"item_id\": 2646610000000113574, \"name\": \"Widget\", \"rate\": 12.5, \"tags\": [\"a\", null]}";
static const char widget_legacy_hex[] = "0454d7e04ea5f86c004ea43fa45aa768a8abd1a4aa7790a76a03bfe1068fe51c";
static const char widget_jcs[] =
    "{\"item_id\":2646610000000113574,\"name\":\"Widget\",\"note\":null,\"rate\":12.5,\"tags\":[\"a\",null],"
    "\"updated_at\":\"x\"}";
static const char widget_jcs_hex[] = "0c961b3d2640483986f395ba0a40f58f8525b45dedf921c2da657f4fc3519396";
/* strict: the 19-digit id goes through a double */
static const char widget_jcs_strict_hex[] =
    "82bcaafe4b7f8b96070d939601681cf2dd2589a51917a6838403f8610bc83b18";
/* legacy, exclude_fields = {"name"} instead of the defaults */
static const char widget_no_name_hex[] = "201b0f2db75b3207defee42f96dea7641f6acb9c753007b3e62f6ff64a80b367";
/* legacy defaults plus the pointer /tags/1 */
static const char widget_no_tag1_hex[] = "ee62d0ad23071d004ad092cf43cd951dd5f0e6360fe4eff942f152a1b0fad3f9";
static const char a1_legacy_hex[] = "f9d86028c6e0d64e225186f96acb69338b2c59764df79162107f5c4bb34d1310";

/* --------------------------------------------------------------------------------------------
 * Library information and errors */

static void test_version(void) {
  CHECK(tds_version_number() == TDS_VERSION_NUMBER);
  CHECK_STR(tds_version(), TDS_VERSION_STRING);
  /* The VERSION file, passed by CMake: header and library both agree with it. */
  CHECK_STR(tds_version(), TDS_EXPECTED_VERSION);
  CHECK(TDS_VERSION_NUMBER == TDS_VERSION_MAJOR * 10000 + TDS_VERSION_MINOR * 100 + TDS_VERSION_PATCH);
}

static void test_names(void) {
  int code;
  CHECK_STR(tds_status_name(TDS_OK), "ok");
  CHECK_STR(tds_status_name(TDS_E_JSON_MALFORMED), "json_malformed");
  CHECK_STR(tds_status_name(TDS_E_INTERNAL), "internal");
  CHECK_STR(tds_status_name(-999), "unknown");
  CHECK_STR(tds_status_name(1), "unknown");
  for (code = TDS_E_INTERNAL; code <= TDS_OK; ++code) CHECK(strcmp(tds_status_name(code), "unknown") != 0);
  /* The pinned numbers, spelled out: changing one is an ABI break. */
  CHECK(TDS_E_INVALID_ARGUMENT == -1 && TDS_E_URL_INVALID == -14 && TDS_E_NOT_FOUND == -24);

  CHECK_STR(tds_reason_name(TDS_REASON_FORCED_SYNC), "forced_sync");
  CHECK_STR(tds_reason_name(TDS_REASON_CACHE_CHECK_ERROR), "cache_check_error");
  CHECK_STR(tds_reason_name(TDS_REASON_UNCHANGED), "unchanged");
  CHECK_STR(tds_reason_name(TDS_REASON_COUNT), "unknown");
  CHECK_STR(tds_reason_name(-1), "unknown");
  for (code = 0; code < TDS_REASON_COUNT; ++code) CHECK(strcmp(tds_reason_name(code), "unknown") != 0);

  CHECK_STR(tds_scheme_name(TDS_SCHEME_LEGACY), "legacy");
  CHECK_STR(tds_scheme_name(TDS_SCHEME_JCS), "jcs");
  CHECK_STR(tds_scheme_name(7), "unknown");
}

static void test_last_error(void) {
  tds_digest d;
  tds_clear_error();
  CHECK_STR(tds_last_error(), "");
  CHECK(tds_last_error_offset() == (size_t)-1);
  CHECK_RC(tds_digest_from_hex(&d, "xyz", 3), TDS_E_INVALID_ARGUMENT);
  CHECK(tds_last_error()[0] != '\0');
  /* A later success leaves the message in place, as in libgit2. */
  CHECK_RC(tds_digest_from_hex(&d, a1_legacy_hex, 64), TDS_OK);
  CHECK(tds_last_error()[0] != '\0');
  tds_clear_error();
  CHECK_STR(tds_last_error(), "");
  tds_free(NULL);
}

struct thread_error {
  char seen[256];
};

static void *fail_on_another_thread(void *arg) {
  struct thread_error *te = (struct thread_error *)arg;
  CHECK_STR(tds_last_error(), "");  /* a new thread starts clean */
  CHECK_RC(tds_hasher_new(NULL, NULL), TDS_E_INVALID_ARGUMENT);
  strncpy(te->seen, tds_last_error(), sizeof te->seen - 1);
  return NULL;
}

static void test_last_error_is_per_thread(void) {
  pthread_t thread;
  struct thread_error te;
  memset(&te, 0, sizeof te);
  tds_clear_error();
  CHECK(pthread_create(&thread, NULL, fail_on_another_thread, &te) == 0);
  CHECK(pthread_join(thread, NULL) == 0);
  CHECK(strstr(te.seen, "tds_hasher_new") != NULL);
  CHECK_STR(tds_last_error(), "");  /* the other thread's failure is not this thread's */
}

/* --------------------------------------------------------------------------------------------
 * Digests and hashing */

static void test_digests(void) {
  tds_digest d, e;
  char hex[65];
  CHECK_RC(tds_digest_from_hex(&d, widget_legacy_hex, 64), TDS_OK);
  CHECK(d.bytes[0] == 0x04 && d.bytes[1] == 0x54 && d.bytes[31] == 0x1c);
  CHECK_RC(tds_digest_to_hex(hex, &d), TDS_OK);
  CHECK_STR(hex, widget_legacy_hex);
  CHECK_RC(tds_digest_from_hex(&e, "0454D7E04EA5F86C004EA43FA45AA768A8ABD1A4AA7790A76A03BFE1068FE51C", 64),
           TDS_OK);
  CHECK(memcmp(d.bytes, e.bytes, 32) == 0);
  CHECK_RC(tds_digest_from_hex(&e, widget_legacy_hex, 63), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_digest_from_hex(&e, "zz54d7e04ea5f86c004ea43fa45aa768a8abd1a4aa7790a76a03bfe1068fe51c", 64),
           TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_digest_from_hex(NULL, widget_legacy_hex, 64), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_digest_from_hex(&e, NULL, 64), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("hex");
  CHECK_RC(tds_digest_to_hex(NULL, &d), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_digest_to_hex(hex, NULL), TDS_E_INVALID_ARGUMENT);
}

static int hash_hex_with(const tds_hash_options *opts, const char *json, size_t len, char hex[65]) {
  tds_hasher *h = NULL;
  int rc = tds_hasher_new(&h, opts);
  if (rc == TDS_OK) rc = tds_hash_hex(hex, h, json, len);
  tds_hasher_free(h);
  return rc;
}

static void test_hash_defaults(void) {
  tds_hasher *h = NULL;
  tds_digest d;
  char hex[65];
  char *canonical = NULL;
  size_t canonical_len = 0;

  CHECK_RC(tds_hasher_new(&h, NULL), TDS_OK);
  CHECK(h != NULL);
  CHECK_RC(tds_hash(&d, h, widget, LEN(widget)), TDS_OK);
  CHECK_RC(tds_digest_to_hex(hex, &d), TDS_OK);
  CHECK_STR(hex, widget_legacy_hex);
  CHECK_RC(tds_hash_hex(hex, h, widget, LEN(widget)), TDS_OK);
  CHECK_STR(hex, widget_legacy_hex);
  CHECK_RC(tds_canonicalize(&canonical, &canonical_len, h, widget, LEN(widget)), TDS_OK);
  CHECK(canonical != NULL && canonical_len == LEN(widget_legacy) && strcmp(canonical, widget_legacy) == 0);
  tds_free(canonical);
  canonical = NULL;
  CHECK_RC(tds_canonicalize(&canonical, NULL, h, "{\"a\":1}", 7), TDS_OK);  /* out_len may be NULL */
  CHECK_STR(canonical, "{\"a\": 1}");
  tds_free(canonical);

  /* (pointer, length): bytes after the length are not read. */
  CHECK_RC(tds_hash_hex(hex, h, "{\"a\":1}GARBAGE", 7), TDS_OK);
  CHECK_STR(hex, a1_legacy_hex);

  tds_hasher_free(h);
  tds_hasher_free(NULL);
}

static void test_hash_options(void) {
  tds_hash_options opts;
  tds_hash_options from_macro = TDS_HASH_OPTIONS_INIT;
  const char *fields[] = {"name"};
  const char *pointers[] = {"/tags/1"};
  const char *bad_pointers[] = {"tags/1"};
  char hex[65];
  tds_hasher *h = NULL;
  char *canonical = NULL;

  CHECK_RC(tds_hash_options_init(&opts, TDS_HASH_OPTIONS_VERSION), TDS_OK);
  CHECK(opts.version == TDS_HASH_OPTIONS_VERSION && opts.scheme == TDS_SCHEME_LEGACY && opts.strict == 0 &&
        opts.default_exclusions == 1 && opts.exclude_fields == NULL && opts.exclude_pointers == NULL &&
        opts.max_depth == 512);
  CHECK(from_macro.version == opts.version && from_macro.max_depth == opts.max_depth &&
        from_macro.default_exclusions == opts.default_exclusions);

  opts.scheme = TDS_SCHEME_JCS;
  CHECK_RC(hash_hex_with(&opts, widget, LEN(widget), hex), TDS_OK);
  CHECK_STR(hex, widget_jcs_hex);
  CHECK_RC(tds_hasher_new(&h, &opts), TDS_OK);
  CHECK_RC(tds_canonicalize(&canonical, NULL, h, widget, LEN(widget)), TDS_OK);
  CHECK_STR(canonical, widget_jcs);
  tds_free(canonical);
  tds_hasher_free(h);

  opts.strict = 1;
  CHECK_RC(hash_hex_with(&opts, widget, LEN(widget), hex), TDS_OK);
  CHECK_STR(hex, widget_jcs_strict_hex);

  CHECK_RC(tds_hash_options_init(&opts, TDS_HASH_OPTIONS_VERSION), TDS_OK);
  opts.default_exclusions = 0;
  opts.exclude_fields = fields;
  opts.exclude_fields_count = 1;
  CHECK_RC(hash_hex_with(&opts, widget, LEN(widget), hex), TDS_OK);
  CHECK_STR(hex, widget_no_name_hex);

  CHECK_RC(tds_hash_options_init(&opts, TDS_HASH_OPTIONS_VERSION), TDS_OK);
  opts.exclude_pointers = pointers;
  opts.exclude_pointers_count = 1;
  CHECK_RC(hash_hex_with(&opts, widget, LEN(widget), hex), TDS_OK);
  CHECK_STR(hex, widget_no_tag1_hex);

  /* Bad options fail at creation, with a message and no hasher. */
  opts.exclude_pointers = bad_pointers;
  h = (tds_hasher *)&opts;  /* must be reset to NULL on failure */
  CHECK_RC(tds_hasher_new(&h, &opts), TDS_E_POINTER_INVALID);
  CHECK(h == NULL);
  CHECK(tds_last_error()[0] != '\0');
  opts.exclude_pointers = NULL;  /* NULL array with a count */
  CHECK_RC(tds_hasher_new(&h, &opts), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("exclude_pointers");
  opts.exclude_pointers_count = 0;
  opts.scheme = 5;
  CHECK_RC(tds_hasher_new(&h, &opts), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("scheme");
  opts.scheme = TDS_SCHEME_LEGACY;
  opts.max_depth = 0;
  CHECK_RC(tds_hasher_new(&h, &opts), TDS_E_INVALID_ARGUMENT);
  opts.max_depth = 2;
  CHECK_RC(hash_hex_with(&opts, "{\"a\":{\"b\":{\"c\":1}}}", 19, hex), TDS_E_DEPTH_EXCEEDED);
  opts.version = 0;
  CHECK_RC(tds_hasher_new(&h, &opts), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("version");
  opts.version = TDS_HASH_OPTIONS_VERSION + 1;  /* from a newer header than this library */
  CHECK_RC(tds_hasher_new(&h, &opts), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_hash_options_init(&opts, 99), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_hash_options_init(NULL, TDS_HASH_OPTIONS_VERSION), TDS_E_INVALID_ARGUMENT);
}

static void test_hash_errors(void) {
  tds_hasher *h = NULL;
  tds_digest d;
  char hex[65];
  char *canonical = (char *)"sentinel";
  size_t canonical_len = 99;
  static const char bad_utf8[] = "{\"a\":\"\xff\"}";

  CHECK_RC(tds_hasher_new(&h, NULL), TDS_OK);
  tds_clear_error();
  CHECK_RC(tds_hash(&d, h, "{\"a\":", 5), TDS_E_JSON_MALFORMED);
  CHECK(tds_last_error()[0] != '\0');
  CHECK_RC(tds_hash(&d, h, "{\"a\":1} x", 9), TDS_E_JSON_MALFORMED);
  CHECK(tds_last_error()[0] != '\0');
  CHECK(tds_last_error_offset() < 9);
  CHECK_RC(tds_hash(&d, h, "{\"a\":NaN}", 9), TDS_E_NUMBER_NAN_INF);
  CHECK_RC(tds_hash(&d, h, bad_utf8, LEN(bad_utf8)), TDS_E_UTF8_INVALID);
  CHECK_RC(tds_hash(&d, h, NULL, 0), TDS_E_JSON_MALFORMED);  /* the empty document */
  CHECK_RC(tds_hash_hex(hex, h, "[1,", 3), TDS_E_JSON_MALFORMED);
  CHECK_STR(hex, "");
  CHECK_RC(tds_canonicalize(&canonical, &canonical_len, h, "{", 1), TDS_E_JSON_MALFORMED);
  CHECK(canonical == NULL && canonical_len == 0);
  /* The hasher is still usable after failures. */
  CHECK_RC(tds_hash_hex(hex, h, "{\"a\":1}", 7), TDS_OK);
  CHECK_STR(hex, a1_legacy_hex);

  CHECK_RC(tds_hash(NULL, h, "{}", 2), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("out");
  CHECK_RC(tds_hash(&d, NULL, "{}", 2), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("hasher");
  CHECK_RC(tds_hash(&d, h, NULL, 2), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("json");
  CHECK_RC(tds_hash_hex(NULL, h, "{}", 2), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_hash_hex(hex, NULL, "{}", 2), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_canonicalize(NULL, NULL, h, "{}", 2), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_canonicalize(&canonical, NULL, NULL, "{}", 2), TDS_E_INVALID_ARGUMENT);
  CHECK(canonical == NULL);
  CHECK_RC(tds_hasher_new(NULL, NULL), TDS_E_INVALID_ARGUMENT);
  tds_hasher_free(h);
}

/* --------------------------------------------------------------------------------------------
 * Pages */

static const char page_body[] =
    "{\"code\":0,\"message\":\"success\",\"items\":["
    "{\"item_id\":2646610000000113574,\"name\":\"A\",\"last_modified_time\":\"2025-11-13T08:30:00+0300\"},"
    "{\"item_id\":\"S-2\",\"name\":\"B\",\"last_modified_time\":null},"
    "{\"name\":\"no id\"},"
    "42,"
    "{\"item_id\":5,\"price\":NaN}"
    "],\"page_context\":{\"page\":1,\"has_more_page\":true}}";

static void test_page(void) {
  tds_hasher *h = NULL;
  tds_page *page = NULL;
  tds_digest d;
  size_t len = 99, offset = 0, length = 0;
  const char *text;
  const tds_digest *digest;

  CHECK_RC(tds_hasher_new(&h, NULL), TDS_OK);
  CHECK_RC(tds_hash_page(&page, h, page_body, LEN(page_body), NULL), TDS_OK);
  CHECK(tds_page_count(page) == 5);
  CHECK(tds_page_has_more(page) == 1);

  /* A numeric id keeps its digits; the digest is the standalone item's digest. */
  text = tds_page_record_id(page, 0, &len);
  CHECK_STR(text, "2646610000000113574");
  CHECK(len == 19);
  text = tds_page_record_modified(page, 0, &len);
  CHECK_STR(text, "2025-11-13T08:30:00+0300");
  CHECK(len == 24);
  CHECK_RC(tds_page_record_status(page, 0), TDS_OK);
  CHECK_STR(tds_page_record_message(page, 0), "");
  CHECK_RC(tds_page_record_span(&offset, &length, page, 0), TDS_OK);
  CHECK(page_body[offset] == '{' && page_body[offset + length - 1] == '}');
  digest = tds_page_record_digest(page, 0);
  CHECK(digest != NULL);
  CHECK_RC(tds_hash(&d, h, page_body + offset, length), TDS_OK);
  CHECK(digest != NULL && memcmp(digest->bytes, d.bytes, 32) == 0);

  /* A string id; a null modified time reads as absent. */
  CHECK_STR(tds_page_record_id(page, 1, NULL), "S-2");
  CHECK(tds_page_record_modified(page, 1, &len) == NULL && len == 0);
  CHECK(tds_page_record_digest(page, 1) != NULL);

  /* Items that cannot be hashed carry a status and no digest; the page still succeeds. */
  CHECK_RC(tds_page_record_status(page, 2), TDS_E_ITEM_NO_ID);
  CHECK(strstr(tds_page_record_message(page, 2), "item_id") != NULL);
  CHECK_STR(tds_page_record_id(page, 2, NULL), "");
  CHECK(tds_page_record_digest(page, 2) == NULL);
  CHECK_RC(tds_page_record_status(page, 3), TDS_E_ITEM_NOT_OBJECT);
  CHECK(tds_page_record_message(page, 3)[0] != '\0');
  CHECK_RC(tds_page_record_status(page, 4), TDS_E_NUMBER_NAN_INF);
  CHECK(tds_page_record_digest(page, 4) == NULL);
  CHECK_RC(tds_page_record_span(&offset, &length, page, 3), TDS_OK);
  CHECK(length == 2 && memcmp(page_body + offset, "42", 2) == 0);

  /* Out of range and NULL: no crash, NULL or an error. */
  CHECK(tds_page_record_id(page, 5, &len) == NULL && len == 0);
  CHECK(tds_page_record_modified(page, 5, NULL) == NULL);
  CHECK(tds_page_record_digest(page, 5) == NULL);
  CHECK_STR(tds_page_record_message(page, 5), "");
  CHECK_RC(tds_page_record_status(page, 5), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_page_record_span(&offset, &length, page, 5), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_page_record_span(NULL, &length, page, 0), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_page_record_span(&offset, NULL, page, 0), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_page_record_span(&offset, &length, NULL, 0), TDS_E_INVALID_ARGUMENT);
  CHECK(tds_page_count(NULL) == 0);
  CHECK(tds_page_has_more(NULL) == -1);
  CHECK(tds_page_record_id(NULL, 0, NULL) == NULL);
  CHECK(tds_page_record_modified(NULL, 0, NULL) == NULL);
  CHECK(tds_page_record_digest(NULL, 0) == NULL);
  CHECK_RC(tds_page_record_status(NULL, 0), TDS_E_INVALID_ARGUMENT);
  CHECK_STR(tds_page_record_message(NULL, 0), "");
  tds_page_free(page);
  tds_page_free(NULL);
  tds_hasher_free(h);
}

static void test_page_options_and_errors(void) {
  static const char custom[] = "{\"data\":[{\"id\":\"A1\",\"mtime\":\"2025-01-01\",\"v\":1}]}";
  static const char no_items[] = "{\"code\":0,\"page_context\":{}}";
  tds_page_options popts;
  tds_page_options from_macro = TDS_PAGE_OPTIONS_INIT;
  tds_hasher *h = NULL;
  tds_page *page = NULL;

  CHECK_RC(tds_hasher_new(&h, NULL), TDS_OK);
  CHECK_RC(tds_page_options_init(&popts, TDS_PAGE_OPTIONS_VERSION), TDS_OK);
  CHECK(popts.version == from_macro.version && popts.items_key == NULL && popts.id_field == NULL &&
        popts.modified_field == NULL);
  popts.items_key = "data";
  popts.id_field = "id";
  popts.modified_field = "mtime";
  CHECK_RC(tds_hash_page(&page, h, custom, LEN(custom), &popts), TDS_OK);
  CHECK(tds_page_count(page) == 1);
  CHECK_STR(tds_page_record_id(page, 0, NULL), "A1");
  CHECK_STR(tds_page_record_modified(page, 0, NULL), "2025-01-01");
  CHECK(tds_page_has_more(page) == -1);  /* no page_context */
  tds_page_free(page);

  /* With the default options this body has no items array. */
  page = (tds_page *)h;
  CHECK_RC(tds_hash_page(&page, h, custom, LEN(custom), NULL), TDS_E_PAGE_MALFORMED);
  CHECK(page == NULL);
  CHECK_ERROR_MENTIONS("items");
  CHECK_RC(tds_hash_page(&page, h, no_items, LEN(no_items), NULL), TDS_E_PAGE_MALFORMED);
  CHECK_RC(tds_hash_page(&page, h, "[1,2]", 5, NULL), TDS_E_PAGE_MALFORMED);
  CHECK_RC(tds_hash_page(&page, h, "{\"items\":[{\"item_id\":1,", 23, NULL), TDS_E_JSON_MALFORMED);
  CHECK(page == NULL);
  CHECK(tds_last_error()[0] != '\0');

  popts.version = 0;
  CHECK_RC(tds_hash_page(&page, h, custom, LEN(custom), &popts), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_page_options_init(&popts, 0), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_page_options_init(NULL, TDS_PAGE_OPTIONS_VERSION), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_hash_page(NULL, h, custom, LEN(custom), NULL), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_hash_page(&page, NULL, custom, LEN(custom), NULL), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_hash_page(&page, h, NULL, 10, NULL), TDS_E_INVALID_ARGUMENT);
  tds_hasher_free(h);
}

/* --------------------------------------------------------------------------------------------
 * A redis-server of our own */

struct server {
  pid_t pid;
  char dir[256];
  char socket_path[300];
  char url[320];
};

static int server_answers(const char *url) {
  tds_client *c = NULL;
  int ok = tds_client_open_url(&c, url) == TDS_OK && tds_client_ping(c) == TDS_OK;
  tds_client_free(c);
  return ok;
}

static int start_server(struct server *s) {
  const char *exe = getenv("TDS_REDIS_SERVER") ? getenv("TDS_REDIS_SERVER") : "redis-server";
  double deadline;
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  memset(s, 0, sizeof *s);
  snprintf(s->dir, sizeof s->dir, "%s/tds-capi-XXXXXX", tmp);
  if (mkdtemp(s->dir) == NULL) {
    fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
    return 0;
  }
  snprintf(s->socket_path, sizeof s->socket_path, "%s/redis.sock", s->dir);
  snprintf(s->url, sizeof s->url, "unix://%s", s->socket_path);
  s->pid = fork();
  if (s->pid < 0) return 0;
  if (s->pid == 0) {
    if (freopen("/dev/null", "w", stdout) == NULL) _exit(126);
    execlp(exe, exe, "--port", "0", "--unixsocket", s->socket_path, "--unixsocketperm", "700", "--save", "",
           "--appendonly", "no", "--dir", s->dir, "--daemonize", "no", (char *)NULL);
    _exit(127);
  }
  /* Readiness: a fresh client per attempt (no reconnect backoff carried over), under a
   * deadline; between attempts wait 10 ms in poll(). */
  deadline = now_seconds() + 10.0;
  while (now_seconds() < deadline) {
    int status;
    if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
      fprintf(stderr, "redis-server exited before it was ready (is %s installed?)\n", exe);
      s->pid = 0;
      return 0;
    }
    if (server_answers(s->url)) return 1;
    poll(NULL, 0, 10);
  }
  fprintf(stderr, "redis-server did not answer within 10 s\n");
  return 0;
}

static void stop_server(struct server *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
  }
  unlink(s->socket_path);
  rmdir(s->dir);
}

/* --------------------------------------------------------------------------------------------
 * The client */

static tds_entity entity(const char *type, const char *id, size_t id_len, const tds_digest *d) {
  tds_entity e;
  memset(&e, 0, sizeof e);
  e.entity_type = type;
  e.entity_type_len = strlen(type);
  e.entity_id = id;
  e.entity_id_len = id_len;
  e.digest = *d;
  e.scheme = TDS_SCHEME_LEGACY;
  return e;
}

static tds_commit_item commit_of(const tds_entity *e, const tds_check_result *checked, size_t index) {
  tds_commit_item c;
  memset(&c, 0, sizeof c);
  c.entity_type = e->entity_type;
  c.entity_type_len = e->entity_type_len;
  c.entity_id = e->entity_id;
  c.entity_id_len = e->entity_id_len;
  c.digest = e->digest;
  c.scheme = e->scheme;
  c.last_modified_time = e->last_modified_time;
  c.last_modified_time_len = e->last_modified_time_len;
  c.checked = checked;
  c.checked_index = index;
  return c;
}

static void digest_of(tds_digest *out, const char *json) {
  tds_hasher *h = NULL;
  memset(out, 0, sizeof *out);
  if (tds_hasher_new(&h, NULL) == TDS_OK) tds_hash(out, h, json, strlen(json));
  tds_hasher_free(h);
}

static void test_open(const struct server *s) {
  tds_client_options opts;
  tds_client_options from_macro = TDS_CLIENT_OPTIONS_INIT;
  tds_client *c = NULL;

  CHECK_RC(tds_client_options_init(&opts, TDS_CLIENT_OPTIONS_VERSION), TDS_OK);
  CHECK(opts.version == from_macro.version && opts.port == 6379 && from_macro.port == 6379 &&
        opts.connect_timeout_ms == 1000 && opts.ttl_seconds == 86400 && opts.mget_chunk == 1000 &&
        opts.tls_verify_hostname == 1 && opts.host == NULL && opts.key_prefix == NULL);
  opts.unix_path = s->socket_path;
  CHECK_RC(tds_client_open(&c, &opts), TDS_OK);
  CHECK_RC(tds_client_ping(c), TDS_OK);
  tds_client_free(c);

  CHECK_RC(tds_client_open_url(&c, s->url), TDS_OK);
  CHECK_RC(tds_client_ping(c), TDS_OK);
  tds_client_free(c);
  tds_client_free(NULL);

  /* Bad URLs and options: a status, a message, no client. */
  c = (tds_client *)&opts;
  CHECK_RC(tds_client_open_url(&c, "http://localhost:6379"), TDS_E_URL_INVALID);
  CHECK(c == NULL);
  CHECK_ERROR_MENTIONS("http://localhost:6379");
  CHECK_RC(tds_client_open_url(&c, "redis://host:notaport"), TDS_E_URL_INVALID);
  CHECK(tds_last_error_offset() != (size_t)-1);
  CHECK_RC(tds_client_open_url(&c, "redis://[::1"), TDS_E_URL_INVALID);
  CHECK_RC(tds_client_open_url(&c, NULL), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("url");
  CHECK_RC(tds_client_open_url(NULL, s->url), TDS_E_INVALID_ARGUMENT);

  CHECK_RC(tds_client_options_init(&opts, TDS_CLIENT_OPTIONS_VERSION), TDS_OK);
  opts.port = 0;
  CHECK_RC(tds_client_open(&c, &opts), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("port");
  CHECK(c == NULL);
  opts.port = 6379;
  opts.mget_chunk = 0;
  CHECK_RC(tds_client_open(&c, &opts), TDS_E_INVALID_ARGUMENT);
  opts.mget_chunk = 1000;
  opts.version = 0;
  CHECK_RC(tds_client_open(&c, &opts), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("version");
  CHECK_RC(tds_client_open(NULL, &opts), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_options_init(&opts, 2), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_options_init(NULL, TDS_CLIENT_OPTIONS_VERSION), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_ping(NULL), TDS_E_INVALID_ARGUMENT);

  /* NULL options: every default, so 127.0.0.1:6379, which this test never talks to. */
  CHECK_RC(tds_client_open(&c, NULL), TDS_OK);
  tds_client_free(c);
}

static void test_check_commit_cycle(const struct server *s) {
  tds_client *c = NULL;
  tds_check_result *first = NULL, *second = NULL;
  tds_commit_result *committed = NULL;
  tds_digest d1, d2;
  tds_entity e[4];
  tds_commit_item items[2];
  static const char lmt[] = "2025-11-13T08:30:00";

  digest_of(&d1, "{\"v\":1}");
  digest_of(&d2, "{\"v\":2}");
  CHECK_RC(tds_client_open_url(&c, s->url), TDS_OK);
  e[0] = entity("product", "1", 1, &d1);
  e[0].last_modified_time = lmt;
  e[0].last_modified_time_len = LEN(lmt);
  e[1] = entity("product", "2", 1, &d2);
  e[2] = entity("product", NULL, 0, &d1);  /* no id */
  e[3] = entity("product", "3", 1, &d1);
  e[3].force = 1;

  CHECK_RC(tds_client_check(&first, c, e, 4), TDS_OK);
  CHECK(tds_check_result_count(first) == 4);
  CHECK_RC(tds_check_result_reason(first, 0), TDS_REASON_NO_CACHE_ENTRY);
  CHECK_RC(tds_check_result_reason(first, 1), TDS_REASON_NO_CACHE_ENTRY);
  CHECK_RC(tds_check_result_reason(first, 2), TDS_REASON_NO_ID);
  CHECK_RC(tds_check_result_reason(first, 3), TDS_REASON_FORCED_SYNC);
  CHECK(tds_check_result_should_sync(first, 0) == 1 && tds_check_result_should_sync(first, 2) == 1);
  CHECK(tds_check_result_to_sync(first) == 4 && tds_check_result_skipped(first) == 0);
  CHECK(tds_check_result_cache_errors(first) == 0);
  CHECK(tds_check_result_by_reason(first, TDS_REASON_NO_CACHE_ENTRY) == 2);
  CHECK(tds_check_result_by_reason(first, TDS_REASON_NO_ID) == 1);
  CHECK(tds_check_result_by_reason(first, TDS_REASON_UNCHANGED) == 0);
  CHECK(tds_check_result_by_reason(first, 99) == 0 && tds_check_result_by_reason(first, -1) == 0);
  CHECK_RC(tds_check_result_status(first), TDS_OK);
  CHECK_STR(tds_check_result_message(first), "");

  /* Commit what was synced, conditional on what the check saw. */
  items[0] = commit_of(&e[0], first, 0);
  items[0].local_id = "L-1";
  items[0].local_id_len = 3;
  items[1] = commit_of(&e[1], first, 1);
  CHECK_RC(tds_client_commit(&committed, c, items, 2), TDS_OK);
  CHECK(tds_commit_result_count(committed) == 2);
  CHECK_RC(tds_commit_result_outcome(committed, 0), TDS_COMMIT_WRITTEN);
  CHECK_RC(tds_commit_result_outcome(committed, 1), TDS_COMMIT_WRITTEN);
  CHECK(tds_commit_result_sync_count(committed, 0) == 1 && tds_commit_result_sync_count(committed, 1) == 1);
  CHECK(tds_commit_result_written(committed) == 2 && tds_commit_result_conflicts(committed) == 0 &&
        tds_commit_result_errors(committed) == 0);
  CHECK_RC(tds_commit_result_status(committed), TDS_OK);
  CHECK_STR(tds_commit_result_message(committed), "");
  tds_commit_result_free(committed);

  /* Unchanged now: skip. A new digest: content_changed. */
  e[1].digest = d1;
  CHECK_RC(tds_client_check(&second, c, e, 2), TDS_OK);
  CHECK_RC(tds_check_result_reason(second, 0), TDS_REASON_UNCHANGED);
  CHECK(tds_check_result_should_sync(second, 0) == 0);
  CHECK_RC(tds_check_result_reason(second, 1), TDS_REASON_CONTENT_CHANGED);
  CHECK(tds_check_result_skipped(second) == 1 && tds_check_result_to_sync(second) == 1);

  /* The first check's view is stale now: committing against it is a conflict, and the entry
   * is dropped so that the next check syncs again. */
  items[1] = commit_of(&e[1], first, 1);
  CHECK_RC(tds_client_commit(&committed, c, &items[1], 1), TDS_OK);
  CHECK_RC(tds_commit_result_outcome(committed, 0), TDS_COMMIT_CONFLICT);
  CHECK(tds_commit_result_conflicts(committed) == 1 && tds_commit_result_sync_count(committed, 0) == 0);
  tds_commit_result_free(committed);
  tds_check_result_free(second);
  CHECK_RC(tds_client_check(&second, c, &e[1], 1), TDS_OK);
  CHECK_RC(tds_check_result_reason(second, 0), TDS_REASON_NO_CACHE_ENTRY);

  /* Against the fresh check, it is written (sync_count starts again at 1). */
  items[1] = commit_of(&e[1], second, 0);
  CHECK_RC(tds_client_commit(&committed, c, &items[1], 1), TDS_OK);
  CHECK_RC(tds_commit_result_outcome(committed, 0), TDS_COMMIT_WRITTEN);
  tds_commit_result_free(committed);

  /* Unconditional (checked NULL): counts up from whatever is stored. */
  items[0].checked = NULL;
  CHECK_RC(tds_client_commit(&committed, c, items, 1), TDS_OK);
  CHECK(tds_commit_result_sync_count(committed, 0) == 2);
  tds_commit_result_free(committed);

  /* Misuse of (checked, checked_index) fails the call and writes nothing. */
  items[0] = commit_of(&e[0], first, 1);  /* index 1 is entity 2, not 1 */
  committed = (tds_commit_result *)c;
  CHECK_RC(tds_client_commit(&committed, c, items, 1), TDS_E_INVALID_ARGUMENT);
  CHECK(committed == NULL);
  CHECK_ERROR_MENTIONS("another entity");
  items[0] = commit_of(&e[0], first, 4);
  CHECK_RC(tds_client_commit(&committed, c, items, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("checked_index");
  items[0] = commit_of(&e[0], first, 0);
  items[0].scheme = 9;
  CHECK_RC(tds_client_commit(&committed, c, items, 1), TDS_E_INVALID_ARGUMENT);
  items[0].scheme = TDS_SCHEME_LEGACY;
  items[0].entity_id = NULL;  /* NULL with a length */
  CHECK_RC(tds_client_commit(&committed, c, items, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("entity_id");
  CHECK_RC(tds_client_commit(&committed, c, NULL, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_commit(&committed, NULL, items, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_commit(NULL, c, items, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_commit(&committed, c, NULL, 0), TDS_OK);  /* an empty batch */
  CHECK(tds_commit_result_count(committed) == 0);
  tds_commit_result_free(committed);

  /* Bad check arguments: the call fails and hands out nothing (the caller syncs all). */
  tds_check_result_free(second);
  second = (tds_check_result *)c;  /* must come back NULL */
  e[0].scheme = 3;
  CHECK_RC(tds_client_check(&second, c, e, 1), TDS_E_INVALID_ARGUMENT);
  CHECK(second == NULL);
  CHECK_ERROR_MENTIONS("scheme");
  e[0].scheme = TDS_SCHEME_LEGACY;
  e[0].entity_type = NULL;
  CHECK_RC(tds_client_check(&second, c, e, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("entity_type");
  CHECK_RC(tds_client_check(&second, c, NULL, 2), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_check(&second, NULL, e, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_check(NULL, c, e, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_check(&second, c, NULL, 0), TDS_OK);  /* an empty batch */
  CHECK(tds_check_result_count(second) == 0);
  tds_check_result_free(second);
  tds_check_result_free(first);
  tds_check_result_free(NULL);

  /* Accessors on NULL or out of range: never a skip by mistake. */
  CHECK(tds_check_result_count(NULL) == 0);
  CHECK(tds_check_result_should_sync(NULL, 0) == 1);
  CHECK(tds_check_result_reason(NULL, 0) < 0);
  CHECK(tds_check_result_to_sync(NULL) == 0 && tds_check_result_skipped(NULL) == 0 &&
        tds_check_result_cache_errors(NULL) == 0 && tds_check_result_by_reason(NULL, 0) == 0);
  CHECK_RC(tds_check_result_status(NULL), TDS_E_INVALID_ARGUMENT);
  CHECK_STR(tds_check_result_message(NULL), "");
  CHECK(tds_commit_result_count(NULL) == 0 && tds_commit_result_sync_count(NULL, 0) == 0);
  CHECK(tds_commit_result_outcome(NULL, 0) < 0);
  CHECK(tds_commit_result_written(NULL) == 0 && tds_commit_result_conflicts(NULL) == 0 &&
        tds_commit_result_errors(NULL) == 0);
  CHECK_RC(tds_commit_result_status(NULL), TDS_E_INVALID_ARGUMENT);
  CHECK_STR(tds_commit_result_message(NULL), "");
  tds_commit_result_free(NULL);
  tds_client_free(c);
}

static void test_out_of_range_results(const struct server *s) {
  tds_client *c = NULL;
  tds_check_result *checked = NULL;
  tds_commit_result *committed = NULL;
  tds_digest d;
  tds_entity e;
  tds_commit_item item;

  digest_of(&d, "{}");
  e = entity("range", "r", 1, &d);
  CHECK_RC(tds_client_open_url(&c, s->url), TDS_OK);
  CHECK_RC(tds_client_check(&checked, c, &e, 1), TDS_OK);
  CHECK(tds_check_result_should_sync(checked, 1) == 1);
  CHECK_RC(tds_check_result_reason(checked, 1), TDS_E_INVALID_ARGUMENT);
  item = commit_of(&e, checked, 0);
  CHECK_RC(tds_client_commit(&committed, c, &item, 1), TDS_OK);
  CHECK_RC(tds_commit_result_outcome(committed, 1), TDS_E_INVALID_ARGUMENT);
  CHECK(tds_commit_result_sync_count(committed, 1) == 0);
  tds_commit_result_free(committed);
  tds_check_result_free(checked);
  tds_client_free(c);
}

static void test_states(const struct server *s) {
  tds_client *c = NULL;
  tds_check_result *checked = NULL;
  tds_commit_result *committed = NULL;
  tds_state *state = NULL;
  tds_digest d;
  tds_entity e;
  tds_commit_item item;
  char hex[65];
  size_t len = 0;
  static const char binary_id[] = {'a', '\0', 'b'};
  static const char lmt[] = "2025-11-13T08:30:00+0300";

  digest_of(&d, "{\"state\":1}");
  CHECK_RC(tds_digest_to_hex(hex, &d), TDS_OK);
  CHECK_RC(tds_client_open_url(&c, s->url), TDS_OK);

  /* A binary-safe id, a JCS digest, a local id and a modified time. */
  e = entity("order", binary_id, sizeof binary_id, &d);
  e.scheme = TDS_SCHEME_JCS;
  e.last_modified_time = lmt;
  e.last_modified_time_len = LEN(lmt);
  CHECK_RC(tds_client_check(&checked, c, &e, 1), TDS_OK);
  item = commit_of(&e, checked, 0);
  item.local_id = "42";
  item.local_id_len = 2;
  CHECK_RC(tds_client_commit(&committed, c, &item, 1), TDS_OK);
  CHECK_RC(tds_commit_result_outcome(committed, 0), TDS_COMMIT_WRITTEN);
  tds_commit_result_free(committed);
  tds_check_result_free(checked);

  CHECK_RC(tds_client_get_state(&state, c, "order", 5, binary_id, sizeof binary_id), TDS_OK);
  CHECK(state != NULL);
  CHECK_STR(tds_state_entity_type(state, &len), "order");
  CHECK(len == 5);
  CHECK(tds_state_entity_id(state, &len) != NULL && len == 3 &&
        memcmp(tds_state_entity_id(state, NULL), binary_id, 3) == 0);
  CHECK_STR(tds_state_local_id(state, &len), "42");
  CHECK_STR(tds_state_content_hash(state, &len), hex);
  CHECK(len == 64);
  CHECK_STR(tds_state_last_modified_time(state, NULL), lmt);
  CHECK(tds_state_cached_at(state, &len) != NULL && len >= 19);
  CHECK(tds_state_sync_count(state) == 1);
  CHECK(tds_state_scheme(state) == TDS_SCHEME_JCS);
  tds_state_free(state);

  /* The same id without its NUL is another entity, which has no state. */
  state = (tds_state *)c;
  CHECK_RC(tds_client_get_state(&state, c, "order", 5, "a", 1), TDS_E_NOT_FOUND);
  CHECK(state == NULL);

  /* A state without local id or modified time reads them as NULL. */
  digest_of(&d, "{\"state\":2}");
  e = entity("order", "plain", 5, &d);
  item = commit_of(&e, NULL, 0);
  CHECK_RC(tds_client_commit(&committed, c, &item, 1), TDS_OK);
  tds_commit_result_free(committed);
  CHECK_RC(tds_client_get_state(&state, c, "order", 5, "plain", 5), TDS_OK);
  CHECK(tds_state_local_id(state, &len) == NULL && len == 0);
  CHECK(tds_state_last_modified_time(state, NULL) == NULL);
  CHECK(tds_state_scheme(state) == TDS_SCHEME_LEGACY);
  tds_state_free(state);

  /* NULL state accessors. */
  CHECK(tds_state_entity_type(NULL, &len) == NULL && len == 0);
  CHECK(tds_state_entity_id(NULL, NULL) == NULL && tds_state_local_id(NULL, NULL) == NULL &&
        tds_state_content_hash(NULL, NULL) == NULL && tds_state_last_modified_time(NULL, NULL) == NULL &&
        tds_state_cached_at(NULL, NULL) == NULL);
  CHECK(tds_state_sync_count(NULL) == -1 && tds_state_scheme(NULL) == -1);
  tds_state_free(NULL);
  CHECK_RC(tds_client_get_state(NULL, c, "order", 5, "a", 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_get_state(&state, NULL, "order", 5, "a", 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_get_state(&state, c, NULL, 5, "a", 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_get_state(&state, c, "order", 5, NULL, 1), TDS_E_INVALID_ARGUMENT);
  tds_client_free(c);
}

/* States counted per type, under a key prefix of its own so that the other tests' states do not
 * count. */
static void test_count_states(const struct server *s) {
  tds_client_options opts;
  tds_client *c = NULL;
  tds_state_counts *counts = NULL;
  tds_commit_result *committed = NULL;
  tds_commit_item items[3];
  tds_entity e[3];
  tds_digest d;
  size_t len = 99;
  uint64_t removed = 0;
  int i;
  /* A NUL inside and a byte above 0x7f: binary safe, and in byte order after "zeta" (a signed
   * char comparison would put it first). */
  static const char odd_type[] = "\xc3\xa9\0t";

  CHECK_RC(tds_client_options_init(&opts, TDS_CLIENT_OPTIONS_VERSION), TDS_OK);
  opts.unix_path = s->socket_path;
  opts.key_prefix = "tds:count-test";
  CHECK_RC(tds_client_open(&c, &opts), TDS_OK);

  /* Nothing stored under this prefix: an empty result, not a failure. */
  CHECK_RC(tds_client_count_states(&counts, c), TDS_OK);
  CHECK(counts != NULL && tds_state_counts_count(counts) == 0);
  CHECK(tds_state_counts_type(counts, 0, &len) == NULL && len == 0);
  CHECK(tds_state_counts_value(counts, 0) == 0);
  tds_state_counts_free(counts);

  digest_of(&d, "{\"count\":1}");
  e[0] = entity("zeta", "z1", 2, &d);
  e[1] = entity("zeta", "z2", 2, &d);
  e[2] = entity("", "o1", 2, &d);
  e[2].entity_type = odd_type;
  e[2].entity_type_len = LEN(odd_type);
  for (i = 0; i < 3; ++i) items[i] = commit_of(&e[i], NULL, 0);
  CHECK_RC(tds_client_commit(&committed, c, items, 3), TDS_OK);
  CHECK(tds_commit_result_written(committed) == 3);
  tds_commit_result_free(committed);

  CHECK_RC(tds_client_count_states(&counts, c), TDS_OK);
  CHECK(tds_state_counts_count(counts) == 2);
  CHECK_STR(tds_state_counts_type(counts, 0, &len), "zeta");
  CHECK(len == 4);
  CHECK(tds_state_counts_value(counts, 0) == 2);
  CHECK(tds_state_counts_type(counts, 1, &len) != NULL && len == LEN(odd_type) &&
        memcmp(tds_state_counts_type(counts, 1, NULL), odd_type, sizeof odd_type) == 0); /* and its NUL */
  CHECK(tds_state_counts_value(counts, 1) == 1);
  len = 99;
  CHECK(tds_state_counts_type(counts, 2, &len) == NULL && len == 0);
  CHECK(tds_state_counts_type(counts, (size_t)-1, NULL) == NULL);
  CHECK(tds_state_counts_value(counts, 2) == 0);
  tds_state_counts_free(counts);

  /* A type whose states are all gone is not listed. */
  CHECK_RC(tds_client_invalidate_type(&removed, c, "zeta", 4), TDS_OK);
  CHECK(removed == 2);
  CHECK_RC(tds_client_count_states(&counts, c), TDS_OK);
  CHECK(tds_state_counts_count(counts) == 1 && tds_state_counts_value(counts, 0) == 1);
  tds_state_counts_free(counts);

  /* NULLs. */
  len = 99;
  CHECK(tds_state_counts_count(NULL) == 0);
  CHECK(tds_state_counts_type(NULL, 0, &len) == NULL && len == 0);
  CHECK(tds_state_counts_value(NULL, 0) == 0);
  tds_state_counts_free(NULL);
  CHECK_RC(tds_client_count_states(NULL, c), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("tds_client_count_states");
  counts = (tds_state_counts *)c;
  CHECK_RC(tds_client_count_states(&counts, NULL), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("client");
  CHECK(counts == NULL);
  tds_client_free(c);
}

/* A client whose server went away after answering: the count fails with a status and a
 * message, and hands out nothing. A server of its own, so the shared one keeps running. */
static void test_count_states_server_gone(void) {
  struct server gone;
  tds_client *c = NULL;
  tds_state_counts *counts = NULL;
  int rc;

  if (!CHECK(start_server(&gone))) {
    stop_server(&gone);
    return;
  }
  CHECK_RC(tds_client_open_url(&c, gone.url), TDS_OK);
  CHECK_RC(tds_client_count_states(&counts, c), TDS_OK);
  CHECK(tds_state_counts_count(counts) == 0);
  tds_state_counts_free(counts);
  stop_server(&gone);

  tds_clear_error();
  counts = (tds_state_counts *)c;
  rc = tds_client_count_states(&counts, c);
  CHECK(rc < 0 && strcmp(tds_status_name(rc), "unknown") != 0);
  CHECK(counts == NULL);
  CHECK(tds_last_error()[0] != '\0');
  tds_client_free(c);
}

/* A client whose key prefix is the batch marker prefix writes markers where its states live:
 * the one way to plant a value that is not a state, through this API alone. */
static void test_corrupt_entry(const struct server *s) {
  tds_client_options opts;
  tds_client *c = NULL;
  tds_check_result *checked = NULL;
  tds_state *state = NULL;
  tds_digest d;
  tds_entity e;

  CHECK_RC(tds_client_options_init(&opts, TDS_CLIENT_OPTIONS_VERSION), TDS_OK);
  opts.unix_path = s->socket_path;
  opts.key_prefix = "tds:batch:sync";
  CHECK_RC(tds_client_open(&c, &opts), TDS_OK);
  CHECK_RC(tds_client_mark_batch_complete(c, "widget", 6, "w1", 2, "not a state", 11), TDS_OK);
  digest_of(&d, "{}");
  e = entity("widget", "w1", 2, &d);
  CHECK_RC(tds_client_check(&checked, c, &e, 1), TDS_OK);
  CHECK_RC(tds_check_result_reason(checked, 0), TDS_REASON_CACHE_ENTRY_CORRUPT);
  CHECK(tds_check_result_should_sync(checked, 0) == 1);
  tds_check_result_free(checked);
  state = (tds_state *)c;
  CHECK(tds_client_get_state(&state, c, "widget", 6, "w1", 2) < 0);
  CHECK(state == NULL);
  CHECK(tds_last_error()[0] != '\0');
  tds_client_free(c);
}

static void test_invalidate_and_warm(const struct server *s) {
  tds_client *c = NULL;
  tds_commit_result *warmed = NULL;
  tds_check_result *checked = NULL;
  tds_warm_record rows[3];
  tds_entity e;
  tds_digest d;
  uint64_t removed = 99;
  static const char glob_type[] = "we*rd";

  digest_of(&d, "{\"warm\":1}");
  CHECK_RC(tds_client_open_url(&c, s->url), TDS_OK);
  memset(rows, 0, sizeof rows);
  rows[0].entity_id = "w1";
  rows[0].entity_id_len = 2;
  rows[0].digest = d;
  rows[0].local_id = "100";
  rows[0].local_id_len = 3;
  rows[1] = rows[0];
  rows[1].entity_id = "w2";
  rows[1].last_modified_time = "2025-01-01";
  rows[1].last_modified_time_len = 10;
  rows[2] = rows[0];
  rows[2].entity_id = "w3";
  CHECK_RC(tds_client_warm(&warmed, c, "warmed", 6, rows, 3), TDS_OK);
  CHECK(tds_commit_result_written(warmed) == 3);
  CHECK(tds_commit_result_sync_count(warmed, 2) == 1);
  tds_commit_result_free(warmed);

  e = entity("warmed", "w1", 2, &d);
  CHECK_RC(tds_client_check(&checked, c, &e, 1), TDS_OK);
  CHECK_RC(tds_check_result_reason(checked, 0), TDS_REASON_UNCHANGED);
  tds_check_result_free(checked);

  CHECK_RC(tds_client_invalidate(&removed, c, "warmed", 6, "w1", 2), TDS_OK);
  CHECK(removed == 1);
  CHECK_RC(tds_client_invalidate(&removed, c, "warmed", 6, "w1", 2), TDS_OK);
  CHECK(removed == 0);
  CHECK_RC(tds_client_invalidate(NULL, c, "warmed", 6, "w1", 2), TDS_OK);  /* removed may be NULL */
  CHECK_RC(tds_client_check(&checked, c, &e, 1), TDS_OK);
  CHECK_RC(tds_check_result_reason(checked, 0), TDS_REASON_NO_CACHE_ENTRY);
  tds_check_result_free(checked);

  /* A type with glob characters matches only itself: "we*rd" must not take "weird" along. */
  CHECK_RC(tds_client_warm(&warmed, c, glob_type, LEN(glob_type), rows, 1), TDS_OK);
  tds_commit_result_free(warmed);
  CHECK_RC(tds_client_warm(&warmed, c, "weird", 5, rows, 1), TDS_OK);
  tds_commit_result_free(warmed);
  CHECK_RC(tds_client_invalidate_type(&removed, c, glob_type, LEN(glob_type)), TDS_OK);
  CHECK(removed == 1);
  CHECK_RC(tds_client_invalidate_type(&removed, c, "weird", 5), TDS_OK);
  CHECK(removed == 1);
  CHECK_RC(tds_client_invalidate_type(&removed, c, "warmed", 6), TDS_OK);
  CHECK(removed == 2);
  CHECK_RC(tds_client_invalidate_type(NULL, c, "warmed", 6), TDS_OK);

  CHECK_RC(tds_client_invalidate(&removed, NULL, "t", 1, "i", 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_invalidate(&removed, c, NULL, 1, "i", 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_invalidate(&removed, c, "t", 1, NULL, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_invalidate_type(&removed, NULL, "t", 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_invalidate_type(&removed, c, NULL, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_warm(NULL, c, "t", 1, rows, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_warm(&warmed, NULL, "t", 1, rows, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_warm(&warmed, c, NULL, 1, rows, 1), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_warm(&warmed, c, "t", 1, NULL, 1), TDS_E_INVALID_ARGUMENT);
  rows[0].scheme = -1;
  CHECK_RC(tds_client_warm(&warmed, c, "t", 1, rows, 1), TDS_E_INVALID_ARGUMENT);
  CHECK(warmed == NULL);
  tds_client_free(c);
}

static void test_batch_markers(const struct server *s) {
  tds_client *c = NULL;
  int recent = 7;
  static const char stats[] = "{\"synced\": 3}";

  CHECK_RC(tds_client_open_url(&c, s->url), TDS_OK);
  CHECK_RC(tds_client_batch_synced_recently(&recent, c, "invoice", 7, 3600), TDS_OK);
  CHECK(recent == 0);
  CHECK_RC(tds_client_mark_batch_complete(c, "invoice", 7, "b-1", 3, stats, LEN(stats)), TDS_OK);
  CHECK_RC(tds_client_batch_synced_recently(&recent, c, "invoice", 7, 3600), TDS_OK);
  CHECK(recent == 1);
  CHECK_RC(tds_client_batch_synced_recently(&recent, c, "invoice", 7, 0), TDS_OK);
  CHECK(recent == 0);
  CHECK_RC(tds_client_batch_synced_recently(&recent, c, "other", 5, 3600), TDS_OK);
  CHECK(recent == 0);
  CHECK_RC(tds_client_mark_batch_complete(c, "invoice", 7, "b-2", 3, NULL, 0), TDS_OK);  /* empty stats */

  CHECK_RC(tds_client_mark_batch_complete(NULL, "i", 1, "b", 1, "", 0), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_mark_batch_complete(c, NULL, 1, "b", 1, "", 0), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_mark_batch_complete(c, "i", 1, NULL, 1, "", 0), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_mark_batch_complete(c, "i", 1, "b", 1, NULL, 4), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_batch_synced_recently(NULL, c, "i", 1, 60), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_batch_synced_recently(&recent, NULL, "i", 1, 60), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_batch_synced_recently(&recent, c, NULL, 1, 60), TDS_E_INVALID_ARGUMENT);
  tds_client_free(c);
}

static void test_stats(const struct server *s) {
  tds_client *c = NULL;
  tds_check_result *checked = NULL;
  tds_commit_result *committed = NULL;
  tds_stats st;
  tds_stats from_macro = TDS_STATS_INIT;
  tds_digest d;
  tds_entity e[2];
  tds_commit_item item;
  uint64_t sum = 0;
  unsigned r;

  digest_of(&d, "{\"stats\":1}");
  CHECK_RC(tds_client_open_url(&c, s->url), TDS_OK);
  CHECK_RC(tds_stats_init(&st, TDS_STATS_VERSION), TDS_OK);
  CHECK(st.version == TDS_STATS_VERSION && from_macro.version == TDS_STATS_VERSION && st.checked == 0);
  CHECK_RC(tds_client_stats(&st, c), TDS_OK);
  CHECK(st.checked == 0 && st.reason_count == TDS_REASON_COUNT);

  e[0] = entity("stat", "s1", 2, &d);
  e[1] = entity("stat", "s2", 2, &d);
  CHECK_RC(tds_client_check(&checked, c, e, 2), TDS_OK);
  item = commit_of(&e[0], checked, 0);
  CHECK_RC(tds_client_commit(&committed, c, &item, 1), TDS_OK);
  tds_commit_result_free(committed);
  tds_check_result_free(checked);
  CHECK_RC(tds_client_check(&checked, c, e, 2), TDS_OK);
  tds_check_result_free(checked);

  CHECK_RC(tds_client_stats(&st, c), TDS_OK);
  CHECK(st.checked == 4 && st.skipped == 1 && st.to_sync == 3 && st.cache_errors == 0);
  CHECK(st.by_reason[TDS_REASON_NO_CACHE_ENTRY] == 3 && st.by_reason[TDS_REASON_UNCHANGED] == 1);
  for (r = 0; r < st.reason_count; ++r) sum += st.by_reason[r];
  CHECK(sum == st.checked);
  CHECK(st.synced == 1 && st.conflicts == 0 && st.failed == 0);
  CHECK(st.hit_rate > 0.24 && st.hit_rate < 0.26);
  CHECK(st.check_latency.count == 2 && st.commit_latency.count == 1);
  CHECK(st.check_latency.max_ms > 0.0 && st.check_latency.p50_ms <= st.check_latency.max_ms * 1.25);

  CHECK_RC(tds_client_reset_stats(c), TDS_OK);
  CHECK_RC(tds_client_stats(&st, c), TDS_OK);
  CHECK(st.checked == 0 && st.synced == 0 && st.by_reason[TDS_REASON_UNCHANGED] == 0 &&
        st.check_latency.count == 0);

  st.version = 0;
  CHECK_RC(tds_client_stats(&st, c), TDS_E_INVALID_ARGUMENT);
  CHECK_ERROR_MENTIONS("tds_stats");
  CHECK_RC(tds_client_stats(NULL, c), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_stats(&st, NULL), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_stats_init(&st, 0), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_stats_init(NULL, TDS_STATS_VERSION), TDS_E_INVALID_ARGUMENT);
  CHECK_RC(tds_client_reset_stats(NULL), TDS_E_INVALID_ARGUMENT);
  tds_client_free(c);
}

/* Redis unreachable: checks answer cache_check_error (sync) for every entity, nothing crashes,
 * and every other call reports a status. */
static void test_unreachable(const struct server *s) {
  tds_client_options opts;
  tds_client *c = NULL;
  tds_check_result *checked = NULL;
  tds_commit_result *committed = NULL;
  tds_state *state = NULL;
  tds_state_counts *counts = NULL;
  tds_stats st = TDS_STATS_INIT;
  tds_digest d;
  tds_entity e[3];
  tds_commit_item item;
  uint64_t removed = 5;
  int recent = 5;
  char missing[320];

  snprintf(missing, sizeof missing, "%s/nobody-listens.sock", s->dir);
  CHECK_RC(tds_client_options_init(&opts, TDS_CLIENT_OPTIONS_VERSION), TDS_OK);
  opts.unix_path = missing;
  opts.connect_timeout_ms = 200;
  opts.command_timeout_ms = 200;
  CHECK_RC(tds_client_open(&c, &opts), TDS_OK);  /* connects on first use */

  digest_of(&d, "{}");
  e[0] = entity("down", "1", 1, &d);
  e[1] = entity("down", "2", 1, &d);
  e[2] = entity("down", "3", 1, &d);
  e[2].force = 1;
  CHECK_RC(tds_client_check(&checked, c, e, 3), TDS_OK);
  CHECK(tds_check_result_count(checked) == 3);
  CHECK_RC(tds_check_result_reason(checked, 0), TDS_REASON_CACHE_CHECK_ERROR);
  CHECK_RC(tds_check_result_reason(checked, 1), TDS_REASON_CACHE_CHECK_ERROR);
  CHECK_RC(tds_check_result_reason(checked, 2), TDS_REASON_FORCED_SYNC);
  CHECK(tds_check_result_should_sync(checked, 0) == 1 && tds_check_result_should_sync(checked, 1) == 1);
  CHECK(tds_check_result_cache_errors(checked) == 2 && tds_check_result_skipped(checked) == 0);
  CHECK(tds_check_result_status(checked) < 0);
  CHECK(tds_check_result_message(checked)[0] != '\0');

  item = commit_of(&e[0], checked, 0);
  CHECK_RC(tds_client_commit(&committed, c, &item, 1), TDS_OK);
  CHECK(tds_commit_result_outcome(committed, 0) != TDS_COMMIT_WRITTEN);
  CHECK(tds_commit_result_written(committed) == 0);
  tds_commit_result_free(committed);
  item.checked = NULL;
  CHECK_RC(tds_client_commit(&committed, c, &item, 1), TDS_OK);
  CHECK_RC(tds_commit_result_outcome(committed, 0), TDS_COMMIT_ERROR);
  CHECK(tds_commit_result_errors(committed) == 1 && tds_commit_result_status(committed) < 0);
  CHECK(tds_commit_result_message(committed)[0] != '\0');
  tds_commit_result_free(committed);
  tds_check_result_free(checked);

  CHECK(tds_client_ping(c) < 0);
  CHECK(tds_client_get_state(&state, c, "down", 4, "1", 1) < 0);
  CHECK(state == NULL);
  CHECK(tds_client_invalidate(&removed, c, "down", 4, "1", 1) < 0);
  CHECK(removed == 0);
  CHECK(tds_client_invalidate_type(&removed, c, "down", 4) < 0);
  counts = (tds_state_counts *)c;
  CHECK(tds_client_count_states(&counts, c) < 0);
  CHECK(counts == NULL);
  CHECK(tds_client_mark_batch_complete(c, "down", 4, "b", 1, "{}", 2) < 0);
  CHECK(tds_client_batch_synced_recently(&recent, c, "down", 4, 60) < 0);
  CHECK(recent == 0);
  CHECK_RC(tds_client_stats(&st, c), TDS_OK);
  CHECK(st.cache_errors == 2 && st.failed >= 1);
  tds_client_free(c);
}

/* One client shared by threads: the header says it is thread safe. */
struct shared_client {
  tds_client *client;
  const char *type;
  int unchanged;
};

static void *check_from_thread(void *arg) {
  struct shared_client *sc = (struct shared_client *)arg;
  tds_digest d;
  tds_entity e;
  tds_check_result *checked = NULL;
  int i;
  digest_of(&d, "{\"shared\":1}");
  e = entity(sc->type, "t1", 2, &d);
  for (i = 0; i < 20; ++i) {
    if (tds_client_check(&checked, sc->client, &e, 1) == TDS_OK &&
        tds_check_result_reason(checked, 0) == TDS_REASON_UNCHANGED)
      ++sc->unchanged;
    tds_check_result_free(checked);
  }
  return NULL;
}

static void test_shared_client(const struct server *s) {
  struct shared_client sc[4];
  pthread_t threads[4];
  tds_client *c = NULL;
  tds_commit_result *committed = NULL;
  tds_digest d;
  tds_entity e;
  tds_commit_item item;
  tds_stats st = TDS_STATS_INIT;
  int i;

  digest_of(&d, "{\"shared\":1}");
  CHECK_RC(tds_client_open_url(&c, s->url), TDS_OK);
  e = entity("shared", "t1", 2, &d);
  item = commit_of(&e, NULL, 0);
  CHECK_RC(tds_client_commit(&committed, c, &item, 1), TDS_OK);
  tds_commit_result_free(committed);
  for (i = 0; i < 4; ++i) {
    sc[i].client = c;
    sc[i].type = "shared";
    sc[i].unchanged = 0;
    CHECK(pthread_create(&threads[i], NULL, check_from_thread, &sc[i]) == 0);
  }
  for (i = 0; i < 4; ++i) {
    CHECK(pthread_join(threads[i], NULL) == 0);
    CHECK(sc[i].unchanged == 20);
  }
  CHECK_RC(tds_client_stats(&st, c), TDS_OK);
  CHECK(st.checked == 80 && st.skipped == 80);
  tds_client_free(c);
}

int main(void) {
  struct server server;

  test_version();
  test_names();
  test_last_error();
  test_last_error_is_per_thread();
  test_digests();
  test_hash_defaults();
  test_hash_options();
  test_hash_errors();
  test_page();
  test_page_options_and_errors();

  if (start_server(&server)) {
    test_open(&server);
    test_check_commit_cycle(&server);
    test_out_of_range_results(&server);
    test_states(&server);
    test_count_states(&server);
    test_count_states_server_gone();
    test_corrupt_entry(&server);
    test_invalidate_and_warm(&server);
    test_batch_markers(&server);
    test_stats(&server);
    test_shared_client(&server);
    test_unreachable(&server);
  } else {
    count(&failed);
    fprintf(stderr, "capi_test: could not start redis-server; the client tests did not run\n");
  }
  stop_server(&server);

  printf("capi: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
