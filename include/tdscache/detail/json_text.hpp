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
#include "tdscache/detail/hex.hpp"

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

// ---- Pieces every walker shares (src/canonical.cpp, src/canonical_direct.cpp, python/src) ------
// Writers store through a raw pointer into room the caller reserved, and return the new end.

inline char* put_u_escape(char* w, std::uint32_t unit) noexcept {  // \uXXXX, lowercase hex
  static constexpr char hex[] = "0123456789abcdef";
  w[0] = '\\';
  w[1] = 'u';
  w[2] = hex[(unit >> 12) & 0xF];
  w[3] = hex[(unit >> 8) & 0xF];
  w[4] = hex[(unit >> 4) & 0xF];
  w[5] = hex[unit & 0xF];
  return w + 6;
}

// The two-character escapes both schemes write (Python's json and RFC 8785 agree); 0 otherwise.
inline char short_escape(std::uint32_t cp) noexcept {
  switch (cp) {
    case '"': return '"';
    case '\\': return '\\';
    case '\n': return 'n';
    case '\r': return 'r';
    case '\t': return 't';
    case '\b': return 'b';
    case '\f': return 'f';
    default: return 0;
  }
}

// One code point below 0x80 as both schemes write it: the short escapes, \u00XX for the other
// controls (and for DEL under legacy's ensure_ascii), the character itself otherwise.
inline char* put_ascii(char* w, std::uint32_t c, bool legacy) noexcept {
  if (const char e = short_escape(c)) {
    w[0] = '\\';
    w[1] = e;
    return w + 2;
  }
  if (c < 0x20 || (legacy && c == 0x7F)) return put_u_escape(w, c);
  *w = static_cast<char>(c);
  return w + 1;
}

inline char* put_utf8(char* w, std::uint32_t cp) noexcept {  // 1 to 4 bytes; WTF-8 for surrogates
  if (cp < 0x80) {
    w[0] = static_cast<char>(cp);
    return w + 1;
  }
  if (cp < 0x800) {
    w[0] = static_cast<char>(0xC0 | (cp >> 6));
    w[1] = static_cast<char>(0x80 | (cp & 0x3F));
    return w + 2;
  }
  if (cp < 0x10000) {
    w[0] = static_cast<char>(0xE0 | (cp >> 12));
    w[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    w[2] = static_cast<char>(0x80 | (cp & 0x3F));
    return w + 3;
  }
  w[0] = static_cast<char>(0xF0 | (cp >> 18));
  w[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
  w[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
  w[3] = static_cast<char>(0x80 | (cp & 0x3F));
  return w + 4;
}

// The code point of the UTF-8 (or WTF-8) sequence at p, lead byte >= 0x80; advances p. The
// input was validated (by simdjson, or it comes from a Python str): the lead byte decides.
inline std::uint32_t decode_utf8(const char*& p) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  const std::uint32_t c = u[0];
  if (c < 0xE0) {
    p += 2;
    return (c & 0x1F) << 6 | (u[1] & 0x3F);
  }
  if (c < 0xF0) {
    p += 3;
    return (c & 0x0F) << 12 | (u[1] & 0x3F) << 6 | (u[2] & 0x3F);
  }
  p += 4;
  return (c & 0x07) << 18 | (u[1] & 0x3F) << 12 | (u[2] & 0x3F) << 6 | (u[3] & 0x3F);
}

// decode_escape's failures. On either, p is left at the backslash of the faulty escape.
inline constexpr std::int32_t escape_bad_hex = -1;  // \u not followed by four hex digits
inline constexpr std::int32_t escape_unknown = -2;  // a backslash before any other character

// The JSON escape sequence at p (p[0] == '\\') as a code point, a surrogate pair joined into
// one; advances p past it. A lone surrogate comes back as itself: legacy keeps it (WTF-8),
// jcs rejects it. Reads at most 12 bytes from p: callers' buffers are padded.
inline std::int32_t decode_escape(const char*& p) noexcept {
  auto unit = [](const char* h) -> std::int32_t {
    const int a = hex_value(h[0]), b = hex_value(h[1]), c = hex_value(h[2]), d = hex_value(h[3]);
    return (a | b | c | d) < 0 ? escape_bad_hex : (a << 12 | b << 8 | c << 4 | d);
  };
  std::int32_t cp;
  switch (p[1]) {
    case '"': cp = '"'; break;
    case '\\': cp = '\\'; break;
    case '/': cp = '/'; break;
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u': {
      cp = unit(p + 2);
      if (cp < 0) return escape_bad_hex;
      p += 6;
      if (cp >= 0xD800 && cp <= 0xDBFF && p[0] == '\\' && p[1] == 'u') {
        const std::int32_t low = unit(p + 2);
        if (low < 0) return escape_bad_hex;
        if (low >= 0xDC00 && low <= 0xDFFF) {
          p += 6;
          return 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
      }
      return cp;
    }
    default: return escape_unknown;
  }
  p += 2;
  return cp;
}

// Shortest round-trip decimal digits of |value| (no leading/trailing zeros) and the position of
// the decimal point: value = 0.DIGITS * 10^decimal_point. Returns the digit count. value != 0.
int shortest_digits(double value, char digits[32], int& decimal_point) noexcept;

}  // namespace tds::detail
