// The ten decision rules (see decision.hpp for the table). Everything here is pure; the only
// allocation is decode_state's, and its failures turn into a sync, never into a skip.
#include "tdscache/decision.hpp"

#include <array>
#include <limits>
#include <new>

#include "tdscache/state.hpp"

namespace tds {
namespace {

constexpr std::array<std::string_view, reason_count> reason_names = {
    "forced_sync",         "no_id",           "cache_check_error", "no_cache_entry",
    "cache_entry_corrupt", "hash_scheme_changed", "content_changed", "cache_expired",
    "timestamp_newer",     "unchanged",
};

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Compares the stored hex text with the digest's bytes directly: any case, no allocation.
// Text that is not 64 hex digits never matches, which means "changed", which means sync.
bool same_digest(std::string_view stored_hex, const digest& d) noexcept {
  if (stored_hex.size() != d.bytes.size() * 2) return false;
  for (std::size_t i = 0; i < d.bytes.size(); ++i) {
    const int high = hex_value(stored_hex[2 * i]);
    const int low = hex_value(stored_hex[2 * i + 1]);
    if (high < 0 || low < 0 || ((high << 4) | low) != d.bytes[i]) return false;
  }
  return true;
}

// now - max_age, saturating, so a huge or negative max age cannot wrap around.
instant expiry_cutoff(instant now, std::int64_t max_age_seconds) noexcept {
  constexpr auto lowest = std::numeric_limits<std::int64_t>::min();
  constexpr auto highest = std::numeric_limits<std::int64_t>::max();
  if (max_age_seconds > 0 && now.seconds < lowest + max_age_seconds) return {lowest, 0};
  if (max_age_seconds < 0 && now.seconds > highest + max_age_seconds) return {highest, 0};
  return {now.seconds - max_age_seconds, now.nanos};
}

bool is_expired(std::string_view cached_at, const decision_policy& policy, instant now) noexcept {
  if (policy.max_age_seconds == 0) return false;
  const std::optional<instant> cached = parse_iso8601(cached_at);
  if (!cached) return true;  // when in doubt, sync
  return *cached < expiry_cutoff(now, policy.max_age_seconds);
}

reason decide_from_state(const entity_check& check, std::string_view value,
                         const decision_policy& policy, instant now) {
  result<entity_state> decoded = decode_state(value);
  if (!decoded) {
    // Running out of memory says nothing about the entry; report it as the check failing.
    const status code = decoded.code();
    return code == status::out_of_memory || code == status::internal ? reason::cache_check_error
                                                                     : reason::cache_entry_corrupt;
  }
  const entity_state& state = decoded.value();
  // A commit that lost the conflict rule leaves this marker instead of deleting the key (see
  // docs/commit-protocol.md): it stands for no entry at all.
  if (state.content_hash.find_first_not_of('0') == std::string::npos) return reason::no_cache_entry;
  if (effective_scheme(state) != check.scheme) return reason::hash_scheme_changed;
  if (!same_digest(state.content_hash, check.content_digest)) return reason::content_changed;
  if (is_expired(state.cached_at, policy, now)) return reason::cache_expired;
  std::optional<std::string_view> cached_time;
  if (state.last_modified_time) cached_time = *state.last_modified_time;
  if (is_timestamp_newer(check.last_modified_time, cached_time)) return reason::timestamp_newer;
  return reason::unchanged;
}

}  // namespace

std::string_view reason_name(reason r) noexcept {
  const auto index = static_cast<int>(r);
  if (index < 0 || index >= reason_count) return {};
  return reason_names[static_cast<std::size_t>(index)];
}

std::optional<reason> parse_reason(std::string_view name) noexcept {
  for (int i = 0; i < reason_count; ++i) {
    if (reason_names[static_cast<std::size_t>(i)] == name) return static_cast<reason>(i);
  }
  return std::nullopt;
}

bool is_timestamp_newer(std::optional<std::string_view> incoming,
                        std::optional<std::string_view> cached) noexcept {
  if (!incoming) return false;
  if (!cached) return true;
  const std::optional<instant> incoming_at = parse_iso8601(*incoming);
  const std::optional<instant> cached_at = parse_iso8601(*cached);
  if (incoming_at && cached_at) return *incoming_at > *cached_at;
  return *incoming != *cached;
}

reason decide(const entity_check& check, const cached_lookup& lookup,
              const decision_policy& policy, instant now) noexcept {
  if (check.force) return reason::forced_sync;
  if (check.entity_id.empty()) return reason::no_id;
  switch (lookup.kind) {
    case lookup_kind::missing: return reason::no_cache_entry;
    case lookup_kind::present: break;
    case lookup_kind::error:
    default: return reason::cache_check_error;
  }
  try {
    return decide_from_state(check, lookup.value, policy, now);
  } catch (...) {
    return reason::cache_check_error;
  }
}

}  // namespace tds
