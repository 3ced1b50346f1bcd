// Fuzz target: cached state values (what a Redis GET returns, written by anyone) through
// decode_state and the decision rules. A value that does not decode must be decided
// cache_entry_corrupt (a sync); one that decodes must survive an encode/decode round trip;
// and `unchanged` (the only skip) needs a stored hash equal to the incoming digest. The fast
// scanner (detail::scan_state) must never accept what the DOM reference refuses, and what it
// accepts must be exactly the state the reference decodes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "tdscache/decision.hpp"
#include "tdscache/state.hpp"

namespace {

bool same_state(const tds::entity_state& a, const tds::entity_state& b) {
  return a.entity_type == b.entity_type && a.entity_id == b.entity_id && a.local_id == b.local_id &&
         a.content_hash == b.content_hash && a.last_modified_time == b.last_modified_time &&
         a.cached_at == b.cached_at && a.sync_count == b.sync_count && a.scheme == b.scheme;
}

tds::reason decide_for(const tds::digest& d, std::string_view value,
                       std::optional<std::string_view> modified) {
  tds::entity_check check;
  check.entity_type = "product";
  check.entity_id = "1";
  check.content_digest = d;
  check.last_modified_time = modified;
  tds::cached_lookup lookup{tds::lookup_kind::present, value};
  // A fixed clock: 2025-01-01T00:00:00Z, with the default one-day max age.
  return tds::decide(check, lookup, tds::decision_policy{}, tds::instant{1735689600, 0});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view value(reinterpret_cast<const char*>(data), size);
  if (tds::detail::state_view view; tds::detail::scan_state(value, view)) {
    auto reference = tds::detail::decode_state_dom(value);
    TDS_FUZZ_CHECK(reference.ok());
    TDS_FUZZ_CHECK(same_state(tds::detail::to_entity_state(view), reference.value()));
  }
  auto decoded = tds::decode_state(value);
  const tds::digest zero{};
  const tds::reason against_zero = decide_for(zero, value, std::nullopt);
  if (!decoded.ok()) {
    tds::fuzz::check_error(decoded.error(), size);
    TDS_FUZZ_CHECK(decoded.code() == tds::status::json_malformed ||
                   decoded.code() == tds::status::invalid_argument ||
                   decoded.code() == tds::status::out_of_memory);
    TDS_FUZZ_CHECK(against_zero == tds::reason::cache_entry_corrupt ||
                   (decoded.code() == tds::status::out_of_memory &&
                    against_zero == tds::reason::cache_check_error));
    return 0;
  }
  const tds::entity_state& state = decoded.value();
  auto stored = tds::digest::from_hex(state.content_hash);
  TDS_FUZZ_CHECK(stored.has_value());  // decode_state accepts only 64 hex digits
  if (against_zero == tds::reason::unchanged) TDS_FUZZ_CHECK(*stored == zero);

  // With the stored digest itself, the content rule cannot fire.
  const tds::reason against_stored = decide_for(*stored, value, state.last_modified_time);
  TDS_FUZZ_CHECK(against_stored != tds::reason::content_changed);
  TDS_FUZZ_CHECK(against_stored != tds::reason::cache_entry_corrupt);
  // A digest that differs in one bit always syncs.
  tds::digest flipped = *stored;
  flipped.bytes[31] ^= 1;
  TDS_FUZZ_CHECK(decide_for(flipped, value, std::nullopt) != tds::reason::unchanged);

  auto again = tds::decode_state(tds::encode_state(state));
  TDS_FUZZ_CHECK(again.ok());
  TDS_FUZZ_CHECK(same_state(state, again.value()));
  return 0;
}
