// Tests for the decision rules (decision.hpp): every reason is reachable, the rules apply in
// their pinned order, and doubt (bad values, bad timestamps) always ends in a sync.
// Values are built with encode_state, so these tests need no Redis.
#include "tdscache/decision.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

#include "tdscache/state.hpp"

namespace {

using tds::cached_lookup;
using tds::decision_policy;
using tds::entity_check;
using tds::hash_scheme;
using tds::instant;
using tds::lookup_kind;
using tds::reason;

// Kept local so these tests do not depend on digest::hex's implementation.
std::string hex_of(const tds::digest& d) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const auto byte : d.bytes) {
    out.push_back(digits[byte >> 4]);
    out.push_back(digits[byte & 0xf]);
  }
  return out;
}

tds::digest digest_of(std::uint8_t seed) {
  tds::digest d;
  for (std::size_t i = 0; i < d.bytes.size(); ++i) {
    d.bytes[i] = static_cast<std::uint8_t>(seed * 31 + i * 7 + 0xa0);
  }
  return d;
}

instant at(std::string_view iso) { return tds::parse_iso8601(iso).value(); }

// A fresh, matching, legacy entry and the check that matches it: decide() says unchanged.
struct scenario {
  tds::entity_state state;
  entity_check check;
  decision_policy policy;
  instant now = at("2025-11-13T09:00:00Z");

  scenario() {
    state.entity_type = "product";
    state.entity_id = "2646610000000113574";
    state.local_id = "12345";
    state.content_hash = hex_of(digest_of(1));
    state.last_modified_time = "2025-11-13T08:30:00+0300";
    state.cached_at = "2025-11-13T08:35:21.123456";
    state.sync_count = 3;
    check.entity_type = "product";
    check.entity_id = "2646610000000113574";
    check.content_digest = digest_of(1);
    check.last_modified_time = "2025-11-13T08:30:00+0300";
  }

  reason decide_present() const {
    const std::string value = tds::encode_state(state);
    return tds::decide(check, cached_lookup{lookup_kind::present, value}, policy, now);
  }
  reason decide_value(std::string_view value) const {
    return tds::decide(check, cached_lookup{lookup_kind::present, value}, policy, now);
  }
  reason decide_kind(lookup_kind kind) const {
    return tds::decide(check, cached_lookup{kind, {}}, policy, now);
  }
};

TEST(ReasonNames, AreThePinnedNamesInOrderAndParseBack) {
  const char* names[] = {"forced_sync",     "no_id",         "cache_check_error",
                         "no_cache_entry",  "cache_entry_corrupt", "hash_scheme_changed",
                         "content_changed", "cache_expired", "timestamp_newer", "unchanged"};
  ASSERT_EQ(std::size(names), static_cast<std::size_t>(tds::reason_count));
  for (int i = 0; i < tds::reason_count; ++i) {
    EXPECT_EQ(tds::reason_name(static_cast<reason>(i)), names[i]);
    EXPECT_EQ(tds::parse_reason(names[i]), static_cast<reason>(i));
  }
  EXPECT_EQ(tds::reason_name(static_cast<reason>(10)), "");
  EXPECT_EQ(tds::reason_name(static_cast<reason>(-1)), "");
  EXPECT_FALSE(tds::parse_reason("Unchanged"));
  EXPECT_FALSE(tds::parse_reason(""));
}

TEST(ReasonNames, OnlyUnchangedSkips) {
  for (int i = 0; i < tds::reason_count; ++i) {
    EXPECT_EQ(tds::should_sync(static_cast<reason>(i)), i != static_cast<int>(reason::unchanged));
  }
  static_assert(!tds::should_sync(reason::unchanged));
  static_assert(static_cast<int>(reason::timestamp_newer) == 8);
}

TEST(Decide, MatchingFreshEntryIsUnchanged) {
  EXPECT_EQ(scenario{}.decide_present(), reason::unchanged);
}

TEST(Decide, ForceWinsOverEveryOtherRule) {
  scenario s;
  s.check.force = true;
  EXPECT_EQ(s.decide_present(), reason::forced_sync);
  EXPECT_EQ(s.decide_value("{corrupt"), reason::forced_sync);
  EXPECT_EQ(s.decide_kind(lookup_kind::error), reason::forced_sync);
  s.check.entity_id = "";
  EXPECT_EQ(s.decide_kind(lookup_kind::missing), reason::forced_sync);
}

TEST(Decide, EmptyIdIsNoIdBeforeTheLookupIsConsidered) {
  scenario s;
  s.check.entity_id = "";
  EXPECT_EQ(s.decide_present(), reason::no_id);
  EXPECT_EQ(s.decide_kind(lookup_kind::error), reason::no_id);
}

TEST(Decide, LookupErrorIsCacheCheckError) {
  scenario s;
  EXPECT_EQ(s.decide_kind(lookup_kind::error), reason::cache_check_error);
  EXPECT_EQ(s.decide_kind(static_cast<lookup_kind>(42)), reason::cache_check_error);
  // The default lookup is an error, so a forgotten lookup never skips.
  EXPECT_EQ(tds::decide(s.check, cached_lookup{}, s.policy, s.now), reason::cache_check_error);
}

TEST(Decide, MissingEntryIsNoCacheEntry) {
  EXPECT_EQ(scenario{}.decide_kind(lookup_kind::missing), reason::no_cache_entry);
}

TEST(Decide, UndecodableValueIsCorrupt) {
  scenario s;
  EXPECT_EQ(s.decide_value(""), reason::cache_entry_corrupt);
  EXPECT_EQ(s.decide_value("{corrupt"), reason::cache_entry_corrupt);
  std::string value = tds::encode_state(s.state);
  value.replace(value.find(s.state.content_hash), 1, "z");
  EXPECT_EQ(s.decide_value(value), reason::cache_entry_corrupt);
}

TEST(Decide, LegacyEntryWithoutSchemeAgainstJcsCheckIsSchemeChanged) {
  scenario s;
  s.check.scheme = hash_scheme::jcs;
  ASSERT_EQ(tds::encode_state(s.state).find("hash_scheme"), std::string::npos);
  EXPECT_EQ(s.decide_present(), reason::hash_scheme_changed);
}

TEST(Decide, SchemeChangeComesBeforeContentChange) {
  scenario s;
  s.state.scheme = hash_scheme::jcs;
  s.check.content_digest = digest_of(2);
  EXPECT_EQ(s.decide_present(), reason::hash_scheme_changed);
}

TEST(Decide, MatchingJcsEntryIsUnchanged) {
  scenario s;
  s.state.scheme = hash_scheme::jcs;
  s.check.scheme = hash_scheme::jcs;
  EXPECT_EQ(s.decide_present(), reason::unchanged);
}

TEST(Decide, DifferentDigestIsContentChanged) {
  scenario s;
  s.check.content_digest = digest_of(2);
  EXPECT_EQ(s.decide_present(), reason::content_changed);
  // One bit in the last byte is enough.
  s.check.content_digest = digest_of(1);
  s.check.content_digest.bytes[31] ^= 1;
  EXPECT_EQ(s.decide_present(), reason::content_changed);
}

TEST(Decide, StoredHashIsComparedCaseInsensitively) {
  scenario s;
  for (char& c : s.state.content_hash) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_NE(s.state.content_hash, hex_of(s.check.content_digest));
  EXPECT_EQ(s.decide_present(), reason::unchanged);
}

TEST(Decide, OnlyTheStoredDigitItselfInEitherCaseMatchesAtEveryPosition) {
  // The hash compare goes 16 digits a step: every byte at every position of the stored hash,
  // over digests holding every nibble in both halves of a byte, must match only when it is
  // the expected digit (either case). Bytes that are no digit make the value corrupt.
  for (const std::uint8_t seed : {0, 1, 7}) {
    scenario s;
    for (std::size_t i = 0; i < s.check.content_digest.bytes.size(); ++i) {
      s.check.content_digest.bytes[i] = static_cast<std::uint8_t>(0x01 + 0x22 * i + seed * 0x11);
    }
    const std::string hex = hex_of(s.check.content_digest);
    for (std::size_t at = 0; at < hex.size(); ++at) {
      for (int b = 0; b < 256; ++b) {
        const char c = static_cast<char>(b);
        s.state.content_hash = hex;
        s.state.content_hash[at] = c;
        const bool same = c == hex[at] || c == static_cast<char>(std::toupper(static_cast<unsigned char>(hex[at])));
        const reason got = s.decide_present();
        if (same) {
          ASSERT_EQ(got, reason::unchanged) << "byte " << b << " at " << at;
        } else {
          ASSERT_NE(got, reason::unchanged) << "byte " << b << " at " << at;
        }
      }
    }
    // And every single bit of the digest.
    s.state.content_hash = hex;
    for (std::size_t bit = 0; bit < 256; ++bit) {
      scenario flipped = s;
      flipped.check.content_digest.bytes[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
      ASSERT_EQ(flipped.decide_present(), reason::content_changed) << "bit " << bit;
    }
  }
}

TEST(Decide, ContentChangeComesBeforeExpiry) {
  scenario s;
  s.check.content_digest = digest_of(2);
  s.state.cached_at = "2020-01-01T00:00:00";
  EXPECT_EQ(s.decide_present(), reason::content_changed);
}

TEST(Decide, EntryOlderThanMaxAgeIsExpired) {
  scenario s;
  s.policy.max_age_seconds = 3600;
  s.state.cached_at = "2025-11-13T07:59:59.999999";  // now is 09:00:00Z
  EXPECT_EQ(s.decide_present(), reason::cache_expired);
  s.state.cached_at = "2025-11-13T08:00:00";  // exactly max_age old: not yet older
  EXPECT_EQ(s.decide_present(), reason::unchanged);
}

TEST(Decide, DefaultMaxAgeIsOneDay) {
  scenario s;
  EXPECT_EQ(s.policy.max_age_seconds, 86400);
  s.state.cached_at = "2025-11-12T08:59:59";
  EXPECT_EQ(s.decide_present(), reason::cache_expired);
  s.state.cached_at = "2025-11-12T09:00:01";
  EXPECT_EQ(s.decide_present(), reason::unchanged);
}

TEST(Decide, ZeroMaxAgeDisablesExpiry) {
  scenario s;
  s.policy.max_age_seconds = 0;
  s.state.cached_at = "1999-01-01T00:00:00";
  EXPECT_EQ(s.decide_present(), reason::unchanged);
  s.state.cached_at = "not a time";
  EXPECT_EQ(s.decide_present(), reason::unchanged);
}

TEST(Decide, UnparseableCachedAtCountsAsExpired) {
  scenario s;
  s.state.cached_at = "yesterday";
  EXPECT_EQ(s.decide_present(), reason::cache_expired);
  s.state.cached_at = "";
  EXPECT_EQ(s.decide_present(), reason::cache_expired);
}

TEST(Decide, ExtremeMaxAgesDoNotOverflow) {
  scenario s;
  s.policy.max_age_seconds = std::numeric_limits<std::int64_t>::max();
  s.state.cached_at = "0001-01-01T00:00:00";
  EXPECT_EQ(s.decide_present(), reason::unchanged);
  s.policy.max_age_seconds = std::numeric_limits<std::int64_t>::min();
  EXPECT_EQ(s.decide_present(), reason::cache_expired);
  s.now = instant{std::numeric_limits<std::int64_t>::min(), 0};
  s.policy.max_age_seconds = 86400;
  EXPECT_EQ(s.decide_present(), reason::unchanged);
}

TEST(Decide, ExpiryComesBeforeTimestampRule) {
  scenario s;
  s.state.cached_at = "2020-01-01T00:00:00";
  s.check.last_modified_time = "2025-11-13T08:31:00+0300";
  EXPECT_EQ(s.decide_present(), reason::cache_expired);
}

TEST(Decide, TimestampsAreComparedAsInstantsAcrossOffsets) {
  scenario s;
  s.state.last_modified_time = "2025-01-01T04:30:00Z";
  s.check.last_modified_time = "2025-01-01T10:00:00+0530";  // the same instant
  EXPECT_EQ(s.decide_present(), reason::unchanged);
  s.check.last_modified_time = "2025-01-01T10:00:01+0530";
  EXPECT_EQ(s.decide_present(), reason::timestamp_newer);
}

TEST(Decide, OlderIncomingTimestampIsNotNewerEvenWhenItSortsLaterAsText) {
  scenario s;
  s.state.last_modified_time = "2025-01-01T05:00:00Z";
  s.check.last_modified_time = "2025-01-01T10:00:00+0530";  // 04:30Z, but "10" > "05" as text
  EXPECT_EQ(s.decide_present(), reason::unchanged);
}

TEST(Decide, AbsentIncomingTimestampNeverFiresTheRule) {
  scenario s;
  s.check.last_modified_time.reset();
  EXPECT_EQ(s.decide_present(), reason::unchanged);
  s.state.last_modified_time.reset();
  EXPECT_EQ(s.decide_present(), reason::unchanged);
}

TEST(Decide, IncomingTimestampWithNoCachedOneIsNewer) {
  scenario s;
  s.state.last_modified_time.reset();
  EXPECT_EQ(s.decide_present(), reason::timestamp_newer);
}

TEST(Decide, UnparseableTimestampsAreNewerWhenTheTextDiffers) {
  scenario s;
  s.state.last_modified_time = "garbage";
  s.check.last_modified_time = "garbage";
  EXPECT_EQ(s.decide_present(), reason::unchanged);
  s.check.last_modified_time = "garbage2";
  EXPECT_EQ(s.decide_present(), reason::timestamp_newer);
  // One side parses, the other does not: the strings differ, so sync.
  s.check.last_modified_time = "2020-01-01T00:00:00Z";
  EXPECT_EQ(s.decide_present(), reason::timestamp_newer);
  s.state.last_modified_time = "2020-01-01T00:00:00Z";
  s.check.last_modified_time = "1/1/2020";
  EXPECT_EQ(s.decide_present(), reason::timestamp_newer);
}

TEST(TimestampNewer, FollowsRuleNineOnItsOwn) {
  EXPECT_FALSE(tds::is_timestamp_newer(std::nullopt, std::nullopt));
  EXPECT_FALSE(tds::is_timestamp_newer(std::nullopt, "2025-01-01"));
  EXPECT_TRUE(tds::is_timestamp_newer("2025-01-01", std::nullopt));
  EXPECT_TRUE(tds::is_timestamp_newer("2025-01-02", "2025-01-01T23:59:59.999Z"));
  EXPECT_FALSE(tds::is_timestamp_newer("2025-01-01T23:59:59.999Z", "2025-01-02"));
  EXPECT_FALSE(tds::is_timestamp_newer("2025-01-01", "2025-01-01T00:00:00+00:00"));
}

TEST(Decide, IsNoexcept) {
  static_assert(noexcept(tds::decide(entity_check{}, cached_lookup{}, decision_policy{}, instant{})));
}

}  // namespace

namespace {

// A conflicting commit retracts the state with a marker (an all-zero content_hash) instead of
// deleting the key; see docs/commit-protocol.md. It must read as "nothing cached", and never
// match a digest, even a digest of all zeros.
TEST(Decide, RetractionMarkerReadsAsNoCacheEntry) {
  scenario s;
  s.state.content_hash = std::string(64, '0');
  EXPECT_EQ(s.decide_present(), reason::no_cache_entry);
  s.check.content_digest = tds::digest{};  // all-zero digest: still not a match
  EXPECT_EQ(s.decide_present(), reason::no_cache_entry);
}

}  // namespace
