// ISO-8601 text -> UTC instants, and the cached_at text the legacy service writes.
// Pure: no I/O, no allocation when parsing. Which timestamp wins a comparison is decided in
// decision.hpp, not here.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tds {

// A UTC instant: seconds since the Unix epoch plus nanoseconds in [0, 1e9). Totally ordered.
struct instant {
  std::int64_t seconds = 0;
  std::int32_t nanos = 0;
  friend auto operator<=>(const instant&, const instant&) = default;
};

// Accepts what Zoho and the legacy service write:
//   "2025-11-13T08:30:00+0300", "...+03:00", "...+03", "...Z", "...-0530",
//   fractional seconds of any length (digits beyond nanoseconds are truncated),
//   date-only "2025-11-13" (midnight UTC), 'T' or ' ' between date and time,
//   optional seconds ("2025-11-13T08:30"). No offset means UTC.
// Ranges are checked: month 1-12, day within the month (leap years included), hour 0-23,
// minute 0-59, second 0-60 (a leap second counts as the next minute's :00), offset up to
// +-23:59. Anything else, including trailing text, gives nullopt.
std::optional<instant> parse_iso8601(std::string_view text) noexcept;

instant now_utc() noexcept;  // the system clock

// What Python's datetime.utcnow().isoformat() prints for t: "2025-11-13T08:35:21.123456", UTC,
// no offset, microseconds truncated, and no fraction at all when the microseconds are 0
// ("2025-11-13T08:35:21"), exactly as Python omits it. parse_iso8601 reads both forms.
std::string format_cached_at(instant t);

}  // namespace tds
