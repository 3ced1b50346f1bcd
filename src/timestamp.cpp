// ISO-8601 parsing and formatting for instants (see timestamp.hpp for the accepted forms).
// Calendar arithmetic goes through std::chrono's civil calendar, so leap years are not
// re-derived here. Nothing in this file allocates except format_cached_at's result.
#include "tdscache/timestamp.hpp"

#include <chrono>
#include <cstdio>

namespace tds {
namespace {

// A forward-only reader over the text; every read checks bounds, so a short input is
// just a failed parse.
class cursor {
 public:
  explicit cursor(std::string_view text) noexcept : text_(text) {}

  bool at_end() const noexcept { return pos_ == text_.size(); }

  bool take(char c) noexcept {
    if (at_end() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  // Exactly `count` ASCII digits, as a number.
  bool digits(int count, int& out) noexcept {
    int value = 0;
    for (int i = 0; i < count; ++i) {
      if (at_end() || !is_digit(text_[pos_])) return false;
      value = value * 10 + (text_[pos_++] - '0');
    }
    out = value;
    return true;
  }

  // One or more digits after a decimal sign; the first nine make nanoseconds, the rest are
  // read and dropped (truncation, as the header promises).
  bool fraction(std::int32_t& nanos) noexcept {
    std::int32_t value = 0;
    int used = 0;
    while (!at_end() && is_digit(text_[pos_])) {
      if (used < 9) {
        value = value * 10 + (text_[pos_] - '0');
        ++used;
      }
      ++pos_;
    }
    if (used == 0) return false;
    for (int i = used; i < 9; ++i) value *= 10;
    nanos = value;
    return true;
  }

 private:
  static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

  std::string_view text_;
  std::size_t pos_ = 0;
};

// Offset east of UTC in seconds: "Z", "+HH", "+HHMM" or "+HH:MM" (or '-').
bool read_offset(cursor& in, std::int64_t& offset_seconds) noexcept {
  if (in.take('Z') || in.take('z')) {
    offset_seconds = 0;
    return true;
  }
  int sign = 0;
  if (in.take('+')) sign = 1;
  else if (in.take('-')) sign = -1;
  else return false;

  int hours = 0, minutes = 0;
  if (!in.digits(2, hours)) return false;
  if (!in.at_end()) {
    in.take(':');
    if (!in.digits(2, minutes)) return false;
  }
  if (hours > 23 || minutes > 59) return false;
  offset_seconds = sign * (hours * 3600 + minutes * 60);
  return true;
}

}  // namespace

std::optional<instant> parse_iso8601(std::string_view text) noexcept {
  cursor in(text);
  int year = 0, month = 0, day = 0;
  if (!in.digits(4, year) || !in.take('-') || !in.digits(2, month) || !in.take('-') ||
      !in.digits(2, day)) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year{year},
                                         std::chrono::month{static_cast<unsigned>(month)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;

  int hour = 0, minute = 0, second = 0;
  std::int32_t nanos = 0;
  std::int64_t offset_seconds = 0;
  if (!in.at_end()) {
    if (!in.take('T') && !in.take(' ')) return std::nullopt;
    if (!in.digits(2, hour) || !in.take(':') || !in.digits(2, minute)) return std::nullopt;
    if (in.take(':')) {
      if (!in.digits(2, second)) return std::nullopt;
      if ((in.take('.') || in.take(',')) && !in.fraction(nanos)) return std::nullopt;
    }
    if (!in.at_end() && !read_offset(in, offset_seconds)) return std::nullopt;
    if (!in.at_end()) return std::nullopt;
  }
  if (hour > 23 || minute > 59 || second > 60) return std::nullopt;

  const std::int64_t days = std::chrono::sys_days{date}.time_since_epoch().count();
  const std::int64_t local = days * 86400 + hour * 3600 + minute * 60 + second;
  return instant{local - offset_seconds, nanos};
}

instant now_utc() noexcept {
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  const auto whole = std::chrono::floor<std::chrono::seconds>(since_epoch);
  const auto rest = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - whole);
  return instant{whole.count(), static_cast<std::int32_t>(rest.count())};
}

std::string format_cached_at(instant t) {
  // floor division, so instants before 1970 land on the right day
  std::int64_t days = t.seconds / 86400;
  std::int64_t in_day = t.seconds % 86400;
  if (in_day < 0) {
    in_day += 86400;
    --days;
  }
  const std::chrono::year_month_day date{std::chrono::sys_days{std::chrono::days{days}}};
  const int micros = static_cast<int>(t.nanos / 1000);

  char text[64];
  int length = std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d",
                             static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                             static_cast<unsigned>(date.day()), static_cast<int>(in_day / 3600),
                             static_cast<int>(in_day / 60 % 60), static_cast<int>(in_day % 60));
  if (micros != 0) {
    length += std::snprintf(text + length, sizeof text - static_cast<std::size_t>(length),
                            ".%06d", micros);
  }
  return std::string(text, static_cast<std::size_t>(length));
}

}  // namespace tds
