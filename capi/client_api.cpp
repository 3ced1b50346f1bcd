// The C ABI, part two: the cache client (open, check, commit, warm, invalidate, states and their
// counts, batch markers, statistics) over tds::client. Argument checks and struct conversions
// live here; the decisions and every Redis detail stay in the C++ core. Hashing and errors are
// in tdscache.cpp.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "boundary.hpp"
#include "tdscache.h"
#include "tdscache/client.hpp"

struct tds_client {
  tds::client client;
};

struct tds_check_result {
  tds::check_result result;
  // What was checked at each index, so that a commit naming (result, index) for another
  // entity is refused with a clear message instead of turning into a puzzling conflict.
  std::vector<std::pair<std::string, std::string>> checked;
};

struct tds_commit_result {
  tds::commit_result result;
};

struct tds_state {
  tds::entity_state state;
};

struct tds_state_counts {
  // The map's entries in its order (ascending bytes), in a vector for indexed access.
  std::vector<std::pair<std::string, std::uint64_t>> by_type;
};

namespace {

using namespace tds::capi;
using std::chrono::milliseconds;

constexpr struct_history<1> client_options_history{"tds_client_options", {sizeof(tds_client_options)}};
constexpr struct_history<1> stats_history{"tds_stats", {sizeof(tds_stats)}};
static_assert(client_options_history.current() == TDS_CLIENT_OPTIONS_VERSION);
static_assert(stats_history.current() == TDS_STATS_VERSION);

// TDS_CLIENT_OPTIONS_INIT spells the C++ defaults (its NULL strings mean "the default").
constexpr bool client_defaults_match() {
  const tds::client_config c;
  const tds_client_options o = TDS_CLIENT_OPTIONS_INIT;
  return o.port == c.port && o.db == c.db && (o.tls != 0) == c.tls.enabled &&
         (o.tls_verify_hostname != 0) == c.tls.verify_hostname && (o.tls_insecure != 0) == c.tls.insecure &&
         o.connect_timeout_ms == c.connect_timeout.count() &&
         o.command_timeout_ms == c.command_timeout.count() &&
         o.keepalive_seconds == c.keepalive_seconds && o.ttl_seconds == c.ttl_seconds &&
         o.max_age_seconds == c.max_age_seconds && o.mget_chunk == c.mget_chunk &&
         o.breaker_failures == c.breaker_failures && o.breaker_cooldown_ms == c.breaker_cooldown.count() &&
         o.reconnect_backoff_min_ms == c.reconnect_backoff_min.count() &&
         o.reconnect_backoff_max_ms == c.reconnect_backoff_max.count();
}
static_assert(client_defaults_match(), "TDS_CLIENT_OPTIONS_INIT differs from tds::client_config's defaults");

// The out-parameter and the client every client call needs.
int check_call(const void* out, const tds_client* client, const char* function) noexcept {
  if (out == nullptr) return fail_null(function, "out");
  if (client == nullptr) return fail_null(function, "client");
  return TDS_OK;
}

// read_text for a field of the index-th element of an array argument.
bool read_field(std::string_view& out, const char* data, std::size_t length, const char* function,
                const char* field, std::size_t index) noexcept {
  if (read_text(out, data, length, function, field)) return true;
  append_to_last_error(" (element ");
  append_to_last_error(std::to_string(index));  // a short string: no allocation
  append_to_last_error(")");
  return false;
}

// NULL means absent; any other pointer, even with length 0, is a value.
void read_optional_field(std::optional<std::string_view>& out, const char* data, std::size_t length) {
  if (data == nullptr) {
    out.reset();
  } else {
    out = std::string_view(data, length);
  }
}

tds::digest to_digest(const tds_digest& d) noexcept {
  tds::digest out;
  std::memcpy(out.bytes.data(), d.bytes, out.bytes.size());
  return out;
}

int read_client_options(tds::client_config& c, const tds_client_options& o) {
  if (!check_version(o.version, client_options_history.current(), client_options_history.name))
    return TDS_E_INVALID_ARGUMENT;
  const auto set = [](std::string& field, const char* value) {
    if (value != nullptr) field = value;
  };
  set(c.host, o.host);
  c.port = o.port;
  set(c.unix_path, o.unix_path);
  set(c.username, o.username);
  set(c.password, o.password);
  c.db = o.db;
  c.tls.enabled = o.tls != 0;
  set(c.tls.ca_file, o.tls_ca_file);
  set(c.tls.ca_dir, o.tls_ca_dir);
  set(c.tls.cert_file, o.tls_cert_file);
  set(c.tls.key_file, o.tls_key_file);
  set(c.tls.server_name, o.tls_server_name);
  c.tls.verify_hostname = o.tls_verify_hostname != 0;
  c.tls.insecure = o.tls_insecure != 0;
  c.connect_timeout = milliseconds(o.connect_timeout_ms);
  c.command_timeout = milliseconds(o.command_timeout_ms);
  c.keepalive_seconds = o.keepalive_seconds;
  set(c.key_prefix, o.key_prefix);
  c.ttl_seconds = o.ttl_seconds;
  c.max_age_seconds = o.max_age_seconds;
  c.mget_chunk = o.mget_chunk;
  c.breaker_failures = o.breaker_failures;
  c.breaker_cooldown = milliseconds(o.breaker_cooldown_ms);
  c.reconnect_backoff_min = milliseconds(o.reconnect_backoff_min_ms);
  c.reconnect_backoff_max = milliseconds(o.reconnect_backoff_max_ms);
  return TDS_OK;
}

int open_client(tds_client** out, tds::result<tds::client> opened) {
  if (!opened) return fail(opened.error());
  *out = new tds_client{std::move(opened).value()};
  return TDS_OK;
}

// The fields tds_entity and tds_commit_item share: who the entity is and what its digest is.
template <class Out, class In>
int read_entity_fields(Out& out, const In& in, const char* function, std::size_t i) {
  if (!read_field(out.entity_type, in.entity_type, in.entity_type_len, function, "entity_type", i) ||
      !read_field(out.entity_id, in.entity_id, in.entity_id_len, function, "entity_id", i) ||
      !read_scheme(out.scheme, in.scheme, function)) {
    return TDS_E_INVALID_ARGUMENT;
  }
  read_optional_field(out.last_modified_time, in.last_modified_time, in.last_modified_time_len);
  out.content_digest = to_digest(in.digest);
  return TDS_OK;
}

int read_entity(tds::entity_check& e, const tds_entity& in, std::size_t i) {
  if (const int rc = read_entity_fields(e, in, "tds_client_check", i); rc != TDS_OK) return rc;
  e.force = in.force != 0;
  return TDS_OK;
}

int read_commit_item(tds::commit_item& c, const tds_commit_item& in, std::size_t i) {
  if (const int rc = read_entity_fields(c, in, "tds_client_commit", i); rc != TDS_OK) return rc;
  read_optional_field(c.local_id, in.local_id, in.local_id_len);
  c.observed = nullptr;
  if (in.checked == nullptr) return TDS_OK;
  const auto& checked = *in.checked;
  if (in.checked_index >= checked.result.items.size()) {
    return fail(tds::status::invalid_argument,
                "tds_client_commit: items[" + std::to_string(i) + "].checked_index is " +
                    std::to_string(in.checked_index) + " but that check has " +
                    std::to_string(checked.result.items.size()) + " entities");
  }
  const auto& [type, id] = checked.checked[in.checked_index];
  if (type != c.entity_type || id != c.entity_id) {
    return fail(tds::status::invalid_argument,
                "tds_client_commit: items[" + std::to_string(i) +
                    "] names another entity than the one checked at checked_index " +
                    std::to_string(in.checked_index));
  }
  c.observed = &checked.result.items[in.checked_index].observed;
  return TDS_OK;
}

int read_warm_record(tds::warm_record& w, const tds_warm_record& in, std::size_t i) {
  constexpr const char* fn = "tds_client_warm";
  if (!read_field(w.entity_id, in.entity_id, in.entity_id_len, fn, "entity_id", i) ||
      !read_scheme(w.scheme, in.scheme, fn)) {
    return TDS_E_INVALID_ARGUMENT;
  }
  read_optional_field(w.last_modified_time, in.last_modified_time, in.last_modified_time_len);
  read_optional_field(w.local_id, in.local_id, in.local_id_len);
  w.content_digest = to_digest(in.digest);
  return TDS_OK;
}

int hand_out_commit(tds_commit_result** out, tds::commit_result result) {
  *out = new tds_commit_result{std::move(result)};
  return TDS_OK;
}

// A text field of a state: NULL for a NULL state or an absent optional field.
template <class Field>
const char* state_text(const tds_state* state, size_t* len, Field tds::entity_state::*field) noexcept {
  if (len) *len = 0;
  if (state == nullptr) return nullptr;
  const Field& value = state->state.*field;
  if constexpr (std::is_same_v<Field, std::string>) {
    return c_str(value, len);
  } else {
    return c_str_or_null(value, len);
  }
}

void copy_latency(tds_latency& out, const tds::latency_summary& in) noexcept {
  out.count = in.count;
  out.p50_ms = in.p50_ms;
  out.p99_ms = in.p99_ms;
  out.max_ms = in.max_ms;
}

}  // namespace

extern "C" {

// ---------------------------------------------------------------------------------------------
// Opening

int tds_client_options_init(tds_client_options* opts, unsigned version) {
  const tds_client_options defaults = TDS_CLIENT_OPTIONS_INIT;
  return init_versioned(opts, version, client_options_history, defaults, "tds_client_options_init");
}

int tds_client_open(tds_client** out, const tds_client_options* opts) {
  if (out == nullptr) return fail_null("tds_client_open", "out");
  *out = nullptr;
  return guarded([&]() -> int {
    tds::client_config config;
    if (opts != nullptr) {
      if (const int rc = read_client_options(config, *opts); rc != TDS_OK) return rc;
    }
    return open_client(out, tds::client::connect(std::move(config)));
  });
}

int tds_client_open_url(tds_client** out, const char* url) {
  if (out == nullptr) return fail_null("tds_client_open_url", "out");
  *out = nullptr;
  if (url == nullptr) return fail_null("tds_client_open_url", "url");
  return guarded([&]() -> int { return open_client(out, tds::client::from_url(url)); });
}

void tds_client_free(tds_client* client) { delete client; }

int tds_client_ping(tds_client* client) {
  if (client == nullptr) return fail_null("tds_client_ping", "client");
  return guarded([&]() -> int {
    auto r = client->client.ping();
    return r ? TDS_OK : fail(r.error());
  });
}

// ---------------------------------------------------------------------------------------------
// Checks

int tds_client_check(tds_check_result** out, tds_client* client, const tds_entity* entities,
                     size_t count) {
  if (out != nullptr) *out = nullptr;
  if (const int rc = check_call(out, client, "tds_client_check"); rc != TDS_OK) return rc;
  if (entities == nullptr && count != 0) return fail_null("tds_client_check", "entities");
  return guarded([&]() -> int {
    auto result = std::make_unique<tds_check_result>();
    std::vector<tds::entity_check> checks(count);
    result->checked.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      if (const int rc = read_entity(checks[i], entities[i], i); rc != TDS_OK) return rc;
      result->checked.emplace_back(checks[i].entity_type, checks[i].entity_id);
    }
    result->result = client->client.check(checks);
    *out = result.release();
    return TDS_OK;
  });
}

void tds_check_result_free(tds_check_result* result) { delete result; }

size_t tds_check_result_count(const tds_check_result* result) {
  return result ? result->result.items.size() : 0;
}

int tds_check_result_reason(const tds_check_result* result, size_t index) {
  if (result == nullptr) return fail_null("tds_check_result_reason", "result");
  if (index >= result->result.items.size())
    return fail(tds::status::invalid_argument, "tds_check_result_reason: index out of range");
  return static_cast<int>(result->result.items[index].why);
}

int tds_check_result_should_sync(const tds_check_result* result, size_t index) {
  if (result == nullptr || index >= result->result.items.size()) return 1;  // never a skip by mistake
  return result->result.items[index].sync() ? 1 : 0;
}

size_t tds_check_result_to_sync(const tds_check_result* result) {
  return result ? result->result.to_sync : 0;
}
size_t tds_check_result_skipped(const tds_check_result* result) {
  return result ? result->result.skipped : 0;
}
size_t tds_check_result_cache_errors(const tds_check_result* result) {
  return result ? result->result.cache_errors : 0;
}

size_t tds_check_result_by_reason(const tds_check_result* result, int reason) {
  if (result == nullptr || reason < 0 || reason >= tds::reason_count) return 0;
  return result->result.by_reason[static_cast<std::size_t>(reason)];
}

int tds_check_result_status(const tds_check_result* result) {
  if (result == nullptr) return fail_null("tds_check_result_status", "result");
  return as_int(result->result.error.code);
}

const char* tds_check_result_message(const tds_check_result* result) {
  return result ? result->result.error.message.c_str() : "";
}

// ---------------------------------------------------------------------------------------------
// Commits and warming

int tds_client_commit(tds_commit_result** out, tds_client* client, const tds_commit_item* items,
                      size_t count) {
  if (out != nullptr) *out = nullptr;
  if (const int rc = check_call(out, client, "tds_client_commit"); rc != TDS_OK) return rc;
  if (items == nullptr && count != 0) return fail_null("tds_client_commit", "items");
  return guarded([&]() -> int {
    std::vector<tds::commit_item> commits(count);
    for (std::size_t i = 0; i < count; ++i) {
      if (const int rc = read_commit_item(commits[i], items[i], i); rc != TDS_OK) return rc;
    }
    return hand_out_commit(out, client->client.commit(commits));
  });
}

int tds_client_warm(tds_commit_result** out, tds_client* client, const char* entity_type,
                    size_t entity_type_len, const tds_warm_record* records, size_t count) {
  if (out != nullptr) *out = nullptr;
  if (const int rc = check_call(out, client, "tds_client_warm"); rc != TDS_OK) return rc;
  std::string_view type;
  if (!read_text(type, entity_type, entity_type_len, "tds_client_warm", "entity_type"))
    return TDS_E_INVALID_ARGUMENT;
  if (records == nullptr && count != 0) return fail_null("tds_client_warm", "records");
  return guarded([&]() -> int {
    std::vector<tds::warm_record> rows(count);
    for (std::size_t i = 0; i < count; ++i) {
      if (const int rc = read_warm_record(rows[i], records[i], i); rc != TDS_OK) return rc;
    }
    return hand_out_commit(out, client->client.warm(type, rows));
  });
}

void tds_commit_result_free(tds_commit_result* result) { delete result; }

size_t tds_commit_result_count(const tds_commit_result* result) {
  return result ? result->result.items.size() : 0;
}

int tds_commit_result_outcome(const tds_commit_result* result, size_t index) {
  if (result == nullptr) return fail_null("tds_commit_result_outcome", "result");
  if (index >= result->result.items.size())
    return fail(tds::status::invalid_argument, "tds_commit_result_outcome: index out of range");
  return static_cast<int>(result->result.items[index]);
}

int64_t tds_commit_result_sync_count(const tds_commit_result* result, size_t index) {
  if (result == nullptr || index >= result->result.sync_counts.size()) return 0;
  return result->result.sync_counts[index];
}

size_t tds_commit_result_written(const tds_commit_result* result) {
  return result ? result->result.written : 0;
}
size_t tds_commit_result_conflicts(const tds_commit_result* result) {
  return result ? result->result.conflicts : 0;
}
size_t tds_commit_result_errors(const tds_commit_result* result) {
  return result ? result->result.errors : 0;
}

int tds_commit_result_status(const tds_commit_result* result) {
  if (result == nullptr) return fail_null("tds_commit_result_status", "result");
  return as_int(result->result.error.code);
}

const char* tds_commit_result_message(const tds_commit_result* result) {
  return result ? result->result.error.message.c_str() : "";
}

// ---------------------------------------------------------------------------------------------
// Invalidation

int tds_client_invalidate(uint64_t* removed, tds_client* client, const char* entity_type,
                          size_t entity_type_len, const char* entity_id, size_t entity_id_len) {
  if (removed != nullptr) *removed = 0;
  if (client == nullptr) return fail_null("tds_client_invalidate", "client");
  std::string_view type, id;
  if (!read_text(type, entity_type, entity_type_len, "tds_client_invalidate", "entity_type") ||
      !read_text(id, entity_id, entity_id_len, "tds_client_invalidate", "entity_id"))
    return TDS_E_INVALID_ARGUMENT;
  return guarded([&]() -> int {
    auto r = client->client.invalidate(type, id);
    if (!r) return fail(r.error());
    if (removed != nullptr) *removed = r.value();
    return TDS_OK;
  });
}

int tds_client_invalidate_type(uint64_t* removed, tds_client* client, const char* entity_type,
                               size_t entity_type_len) {
  if (removed != nullptr) *removed = 0;
  if (client == nullptr) return fail_null("tds_client_invalidate_type", "client");
  std::string_view type;
  if (!read_text(type, entity_type, entity_type_len, "tds_client_invalidate_type", "entity_type"))
    return TDS_E_INVALID_ARGUMENT;
  return guarded([&]() -> int {
    auto r = client->client.invalidate_type(type);
    if (!r) return fail(r.error());
    if (removed != nullptr) *removed = r.value();
    return TDS_OK;
  });
}

// ---------------------------------------------------------------------------------------------
// States

int tds_client_get_state(tds_state** out, tds_client* client, const char* entity_type,
                         size_t entity_type_len, const char* entity_id, size_t entity_id_len) {
  if (out != nullptr) *out = nullptr;
  if (const int rc = check_call(out, client, "tds_client_get_state"); rc != TDS_OK) return rc;
  std::string_view type, id;
  if (!read_text(type, entity_type, entity_type_len, "tds_client_get_state", "entity_type") ||
      !read_text(id, entity_id, entity_id_len, "tds_client_get_state", "entity_id"))
    return TDS_E_INVALID_ARGUMENT;
  return guarded([&]() -> int {
    auto r = client->client.get_state(type, id);
    if (!r) return fail(r.error());
    if (!r.value())
      return fail(tds::status::not_found, "tds_client_get_state: no cached state for this entity");
    *out = new tds_state{std::move(*r.value())};
    return TDS_OK;
  });
}

void tds_state_free(tds_state* state) { delete state; }

const char* tds_state_entity_type(const tds_state* state, size_t* len) {
  return state_text(state, len, &tds::entity_state::entity_type);
}
const char* tds_state_entity_id(const tds_state* state, size_t* len) {
  return state_text(state, len, &tds::entity_state::entity_id);
}
const char* tds_state_local_id(const tds_state* state, size_t* len) {
  return state_text(state, len, &tds::entity_state::local_id);
}
const char* tds_state_content_hash(const tds_state* state, size_t* len) {
  return state_text(state, len, &tds::entity_state::content_hash);
}
const char* tds_state_last_modified_time(const tds_state* state, size_t* len) {
  return state_text(state, len, &tds::entity_state::last_modified_time);
}
const char* tds_state_cached_at(const tds_state* state, size_t* len) {
  return state_text(state, len, &tds::entity_state::cached_at);
}

int64_t tds_state_sync_count(const tds_state* state) { return state ? state->state.sync_count : -1; }

int tds_state_scheme(const tds_state* state) {
  return state ? static_cast<int>(tds::effective_scheme(state->state)) : -1;
}

int tds_client_count_states(tds_state_counts** out, tds_client* client) {
  if (out != nullptr) *out = nullptr;
  if (const int rc = check_call(out, client, "tds_client_count_states"); rc != TDS_OK) return rc;
  return guarded([&]() -> int {
    auto r = client->client.count_states();
    if (!r) return fail(r.error());
    auto counts = std::make_unique<tds_state_counts>();
    counts->by_type.reserve(r.value().size());
    for (const auto& [type, n] : r.value()) counts->by_type.emplace_back(type, n);
    *out = counts.release();
    return TDS_OK;
  });
}

void tds_state_counts_free(tds_state_counts* counts) { delete counts; }

size_t tds_state_counts_count(const tds_state_counts* counts) {
  return counts ? counts->by_type.size() : 0;
}

const char* tds_state_counts_type(const tds_state_counts* counts, size_t index, size_t* len) {
  if (len) *len = 0;
  if (counts == nullptr || index >= counts->by_type.size()) return nullptr;
  return c_str(counts->by_type[index].first, len);
}

uint64_t tds_state_counts_value(const tds_state_counts* counts, size_t index) {
  if (counts == nullptr || index >= counts->by_type.size()) return 0;
  return counts->by_type[index].second;
}

// ---------------------------------------------------------------------------------------------
// Batch markers

int tds_client_mark_batch_complete(tds_client* client, const char* entity_type, size_t entity_type_len,
                                   const char* batch_id, size_t batch_id_len, const char* stats_json,
                                   size_t stats_json_len) {
  constexpr const char* fn = "tds_client_mark_batch_complete";
  if (client == nullptr) return fail_null(fn, "client");
  std::string_view type, batch, stats;
  if (!read_text(type, entity_type, entity_type_len, fn, "entity_type") ||
      !read_text(batch, batch_id, batch_id_len, fn, "batch_id") ||
      !read_text(stats, stats_json, stats_json_len, fn, "stats_json"))
    return TDS_E_INVALID_ARGUMENT;
  return guarded([&]() -> int {
    auto r = client->client.mark_batch_complete(type, batch, stats);
    return r ? TDS_OK : fail(r.error());
  });
}

int tds_client_batch_synced_recently(int* out, tds_client* client, const char* entity_type,
                                     size_t entity_type_len, int64_t window_seconds) {
  constexpr const char* fn = "tds_client_batch_synced_recently";
  if (out != nullptr) *out = 0;
  if (const int rc = check_call(out, client, fn); rc != TDS_OK) return rc;
  std::string_view type;
  if (!read_text(type, entity_type, entity_type_len, fn, "entity_type")) return TDS_E_INVALID_ARGUMENT;
  return guarded([&]() -> int {
    auto r = client->client.was_batch_synced_recently(type, window_seconds);
    if (!r) return fail(r.error());
    *out = r.value() ? 1 : 0;
    return TDS_OK;
  });
}

// ---------------------------------------------------------------------------------------------
// Statistics

int tds_stats_init(tds_stats* stats, unsigned version) {
  const tds_stats zero = TDS_STATS_INIT;
  return init_versioned(stats, version, stats_history, zero, "tds_stats_init");
}

int tds_client_stats(tds_stats* out, const tds_client* client) {
  if (const int rc = check_call(out, client, "tds_client_stats"); rc != TDS_OK) return rc;
  const unsigned version = out->version;
  if (!check_version(version, stats_history.current(), stats_history.name)) return TDS_E_INVALID_ARGUMENT;
  const tds::stats_snapshot s = client->client.stats();
  tds_stats filled = TDS_STATS_INIT;
  filled.reason_count = static_cast<unsigned>(tds::reason_count);
  for (std::size_t r = 0; r < s.by_reason.size(); ++r) filled.by_reason[r] = s.by_reason[r];
  filled.checked = s.checked;
  filled.skipped = s.skipped;
  filled.to_sync = s.to_sync;
  filled.cache_errors = s.cache_errors;
  filled.synced = s.synced;
  filled.conflicts = s.conflicts;
  filled.failed = s.failed;
  filled.hit_rate = s.hit_rate;
  copy_latency(filled.check_latency, s.check_latency);
  copy_latency(filled.commit_latency, s.commit_latency);
  write_versioned(out, filled, version, stats_history);
  return TDS_OK;
}

int tds_client_reset_stats(tds_client* client) {
  if (client == nullptr) return fail_null("tds_client_reset_stats", "client");
  client->client.reset_stats();
  return TDS_OK;
}

}  // extern "C"
