// Escaping, number formatting and member ordering for the canonical forms (see
// include/tdscache/detail/json_text.hpp). Pure functions over buffers: no parsing, no hashing.
#include "tdscache/detail/json_text.hpp"

#include <charconv>
#include <cmath>
#include <cstring>

namespace tds::detail {
namespace {

void append_u_escape(std::string& out, std::uint32_t unit) {
  char buf[6];
  out.append(buf, static_cast<std::size_t>(put_u_escape(buf, unit) - buf));
}

void append_utf8(std::string& out, std::uint32_t cp) {
  char buf[4];
  out.append(buf, static_cast<std::size_t>(put_utf8(buf, cp) - buf));
}

}  // namespace

void append_code_point(std::string& out, std::uint32_t cp, hash_scheme scheme) {
  if (char e = short_escape(cp)) {
    out.push_back('\\');
    out.push_back(e);
    return;
  }
  if (cp < 0x20) {
    append_u_escape(out, cp);
    return;
  }
  if (scheme == hash_scheme::jcs) {
    append_utf8(out, cp);
    return;
  }
  if (cp < 0x7F) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x10000) {
    append_u_escape(out, cp);  // DEL and lone surrogates included, as ensure_ascii does
  } else {
    std::uint32_t v = cp - 0x10000;
    append_u_escape(out, 0xD800 | (v >> 10));
    append_u_escape(out, 0xDC00 | (v & 0x3FF));
  }
}

void append_quoted(std::string& out, std::string_view text, hash_scheme scheme) {
  out.push_back('"');
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    // Copy the longest run that needs no escaping in one append.
    const char* run = p;
    auto byte = [&p] { return static_cast<unsigned char>(*p); };
    if (scheme == hash_scheme::legacy) {
      while (p < end && byte() >= 0x20 && byte() < 0x7F && *p != '"' && *p != '\\') ++p;
    } else {
      while (p < end && byte() >= 0x20 && *p != '"' && *p != '\\') ++p;
    }
    out.append(run, static_cast<std::size_t>(p - run));
    if (p >= end) break;
    if (byte() < 0x80) {
      append_code_point(out, byte(), scheme);
      ++p;
    } else {
      append_code_point(out, decode_utf8(p), scheme);
    }
  }
  out.push_back('"');
}

int shortest_digits(double value, char digits[32], int& decimal_point) noexcept {
  // to_chars without a precision gives the shortest representation that round-trips,
  // picking the closest one on ties: the same digits as CPython's repr and ECMAScript.
  char buf[40];
  auto res = std::to_chars(buf, buf + sizeof buf, std::fabs(value), std::chars_format::scientific);
  const char* p = buf;
  int n = 0;
  while (p < res.ptr && *p != 'e') {
    if (*p != '.') digits[n++] = *p;
    ++p;
  }
  int exp10 = 0;
  if (p < res.ptr) std::from_chars(p + 1 + (p[1] == '+'), res.ptr, exp10);
  while (n > 1 && digits[n - 1] == '0') --n;
  decimal_point = exp10 + 1;
  return n;
}

namespace {

void append_exponent(std::string& out, int e, int min_width) {
  out.push_back(e < 0 ? '-' : '+');
  char buf[8];
  auto res = std::to_chars(buf, buf + sizeof buf, e < 0 ? -e : e);
  for (int w = static_cast<int>(res.ptr - buf); w < min_width; ++w) out.push_back('0');
  out.append(buf, res.ptr);
}

}  // namespace

namespace {

// The four shapes a shortest-digits decimal takes in both formats. d holds n digits and the
// value is 0.d * 10^point.
void append_scientific(std::string& out, const char* d, int n, int point, int min_exponent_width) {
  out.push_back(d[0]);
  if (n > 1) {
    out.push_back('.');
    out.append(d + 1, static_cast<std::size_t>(n - 1));
  }
  out.push_back('e');
  append_exponent(out, point - 1, min_exponent_width);
}

void append_below_one(std::string& out, const char* d, int n, int point) {  // point <= 0
  out.append("0.");
  out.append(static_cast<std::size_t>(-point), '0');
  out.append(d, static_cast<std::size_t>(n));
}

void append_integral(std::string& out, const char* d, int n, int point) {  // point >= n
  out.append(d, static_cast<std::size_t>(n));
  out.append(static_cast<std::size_t>(point - n), '0');
}

void append_split(std::string& out, const char* d, int n, int point) {  // 0 < point < n
  out.append(d, static_cast<std::size_t>(point));
  out.push_back('.');
  out.append(d + point, static_cast<std::size_t>(n - point));
}

}  // namespace

void append_python_float(std::string& out, double value) {
  if (value == 0) {
    out.append(std::signbit(value) ? "-0.0" : "0.0");
    return;
  }
  if (value < 0) out.push_back('-');
  char d[32];
  int point = 0;
  const int n = shortest_digits(value, d, point);
  // CPython float_repr_style 'short', mode 'r': exponent form when point < -3 or point > 16,
  // with at least two exponent digits ("1e-05"); integral values keep ".0".
  if (point < -3 || point > 16) {
    append_scientific(out, d, n, point, 2);
  } else if (point <= 0) {
    append_below_one(out, d, n, point);
  } else if (point >= n) {
    append_integral(out, d, n, point);
    out.append(".0");
  } else {
    append_split(out, d, n, point);
  }
}

void append_es_number(std::string& out, double value) {
  if (value == 0) {  // both zeros print as "0" (ECMA-262 Number::toString step 2)
    out.push_back('0');
    return;
  }
  if (value < 0) out.push_back('-');
  char d[32];
  int point = 0;
  const int k = shortest_digits(value, d, point);
  // ECMA-262 Number::toString steps 6-10, with n = point.
  if (k <= point && point <= 21) {
    append_integral(out, d, k, point);
  } else if (0 < point && point <= 21) {
    append_split(out, d, k, point);
  } else if (-6 < point && point <= 0) {
    append_below_one(out, d, k, point);
  } else {
    append_scientific(out, d, k, point, 1);
  }
}

}  // namespace tds::detail
