/* tdscache.h: the stable C ABI of tdscache (C99; usable from C++ and any FFI).
 * Canonical JSON digests, API pages to entity records, and the Redis-backed sync decisions.
 * Only declarations live here; the implementation, a thin layer over the C++ API in
 * include/tdscache/, is in the .cpp files beside this header. Conventions: docs/c-api.md. */
#ifndef TDSCACHE_H
#define TDSCACHE_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------------
 * Export macro. The shared library is built with hidden visibility and a version script, so
 * only what is marked TDS_API (all named tds_*) leaves it. */
#if defined(TDS_BUILDING_LIBRARY) && defined(__GNUC__) && __GNUC__ >= 4
#  define TDS_API __attribute__((visibility("default")))
#else
#  define TDS_API
#endif

/* ---------------------------------------------------------------------------------------------
 * Version. The VERSION file at the top of the source tree is the one source of truth: the
 * library refuses to compile when these numbers differ from it, and tds_version() reports what
 * the library was built from, so a program can compare the header it was compiled with against
 * the library it runs with. */
#define TDS_VERSION_MAJOR 0
#define TDS_VERSION_MINOR 1
#define TDS_VERSION_PATCH 0
#define TDS_VERSION_NUMBER (TDS_VERSION_MAJOR * 10000 + TDS_VERSION_MINOR * 100 + TDS_VERSION_PATCH)
#define TDS_STRINGIFY_INNER_(x) #x
#define TDS_STRINGIFY_(x) TDS_STRINGIFY_INNER_(x)
/* The library build passes TDS_VERSION_STRING from the VERSION file; everyone else gets it
 * spelled from the numbers above. */
#ifndef TDS_VERSION_STRING
#  define TDS_VERSION_STRING                                                  \
    TDS_STRINGIFY_(TDS_VERSION_MAJOR) "." TDS_STRINGIFY_(TDS_VERSION_MINOR) "." \
    TDS_STRINGIFY_(TDS_VERSION_PATCH)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Conventions (every function below follows them):
 * - Functions that can fail return int: TDS_OK (0) or a negative tds_status. Out-parameters come
 *   first; on failure they are set to NULL / zero, and tds_last_error() says why.
 * - Text that may hold any bytes (entity types, ids, JSON) is passed as (pointer, length).
 *   A NULL pointer with length 0 is the empty string; NULL with a nonzero length is an error.
 * - Every *_free accepts NULL. One call frees a whole result, and everything borrowed from it.
 * - Nothing aborts, exits or lets a C++ exception out. NULL handles give TDS_E_INVALID_ARGUMENT.
 * - A failure must never turn into a skipped entity: when a check fails, sync everything. */

/* Status codes. The numbers are pinned: they never change, and new ones are only appended.
 * They are the same numbers as tds::status in C++. */
typedef enum tds_status {
  TDS_OK = 0,
  TDS_E_INVALID_ARGUMENT = -1,    /* a NULL handle, a bad option value, a bad struct version */
  TDS_E_OUT_OF_MEMORY = -2,
  TDS_E_JSON_MALFORMED = -3,      /* not JSON: truncated, stray token, trailing content */
  TDS_E_UTF8_INVALID = -4,
  TDS_E_DEPTH_EXCEEDED = -5,      /* nested deeper than tds_hash_options.max_depth */
  TDS_E_NUMBER_NAN_INF = -6,
  TDS_E_NUMBER_OUT_OF_RANGE = -7,
  TDS_E_DUPLICATE_KEY = -8,       /* jcs only */
  TDS_E_LONE_SURROGATE = -9,      /* jcs only */
  TDS_E_ITEM_NOT_OBJECT = -10,    /* a page item that is not an object (per record) */
  TDS_E_ITEM_NO_ID = -11,         /* a page item without a usable id (per record) */
  TDS_E_PAGE_MALFORMED = -12,     /* a page without its items array */
  TDS_E_POINTER_INVALID = -13,    /* an exclusion that is not an RFC 6901 JSON Pointer */
  TDS_E_URL_INVALID = -14,
  TDS_E_CONNECT_FAILED = -15,
  TDS_E_TIMEOUT = -16,
  TDS_E_IO = -17,
  TDS_E_PROTOCOL = -18,
  TDS_E_TLS = -19,
  TDS_E_AUTH = -20,
  TDS_E_SERVER_ERROR = -21,
  TDS_E_CIRCUIT_OPEN = -22,       /* Redis skipped for a cooldown after repeated failures */
  TDS_E_CLUSTER = -23,
  TDS_E_NOT_FOUND = -24,          /* no cached state for this entity */
  TDS_E_INTERNAL = -25            /* a bug in tdscache: please report it with the message */
} tds_status;

/* Why an entity must be synced, or that it may be skipped (only TDS_REASON_UNCHANGED).
 * Pinned numbers, the same as tds::reason; the order is the order the rules are tried in. */
typedef enum tds_reason {
  TDS_REASON_FORCED_SYNC = 0,
  TDS_REASON_NO_ID = 1,
  TDS_REASON_CACHE_CHECK_ERROR = 2,
  TDS_REASON_NO_CACHE_ENTRY = 3,
  TDS_REASON_CACHE_ENTRY_CORRUPT = 4,
  TDS_REASON_HASH_SCHEME_CHANGED = 5,
  TDS_REASON_CONTENT_CHANGED = 6,
  TDS_REASON_CACHE_EXPIRED = 7,
  TDS_REASON_TIMESTAMP_NEWER = 8,
  TDS_REASON_UNCHANGED = 9
} tds_reason;
/* How many reasons this header knows. A newer library may know more (see tds_stats). */
#define TDS_REASON_COUNT 10

/* Canonical forms. legacy: byte-for-byte the production Python service's json.dumps form.
 * jcs: RFC 8785. Pinned numbers. */
typedef enum tds_scheme { TDS_SCHEME_LEGACY = 0, TDS_SCHEME_JCS = 1 } tds_scheme;

/* What happened to one committed entity. Pinned numbers. */
typedef enum tds_commit_outcome {
  TDS_COMMIT_WRITTEN = 0,   /* the cache now records this digest */
  TDS_COMMIT_CONFLICT = 1,  /* the entry changed since the check; it was dropped, so the next
                               check syncs the entity again */
  TDS_COMMIT_ERROR = 2      /* nothing known to be written */
} tds_commit_outcome;

/* ---------------------------------------------------------------------------------------------
 * Library information and errors */

/* TDS_VERSION_NUMBER of the library actually loaded. Thread safe. */
TDS_API unsigned tds_version_number(void);
/* "MAJOR.MINOR.PATCH" of the library actually loaded. Static storage: never freed.
 * Thread safe. */
TDS_API const char *tds_version(void);

/* "ok", "invalid_argument", ...; "unknown" for numbers this library does not know.
 * Static storage, never NULL. Thread safe. */
TDS_API const char *tds_status_name(int status);
/* "forced_sync", ..., "unchanged"; "unknown" otherwise. Static storage, never NULL.
 * Thread safe. */
TDS_API const char *tds_reason_name(int reason);
/* "legacy" or "jcs"; "unknown" otherwise. Static storage, never NULL. Thread safe. */
TDS_API const char *tds_scheme_name(int scheme);

/* The message of the most recent failure on the calling thread ("" before any). Thread safe:
 * each thread has its own. Owned by the library: valid until the next failing tds_ call on this
 * thread; never NULL, never free it. A successful call does not clear it. */
TDS_API const char *tds_last_error(void);
/* The byte offset in the input where the most recent failure on this thread was found, or
 * (size_t)-1 when it has none. Thread safe: per thread, like tds_last_error(). */
TDS_API size_t tds_last_error_offset(void);
/* Forgets the calling thread's last error (other threads keep theirs). Thread safe. */
TDS_API void tds_clear_error(void);

/* Frees a buffer the library handed to the caller (tds_canonicalize). NULL is fine.
 * Thread safe: any thread may free it, once. */
TDS_API void tds_free(void *buffer);

/* ---------------------------------------------------------------------------------------------
 * Digests */

/* A SHA-256 value, compared and stored as raw bytes. A plain value: copy it freely. */
typedef struct tds_digest {
  unsigned char bytes[32];
} tds_digest;

/* Writes 64 lowercase hex digits and a NUL into the caller's out (65 bytes). Thread safe. */
TDS_API int tds_digest_to_hex(char out[65], const tds_digest *digest);
/* Parses 64 hex digits (any case) into the caller's *out. Thread safe. */
TDS_API int tds_digest_from_hex(tds_digest *out, const char *hex, size_t hex_len);

/* ---------------------------------------------------------------------------------------------
 * Hashing */

#define TDS_HASH_OPTIONS_VERSION 1

/* How to canonicalize. Fill with tds_hash_options_init() or TDS_HASH_OPTIONS_INIT, then set
 * what you need: new fields are only ever appended, and `version` tells the library which
 * ones your program knows. Strings are NUL-terminated and only read during tds_hasher_new(). */
typedef struct tds_hash_options {
  unsigned version;           /* TDS_HASH_OPTIONS_VERSION */
  int scheme;                 /* tds_scheme; default TDS_SCHEME_LEGACY */
  int strict;                 /* jcs only. 0 (default): integers beyond +-(2^53-1) keep their
                                 exact digits, so two 19-digit ids never round to one double.
                                 1: pure RFC 8785, every number goes through a double. */
  int default_exclusions;     /* 1 (default): leave out the scheme's default top-level fields
                                 (legacy: the service's bookkeeping fields; jcs: none), and
                                 ignore exclude_fields. 0: leave out exactly exclude_fields. */
  const char *const *exclude_fields;  /* top-level member names */
  size_t exclude_fields_count;
  const char *const *exclude_pointers;  /* RFC 6901 JSON Pointers ("/locations/0/stock") */
  size_t exclude_pointers_count;
  size_t max_depth;           /* deeper documents fail with TDS_E_DEPTH_EXCEEDED; default 512 */
} tds_hash_options;

#define TDS_HASH_OPTIONS_INIT {TDS_HASH_OPTIONS_VERSION, TDS_SCHEME_LEGACY, 0, 1, NULL, 0, NULL, 0, 512}

/* Sets the caller's *opts to the defaults for version (pass TDS_HASH_OPTIONS_VERSION).
 * Thread safe. */
TDS_API int tds_hash_options_init(tds_hash_options *opts, unsigned version);

/* A reusable canonicalizer: holds the parser and buffers, so calls after the first allocate
 * almost nothing. Not thread safe: use one per thread (different hashers may run in parallel). */
typedef struct tds_hasher tds_hasher;

/* Creates a hasher; opts NULL means the defaults (legacy). TDS_E_POINTER_INVALID for a bad
 * pointer, TDS_E_INVALID_ARGUMENT for bad options. The caller owns *out: tds_hasher_free().
 * opts is only read during the call. Thread safe. */
TDS_API int tds_hasher_new(tds_hasher **out, const tds_hash_options *opts);
/* Frees the hasher. NULL is fine. Not while another thread uses it. */
TDS_API void tds_hasher_free(tds_hasher *hasher);

/* The SHA-256 of the canonical form of one JSON document, into the caller's *out.
 * One thread at a time per hasher. */
TDS_API int tds_hash(tds_digest *out, tds_hasher *hasher, const char *json, size_t json_len);
/* The same digest as 64 lowercase hex digits plus a NUL, into the caller's out (65 bytes).
 * One thread at a time per hasher. */
TDS_API int tds_hash_hex(char out[65], tds_hasher *hasher, const char *json, size_t json_len);
/* The canonical bytes themselves, in a new NUL-terminated buffer that the caller owns and frees
 * with tds_free(); *out_len (may be NULL) gets its length without the NUL.
 * One thread at a time per hasher. */
TDS_API int tds_canonicalize(char **out, size_t *out_len, tds_hasher *hasher, const char *json,
                             size_t json_len);

/* ---------------------------------------------------------------------------------------------
 * Pages: one API list response in, one hashed record per item out. */

#define TDS_PAGE_OPTIONS_VERSION 1

/* Where the entities are in a page such as {"code":0,"items":[...],"page_context":{...}}.
 * NULL or empty fields take the defaults. Strings are only read during the call. */
typedef struct tds_page_options {
  unsigned version;            /* TDS_PAGE_OPTIONS_VERSION */
  const char *items_key;       /* default "items" */
  const char *id_field;        /* default "item_id" */
  const char *modified_field;  /* default "last_modified_time" */
} tds_page_options;

#define TDS_PAGE_OPTIONS_INIT {TDS_PAGE_OPTIONS_VERSION, NULL, NULL, NULL}

/* Sets the caller's *opts to the defaults for version (pass TDS_PAGE_OPTIONS_VERSION).
 * Thread safe. */
TDS_API int tds_page_options_init(tds_page_options *opts, unsigned version);

/* The records of one page. Immutable once made: any number of threads may read one page at
 * the same time. Everything its accessors return lives until tds_page_free(). */
typedef struct tds_page tds_page;

/* Hashes every item of a page with the hasher's options; opts NULL means the defaults.
 * A page that is not JSON, or has no items array, fails as a whole (TDS_E_JSON_MALFORMED,
 * TDS_E_PAGE_MALFORMED, ...). An item that cannot be hashed does not fail the page: its record
 * carries a status instead of a digest, and such an entity must be synced, never skipped.
 * The caller owns *out (tds_page_free); it copies what it needs, so body may go at once.
 * One thread at a time per hasher. */
TDS_API int tds_hash_page(tds_page **out, tds_hasher *hasher, const char *body, size_t body_len,
                          const tds_page_options *opts);
/* Frees the page and every string its accessors returned. NULL is fine. Once, from any
 * thread, when no thread reads the page any more. */
TDS_API void tds_page_free(tds_page *page);

/* Number of records (the items, in page order); 0 for NULL. Thread safe. */
TDS_API size_t tds_page_count(const tds_page *page);
/* page_context.has_more_page: 1 or 0, or -1 when the page does not say (or page is NULL).
 * Thread safe. */
TDS_API int tds_page_has_more(const tds_page *page);
/* The record's id exactly as written (the digits of a number, the text of a string), NUL
 * terminated; *len (may be NULL) gets its length. "" when the item has no usable id.
 * NULL when index is out of range. Owned by the page. Thread safe. */
TDS_API const char *tds_page_record_id(const tds_page *page, size_t index, size_t *len);
/* The record's modified field, NUL terminated; NULL when absent or null in the item (or index
 * out of range). *len (may be NULL) gets its length. Owned by the page. Thread safe. */
TDS_API const char *tds_page_record_modified(const tds_page *page, size_t index, size_t *len);
/* The record's digest; NULL when the item could not be hashed (see tds_page_record_status) or
 * index is out of range. Owned by the page. Thread safe. */
TDS_API const tds_digest *tds_page_record_digest(const tds_page *page, size_t index);
/* Where the item's bytes are in the page body: body[offset, offset + length), into the
 * caller's *offset and *length. Thread safe. */
TDS_API int tds_page_record_span(size_t *offset, size_t *length, const tds_page *page,
                                 size_t index);
/* TDS_OK when the item was hashed, else why not (TDS_E_ITEM_NO_ID, TDS_E_NUMBER_NAN_INF, ...).
 * TDS_E_INVALID_ARGUMENT when page is NULL or index out of range. Thread safe. */
TDS_API int tds_page_record_status(const tds_page *page, size_t index);
/* Why the item could not be hashed; "" when it was. Never NULL. Owned by the page.
 * Thread safe. */
TDS_API const char *tds_page_record_message(const tds_page *page, size_t index);

/* ---------------------------------------------------------------------------------------------
 * The cache client */

#define TDS_CLIENT_OPTIONS_VERSION 1

/* How to reach Redis and how to behave there. Fill with tds_client_options_init() or
 * TDS_CLIENT_OPTIONS_INIT. NULL strings take the defaults. Strings are only read during
 * tds_client_open(). For Redis Cluster, use tds_client_open_url("redis+cluster://..."). */
typedef struct tds_client_options {
  unsigned version;              /* TDS_CLIENT_OPTIONS_VERSION */
  const char *host;              /* default "127.0.0.1" */
  int port;                      /* default 6379 */
  const char *unix_path;         /* a unix socket; when set it wins over host and port */
  const char *username;          /* NULL: AUTH with the password only (the default user) */
  const char *password;          /* NULL: no AUTH */
  int db;                        /* default 0 */
  int tls;                       /* 1: TLS on */
  const char *tls_ca_file;       /* PEM bundle; NULL with tls_ca_dir NULL: the system store */
  const char *tls_ca_dir;
  const char *tls_cert_file;     /* client certificate, for tls-auth-clients yes */
  const char *tls_key_file;
  const char *tls_server_name;   /* SNI and the name verified; NULL: host */
  int tls_verify_hostname;       /* default 1 */
  int tls_insecure;              /* 1: no verification at all; default 0 */
  int connect_timeout_ms;        /* connect + handshake + AUTH; default 1000 */
  int command_timeout_ms;        /* longest wait with no byte moving; default 1000 */
  int keepalive_seconds;         /* TCP keepalive idle time, 0 = off; default 30 */
  const char *key_prefix;        /* default "tds:entity:state" */
  int64_t ttl_seconds;           /* state key TTL, 0 = never expires; default 86400 */
  int64_t max_age_seconds;       /* older entries are synced again, 0 = rule off; default 86400 */
  size_t mget_chunk;             /* most keys per MGET; default 1000 */
  int breaker_failures;          /* consecutive failures that open the circuit; default 3 */
  int breaker_cooldown_ms;       /* how long the circuit stays open; default 5000 */
  int reconnect_backoff_min_ms;  /* default 50 */
  int reconnect_backoff_max_ms;  /* default 2000 */
} tds_client_options;

#define TDS_CLIENT_OPTIONS_INIT                                                              \
  {TDS_CLIENT_OPTIONS_VERSION, NULL, 6379, NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, NULL,  \
   NULL, 1, 0, 1000, 1000, 30, NULL, 86400, 86400, 1000, 3, 5000, 50, 2000}

/* Sets the caller's *opts to the defaults for version (pass TDS_CLIENT_OPTIONS_VERSION).
 * Thread safe. */
TDS_API int tds_client_options_init(tds_client_options *opts, unsigned version);

/* A connection to one Redis deployment. Thread safe: share one client between threads;
 * calls that talk to Redis take turns on its connection. It connects on first use, so opening
 * succeeds while Redis is down (checks then answer TDS_REASON_CACHE_CHECK_ERROR). */
typedef struct tds_client tds_client;

/* Opens a client from options (NULL: all defaults). TDS_E_INVALID_ARGUMENT for bad values.
 * The caller owns *out (tds_client_free); opts is only read during the call. Thread safe. */
TDS_API int tds_client_open(tds_client **out, const tds_client_options *opts);
/* Opens a client from a URL: redis://[user[:password]@]host[:port][/db][?options],
 * rediss:// (TLS), unix:///path.sock[?db=N], redis+cluster://host:port[,host:port...].
 * TDS_E_URL_INVALID with the fault's offset when it does not parse. The caller owns *out
 * (tds_client_free); url is only read during the call. Thread safe. */
TDS_API int tds_client_open_url(tds_client **out, const char *url);
/* Closes the connection and frees the client. NULL is fine. Once, when no other thread uses
 * it; results it handed out stay valid and are freed on their own. */
TDS_API void tds_client_free(tds_client *client);

/* One PING round trip (connects if needed). Thread safe. */
TDS_API int tds_client_ping(tds_client *client);

/* One entity as fetched from the API. Frozen layout: this struct never changes (it is passed
 * in arrays); new per-entity fields would come with a new struct and function. */
typedef struct tds_entity {
  const char *entity_type;
  size_t entity_type_len;
  const char *entity_id;  /* an empty id is allowed: it is decided TDS_REASON_NO_ID */
  size_t entity_id_len;
  tds_digest digest;      /* of the raw entity, as tds_hash or tds_hash_page gave it */
  int scheme;             /* the tds_scheme the digest was made with */
  const char *last_modified_time;  /* NULL: absent or null in the API */
  size_t last_modified_time_len;
  int force;              /* nonzero: sync whatever the cache says */
} tds_entity;

/* The decisions of one check. Immutable: any number of threads may read it at once. It keeps
 * what each lookup saw, so that tds_client_commit can write only if the cache did not move. */
typedef struct tds_check_result tds_check_result;

/* Decides, for each entity, sync or skip, and why; in one round trip whatever the count.
 * Redis failures do not fail the call: the entities they touch are decided
 * TDS_REASON_CACHE_CHECK_ERROR (sync), and tds_check_result_status() says why. The call fails
 * only on bad arguments (then *out is NULL and the caller must sync everything).
 * The caller owns *out (tds_check_result_free); entities are only read during the call.
 * Thread safe. */
TDS_API int tds_client_check(tds_check_result **out, tds_client *client,
                             const tds_entity *entities, size_t count);
/* Frees the whole result and all it handed out. NULL is fine. Once, when no thread reads it
 * and no commit in progress names it. */
TDS_API void tds_check_result_free(tds_check_result *result);

/* Number of decisions (= entities checked, in input order); 0 for NULL. Thread safe. */
TDS_API size_t tds_check_result_count(const tds_check_result *result);
/* The tds_reason of entity index; a negative status when result is NULL or index out of range.
 * Thread safe. */
TDS_API int tds_check_result_reason(const tds_check_result *result, size_t index);
/* 1: sync entity index; 0: skip it. 1 also when result is NULL or index is out of range:
 * a mistake costs an extra sync, never a skip. Thread safe. */
TDS_API int tds_check_result_should_sync(const tds_check_result *result, size_t index);
/* Totals of the batch; 0 for NULL. Thread safe. */
TDS_API size_t tds_check_result_to_sync(const tds_check_result *result);
TDS_API size_t tds_check_result_skipped(const tds_check_result *result);
TDS_API size_t tds_check_result_cache_errors(const tds_check_result *result);
/* How many entities were decided for the given reason; 0 for unknown reasons or NULL.
 * Thread safe. */
TDS_API size_t tds_check_result_by_reason(const tds_check_result *result, int reason);
/* TDS_OK when every lookup was answered, else why some failed (their entities sync).
 * Thread safe. */
TDS_API int tds_check_result_status(const tds_check_result *result);
/* The message that goes with tds_check_result_status(); "" when ok. Never NULL; owned by the
 * result. Thread safe. */
TDS_API const char *tds_check_result_message(const tds_check_result *result);

/* One entity whose database write succeeded. Frozen layout, like tds_entity. */
typedef struct tds_commit_item {
  const char *entity_type;
  size_t entity_type_len;
  const char *entity_id;
  size_t entity_id_len;
  tds_digest digest;       /* the digest given to the check, of the raw entity */
  int scheme;              /* tds_scheme */
  const char *last_modified_time;  /* NULL: none */
  size_t last_modified_time_len;
  const char *local_id;    /* the database's own id; NULL: none */
  size_t local_id_len;
  /* The check that decided this entity, and its index there: the commit then writes only if
   * the cache still holds what that check saw (otherwise it drops the entry: a conflict).
   * The entity type and id must be the ones checked at that index. NULL: write whatever the
   * cache holds. */
  const tds_check_result *checked;
  size_t checked_index;
} tds_commit_item;

/* Per-item outcomes of a commit or warm. Immutable: any number of threads may read it. */
typedef struct tds_commit_result tds_commit_result;

/* Records new states, atomically per entity, in one round trip. Per-item failures do not fail
 * the call (see tds_commit_result_outcome); bad arguments do, and then nothing is written.
 * The caller owns *out (tds_commit_result_free); items, and the check results they name, are
 * only read during the call. Thread safe. */
TDS_API int tds_client_commit(tds_commit_result **out, tds_client *client,
                              const tds_commit_item *items, size_t count);

/* A row already in the database, for warming the cache without a check. Frozen layout. */
typedef struct tds_warm_record {
  const char *entity_id;
  size_t entity_id_len;
  tds_digest digest;
  int scheme;
  const char *last_modified_time;  /* NULL: none */
  size_t last_modified_time_len;
  const char *local_id;            /* NULL: none */
  size_t local_id_len;
} tds_warm_record;

/* Writes states for rows already synced, unconditionally. The caller owns *out
 * (tds_commit_result_free); records are only read during the call. Thread safe. */
TDS_API int tds_client_warm(tds_commit_result **out, tds_client *client, const char *entity_type,
                            size_t entity_type_len, const tds_warm_record *records, size_t count);

/* Frees the whole result. NULL is fine. Once, when no thread reads it. */
TDS_API void tds_commit_result_free(tds_commit_result *result);
/* Number of outcomes (= items, in input order); 0 for NULL. Thread safe. */
TDS_API size_t tds_commit_result_count(const tds_commit_result *result);
/* The tds_commit_outcome of item index; a negative status for NULL or out of range.
 * Thread safe. */
TDS_API int tds_commit_result_outcome(const tds_commit_result *result, size_t index);
/* The sync_count now stored for item index when written; 0 otherwise. Thread safe. */
TDS_API int64_t tds_commit_result_sync_count(const tds_commit_result *result, size_t index);
/* Totals; 0 for NULL. Thread safe. */
TDS_API size_t tds_commit_result_written(const tds_commit_result *result);
TDS_API size_t tds_commit_result_conflicts(const tds_commit_result *result);
TDS_API size_t tds_commit_result_errors(const tds_commit_result *result);
/* TDS_OK when every item was written or refused cleanly, else the first failure.
 * Thread safe. */
TDS_API int tds_commit_result_status(const tds_commit_result *result);
/* Its message; "" when ok. Never NULL; owned by the result. Thread safe. */
TDS_API const char *tds_commit_result_message(const tds_commit_result *result);

/* Deletes one entity's state; the caller's *removed (may be NULL) gets 1 if it existed,
 * else 0. Thread safe. */
TDS_API int tds_client_invalidate(uint64_t *removed, tds_client *client, const char *entity_type,
                                  size_t entity_type_len, const char *entity_id,
                                  size_t entity_id_len);
/* Deletes every state of one entity type (SCAN + UNLINK; glob characters match only
 * themselves); *removed (may be NULL) gets how many. Thread safe. */
TDS_API int tds_client_invalidate_type(uint64_t *removed, tds_client *client,
                                       const char *entity_type, size_t entity_type_len);

/* ---------------------------------------------------------------------------------------------
 * Cached states */

/* One entity's cached state, a copy: independent of the client. Immutable; any thread may
 * read it. Strings returned by its accessors live until tds_state_free(). */
typedef struct tds_state tds_state;

/* Reads one state. TDS_E_NOT_FOUND (and *out NULL) when there is none; TDS_E_INVALID_ARGUMENT
 * or TDS_E_JSON_MALFORMED when the stored value does not decode. The caller owns *out
 * (tds_state_free). Thread safe. */
TDS_API int tds_client_get_state(tds_state **out, tds_client *client, const char *entity_type,
                                 size_t entity_type_len, const char *entity_id,
                                 size_t entity_id_len);
/* Frees the state and its strings. NULL is fine. Once, when no thread reads it. */
TDS_API void tds_state_free(tds_state *state);

/* NUL-terminated strings owned by the state; *len (may be NULL) gets the length. NULL for a
 * NULL state, and for local_id / last_modified_time when the state has none. Thread safe. */
TDS_API const char *tds_state_entity_type(const tds_state *state, size_t *len);
TDS_API const char *tds_state_entity_id(const tds_state *state, size_t *len);
TDS_API const char *tds_state_local_id(const tds_state *state, size_t *len);
TDS_API const char *tds_state_content_hash(const tds_state *state, size_t *len); /* 64 hex */
TDS_API const char *tds_state_last_modified_time(const tds_state *state, size_t *len);
TDS_API const char *tds_state_cached_at(const tds_state *state, size_t *len);   /* ISO-8601 UTC */
/* How many times the entity was committed; -1 for NULL. Thread safe. */
TDS_API int64_t tds_state_sync_count(const tds_state *state);
/* The tds_scheme the digest was made with (an entry without one is legacy); -1 for NULL.
 * Thread safe. */
TDS_API int tds_state_scheme(const tds_state *state);

/* How many states are stored per entity type: a copy, independent of the client. Immutable;
 * any thread may read it. Strings returned by its accessors live until
 * tds_state_counts_free(). */
typedef struct tds_state_counts tds_state_counts;

/* Counts the states under the client's key prefix, per entity type, with SCAN over every node
 * (never KEYS). The type is the key's segment after the prefix, up to the next ':'. A key SCAN
 * reports twice is counted once. A diagnostic for operators: it reads every key name, so it
 * costs time and memory proportional to the cache's size. The caller owns *out
 * (tds_state_counts_free); on failure *out is NULL. Thread safe. */
TDS_API int tds_client_count_states(tds_state_counts **out, tds_client *client);
/* Frees the counts and their strings. NULL is fine. Once, when no thread reads them. */
TDS_API void tds_state_counts_free(tds_state_counts *counts);
/* Number of entity types (each has at least one state); 0 for NULL. Thread safe. */
TDS_API size_t tds_state_counts_count(const tds_state_counts *counts);
/* The entity type at index, in ascending byte order (as memcmp orders them). Binary safe, and
 * NUL terminated too; *len (may be NULL) gets its length. NULL (and *len 0) for a NULL counts
 * or an index out of range. Owned by the counts. Thread safe. */
TDS_API const char *tds_state_counts_type(const tds_state_counts *counts, size_t index,
                                          size_t *len);
/* How many states the type at index has; 0 for a NULL counts or an index out of range.
 * Thread safe. */
TDS_API uint64_t tds_state_counts_value(const tds_state_counts *counts, size_t index);

/* ---------------------------------------------------------------------------------------------
 * Batch markers */

/* Records that a batch of one entity type finished: stats_json (any bytes) is stored for two
 * hours under tds:batch:sync:{entity_type}:{batch_id}. Arguments are only read during the
 * call. Thread safe. */
TDS_API int tds_client_mark_batch_complete(tds_client *client, const char *entity_type,
                                           size_t entity_type_len, const char *batch_id,
                                           size_t batch_id_len, const char *stats_json,
                                           size_t stats_json_len);
/* The caller's *out = 1 when a batch of this type was marked complete within the last
 * window_seconds, else 0 (also for markers of unknown age). Thread safe. */
TDS_API int tds_client_batch_synced_recently(int *out, tds_client *client,
                                             const char *entity_type, size_t entity_type_len,
                                             int64_t window_seconds);

/* ---------------------------------------------------------------------------------------------
 * Statistics */

#define TDS_STATS_VERSION 1
/* Room for reasons in tds_stats: more than TDS_REASON_COUNT, so new reasons fit without
 * changing the struct's size. */
#define TDS_STATS_REASON_SLOTS 16

typedef struct tds_latency {
  uint64_t count;  /* calls measured */
  double p50_ms;
  double p99_ms;
  double max_ms;
} tds_latency;

/* A snapshot of a client's counters since it was opened or last reset. Set `version` (with
 * tds_stats_init() or TDS_STATS_INIT) before passing it to tds_client_stats(). */
typedef struct tds_stats {
  unsigned version;       /* TDS_STATS_VERSION */
  unsigned reason_count;  /* filled in: how many entries of by_reason the library knows */
  uint64_t by_reason[TDS_STATS_REASON_SLOTS];  /* indexed by tds_reason */
  uint64_t checked;       /* entities checked */
  uint64_t skipped;       /* decided unchanged */
  uint64_t to_sync;       /* decided anything else */
  uint64_t cache_errors;  /* decided cache_check_error */
  uint64_t synced;        /* commits written */
  uint64_t conflicts;     /* commits refused because the entry moved since its check */
  uint64_t failed;        /* commits that could not be applied */
  double hit_rate;        /* skipped / checked */
  tds_latency check_latency;   /* per tds_client_check */
  tds_latency commit_latency;  /* per tds_client_commit / tds_client_warm */
} tds_stats;

#define TDS_STATS_INIT \
  {TDS_STATS_VERSION, 0, {0}, 0, 0, 0, 0, 0, 0, 0, 0.0, {0, 0.0, 0.0, 0.0}, {0, 0.0, 0.0, 0.0}}

/* Zeroes the caller's *stats and sets its version (pass TDS_STATS_VERSION). Thread safe. */
TDS_API int tds_stats_init(tds_stats *stats, unsigned version);
/* Fills the caller's *out (whose version must be set) with the client's counters. Thread
 * safe; never waits for Redis. */
TDS_API int tds_client_stats(tds_stats *out, const tds_client *client);
/* Zeroes the client's counters. Thread safe (a check running meanwhile may be half counted). */
TDS_API int tds_client_reset_stats(tds_client *client);

#ifdef __cplusplus
}
#endif

#endif /* TDSCACHE_H */
