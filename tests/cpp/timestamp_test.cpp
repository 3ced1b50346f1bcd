// Tests for ISO-8601 parsing and the cached_at format (timestamp.hpp).
// The decision rules that use these instants are tested in decision_test.cpp.
#include "tdscache/timestamp.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using tds::instant;
using tds::parse_iso8601;

instant must_parse(const std::string& text) {
  const auto parsed = parse_iso8601(text);
  EXPECT_TRUE(parsed.has_value()) << "did not parse: " << text;
  return parsed.value_or(instant{});
}

// 2025-01-01T00:00:00Z, computed independently: 55 years of 365 days plus 14 leap days.
constexpr std::int64_t new_year_2025 = (55 * 365 + 14) * 86400LL;

TEST(Timestamp, ParsesUtcDesignatorAsSecondsSinceEpoch) {
  EXPECT_EQ(must_parse("1970-01-01T00:00:00Z"), (instant{0, 0}));
  EXPECT_EQ(must_parse("2025-01-01T00:00:00Z"), (instant{new_year_2025, 0}));
  EXPECT_EQ(must_parse("2025-01-01T00:00:00z"), (instant{new_year_2025, 0}));
}

TEST(Timestamp, CompactOffsetEqualsTheSameInstantInUtc) {
  EXPECT_EQ(must_parse("2025-01-01T10:00:00+0530"), must_parse("2025-01-01T04:30:00Z"));
  EXPECT_EQ(must_parse("2025-11-13T08:30:00+0300"), must_parse("2025-11-13T05:30:00Z"));
}

TEST(Timestamp, ColonOffsetAndHourOnlyOffsetAreAccepted) {
  EXPECT_EQ(must_parse("2025-01-01T10:00:00+05:30"), must_parse("2025-01-01T04:30:00Z"));
  EXPECT_EQ(must_parse("2025-01-01T10:00:00+05"), must_parse("2025-01-01T05:00:00Z"));
  EXPECT_EQ(must_parse("2025-01-01T00:00:00-0530"), must_parse("2025-01-01T05:30:00Z"));
  EXPECT_EQ(must_parse("2025-01-01T00:00:00-05:30"), must_parse("2025-01-01T05:30:00Z"));
}

TEST(Timestamp, NoOffsetMeansUtc) {
  EXPECT_EQ(must_parse("2025-01-01T00:00:00"), (instant{new_year_2025, 0}));
}

TEST(Timestamp, NegativeOffsetCrossesIntoThePreviousYearInUtcTerms) {
  EXPECT_EQ(must_parse("2025-01-01T00:00:00+01:00"), (instant{new_year_2025 - 3600, 0}));
}

TEST(Timestamp, FractionsOfAnyLengthBecomeNanosecondsTruncated) {
  EXPECT_EQ(must_parse("2025-01-01T00:00:00.5Z").nanos, 500'000'000);
  EXPECT_EQ(must_parse("2025-01-01T00:00:00.123456").nanos, 123'456'000);
  EXPECT_EQ(must_parse("2025-01-01T00:00:00.123456789").nanos, 123'456'789);
  EXPECT_EQ(must_parse("2025-01-01T00:00:00.1234567891999").nanos, 123'456'789);
  EXPECT_EQ(must_parse("2025-01-01T00:00:00.999+05:30"),
            (instant{new_year_2025 - 5 * 3600 - 30 * 60, 999'000'000}));
}

TEST(Timestamp, FractionOrdersWithinTheSameSecond) {
  EXPECT_LT(must_parse("2025-01-01T00:00:00.1"), must_parse("2025-01-01T00:00:00.10001"));
}

TEST(Timestamp, DateOnlyIsMidnightUtc) {
  EXPECT_EQ(must_parse("2025-01-01"), (instant{new_year_2025, 0}));
}

TEST(Timestamp, SpaceSeparatorAndMissingSecondsAreAccepted) {
  EXPECT_EQ(must_parse("2025-01-01 04:30:00"), must_parse("2025-01-01T04:30:00Z"));
  EXPECT_EQ(must_parse("2025-01-01T04:30"), must_parse("2025-01-01T04:30:00Z"));
  EXPECT_EQ(must_parse("2025-01-01T10:00+05:30"), must_parse("2025-01-01T04:30:00Z"));
}

TEST(Timestamp, LeapDayIsValidOnlyInLeapYears) {
  EXPECT_TRUE(parse_iso8601("2024-02-29T12:00:00Z"));
  EXPECT_TRUE(parse_iso8601("2000-02-29"));  // divisible by 400
  EXPECT_FALSE(parse_iso8601("2025-02-29T12:00:00Z"));
  EXPECT_FALSE(parse_iso8601("1900-02-29"));  // divisible by 100, not by 400
  EXPECT_EQ(must_parse("2024-03-01"), (instant{must_parse("2024-02-29").seconds + 86400, 0}));
}

TEST(Timestamp, OutOfRangeFieldsAreRejected) {
  for (const char* text : {"2025-00-10", "2025-13-10", "2025-04-31", "2025-01-00", "2025-01-32",
                           "2025-01-01T24:00:00", "2025-01-01T23:60:00", "2025-01-01T23:59:61",
                           "2025-01-01T10:00:00+24:00", "2025-01-01T10:00:00+05:60"}) {
    EXPECT_FALSE(parse_iso8601(text)) << text;
  }
}

TEST(Timestamp, LeapSecondCountsAsTheNextMinute) {
  EXPECT_EQ(must_parse("2016-12-31T23:59:60Z"), must_parse("2017-01-01T00:00:00Z"));
}

TEST(Timestamp, GarbageIsRejected) {
  for (const char* text :
       {"", "now", "2025", "2025-1-01", "25-01-01", "2025/01/01", "2025-01-01T", "2025-01-01T10",
        "2025-01-01T10:0", "2025-01-01T10:00:0", "2025-01-01X10:00:00", "2025-01-01T10:00:00.",
        "2025-01-01T10:00:00+", "2025-01-01T10:00:00+5", "2025-01-01T10:00:00+05:3",
        "2025-01-01T10:00:00+05:", "2025-01-01T10:00:00ZZ", "2025-01-01T10:00:00 ",
        " 2025-01-01T10:00:00", "2025-01-01Z", "2025-01-01T10:00.5", "2025-01-01T10:00:00GMT",
        "١٢٣٤-01-01"}) {
    EXPECT_FALSE(parse_iso8601(text)) << text;
  }
  EXPECT_FALSE(parse_iso8601(std::string_view("2025-01-01T10:00:00\0", 20)));
}

TEST(Timestamp, OrderingFollowsInstantsWhereStringComparisonIsWrong) {
  // As text, "10:00:00+0530" sorts after "05:00:00Z"; as instants it is 30 minutes earlier.
  const std::string earlier = "2025-01-01T10:00:00+0530";
  const std::string later = "2025-01-01T05:00:00Z";
  ASSERT_GT(earlier, later);
  EXPECT_LT(must_parse(earlier), must_parse(later));
}

TEST(Timestamp, FormatCachedAtWritesMicrosecondsLikePythonIsoformat) {
  EXPECT_EQ(tds::format_cached_at(instant{new_year_2025 + 8 * 3600 + 35 * 60 + 21, 123'456'789}),
            "2025-01-01T08:35:21.123456");
  EXPECT_EQ(tds::format_cached_at(instant{new_year_2025, 1'000}), "2025-01-01T00:00:00.000001");
}

TEST(Timestamp, FormatCachedAtOmitsAZeroFractionLikePython) {
  EXPECT_EQ(tds::format_cached_at(instant{new_year_2025, 0}), "2025-01-01T00:00:00");
  EXPECT_EQ(tds::format_cached_at(instant{new_year_2025, 999}), "2025-01-01T00:00:00");
}

TEST(Timestamp, FormatCachedAtHandlesInstantsBeforeTheEpoch) {
  EXPECT_EQ(tds::format_cached_at(instant{-1, 0}), "1969-12-31T23:59:59");
}

TEST(Timestamp, FormatCachedAtRoundTripsThroughParseAtMicrosecondPrecision) {
  for (const instant t : {instant{0, 0}, instant{new_year_2025, 0}, instant{1'731'486'921, 123'456'000},
                          instant{951'782'400, 1'000}, instant{4'102'444'799, 999'999'000}}) {
    EXPECT_EQ(must_parse(tds::format_cached_at(t)), t) << tds::format_cached_at(t);
  }
}

TEST(Timestamp, NowUtcIsCloseToTheSystemClockAndFormatsBack) {
  const instant now = tds::now_utc();
  EXPECT_GT(now.seconds, new_year_2025);
  EXPECT_GE(now.nanos, 0);
  EXPECT_LT(now.nanos, 1'000'000'000);
  const instant round_trip = must_parse(tds::format_cached_at(now));
  EXPECT_EQ(round_trip.seconds, now.seconds);
  EXPECT_EQ(round_trip.nanos, now.nanos / 1000 * 1000);
}

}  // namespace
