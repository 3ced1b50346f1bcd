// The properties a canonicalizer must keep on any input, shared by the two canonical targets:
// an error is a clean value; a success is stable (canonicalizing the output gives the output),
// hashes to the SHA-256 of the output, and is text of the scheme's alphabet.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "tdscache/canonical.hpp"

namespace tds::fuzz {

inline bool is_document_error(status code, hash_scheme scheme) {
  switch (code) {
    case status::json_malformed:
    case status::utf8_invalid:
    case status::depth_exceeded:
    case status::number_nan_inf:
    case status::number_out_of_range:
    case status::out_of_memory:
      return true;
    case status::duplicate_key:
    case status::lone_surrogate:
      return scheme == hash_scheme::jcs;  // legacy keeps the last duplicate, escapes surrogates
    default:
      return false;
  }
}

// Strict UTF-8 (no surrogates, no overlong forms, nothing past U+10FFFF): what RFC 8785
// output must be. Written here, not taken from the library, so it can judge the library.
inline bool is_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto lead = static_cast<unsigned char>(s[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    std::size_t tail = 0;
    std::uint32_t cp = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
      tail = 1;
      cp = lead & 0x1Fu;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      tail = 2;
      cp = lead & 0x0Fu;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      tail = 3;
      cp = lead & 0x07u;
    } else {
      return false;
    }
    if (s.size() - i <= tail) return false;
    for (std::size_t k = 1; k <= tail; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = cp << 6 | (b & 0x3Fu);
    }
    if ((tail == 2 && cp < 0x800) || (tail == 3 && (cp < 0x10000 || cp > 0x10FFFF))) return false;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    i += tail + 1;
  }
  return true;
}

// Runs one input through `c` and checks every property. `again` is a second canonicalizer with
// the same options, so the output can be re-read while `c`'s view of it stays valid.
inline void check_canonical(canonicalizer& c, canonicalizer& again, std::string_view input) {
  const hash_scheme scheme = c.options().scheme;
  auto r = c.canonicalize(input);
  if (!r.ok()) {
    check_error(r.error(), input.size());
    TDS_FUZZ_CHECK(is_document_error(r.code(), scheme));
    // hash() must fail the same way: it is the same walk.
    auto h = again.hash(input);
    TDS_FUZZ_CHECK(!h.ok() && h.code() == r.code());
    return;
  }
  const std::string output(r.value());
  TDS_FUZZ_CHECK(!output.empty());
  if (scheme == hash_scheme::legacy) {
    // json.dumps with ensure_ascii: printable ASCII only, everything else escaped.
    for (const char ch : output) {
      const auto b = static_cast<unsigned char>(ch);
      TDS_FUZZ_CHECK(b >= 0x20 && b < 0x7F);
    }
  } else {
    TDS_FUZZ_CHECK(is_utf8(output));
  }
  auto twice = again.canonicalize(output);
  TDS_FUZZ_CHECK(twice.ok());
  TDS_FUZZ_CHECK(twice.value() == output);
  auto h = c.hash(input);
  TDS_FUZZ_CHECK(h.ok() && h.value() == sha256(output));
}

}  // namespace tds::fuzz
