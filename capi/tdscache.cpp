// The C ABI, part one: versions, names, the thread-local last error, digests, hashers and pages.
// Each entry point converts its arguments, calls the C++ API and turns the answer into a
// status; nothing throws past it. The client half (checks, commits, states) is in client_api.cpp.
#ifndef TDS_VERSION_STRING
#error "the build defines TDS_VERSION_STRING from the VERSION file (see CMakeLists.txt)"
#endif

#include "tdscache.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "boundary.hpp"
#include "tdscache/canonical.hpp"
#include "tdscache/decision.hpp"
#include "tdscache/error.hpp"

// The header's numbers must spell the VERSION file's version: bumping one without the other
// stops the build here instead of shipping a header that lies about its library.
static_assert(std::string_view(TDS_VERSION_STRING) ==
                  std::string_view(TDS_STRINGIFY_(TDS_VERSION_MAJOR) "." TDS_STRINGIFY_(
                      TDS_VERSION_MINOR) "." TDS_STRINGIFY_(TDS_VERSION_PATCH)),
              "capi/tdscache.h version macros differ from the VERSION file");

// The C enums are the C++ enums' numbers, pinned; a drift in either would silently change
// what a caller's code means.
#define TDS_PIN(c_name, cpp_value) static_assert(static_cast<int>(c_name) == static_cast<int>(cpp_value))
TDS_PIN(TDS_OK, tds::status::ok);
TDS_PIN(TDS_E_INVALID_ARGUMENT, tds::status::invalid_argument);
TDS_PIN(TDS_E_OUT_OF_MEMORY, tds::status::out_of_memory);
TDS_PIN(TDS_E_JSON_MALFORMED, tds::status::json_malformed);
TDS_PIN(TDS_E_UTF8_INVALID, tds::status::utf8_invalid);
TDS_PIN(TDS_E_DEPTH_EXCEEDED, tds::status::depth_exceeded);
TDS_PIN(TDS_E_NUMBER_NAN_INF, tds::status::number_nan_inf);
TDS_PIN(TDS_E_NUMBER_OUT_OF_RANGE, tds::status::number_out_of_range);
TDS_PIN(TDS_E_DUPLICATE_KEY, tds::status::duplicate_key);
TDS_PIN(TDS_E_LONE_SURROGATE, tds::status::lone_surrogate);
TDS_PIN(TDS_E_ITEM_NOT_OBJECT, tds::status::item_not_object);
TDS_PIN(TDS_E_ITEM_NO_ID, tds::status::item_no_id);
TDS_PIN(TDS_E_PAGE_MALFORMED, tds::status::page_malformed);
TDS_PIN(TDS_E_POINTER_INVALID, tds::status::pointer_invalid);
TDS_PIN(TDS_E_URL_INVALID, tds::status::url_invalid);
TDS_PIN(TDS_E_CONNECT_FAILED, tds::status::connect_failed);
TDS_PIN(TDS_E_TIMEOUT, tds::status::timeout);
TDS_PIN(TDS_E_IO, tds::status::io);
TDS_PIN(TDS_E_PROTOCOL, tds::status::protocol);
TDS_PIN(TDS_E_TLS, tds::status::tls);
TDS_PIN(TDS_E_AUTH, tds::status::auth);
TDS_PIN(TDS_E_SERVER_ERROR, tds::status::server_error);
TDS_PIN(TDS_E_CIRCUIT_OPEN, tds::status::circuit_open);
TDS_PIN(TDS_E_CLUSTER, tds::status::cluster);
TDS_PIN(TDS_E_NOT_FOUND, tds::status::not_found);
TDS_PIN(TDS_E_INTERNAL, tds::status::internal);
TDS_PIN(TDS_REASON_FORCED_SYNC, tds::reason::forced_sync);
TDS_PIN(TDS_REASON_NO_ID, tds::reason::no_id);
TDS_PIN(TDS_REASON_CACHE_CHECK_ERROR, tds::reason::cache_check_error);
TDS_PIN(TDS_REASON_NO_CACHE_ENTRY, tds::reason::no_cache_entry);
TDS_PIN(TDS_REASON_CACHE_ENTRY_CORRUPT, tds::reason::cache_entry_corrupt);
TDS_PIN(TDS_REASON_HASH_SCHEME_CHANGED, tds::reason::hash_scheme_changed);
TDS_PIN(TDS_REASON_CONTENT_CHANGED, tds::reason::content_changed);
TDS_PIN(TDS_REASON_CACHE_EXPIRED, tds::reason::cache_expired);
TDS_PIN(TDS_REASON_TIMESTAMP_NEWER, tds::reason::timestamp_newer);
TDS_PIN(TDS_REASON_UNCHANGED, tds::reason::unchanged);
TDS_PIN(TDS_REASON_COUNT, tds::reason_count);
TDS_PIN(TDS_SCHEME_LEGACY, tds::hash_scheme::legacy);
TDS_PIN(TDS_SCHEME_JCS, tds::hash_scheme::jcs);
#undef TDS_PIN
static_assert(TDS_REASON_COUNT <= TDS_STATS_REASON_SLOTS, "tds_stats.by_reason has no room left");
static_assert(sizeof(tds_digest) == sizeof(tds::digest::bytes));

// ---------------------------------------------------------------------------------------------
// The boundary

namespace tds::capi {
namespace {

struct last_failure {
  std::string message;
  std::size_t offset = no_offset;
  bool message_lost = false;  // storing the message itself ran out of memory
};

thread_local last_failure last;

}  // namespace

int fail(status code, std::string_view message, std::size_t offset) noexcept {
  last.offset = offset;
  try {
    last.message.assign(message);
    if (offset != no_offset) last.message.append(" (at byte ").append(std::to_string(offset)).append(")");
    last.message_lost = false;
  } catch (...) {
    last.message_lost = true;
  }
  return as_int(code);
}

int fail(const error& e) noexcept { return fail(e.code, e.message, e.offset); }

int fail_current_exception() noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return fail(status::out_of_memory, "out of memory");
  } catch (const std::exception& e) {
    const int rc = fail(status::internal, "internal error (an exception reached the C API): ");
    append_to_last_error(e.what());
    return rc;
  } catch (...) {
    return fail(status::internal, "internal error: an unknown exception reached the C API");
  }
}

void append_to_last_error(std::string_view text) noexcept {
  try {
    last.message.append(text);
  } catch (...) {
    last.message_lost = true;
  }
}

int fail_null(const char* function, const char* argument) noexcept {
  last.offset = no_offset;
  try {
    last.message.assign(function).append(": ").append(argument).append(" is NULL");
    last.message_lost = false;
  } catch (...) {
    last.message_lost = true;
  }
  return as_int(status::invalid_argument);
}

bool read_text(std::string_view& out, const char* data, std::size_t length, const char* function,
               const char* argument) noexcept {
  if (data == nullptr && length != 0) {
    fail_null(function, argument);
    return false;
  }
  // A NULL empty string becomes a real empty string: the core may memcpy from data(), and
  // memcpy from NULL is undefined even for 0 bytes.
  out = data == nullptr ? std::string_view("", 0) : std::string_view(data, length);
  return true;
}

bool check_version(unsigned version, unsigned current, const char* type_name) noexcept {
  if (version >= 1 && version <= current) return true;
  try {
    fail(status::invalid_argument, std::string(type_name) + ".version is " + std::to_string(version) +
                                       "; this library knows versions 1 to " + std::to_string(current) +
                                       " (fill the struct with its _init function first)");
  } catch (...) {
    fail(status::invalid_argument, "unsupported struct version");
  }
  return false;
}

bool read_scheme(hash_scheme& out, int scheme, const char* function) noexcept {
  if (scheme != TDS_SCHEME_LEGACY && scheme != TDS_SCHEME_JCS) {
    fail(status::invalid_argument, function);
    append_to_last_error(": scheme ");
    append_to_last_error(std::to_string(scheme));  // short: fits the small-string buffer
    append_to_last_error(" is not TDS_SCHEME_LEGACY (0) or TDS_SCHEME_JCS (1)");
    return false;
  }
  out = static_cast<hash_scheme>(scheme);
  return true;
}

}  // namespace tds::capi

using namespace tds::capi;

// ---------------------------------------------------------------------------------------------
// Library information and errors

extern "C" {

unsigned tds_version_number(void) { return TDS_VERSION_NUMBER; }
const char* tds_version(void) { return TDS_VERSION_STRING; }

const char* tds_status_name(int status) {
  // status_name's views point at string literals, hence NUL-terminated.
  return tds::status_name(static_cast<tds::status>(status)).data();
}

const char* tds_reason_name(int reason) {
  if (reason < 0 || reason >= tds::reason_count) return "unknown";
  return tds::reason_name(static_cast<tds::reason>(reason)).data();
}

const char* tds_scheme_name(int scheme) {
  if (scheme != TDS_SCHEME_LEGACY && scheme != TDS_SCHEME_JCS) return "unknown";
  return tds::scheme_name(static_cast<tds::hash_scheme>(scheme)).data();
}

const char* tds_last_error(void) {
  return last.message_lost ? "out of memory (while recording the error message)" : last.message.c_str();
}

size_t tds_last_error_offset(void) { return last.offset; }

void tds_clear_error(void) {
  last.message.clear();
  last.offset = tds::no_offset;
  last.message_lost = false;
}

void tds_free(void* buffer) { std::free(buffer); }

// ---------------------------------------------------------------------------------------------
// Digests

int tds_digest_to_hex(char out[65], const tds_digest* digest) {
  if (out == nullptr) return fail_null("tds_digest_to_hex", "out");
  if (digest == nullptr) return fail_null("tds_digest_to_hex", "digest");
  tds::digest d;
  std::memcpy(d.bytes.data(), digest->bytes, d.bytes.size());
  d.hex_into(out);
  out[64] = '\0';
  return TDS_OK;
}

int tds_digest_from_hex(tds_digest* out, const char* hex, size_t hex_len) {
  if (out == nullptr) return fail_null("tds_digest_from_hex", "out");
  std::memset(out->bytes, 0, sizeof out->bytes);
  std::string_view text;
  if (!read_text(text, hex, hex_len, "tds_digest_from_hex", "hex")) return TDS_E_INVALID_ARGUMENT;
  const auto d = tds::digest::from_hex(text);
  if (!d) return fail(tds::status::invalid_argument, "tds_digest_from_hex: not 64 hex digits");
  std::memcpy(out->bytes, d->bytes.data(), d->bytes.size());
  return TDS_OK;
}

}  // extern "C"

// ---------------------------------------------------------------------------------------------
// Hashing

struct tds_hasher {
  tds::canonicalizer canonicalizer;
};

struct tds_page {
  tds::page_records records;
  std::vector<tds_digest> digests;  // records[i]'s digest as the C type, so accessors hand out
                                    // real tds_digest objects
};

namespace {

constexpr struct_history<1> hash_options_history{"tds_hash_options", {sizeof(tds_hash_options)}};
constexpr struct_history<1> page_options_history{"tds_page_options", {sizeof(tds_page_options)}};
static_assert(hash_options_history.current() == TDS_HASH_OPTIONS_VERSION);
static_assert(page_options_history.current() == TDS_PAGE_OPTIONS_VERSION);

// The _INIT macro's defaults are the C++ defaults.
static_assert(tds_hash_options(TDS_HASH_OPTIONS_INIT).max_depth == tds::canonical_options{}.max_depth);

// Reads C string arrays into names; false (failure recorded) on a NULL entry.
bool read_names(std::vector<std::string>& out, const char* const* names, std::size_t count,
                const char* field) {
  if (names == nullptr && count != 0) {
    fail_null("tds_hasher_new", field);
    return false;
  }
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (names[i] == nullptr) {
      fail(tds::status::invalid_argument,
           std::string("tds_hasher_new: ") + field + "[" + std::to_string(i) + "] is NULL");
      return false;
    }
    out.emplace_back(names[i]);
  }
  return true;
}

int read_hash_options(tds::canonical_options& out, const tds_hash_options& in) {
  if (!check_version(in.version, hash_options_history.current(), hash_options_history.name))
    return TDS_E_INVALID_ARGUMENT;
  if (!read_scheme(out.scheme, in.scheme, "tds_hasher_new")) return TDS_E_INVALID_ARGUMENT;
  out.strict = in.strict != 0;
  out.max_depth = in.max_depth;
  if (!read_names(out.exclude_pointers, in.exclude_pointers, in.exclude_pointers_count, "exclude_pointers"))
    return TDS_E_INVALID_ARGUMENT;
  if (in.default_exclusions == 0) {
    out.exclude_fields.emplace();
    if (!read_names(*out.exclude_fields, in.exclude_fields, in.exclude_fields_count, "exclude_fields"))
      return TDS_E_INVALID_ARGUMENT;
  }
  return TDS_OK;
}

int check_hash_args(const void* out, tds_hasher* hasher, const char* json, size_t json_len,
                    const char* function, std::string_view& text) {
  if (out == nullptr) return fail_null(function, "out");
  if (hasher == nullptr) return fail_null(function, "hasher");
  if (!read_text(text, json, json_len, function, "json")) return TDS_E_INVALID_ARGUMENT;
  return TDS_OK;
}

const tds::entity_record* record_at(const tds_page* page, size_t index) noexcept {
  if (page == nullptr || index >= page->records.records.size()) return nullptr;
  return &page->records.records[index];
}

}  // namespace

extern "C" {

int tds_hash_options_init(tds_hash_options* opts, unsigned version) {
  const tds_hash_options defaults = TDS_HASH_OPTIONS_INIT;
  return init_versioned(opts, version, hash_options_history, defaults, "tds_hash_options_init");
}

int tds_hasher_new(tds_hasher** out, const tds_hash_options* opts) {
  if (out == nullptr) return fail_null("tds_hasher_new", "out");
  *out = nullptr;
  return guarded([&]() -> int {
    tds::canonical_options options;
    if (opts != nullptr) {
      if (const int rc = read_hash_options(options, *opts); rc != TDS_OK) return rc;
    }
    auto created = tds::canonicalizer::create(std::move(options));
    if (!created) return fail(created.error());
    *out = new tds_hasher{std::move(created).value()};
    return TDS_OK;
  });
}

void tds_hasher_free(tds_hasher* hasher) { delete hasher; }

int tds_hash(tds_digest* out, tds_hasher* hasher, const char* json, size_t json_len) {
  if (out != nullptr) std::memset(out->bytes, 0, sizeof out->bytes);
  std::string_view text;
  if (const int rc = check_hash_args(out, hasher, json, json_len, "tds_hash", text); rc != TDS_OK)
    return rc;
  return guarded([&]() -> int {
    auto d = hasher->canonicalizer.hash(text);
    if (!d) return fail(d.error());
    std::memcpy(out->bytes, d.value().bytes.data(), sizeof out->bytes);
    return TDS_OK;
  });
}

int tds_hash_hex(char out[65], tds_hasher* hasher, const char* json, size_t json_len) {
  if (out == nullptr) return fail_null("tds_hash_hex", "out");
  out[0] = '\0';
  tds_digest d;
  if (const int rc = tds_hash(&d, hasher, json, json_len); rc != TDS_OK) return rc;
  return tds_digest_to_hex(out, &d);
}

int tds_canonicalize(char** out, size_t* out_len, tds_hasher* hasher, const char* json,
                     size_t json_len) {
  if (out != nullptr) *out = nullptr;
  if (out_len != nullptr) *out_len = 0;
  std::string_view text;
  if (const int rc = check_hash_args(out, hasher, json, json_len, "tds_canonicalize", text); rc != TDS_OK)
    return rc;
  return guarded([&]() -> int {
    auto canonical = hasher->canonicalizer.canonicalize(text);
    if (!canonical) return fail(canonical.error());
    const std::string_view bytes = canonical.value();
    char* buffer = static_cast<char*>(std::malloc(bytes.size() + 1));
    if (buffer == nullptr) return fail(tds::status::out_of_memory, "tds_canonicalize: out of memory");
    std::memcpy(buffer, bytes.data(), bytes.size());
    buffer[bytes.size()] = '\0';
    *out = buffer;
    if (out_len != nullptr) *out_len = bytes.size();
    return TDS_OK;
  });
}

// ---------------------------------------------------------------------------------------------
// Pages

int tds_page_options_init(tds_page_options* opts, unsigned version) {
  const tds_page_options defaults = TDS_PAGE_OPTIONS_INIT;
  return init_versioned(opts, version, page_options_history, defaults, "tds_page_options_init");
}

int tds_hash_page(tds_page** out, tds_hasher* hasher, const char* body, size_t body_len,
                  const tds_page_options* opts) {
  if (out != nullptr) *out = nullptr;
  std::string_view text;
  if (const int rc = check_hash_args(out, hasher, body, body_len, "tds_hash_page", text); rc != TDS_OK)
    return rc;
  return guarded([&]() -> int {
    tds::page_options where;
    if (opts != nullptr) {
      if (!check_version(opts->version, page_options_history.current(), page_options_history.name))
        return as_int(tds::status::invalid_argument);
      if (opts->items_key && *opts->items_key) where.items_key = opts->items_key;
      if (opts->id_field && *opts->id_field) where.id_field = opts->id_field;
      if (opts->modified_field && *opts->modified_field) where.modified_field = opts->modified_field;
    }
    auto records = hasher->canonicalizer.hash_page(text, where);
    if (!records) return fail(records.error());
    auto page = std::make_unique<tds_page>();
    page->records = std::move(records).value();
    page->digests.resize(page->records.records.size());
    for (std::size_t i = 0; i < page->digests.size(); ++i) {
      const auto& bytes = page->records.records[i].content_digest.bytes;
      std::memcpy(page->digests[i].bytes, bytes.data(), bytes.size());
    }
    *out = page.release();
    return TDS_OK;
  });
}

void tds_page_free(tds_page* page) { delete page; }

size_t tds_page_count(const tds_page* page) { return page ? page->records.records.size() : 0; }

int tds_page_has_more(const tds_page* page) {
  if (page == nullptr || !page->records.has_more_page) return -1;
  return *page->records.has_more_page ? 1 : 0;
}

const char* tds_page_record_id(const tds_page* page, size_t index, size_t* len) {
  if (len) *len = 0;
  const auto* r = record_at(page, index);
  return r ? c_str(r->id, len) : nullptr;
}

const char* tds_page_record_modified(const tds_page* page, size_t index, size_t* len) {
  if (len) *len = 0;
  const auto* r = record_at(page, index);
  return r ? c_str_or_null(r->last_modified_time, len) : nullptr;
}

const tds_digest* tds_page_record_digest(const tds_page* page, size_t index) {
  const auto* r = record_at(page, index);
  if (r == nullptr || !r->ok()) return nullptr;
  return &page->digests[index];
}

int tds_page_record_span(size_t* offset, size_t* length, const tds_page* page, size_t index) {
  if (offset) *offset = 0;
  if (length) *length = 0;
  if (offset == nullptr) return fail_null("tds_page_record_span", "offset");
  if (length == nullptr) return fail_null("tds_page_record_span", "length");
  const auto* r = record_at(page, index);
  if (r == nullptr) {
    return page ? fail(tds::status::invalid_argument, "tds_page_record_span: index out of range")
                : fail_null("tds_page_record_span", "page");
  }
  *offset = r->offset;
  *length = r->length;
  return TDS_OK;
}

int tds_page_record_status(const tds_page* page, size_t index) {
  const auto* r = record_at(page, index);
  if (r == nullptr) {
    return page ? fail(tds::status::invalid_argument, "tds_page_record_status: index out of range")
                : fail_null("tds_page_record_status", "page");
  }
  return as_int(r->error.code);
}

const char* tds_page_record_message(const tds_page* page, size_t index) {
  const auto* r = record_at(page, index);
  return r ? r->error.message.c_str() : "";
}

}  // extern "C"
