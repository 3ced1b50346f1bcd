// Fuzz target: parse_iso8601 on arbitrary text. A parse either fails or gives an instant in
// range; a parsed instant within years 1-9999 prints (format_cached_at) as text that parses
// back to the same instant, to the microsecond.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "tdscache/timestamp.hpp"

namespace {

// 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z in Unix seconds: the years four digits hold.
constexpr std::int64_t first_second = -62135596800;
constexpr std::int64_t past_last_second = 253402300800;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = tds::parse_iso8601(text);
  if (!parsed) return 0;
  TDS_FUZZ_CHECK(parsed->nanos >= 0 && parsed->nanos < 1'000'000'000);
  // Four-digit years with an offset of at most a day: within a day of years 0-9999.
  TDS_FUZZ_CHECK(parsed->seconds >= first_second - 366 * 86400 - 86400);
  TDS_FUZZ_CHECK(parsed->seconds < past_last_second + 86400);
  if (parsed->seconds < first_second || parsed->seconds >= past_last_second) return 0;

  const std::string printed = tds::format_cached_at(*parsed);
  const auto back = tds::parse_iso8601(printed);
  TDS_FUZZ_CHECK(back.has_value());
  TDS_FUZZ_CHECK(back->seconds == parsed->seconds);
  TDS_FUZZ_CHECK(back->nanos == parsed->nanos / 1000 * 1000);
  return 0;
}
