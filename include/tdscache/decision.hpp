// The sync decision for one entity: given what the caller fetched and what the cache holds,
// sync it or skip it, and why. Pure rules: no I/O, no clock (the caller passes `now`).
// Fetching the cached value and committing the new one belong to the client.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "tdscache/canonical.hpp"
#include "tdscache/timestamp.hpp"

namespace tds {

// Pinned numbers (the C API exposes the same ones). The order is the order the rules are
// tried in: the first that fires is the reason. Only `unchanged` means skip.
enum class reason : int {
  forced_sync = 0,
  no_id = 1,
  cache_check_error = 2,
  no_cache_entry = 3,
  cache_entry_corrupt = 4,
  hash_scheme_changed = 5,
  content_changed = 6,
  cache_expired = 7,
  timestamp_newer = 8,
  unchanged = 9,
};
inline constexpr int reason_count = 10;

std::string_view reason_name(reason r) noexcept;  // "forced_sync", ..., "unchanged"; "" if out of range
std::optional<reason> parse_reason(std::string_view name) noexcept;

constexpr bool should_sync(reason r) noexcept { return r != reason::unchanged; }

// One entity as the caller presents it. The views must outlive the decide() call.
struct entity_check {
  std::string_view entity_type;
  std::string_view entity_id;
  digest content_digest;
  hash_scheme scheme = hash_scheme::legacy;
  std::optional<std::string_view> last_modified_time;  // nullopt: absent or null in the API
  bool force = false;
};

enum class lookup_kind { error, missing, present };

// What reading the cache gave: a failure, no entry, or the stored value (a view, valid for
// the decide() call; ignored unless kind is present).
struct cached_lookup {
  lookup_kind kind = lookup_kind::error;
  std::string_view value;
};

struct decision_policy {
  // An entry cached longer ago than this is synced again. 0 disables the rule; a negative
  // age puts the cutoff in the future, so every entry counts as expired.
  std::int64_t max_age_seconds = 86400;
};

// Rules, first match wins:
//  1 forced_sync          check.force
//  2 no_id                check.entity_id is empty
//  3 cache_check_error    lookup.kind is error (or not a known kind), or decide failed inside
//  4 no_cache_entry       lookup.kind is missing, or the state is a retraction marker
//                         (content_hash all zeros: what a lost commit leaves)
//  5 cache_entry_corrupt  decode_state(lookup.value) fails
//  6 hash_scheme_changed  effective_scheme(state) != check.scheme
//  7 content_changed      state.content_hash != check.content_digest (hex, any case)
//  8 cache_expired        max_age != 0 and cached_at < now - max_age, or cached_at unparseable
//  9 timestamp_newer      the incoming last_modified_time is newer than the cached one:
//                         incoming absent -> no; cached absent -> yes; both parse -> compare
//                         instants; either unparseable -> yes iff the strings differ
// 10 unchanged
// Never throws: any internal failure (out of memory) gives cache_check_error, hence a sync.
reason decide(const entity_check& check, const cached_lookup& lookup,
              const decision_policy& policy, instant now) noexcept;

// Rule 9 on its own, for callers and tests that compare timestamps without a cached value.
bool is_timestamp_newer(std::optional<std::string_view> incoming,
                        std::optional<std::string_view> cached) noexcept;

}  // namespace tds
