// The ten decision rules (see decision.hpp for the table). Everything here is pure; the only
// allocation is the reference decoder's, for values the fast scanner leaves to it, and its
// failures turn into a sync, never into a skip.
#include "tdscache/decision.hpp"

#include <array>
#include <cstring>
#include <limits>
#include <new>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "tdscache/state.hpp"

namespace tds {
namespace {

constexpr std::array<std::string_view, reason_count> reason_names = {
    "forced_sync",         "no_id",           "cache_check_error", "no_cache_entry",
    "cache_entry_corrupt", "hash_scheme_changed", "content_changed", "cache_expired",
    "timestamp_newer",     "unchanged",
};

// Compares the stored hex text with the digest's bytes directly: any case, no allocation.
// Text that is not 64 hex digits never matches, which means "changed", which means sync.
bool same_digest(std::string_view stored_hex, const digest& d) noexcept {
  if (stored_hex.size() != d.bytes.size() * 2) return false;
#if defined(__SSE2__)
  // Every entity a sync skips comes through here, so 16 digits a step: the digest's bytes
  // become lowercase hex, which must equal the stored text with bit 0x20 set. That bit maps
  // 'A'-'F' onto 'a'-'f' and leaves digits and 'a'-'f' alone; the only other bytes it could
  // map onto a hex digit are 0x10-0x19 (onto '0'-'9'), and those, like every byte from 0x80
  // on, are below '0' as signed bytes, which fails the match.
  const __m128i low_nibble = _mm_set1_epi8(0x0f);
  const __m128i nine = _mm_set1_epi8(9);
  const __m128i zero_char = _mm_set1_epi8('0');
  const __m128i letter_gap = _mm_set1_epi8('a' - '0' - 10);
  const __m128i case_bit = _mm_set1_epi8(0x20);
  const auto to_hex = [&](__m128i nibbles) {
    const __m128i letters = _mm_and_si128(_mm_cmpgt_epi8(nibbles, nine), letter_gap);
    return _mm_add_epi8(_mm_add_epi8(nibbles, zero_char), letters);
  };
  const auto matches = [&](__m128i expected, const char* text) {
    const __m128i stored = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text));
    const __m128i same = _mm_cmpeq_epi8(_mm_or_si128(stored, case_bit), expected);
    const __m128i below = _mm_cmplt_epi8(stored, zero_char);
    return _mm_movemask_epi8(_mm_andnot_si128(below, same)) == 0xffff;
  };
  for (std::size_t half = 0; half < 2; ++half) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d.bytes.data() + 16 * half));
    const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), low_nibble);
    const __m128i low = _mm_and_si128(bytes, low_nibble);
    const char* text = stored_hex.data() + 32 * half;
    if (!matches(to_hex(_mm_unpacklo_epi8(high, low)), text) ||
        !matches(to_hex(_mm_unpackhi_epi8(high, low)), text + 16)) {
      return false;
    }
  }
  return true;
#else
  // An early exit, on purpose: GCC vectorizes an OR-accumulating loop into byte-by-byte word
  // assembly that costs several times this one.
  for (std::size_t i = 0; i < d.bytes.size(); ++i) {
    const unsigned high = detail::hex_digit_values[static_cast<unsigned char>(stored_hex[2 * i])];
    const unsigned low = detail::hex_digit_values[static_cast<unsigned char>(stored_hex[2 * i + 1])];
    if ((high | low) > 0xf || ((high << 4) | low) != d.bytes[i]) return false;
  }
  return true;
#endif
}

// now - max_age, saturating, so a huge or negative max age cannot wrap around.
instant expiry_cutoff(instant now, std::int64_t max_age_seconds) noexcept {
  constexpr auto lowest = std::numeric_limits<std::int64_t>::min();
  constexpr auto highest = std::numeric_limits<std::int64_t>::max();
  if (max_age_seconds > 0 && now.seconds < lowest + max_age_seconds) return {lowest, 0};
  if (max_age_seconds < 0 && now.seconds > highest + max_age_seconds) return {highest, 0};
  return {now.seconds - max_age_seconds, now.nanos};
}

// parse_iso8601 with a one-entry memo (per thread): a commit writes one cached_at for its
// whole batch, so the entries a check reads one after another mostly carry the same text.
std::optional<instant> parse_cached_at(std::string_view text) noexcept {
  struct memo {
    std::array<char, 40> text{};
    std::size_t size = 0;
    bool valid = false;
    std::optional<instant> value;
  };
  thread_local memo last;
  if (last.valid && text.size() == last.size && std::memcmp(text.data(), last.text.data(), text.size()) == 0) {
    return last.value;
  }
  const std::optional<instant> value = parse_iso8601(text);
  if (text.size() <= last.text.size()) {
    std::memcpy(last.text.data(), text.data(), text.size());
    last.size = text.size();
    last.value = value;
    last.valid = true;
  }
  return value;
}

bool is_expired(std::string_view cached_at, const decision_policy& policy, instant now) noexcept {
  if (policy.max_age_seconds == 0) return false;
  const std::optional<instant> cached = parse_cached_at(cached_at);
  if (!cached) return true;  // when in doubt, sync
  return *cached < expiry_cutoff(now, policy.max_age_seconds);
}

// Rules 4 (marker) to 10 over a decoded state. Views only: nothing here allocates.
reason decide_from_view(const entity_check& check, const detail::state_view& state,
                        const decision_policy& policy, instant now) noexcept {
  // A commit that lost the conflict rule leaves this marker instead of deleting the key (see
  // docs/commit-protocol.md): it stands for no entry at all.
  if (state.content_hash.find_first_not_of('0') == std::string_view::npos) return reason::no_cache_entry;
  if (state.scheme.value_or(hash_scheme::legacy) != check.scheme) return reason::hash_scheme_changed;
  if (!same_digest(state.content_hash, check.content_digest)) return reason::content_changed;
  if (is_expired(state.cached_at, policy, now)) return reason::cache_expired;
  if (is_timestamp_newer(check.last_modified_time, state.last_modified_time)) return reason::timestamp_newer;
  return reason::unchanged;
}

// The reference decoder's answer: the same rules over the DOM-decoded state, or its error.
// Out of line, so its state and view are not zeroed on the fast path's stack frame too
// (measured: that zeroing was two thirds of decide_from_state's time).
[[gnu::noinline]] reason decide_from_dom(const entity_check& check, std::string_view value,
                                         const decision_policy& policy, instant now) {
  result<entity_state> decoded = detail::decode_state_dom(value);
  if (!decoded) {
    // Running out of memory says nothing about the entry; report it as the check failing.
    const status code = decoded.code();
    return code == status::out_of_memory || code == status::internal ? reason::cache_check_error
                                                                     : reason::cache_entry_corrupt;
  }
  const entity_state& s = decoded.value();
  detail::state_view view;
  view.content_hash = s.content_hash;
  view.scheme = s.scheme;
  view.cached_at = s.cached_at;
  if (s.last_modified_time) view.last_modified_time = *s.last_modified_time;
  return decide_from_view(check, view, policy, now);
}

reason decide_from_state(const entity_check& check, std::string_view value,
                         const decision_policy& policy, instant now) {
  // The common case, a value tdscache or the legacy service wrote, decodes into views of the
  // value; anything else goes through the reference decoder (same state, or its error).
  if (detail::state_view view; detail::scan_state(value, view)) {
    return decide_from_view(check, view, policy, now);
  }
  return decide_from_dom(check, value, policy, now);
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
  // Equal text is never newer, whether it parses (equal instants) or not (equal strings);
  // it is what an unchanged entity sends, and it saves two parses.
  if (*incoming == *cached) return false;
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
