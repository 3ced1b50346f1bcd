// The cached state of one entity, as stored in Redis under {prefix}:{entity_type}:{entity_id}:
// its key, and its value's encoding and decoding (byte-compatible with the legacy Python
// service). No Redis I/O lives here; the client reads and writes these values.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tdscache/canonical.hpp"
#include "tdscache/detail/hex.hpp"
#include "tdscache/error.hpp"

namespace tds {

inline constexpr std::string_view default_key_prefix = "tds:entity:state";

// "{prefix}:{entity_type}:{entity_id}", bytes copied as they are.
std::string state_key(std::string_view prefix, std::string_view entity_type,
                      std::string_view entity_id);

// The legacy service writes, with json.dumps' default separators:
// {"entity_type": "product", "entity_id": "2646610000000113574", "local_id": "12345",
//  "content_hash": "<64 hex>", "last_modified_time": "2025-11-13T08:30:00",
//  "cached_at": "2025-11-13T08:35:21.123456", "sync_count": 3}
struct entity_state {
  std::string entity_type;
  std::string entity_id;                          // a JSON integer is kept as its digits
  std::optional<std::string> local_id;            // string or null; an integer keeps its digits
  std::string content_hash;                       // 64 hex digits, as stored (any case)
  std::optional<std::string> last_modified_time;  // as received from the API, or null
  std::string cached_at;                          // ISO-8601 UTC, no offset
  std::int64_t sync_count = 0;
  // Field "hash_scheme". Absent means the legacy service wrote the entry, hence legacy.
  // encode_state omits the field when this is nullopt, so such an entry looks exactly like
  // one the legacy service wrote.
  std::optional<hash_scheme> scheme;
};

// Parses a stored value with full JSON validation. Unknown fields are ignored; for a
// repeated field the last one wins, as in Python's json.loads.
// Required: entity_type, entity_id, content_hash (64 hex), cached_at (string), sync_count
// (a non-negative integer). Optional: local_id, last_modified_time (null = absent),
// hash_scheme ("legacy" or "jcs").
// Errors: status::json_malformed when the value is not a JSON object, status::invalid_argument
// when a field is missing or has the wrong type or content, status::out_of_memory. Never throws.
// Values in the two shapes tdscache and the legacy service write take a strict single-pass
// path (detail::scan_state); anything else is parsed by simdjson's DOM, the reference.
result<entity_state> decode_state(std::string_view value);

namespace detail {


// How many bytes from p on are printable ASCII other than '"' and '\\' (JSON writes and
// reads them as they are).
std::size_t plain_run(const char* p, const char* end) noexcept;

// A decoded state whose strings are views into the stored value: what decide() reads
// without copying a byte. Valid as long as that value is.
struct state_view {
  std::string_view entity_type;
  std::string_view entity_id;  // a JSON integer: its digits, as decode_state keeps them
  std::optional<std::string_view> local_id;
  std::string_view content_hash;
  std::optional<std::string_view> last_modified_time;
  std::string_view cached_at;
  std::int64_t sync_count = 0;
  std::optional<hash_scheme> scheme;
};

// The fast path: one pass over a flat object of ASCII strings without escapes, non-negative
// integers of at most 18 digits, null, true and false, separated by "," or ", " and ":" or
// ": ", no duplicate known field, every field valid. nullopt whenever the value is anything
// else, valid or not: then decode_state_dom() decides, and its answer (a state or an error)
// is the answer. When this returns true, decode_state_dom() returns the state `out` views
// (`out` is unspecified after false).
bool scan_state(std::string_view value, state_view& out) noexcept;

// The reference decoder (simdjson DOM, full validation), with decode_state's contract.
result<entity_state> decode_state_dom(std::string_view value);

// The entity_state a view stands for. Throws std::bad_alloc.
entity_state to_entity_state(const state_view& v);

}  // namespace detail

inline hash_scheme effective_scheme(const entity_state& s) noexcept {
  return s.scheme.value_or(hash_scheme::legacy);
}

// The encoded value split around sync_count, which is written last, so a server-side script
// can splice in the new count: value = head + decimal(sync_count) + tail, and tail is "}".
struct encoded_state {
  std::string head;
  std::string tail;
};

// Field order: entity_type, entity_id, local_id, content_hash, last_modified_time, cached_at,
// hash_scheme (only when set), sync_count. Separators ", " and ": ", strings escaped as
// detail::append_ascii_json_string does. s.sync_count is ignored.
encoded_state encode_state_parts(const entity_state& s);

// head + std::to_string(s.sync_count) + tail.
std::string encode_state(const entity_state& s);

}  // namespace tds
