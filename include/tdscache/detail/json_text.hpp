// Text-level building blocks of the canonical forms, shared by the JSON-bytes walker
// (src/canonical.cpp) and the Python-object walker (python/_native): string escaping per
// scheme, number formatting (Python repr, ECMAScript), and member-name ordering.
// Not a public API: users call tds::canonicalize / tds::hash_json.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "tdscache/canonical.hpp"

namespace tds::detail {

// Appends "text" as a quoted JSON string. The input is UTF-8, or WTF-8 when it carries lone
// surrogates (legacy only: Python strings may hold them; jcs rejects them before this point).
// legacy: json.dumps(ensure_ascii=True): everything outside ' '..'~' becomes \uXXXX (lowercase),
//         astral code points become surrogate pairs.
// jcs:    RFC 8785: only '"', '\\' and controls below 0x20 are escaped; the rest stays UTF-8.
void append_quoted(std::string& out, std::string_view text, hash_scheme scheme);

// Appends one code point in escaped form, as append_quoted would inside the quotes.
void append_code_point(std::string& out, std::uint32_t cp, hash_scheme scheme);

// repr(float) as CPython prints it: shortest round-trip digits, exponent form when the
// decimal exponent is < -4 or >= 16 ("1e-05", "1e+16"), ".0" on integral values, "-0.0".
// Precondition: finite.
void append_python_float(std::string& out, double value);

// ECMAScript Number.prototype.toString (RFC 8785 section 3.2.2.3). Precondition: finite.
void append_es_number(std::string& out, double value);

// Orders decoded member names: legacy by code point (Python's sorted() on str; WTF-8 byte order
// equals code point order), jcs by UTF-16 code unit (RFC 8785 section 3.2.3).
// Inline: it is the comparator of every object sort.
inline int compare_member_names(std::string_view a, std::string_view b, hash_scheme scheme) noexcept {
  const std::size_t common = a.size() < b.size() ? a.size() : b.size();
  const int c = std::memcmp(a.data(), b.data(), common);
  if (c == 0) return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
  if (scheme == hash_scheme::jcs) {
    std::size_t i = 0;
    while (a[i] == b[i]) ++i;
    const auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    // UTF-16 order differs from code point order in one place only: an astral character
    // (4-byte lead F0-F4, surrogates D800-DBFF in UTF-16) sorts before U+E000..U+FFFF
    // (3-byte leads EE, EF). A difference inside a sequence compares equal lengths.
    if (x >= 0xF0 && (y == 0xEE || y == 0xEF)) return -1;
    if (y >= 0xF0 && (x == 0xEE || x == 0xEF)) return 1;
  }
  return c;
}

// Shortest round-trip decimal digits of |value| (no leading/trailing zeros) and the position of
// the decimal point: value = 0.DIGITS * 10^decimal_point. Returns the digit count. value != 0.
int shortest_digits(double value, char digits[32], int& decimal_point) noexcept;

}  // namespace tds::detail
