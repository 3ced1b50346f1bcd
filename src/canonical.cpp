// The canonicalizer: walks raw JSON with simdjson's On-Demand API and writes the canonical
// form of the chosen scheme, then hashes it. On-Demand (rather than DOM) because it hands us
// the raw text of every number: Python prints integers of any size exactly, and DOM rejects
// integers beyond 64 bits. Strings are unescaped and re-escaped here in one pass.
#include <simdjson.h>

#include <pthread.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <list>
#include <openssl/evp.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "canonical_direct.hpp"
#include "tdscache/canonical.hpp"
#include "tdscache/detail/json_text.hpp"
#include "tdscache/detail/hex.hpp"
#include "tdscache/detail/stack_depth.hpp"

namespace od = simdjson::ondemand;

namespace tds {

// ---------------------------------------------------------------------------------------------
// Names, digests, SHA-256

std::string_view scheme_name(hash_scheme s) noexcept {
  return s == hash_scheme::jcs ? "jcs" : "legacy";
}

std::optional<hash_scheme> parse_scheme(std::string_view name) noexcept {
  if (name == "legacy") return hash_scheme::legacy;
  if (name == "jcs") return hash_scheme::jcs;
  return std::nullopt;
}

void digest::hex_into(char out[64]) const noexcept {
  static constexpr char hexd[] = "0123456789abcdef";
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = hexd[bytes[i] >> 4];
    out[2 * i + 1] = hexd[bytes[i] & 0xF];
  }
}

std::string digest::hex() const {
  std::string s(64, '\0');
  hex_into(s.data());
  return s;
}

std::optional<digest> digest::from_hex(std::string_view hex) noexcept {
  if (hex.size() != 64) return std::nullopt;
  digest d;
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = detail::hex_value(hex[2 * i]), lo = detail::hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d.bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return d;
}

namespace {

// One EVP context per thread, created on first use and reused: EVP_DigestInit_ex2 resets it
// without allocating, and the fetched SHA256 implementation is shared process-wide.
struct sha256_context {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~sha256_context() { EVP_MD_CTX_free(ctx); }
};

const EVP_MD* sha256_md() noexcept {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

}  // namespace

digest sha256(std::string_view bytes) noexcept {
  thread_local sha256_context t;
  digest d;
  unsigned int len = 0;
  EVP_DigestInit_ex2(t.ctx, sha256_md(), nullptr);
  EVP_DigestUpdate(t.ctx, bytes.data(), bytes.size());
  EVP_DigestFinal_ex(t.ctx, d.bytes.data(), &len);
  return d;
}

const std::vector<std::string>& legacy_excluded_fields() {
  static const std::vector<std::string> fields = {
      "zoho_synced_at", "created_at", "updated_at", "last_sync_attempt",
      "sync_count",     "cached_at",  "zoho_raw_data"};
  return fields;
}

// ---------------------------------------------------------------------------------------------
// The walker

namespace {

// Python 3.11 refuses to convert integers longer than this (sys.get_int_max_str_digits), so
// json.loads fails on them: the legacy scheme reports them as out of range instead.
constexpr std::size_t python_int_max_digits = 4300;
// Deep enough for any real document. The recursion uses 250-500 bytes of stack per level
// (measured: 512 levels fit in 256 KB, 4096 in 2 MB), several KB under the sanitizers.
constexpr std::size_t max_depth_limit = 4096;

// Stack kept free below the deepest level for the work a level does past its depth check
// (parsing a string, formatting a number, sorting members). Sanitizers inflate every frame.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::uintptr_t stack_reserve = 512 * 1024;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr std::uintptr_t stack_reserve = 512 * 1024;
#else
constexpr std::uintptr_t stack_reserve = 64 * 1024;
#endif
#else
constexpr std::uintptr_t stack_reserve = 64 * 1024;
#endif

}  // namespace

// max_depth alone cannot protect a thread with a small stack (musl's 128 KB default, a thread
// pool's 256 KB): the floor turns what would be a crash on a deeply nested document into
// depth_exceeded, hence a sync.
std::uintptr_t detail::thread_stack_floor() noexcept {
#if defined(__linux__)
  thread_local const std::uintptr_t floor = [] {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return std::uintptr_t{0};
    void* low = nullptr;
    std::size_t size = 0;
    const bool known = pthread_attr_getstack(&attr, &low, &size) == 0;
    pthread_attr_destroy(&attr);
    if (!known || size == 0) return std::uintptr_t{0};
    // A stack smaller than twice the reserve keeps half of itself back instead.
    return reinterpret_cast<std::uintptr_t>(low) + std::min<std::uintptr_t>(stack_reserve, size / 2);
  }();
  return floor;
#else
  return 0;
#endif
}

namespace {

struct member {
  std::string_view key;                  // decoded (WTF-8): into the input, or into walker::keys
  std::uint64_t prefix;                  // the key's first 8 bytes, big-endian: most compares end here
  bool key_plain;                        // the key needs no escaping: emitted as "key"
  std::size_t value_offset, value_length;  // into walker::out
  std::uint32_t index;                   // position in the input, for "last one wins"
  bool is_null;
  bool excluded;
};

// A parsed JSON Pointer: its reference tokens, unescaped (~1 -> /, ~0 -> ~).
using pointer_tokens = std::vector<std::string>;

// Input bytes quoted in an error message: at most 40 of them, anything unprintable as \xNN,
// so that a message stays short and readable whatever the document holds (a 100 MB token,
// NUL bytes, invalid UTF-8).
std::string excerpt(std::string_view text) {
  constexpr std::size_t limit = 40;
  static constexpr char hexd[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char ch : text.substr(0, limit)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      out.push_back(ch);
    } else {
      const char escaped[] = {'\\', 'x', hexd[c >> 4], hexd[c & 0xF]};
      out.append(escaped, sizeof escaped);
    }
  }
  out.push_back('"');
  if (text.size() > limit) out.append("...");
  return out;
}

// A UTF-8 byte order mark. JSON text must not start with one (RFC 8259 section 8.1), and
// Python's json.loads refuses it in a str, so it is an error rather than silently skipped.
constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";


result<pointer_tokens> parse_pointer(std::string_view text) {
  if (text.empty() || text[0] != '/')
    return result<pointer_tokens>(status::pointer_invalid,
                                  "JSON Pointer must start with '/': \"" + std::string(text) + "\"");
  pointer_tokens tokens;
  std::string token;
  for (std::size_t i = 1; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '/') {
      tokens.push_back(std::move(token));
      token.clear();
    } else if (text[i] == '~') {
      if (i + 1 < text.size() && (text[i + 1] == '0' || text[i + 1] == '1')) {
        token.push_back(text[i + 1] == '0' ? '~' : '/');
        ++i;
      } else {
        return result<pointer_tokens>(status::pointer_invalid,
                                      "JSON Pointer has '~' not followed by 0 or 1: \"" +
                                          std::string(text) + "\"");
      }
    } else {
      token.push_back(text[i]);
    }
  }
  return tokens;
}

// Pointer matching state: which exclusion pointers still match the path walked so far.
// A bitmask keeps it allocation-free; more than 64 nested exclusions is an options error.
using pointer_set = std::uint64_t;

struct item_capture {
  std::string_view id_field, modified_field;
  std::string* id = nullptr;
  bool id_found = false;
  std::optional<std::string>* modified = nullptr;
};

}  // namespace

struct canonicalizer::impl {
  canonical_options options;
  detail::name_set excluded;
  // The fast path (canonical_direct.hpp), tried first by canonicalize() and hash(). Off only in
  // tests that pin it against this file's reference walker.
  detail::direct_walker direct;
  bool use_direct = true;
  std::vector<pointer_tokens> pointers;
  od::parser parser;
  std::unique_ptr<char[]> padded;
  std::size_t padded_capacity = 0;
  std::string out, scratch, keys, text;
  std::vector<member> members;
  const char* base = nullptr;  // start of the padded input, for error offsets
  std::size_t input_size = 0;
  error err;
  item_capture* capture = nullptr;
  std::uintptr_t stack_floor = 0;  // detail::thread_stack_floor() of the thread walking now
  // Set when a page walk stopped early inside a value (a NaN in an item, say) and On-Demand
  // then skipped the rest of it unread: the page's syntax must be checked in full.
  bool skipped_unchecked = false;

  bool fail(status code, std::string message, const char* at) {
    if (err.code == status::ok) {
      err.code = code;
      err.message = std::move(message);
      err.offset = at && base ? static_cast<std::size_t>(at - base) : no_offset;
    }
    return false;
  }

  bool fail_simdjson(simdjson::error_code e, const char* at) {
    status code = status::json_malformed;
    if (e == simdjson::UTF8_ERROR) code = status::utf8_invalid;
    if (e == simdjson::DEPTH_ERROR) code = status::depth_exceeded;
    if (e == simdjson::MEMALLOC) code = status::out_of_memory;
    std::string message = std::string("invalid JSON: ") + simdjson::error_message(e);
    if (e == simdjson::UTF8_ERROR) return fail(code, "input is not valid UTF-8", nullptr);
    if (code == status::json_malformed) explain_structure(message, at);
    return fail(code, std::move(message), at);
  }

  // simdjson reports unbalanced input without a position. Find it: where the root value ends
  // (trailing content after it) or that it never ends (truncated input).
  bool explain_structure(std::string& message, const char*& at) const {
    if (!base) return false;
    const char* end = base + input_size;
    const char* p = base;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
    if (p == end) {
      message = "empty input: no JSON value";
      at = p;
      return true;
    }
    if (*p != '{' && *p != '[') return false;
    int depth = 0;
    for (; p < end; ++p) {
      const char c = *p;
      if (c == '"') {
        for (++p; p < end && *p != '"'; ++p)
          if (*p == '\\') ++p;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        const char* rest = p + 1;
        while (rest < end && (*rest == ' ' || *rest == '\n' || *rest == '\r' || *rest == '\t')) ++rest;
        if (rest == end) return false;
        message = "trailing content after the JSON value";
        at = rest;
        return true;
      }
    }
    message = "truncated JSON: the input ends inside an object, array or string";
    at = end;
    return true;
  }

  const char* load(std::string_view json) {
    const std::size_t need = json.size() + simdjson::SIMDJSON_PADDING;
    if (need > padded_capacity) {
      padded_capacity = std::max(need, padded_capacity * 2);
      padded.reset(new char[padded_capacity]);
    }
    if (!json.empty()) std::memcpy(padded.get(), json.data(), json.size());  // data() may be null
    std::memset(padded.get() + json.size(), 0, simdjson::SIMDJSON_PADDING);
    base = padded.get();
    input_size = json.size();
    if (keys.capacity() < json.size()) keys.reserve(json.size());
    return base;
  }

  bool is_excluded_name(std::string_view key) const { return excluded.contains(key); }

  // Pointers in `active` whose token at `depth` equals `token`: the ones that continue, and
  // whether one of them ends here (the member or element is excluded).
  pointer_set step_pointers(pointer_set active, std::size_t depth, std::string_view token,
                            bool& excluded_here) const {
    pointer_set next = 0;
    for (std::size_t i = 0; active >> i; ++i) {
      if (!((active >> i) & 1)) continue;
      const auto& p = pointers[i];
      if (depth < p.size() && p[depth] == token) {
        if (depth + 1 == p.size()) excluded_here = true;
        else next |= pointer_set{1} << i;
      }
    }
    return next;
  }

  static std::uint64_t key_prefix(std::string_view key) noexcept {
    std::uint64_t v = 0;
    const std::size_t n = key.size() < 8 ? key.size() : 8;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{static_cast<unsigned char>(key[i])} << (56 - 8 * i);
    return v;
  }

  // ---- strings --------------------------------------------------------------------------

  // The end of the longest run of bytes from p that are neither '"', '\\', a control character
  // nor (plain_run only) outside printable ASCII. The input is padded and every string ends
  // in a quote, so reading 16 bytes at a time never leaves the buffer.
  static const char* plain_run(const char* p) {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    const __m128i below = _mm_set1_epi8(0x1F), del = _mm_set1_epi8(0x7E);
    for (;;) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      const __m128i special = _mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
          _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, below), v),
                       _mm_cmpeq_epi8(_mm_max_epu8(v, del), v)));
      const int mask = _mm_movemask_epi8(special);
      // max(v, 0x7E) == v also flags '~' itself; a '~' is plain, so step over it.
      if (mask == 0) {
        p += 16;
        continue;
      }
      p += __builtin_ctz(static_cast<unsigned>(mask));
      if (*p != '~') return p;
      ++p;
    }
#else
    while (static_cast<unsigned char>(*p) >= 0x20 && static_cast<unsigned char>(*p) < 0x7F && *p != '"' && *p != '\\') ++p;
    return p;
#endif
  }

  static const char* plain_run_utf8(const char* p) {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    const __m128i below = _mm_set1_epi8(0x1F);
    for (;;) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      const __m128i special = _mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
          _mm_cmpeq_epi8(_mm_min_epu8(v, below), v));
      const int mask = _mm_movemask_epi8(special);
      if (mask == 0) {
        p += 16;
        continue;
      }
      return p + __builtin_ctz(static_cast<unsigned>(mask));
    }
#else
    while (static_cast<unsigned char>(*p) >= 0x20 && *p != '"' && *p != '\\') ++p;
    return p;
#endif
  }

  // Reads the JSON string whose content starts at `p` (just after the opening quote). With
  // decoded != nullptr, appends the decoded text (WTF-8); with escaped != nullptr, appends the
  // canonical quoted form. Returns the position after the closing quote, or nullptr on error.
  const char* read_string(const char* p, std::string* decoded, std::string* escaped) {
    const hash_scheme scheme = options.scheme;
    if (escaped) escaped->push_back('"');
    for (;;) {
      const char* run = p;
      // Bytes that pass through unchanged in both the decoded and the escaped form.
      p = (scheme == hash_scheme::legacy || !escaped) ? plain_run(p) : plain_run_utf8(p);
      if (p != run) {
        if (decoded) decoded->append(run, static_cast<std::size_t>(p - run));
        if (escaped) escaped->append(run, static_cast<std::size_t>(p - run));
      }
      const unsigned char c = static_cast<unsigned char>(*p);
      if (c == '"') {
        if (escaped) escaped->push_back('"');
        return p + 1;
      }
      if (c < 0x20)
        return fail(status::json_malformed, "unescaped control character in string", p), nullptr;
      if (c >= 0x80) {
        // Validated UTF-8: copy it decoded, escape it per scheme.
        const char* start = p;
        const std::uint32_t cp = detail::decode_utf8(p);
        if (decoded) decoded->append(start, static_cast<std::size_t>(p - start));
        if (escaped) detail::append_code_point(*escaped, cp, scheme);
        continue;
      }
      if (c != '\\') {
        // DEL: plain ASCII that only the legacy scheme escapes.
        if (decoded) decoded->push_back(static_cast<char>(c));
        if (escaped) detail::append_code_point(*escaped, c, scheme);
        ++p;
        continue;
      }
      const char* esc = p;
      const std::int32_t decoded_cp = detail::decode_escape(p);
      if (decoded_cp == detail::escape_unknown)
        return fail(status::json_malformed, "invalid escape in string", esc), nullptr;
      if (decoded_cp < 0)  // p is at the \u whose digits are bad: the first or a pair's second
        return fail(status::json_malformed, "invalid \\u escape in string", p), nullptr;
      const auto cp = static_cast<std::uint32_t>(decoded_cp);
      if (cp >= 0xD800 && cp <= 0xDFFF && scheme == hash_scheme::jcs)
        return fail(status::lone_surrogate,
                    "lone surrogate escape in string (RFC 8785 requires valid Unicode)", esc),
               nullptr;
      if (decoded) {
        char buf[4];
        decoded->append(buf, static_cast<std::size_t>(detail::put_utf8(buf, cp) - buf));
      }
      if (escaped) detail::append_code_point(*escaped, cp, scheme);
    }
  }

  // ---- numbers --------------------------------------------------------------------------

  static std::string_view trim_token(std::string_view t) {
    while (!t.empty() && (t.back() == ' ' || t.back() == '\n' || t.back() == '\r' || t.back() == '\t'))
      t.remove_suffix(1);
    return t;
  }

  bool write_number(std::string_view token, const char* at) {
    // Grammar (RFC 8259): -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    const char* p = token.data();
    const char* end = p + token.size();
    const bool negative = p < end && *p == '-';
    if (negative) ++p;
    if (end - p >= 3 && (std::memcmp(p, "Inf", 3) == 0 || std::memcmp(p, "NaN", 3) == 0))
      return fail(status::number_nan_inf, "NaN and Infinity are not JSON numbers", at);
    const char* int_start = p;
    while (p < end && *p >= '0' && *p <= '9') ++p;
    const std::size_t int_digits = static_cast<std::size_t>(p - int_start);
    if (int_digits == 0 || (int_digits > 1 && *int_start == '0'))
      return fail(status::json_malformed, "invalid number " + excerpt(token), at);
    bool is_integer = true;
    if (p < end && *p == '.') {
      is_integer = false;
      const char* f = ++p;
      while (p < end && *p >= '0' && *p <= '9') ++p;
      if (p == f) return fail(status::json_malformed, "invalid number " + excerpt(token), at);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
      is_integer = false;
      ++p;
      if (p < end && (*p == '+' || *p == '-')) ++p;
      const char* x = p;
      while (p < end && *p >= '0' && *p <= '9') ++p;
      if (p == x) return fail(status::json_malformed, "invalid number " + excerpt(token), at);
    }
    if (p != end) return fail(status::json_malformed, "invalid number " + excerpt(token), at);

    if (options.scheme == hash_scheme::legacy && is_integer) {
      if (int_digits > python_int_max_digits)
        return fail(status::number_out_of_range,
                    "integer has more than 4300 digits (Python's int limit)", at);
      const bool zero = int_digits == 1 && *int_start == '0';
      if (negative && !zero) out.push_back('-');
      out.append(int_start, int_digits);
      return true;
    }
    if (options.scheme == hash_scheme::jcs && is_integer && !options.strict) {
      // 2^53 - 1 = 9007199254740991 has 16 digits.
      const bool beyond_exact = int_digits > 16 ||
          (int_digits == 16 && std::memcmp(int_start, "9007199254740991", 16) > 0);
      if (beyond_exact) {
        if (negative) out.push_back('-');
        out.append(int_start, int_digits);
        return true;
      }
    }
    double value = 0;
    auto res = std::from_chars(token.data(), end, value);
    if (res.ec == std::errc::result_out_of_range) {
      // libstdc++ reports underflow as out of range too; Python and ECMAScript round it to zero.
      if (!is_huge(token)) {
        value = negative ? -0.0 : 0.0;
      } else {
        return fail(status::number_out_of_range,
                    "number " + excerpt(token) + " overflows a double", at);
      }
    } else if (res.ec != std::errc() || !std::isfinite(value)) {
      return fail(status::number_out_of_range,
                  "number " + excerpt(token) + " overflows a double", at);
    }
    if (options.scheme == hash_scheme::legacy) detail::append_python_float(out, value);
    else detail::append_es_number(out, value);
    return true;
  }

  // Whether an out-of-range decimal is too large (rather than too small): its magnitude is
  // the count of integer digits plus the exponent.
  static bool is_huge(std::string_view token) {
    const char* p = token.data();
    const char* end = p + token.size();
    if (*p == '-') ++p;
    long long magnitude = 0;
    bool leading = true;
    for (; p < end && *p >= '0' && *p <= '9'; ++p) {
      if (leading && *p == '0') continue;
      leading = false;
      ++magnitude;
    }
    if (leading && p < end && *p == '.') {
      // 0.000ddd: magnitude is negative by the count of zeros after the point.
      ++p;
      for (; p < end && *p == '0'; ++p) --magnitude;
    }
    while (p < end && *p != 'e' && *p != 'E') ++p;
    if (p < end) {
      ++p;
      bool neg = false;
      if (*p == '+' || *p == '-') neg = *p++ == '-';
      long long e = 0;
      for (; p < end && *p >= '0' && *p <= '9'; ++p) e = std::min(e * 10 + (*p - '0'), 1LL << 40);
      magnitude += neg ? -e : e;
    }
    return magnitude > 0;
  }

  // ---- values ---------------------------------------------------------------------------

  template <class V>
  bool write_value(V& v, std::size_t depth, pointer_set active, bool& is_null) {
    std::string_view token = v.raw_json_token();
    const char* at = token.data();
    is_null = false;
    switch (token.empty() ? '\0' : token[0]) {
      case '{': {
        od::object obj;
        if (auto e = v.get_object().get(obj)) return fail_simdjson(e, at);
        return write_object(obj, depth + 1, active, at);
      }
      case '[': {
        od::array arr;
        if (auto e = v.get_array().get(arr)) return fail_simdjson(e, at);
        return write_array(arr, depth + 1, active, at);
      }
      case '"': {
        od::raw_json_string raw;
        if (auto e = v.get_raw_json_string().get(raw)) return fail_simdjson(e, at);
        return read_string(raw.raw(), nullptr, &out) != nullptr;
      }
      case 't':
      case 'f': {
        bool b;
        if (auto e = v.get_bool().get(b)) {
          if (e == simdjson::INCORRECT_TYPE)
            return fail(status::json_malformed, "invalid literal: expected true or false", at);
          return fail_simdjson(e, at);
        }
        out.append(b ? "true" : "false");
        return true;
      }
      case 'n': {
        bool n = false;
        if (auto e = v.is_null().get(n); e || !n)
          return fail(status::json_malformed, "invalid literal: expected null", at);
        out.append("null");
        is_null = true;
        return true;
      }
      case 'N':
      case 'I':
        return fail(status::number_nan_inf, "NaN and Infinity are not JSON numbers", at);
      default:
        if (token[0] == '-' || (token[0] >= '0' && token[0] <= '9'))
          return write_number(trim_token(token), at);
        return fail(status::json_malformed, "unexpected character in JSON value", at);
    }
  }

  bool check_depth(std::size_t depth, const char* at) {
    if (depth > options.max_depth)
      return fail(status::depth_exceeded,
                  "nesting deeper than max_depth (" + std::to_string(options.max_depth) + ")", at);
    if (detail::below_stack_floor(stack_floor))
      return fail(status::depth_exceeded,
                  "nesting of " + std::to_string(depth) +
                      " levels is deeper than this thread's stack allows", at);
    return true;
  }

  bool write_array(od::array& arr, std::size_t depth, pointer_set active, const char* at) {
    if (!check_depth(depth, at)) return false;
    out.push_back('[');
    const char* sep = options.scheme == hash_scheme::legacy ? ", " : ",";
    const std::size_t sep_len = options.scheme == hash_scheme::legacy ? 2 : 1;
    bool first = true;
    std::size_t index = 0;
    char index_text[24];
    for (auto element : arr) {
      od::value v;
      if (auto e = std::move(element).get(v)) return fail_simdjson(e, at);
      pointer_set next = 0;
      bool excluded = false;
      if (active) {
        auto r = std::to_chars(index_text, index_text + sizeof index_text, index);
        next = step_pointers(active, depth - 1, std::string_view(index_text, static_cast<std::size_t>(r.ptr - index_text)), excluded);
      }
      ++index;
      const std::size_t mark = out.size();
      if (!first) out.append(sep, sep_len);
      bool is_null;
      if (!write_value(v, depth, next, is_null)) return false;
      if (excluded) out.resize(mark);
      else first = false;
    }
    out.push_back(']');
    return true;
  }

  bool write_object(od::object& obj, std::size_t depth, pointer_set active, const char* at) {
    if (!check_depth(depth, at)) return false;
    const std::size_t member_mark = members.size();
    const std::size_t key_mark = keys.size();
    const std::size_t out_mark = out.size();
    const bool top = depth == 1;
    std::uint32_t index = 0;
    for (auto field_result : obj) {
      od::field field;
      if (auto e = std::move(field_result).get(field)) return fail_simdjson(e, at);
      const char* key_raw = field.key().raw();
      // Most member names need no unescaping and no escaping: use them in place.
      const char* key_end = plain_run(key_raw);
      std::string_view key;
      bool key_plain = *key_end == '"';
      if (key_plain) {
        key = std::string_view(key_raw, static_cast<std::size_t>(key_end - key_raw));
      } else {
        // keys never reallocates: its capacity is the input size, which bounds decoded text.
        const std::size_t key_offset = keys.size();
        if (!read_string(key_raw, &keys, nullptr)) return false;
        key = std::string_view(keys.data() + key_offset, keys.size() - key_offset);
      }
      bool excluded = top && is_excluded_name(key);
      pointer_set next = 0;
      if (active) next = step_pointers(active, depth - 1, key, excluded);
      if (top && capture) capture_member(key, field.value());
      const std::size_t value_offset = out.size();
      bool is_null;
      if (!write_value(field.value(), depth, next, is_null)) return false;
      members.push_back(member{key, key_prefix(key), key_plain, value_offset,
                               out.size() - value_offset, index++, is_null, excluded});
    }
    return assemble_object(member_mark, key_mark, out_mark, top, at);
  }

  // Sorts this object's members, resolves duplicates, applies exclusions, and replaces the
  // values written at out[out_mark..] with the finished object.
  bool assemble_object(std::size_t member_mark, std::size_t key_mark, std::size_t out_mark,
                       bool top, const char* at) {
    auto first = members.begin() + static_cast<std::ptrdiff_t>(member_mark);
    auto last = members.end();
    const hash_scheme scheme = options.scheme;
    auto key_of = [](const member& m) { return m.key; };
    std::sort(first, last, [&](const member& a, const member& b) {
      if (a.prefix != b.prefix) {
        // The first differing byte decides, unless jcs's UTF-16 rule applies to it.
        const int shift = 56 - (__builtin_clzll(a.prefix ^ b.prefix) & ~7);
        const auto x = static_cast<unsigned char>(a.prefix >> shift), y = static_cast<unsigned char>(b.prefix >> shift);
        if (scheme == hash_scheme::jcs && (x >= 0xEE || y >= 0xEE))
          return detail::compare_member_names(a.key, b.key, scheme) < 0;
        return x < y;
      }
      int c = detail::compare_member_names(key_of(a), key_of(b), scheme);
      return c != 0 ? c < 0 : a.index < b.index;
    });
    scratch.clear();
    scratch.push_back('{');
    bool any = false;
    for (auto it = first; it != last; ++it) {
      auto next = it + 1;
      if (next != last && key_of(*next) == key_of(*it)) {
        if (scheme == hash_scheme::jcs)
          return fail(status::duplicate_key,
                      "duplicate member name " + excerpt(key_of(*it)), at);
        continue;  // json.loads keeps the last one
      }
      if (it->excluded) continue;
      if (top && scheme == hash_scheme::legacy && it->is_null) continue;
      if (any) scratch.append(scheme == hash_scheme::legacy ? std::string_view(", ") : std::string_view(","));
      any = true;
      if (it->key_plain) {
        scratch.push_back('"');
        scratch.append(it->key);
        scratch.push_back('"');
      } else {
        detail::append_quoted(scratch, key_of(*it), scheme);
      }
      scratch.append(scheme == hash_scheme::legacy ? std::string_view(": ") : std::string_view(":"));
      scratch.append(out, it->value_offset, it->value_length);
    }
    scratch.push_back('}');
    if (out_mark == 0) {
      out.swap(scratch);  // the root object: nothing before it to keep
    } else {
      out.resize(out_mark);
      out.append(scratch);
    }
    members.resize(member_mark);
    keys.resize(key_mark);
    return true;
  }

  // For hash_page: remember the item's id and last_modified_time as they are written.
  void capture_member(std::string_view key, od::value& v) {
    capture_value(key == capture->id_field, key == capture->modified_field, v.raw_json_token());
  }

  // `token` starts with the value's first byte; a number's may carry trailing space.
  void capture_value(bool is_id, bool is_modified, std::string_view token) {
    if (!is_id && !is_modified) return;
    const char c = token.empty() ? '\0' : token[0];
    if (is_id) {
      capture->id->clear();
      capture->id_found = false;
      if (c == '"') {
        if (read_string(token.data() + 1, capture->id, nullptr)) capture->id_found = !capture->id->empty();
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        capture->id->assign(trim_token(token));
        capture->id_found = true;
      }
    } else {
      capture->modified->reset();
      if (c == '"') {
        std::string s;
        if (read_string(token.data() + 1, &s, nullptr)) *capture->modified = std::move(s);
      }
    }
  }


  // ---- pages ----------------------------------------------------------------------------

  // Where the JSON value that starts at p ends: used for the last item of a page, whose end no
  // following item marks. Never reads past `end`, even when the value is not well formed.
  static const char* value_end(const char* p, const char* end) {
    auto skip_string = [&](const char* q) {
      for (++q; q < end && *q != '"'; ++q)
        if (*q == '\\') ++q;
      return q < end ? q + 1 : end;
    };
    if (p >= end) return end;
    if (*p != '{' && *p != '[') {
      if (*p == '"') return skip_string(p);
      while (p < end && *p != ',' && *p != ']' && *p != '}' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') ++p;
      return p;
    }
    int depth = 0;
    while (p < end) {
      const char c = *p;
      if (c == '"') {
        p = skip_string(p);
        continue;
      }
      if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        return p + 1;
      }
      ++p;
    }
    return end;
  }

  // Where `p..end` stops being JSON by json.loads' grammar (NaN and Infinity allowed, numbers
  // of any size, nesting of any depth: an explicit stack, no recursion), or nullptr when it is
  // JSON. UTF-8 is not checked here: simdjson has checked the whole input already.
  static const char* syntax_error_at(const char* p, const char* end) {
    auto skip_ws = [&] {
      while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
    };
    auto literal = [&](std::string_view word) {
      if (static_cast<std::size_t>(end - p) < word.size() || std::memcmp(p, word.data(), word.size()) != 0)
        return false;
      p += word.size();
      return true;
    };
    auto quoted = [&] {  // p at the opening quote
      for (++p; p < end; ++p) {
        const auto c = static_cast<unsigned char>(*p);
        if (c == '"') {
          ++p;
          return true;
        }
        if (c < 0x20) return false;
        if (c != '\\') continue;
        if (++p == end) return false;
        if (*p == 'u') {
          for (int i = 0; i < 4; ++i)
            if (++p == end || detail::hex_value(*p) < 0) return false;
        } else if (!std::strchr("\"\\/bfnrt", *p) || *p == '\0') {
          return false;
        }
      }
      return false;
    };
    auto digits = [&] {
      const char* first = p;
      while (p < end && *p >= '0' && *p <= '9') ++p;
      return p != first;
    };
    auto number = [&] {  // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
      if (p < end && *p == '-') ++p;
      if (literal("Infinity")) return true;
      if (p < end && *p == '0') ++p;
      else if (!digits()) return false;
      if (p < end && *p == '.' && (++p, !digits())) return false;
      if (p < end && (*p == 'e' || *p == 'E')) {
        ++p;
        if (p < end && (*p == '+' || *p == '-')) ++p;
        if (!digits()) return false;
      }
      return true;
    };
    std::vector<char> open;  // '{' or '[' for each container we are inside
    enum class want { value, key, next } state = want::value;
    for (;;) {
      skip_ws();
      const char* at = p;
      if (state == want::value) {
        if (p == end) return at;
        const char c = *p;
        if (c == '{' || c == '[') {
          open.push_back(c);
          ++p;
          skip_ws();
          if (p < end && *p == (c == '{' ? '}' : ']')) {
            open.pop_back();
            ++p;
            state = want::next;
          } else {
            state = c == '{' ? want::key : want::value;
          }
          continue;
        }
        const bool ok = c == '"' ? quoted()
                        : (c == '-' || (c >= '0' && c <= '9')) ? number()
                        : literal("true") || literal("false") || literal("null") || literal("NaN") ||
                              literal("Infinity");
        if (!ok) return at;
        state = want::next;
      } else if (state == want::key) {
        if (p == end || *p != '"' || !quoted()) return at;
        skip_ws();
        if (p == end || *p != ':') return p;
        ++p;
        state = want::value;
      } else {
        if (open.empty()) return p == end ? nullptr : at;
        if (p == end) return at;
        if (*p == ',') {
          ++p;
          state = open.back() == '{' ? want::key : want::value;
        } else if (*p == (open.back() == '{' ? '}' : ']')) {
          open.pop_back();
          ++p;
        } else {
          return at;
        }
      }
    }
  }

  // Item errors that leave the parser usable (a NaN, a missing id) stay on the item; syntax
  // errors end the page (ends_page).
  bool hash_items(od::array& items, const page_options& popts, std::vector<entity_record>& records) {
    const std::size_t first_record = records.size();
    for (auto element : items) {
      od::value v;
      if (auto e = std::move(element).get(v)) return fail_simdjson(e, nullptr);
      std::string_view token = v.raw_json_token();
      entity_record rec;
      const char* start = token.data();
      rec.offset = static_cast<std::size_t>(start - base);
      if (records.size() > first_record) set_item_end(records.back(), start);
      if (token.empty() || token[0] != '{') {
        // Not hashed, but read all the same: a page that is not JSON fails as a whole, and
        // On-Demand only checks the values it is asked for.
        if (!validate_value(v)) return false;
        rec.error = make_error(status::item_not_object, "page item is not a JSON object", rec.offset);
        records.push_back(std::move(rec));
        continue;
      }
      if (hash_item_directly(start, popts, rec)) {
        records.push_back(std::move(rec));
        continue;  // On-Demand skips the unread item on its own
      }
      od::object obj;
      if (auto e = v.get_object().get(obj)) return fail_simdjson(e, start);
      out.clear();
      keys.clear();
      members.clear();
      err = error{};
      item_capture cap{popts.id_field, popts.modified_field, &rec.id, false, &rec.last_modified_time};
      capture = &cap;
      const bool ok = write_object(obj, 1, all_pointers(), start);
      capture = nullptr;
      if (!ok) {
        if (ends_page(err.code)) return false;
        skipped_unchecked = true;
        rec.error = std::move(err);
        err = error{};
      } else if (!cap.id_found) {
        rec.error = make_error(status::item_no_id,
                               "page item has no usable \"" + popts.id_field + "\"", rec.offset);
      } else {
        rec.content_digest = sha256(out);
      }
      records.push_back(std::move(rec));
    }
    if (records.size() > first_record) {
      entity_record& last = records.back();
      last.length = static_cast<std::size_t>(value_end(base + last.offset, base + input_size) -
                                             (base + last.offset));
    }
    return true;
  }

  // The direct walker on one item (see canonicalize_direct); false: it declined, and the
  // item goes through write_object as before.
  bool hash_item_directly(const char* item, const page_options& popts, entity_record& rec) {
    if (!use_direct || !pointers.empty()) return false;
    const detail::direct_walker::config cfg{options.scheme, options.strict, options.max_depth, &excluded};
    detail::direct_walker::item_capture found{popts.id_field, popts.modified_field, {}, {}};
    if (!direct.run_item(item, input_size, cfg, stack_floor, found)) return false;
    item_capture cap{popts.id_field, popts.modified_field, &rec.id, false, &rec.last_modified_time};
    capture = &cap;
    // As capture_member does: a name that is both fields counts as the id only.
    if (found.id.data()) capture_value(true, false, found.id);
    if (found.modified.data() && popts.modified_field != popts.id_field) capture_value(false, true, found.modified);
    capture = nullptr;
    if (!cap.id_found)
      rec.error = make_error(status::item_no_id, "page item has no usable \"" + popts.id_field + "\"", rec.offset);
    else
      rec.content_digest = sha256(direct.view());
    return true;
  }

  // Syntax errors end the page, because json.loads would have rejected the whole body too.
  static bool ends_page(status code) {
    return code == status::json_malformed || code == status::utf8_invalid ||
           code == status::out_of_memory;
  }

  // Walks a value the page does not hash (a non-object item, page_context, other top-level
  // fields) only to check that it is JSON. NaN, huge numbers and deep nesting there do not
  // fail the page: json.loads reads those.
  template <class V>
  bool validate_value(V& v) {
    out.clear();
    keys.clear();
    members.clear();
    bool is_null;
    if (write_value(v, 0, 0, is_null)) return true;
    if (ends_page(err.code)) return false;
    skipped_unchecked = true;
    err = error{};
    return true;
  }

  // page_context: has_more_page when it is a boolean; everything is validated.
  template <class V>
  bool read_page_context(V& v, std::optional<bool>& has_more_page) {
    const std::string_view token = v.raw_json_token();
    if (token.empty() || token[0] != '{') return validate_value(v);
    od::object ctx;
    if (auto e = v.get_object().get(ctx)) return fail_simdjson(e, token.data());
    for (auto ctx_field : ctx) {
      od::field f;
      if (auto e = std::move(ctx_field).get(f)) return fail_simdjson(e, token.data());
      std::string key;
      if (!read_string(f.key().raw(), &key, nullptr)) return false;
      auto& value = f.value();
      const std::string_view value_token = value.raw_json_token();
      const char c = value_token.empty() ? '\0' : value_token[0];
      if (key == "has_more_page" && (c == 't' || c == 'f')) {
        bool more;
        if (value.get_bool().get(more) != simdjson::SUCCESS)
          return fail(status::json_malformed, "invalid literal: expected true or false", value_token.data());
        has_more_page = more;
      } else if (!validate_value(value)) {
        return false;
      }
    }
    return true;
  }

  // The previous item ends before the separator that precedes the next item's first byte.
  void set_item_end(entity_record& previous, const char* next_start) {
    const char* p = next_start;
    const char* item_start = base + previous.offset;
    while (p > item_start && (p[-1] == ' ' || p[-1] == '\n' || p[-1] == '\r' || p[-1] == '\t' || p[-1] == ',')) --p;
    previous.length = static_cast<std::size_t>(p - item_start);
  }

  // ---- documents ------------------------------------------------------------------------

  void reset() {
    out.clear();
    keys.clear();
    members.clear();
    err = error{};
    skipped_unchecked = false;
    stack_floor = detail::thread_stack_floor();
  }

  pointer_set all_pointers() const {
    return pointers.empty() ? 0 : (pointers.size() == 64 ? ~pointer_set{0} : (pointer_set{1} << pointers.size()) - 1);
  }

  // After the root value: the document must hold nothing else.
  bool check_trailing(od::document& doc) {
    const char* loc = nullptr;
    if (doc.current_location().get(loc) == simdjson::SUCCESS)
      return fail(status::json_malformed, "trailing content after the JSON value", loc);
    return true;
  }

  bool reject_bom(std::string_view json) {
    if (json.substr(0, utf8_bom.size()) != utf8_bom) return true;
    return fail(status::json_malformed,
                "input starts with a UTF-8 byte order mark (EF BB BF), which JSON text must not "
                "have: strip it before hashing", base);
  }

  // The canonical form of `json` from the direct walker, or nullopt when it declines (then the
  // reference walker runs and decides). Nested pointer exclusions are the reference's alone.
  std::optional<std::string_view> canonicalize_direct(std::string_view json) {
    if (!use_direct || !pointers.empty()) return std::nullopt;
    const char* buf = load(json);
    const detail::direct_walker::config cfg{options.scheme, options.strict, options.max_depth, &excluded};
    if (!direct.run(buf, json.size(), cfg, detail::thread_stack_floor())) return std::nullopt;
    return direct.view();
  }

  bool write_root_literal(std::string_view word, const char* at) {
    if (word == "true" || word == "false" || word == "null") {
      out.append(word);
      return true;
    }
    return fail(status::json_malformed,
                word[0] == 'n' ? "invalid literal: expected null" : "invalid literal: expected true or false", at);
  }

  bool canonicalize_document(std::string_view json) {
    reset();
    const char* buf = load(json);
    if (!reject_bom(json)) return false;
    od::document doc;
    if (auto e = parser.iterate(buf, json.size(), json.size() + simdjson::SIMDJSON_PADDING).get(doc))
      return fail_simdjson(e, nullptr);
    bool is_null = false;
    bool ok;
    // The root is a document, not a value; scalars at the root need the document's accessors.
    std::string_view token = doc.raw_json_token();
    const char c = token.empty() ? '\0' : token[0];
    if (c == '{' || c == '[' || c == '"' || c == 'N' || c == 'I') {
      ok = write_value(doc, 0, all_pointers(), is_null);
    } else if (c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n') {
      // Literals are read from the token too: simdjson 3.0's document accessors refuse a root
      // "null " or "true  " (trailing space), which is valid JSON.
      const std::string_view word = trim_token(token);
      ok = (c == 't' || c == 'f' || c == 'n') ? write_root_literal(word, token.data()) : write_number(word, buf);
      // A root scalar is one token: anything after it is a second value.
      if (ok && token.data() + token.size() != buf + json.size())
        return fail(status::json_malformed, "trailing content after the JSON value", token.data());
      return ok;
    } else {
      return fail(status::json_malformed,
                  "unexpected character " + excerpt(token.substr(0, 1)) +
                      " where a JSON value should start",
                  token.data());
    }
    if (!ok) return false;
    return check_trailing(doc);
  }
};

// ---------------------------------------------------------------------------------------------
// canonicalizer

canonicalizer::canonicalizer(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
canonicalizer::canonicalizer(canonicalizer&&) noexcept = default;
canonicalizer& canonicalizer::operator=(canonicalizer&&) noexcept = default;
canonicalizer::~canonicalizer() = default;

result<canonicalizer> canonicalizer::create(canonical_options options) {
  try {
    if (options.max_depth == 0 || options.max_depth > max_depth_limit)
      return result<canonicalizer>(status::invalid_argument,
                                   "max_depth must be between 1 and " + std::to_string(max_depth_limit));
    if (options.exclude_pointers.size() > 64)
      return result<canonicalizer>(status::invalid_argument, "at most 64 exclusion pointers are supported");
    auto p = std::make_unique<impl>();
    std::vector<std::string> names;
    for (const auto& text : options.exclude_pointers) {
      auto tokens = parse_pointer(text);
      if (!tokens) return result<canonicalizer>(tokens.error());
      if (tokens.value().size() == 1) {
        // "/name" is a top-level exclusion: handle it with the name set.
        names.push_back(tokens.value()[0]);
      } else {
        p->pointers.push_back(std::move(tokens).value());
      }
    }
    if (options.exclude_fields) {
      names.insert(names.end(), options.exclude_fields->begin(), options.exclude_fields->end());
    } else if (options.scheme == hash_scheme::legacy) {
      const auto& d = legacy_excluded_fields();
      names.insert(names.end(), d.begin(), d.end());
    }
    std::sort(names.begin(), names.end());
    for (auto& name : names) p->excluded.add(std::move(name));
    p->options = std::move(options);
    return canonicalizer(std::move(p));
  } catch (const std::bad_alloc&) {
    return result<canonicalizer>(status::out_of_memory, "out of memory");
  }
}

const canonical_options& canonicalizer::options() const noexcept { return impl_->options; }

void detail::use_direct_walker(canonicalizer& c, bool enabled) noexcept { c.impl_->use_direct = enabled; }

result<std::string_view> canonicalizer::canonicalize(std::string_view json) {
  try {
    if (auto fast = impl_->canonicalize_direct(json)) return *fast;
    if (!impl_->canonicalize_document(json)) return result<std::string_view>(impl_->err);
    return std::string_view(impl_->out);
  } catch (const std::bad_alloc&) {
    return result<std::string_view>(status::out_of_memory, "out of memory");
  }
}

result<digest> canonicalizer::hash(std::string_view json) {
  try {
    if (auto fast = impl_->canonicalize_direct(json)) return sha256(*fast);
    if (!impl_->canonicalize_document(json)) return result<digest>(impl_->err);
    return sha256(impl_->out);
  } catch (const std::bad_alloc&) {
    return result<digest>(status::out_of_memory, "out of memory");
  }
}

result<page_records> canonicalizer::hash_page(std::string_view page, const page_options& popts) {
  impl& m = *impl_;
  try {
    m.reset();
    const char* buf = m.load(page);
    if (!m.reject_bom(page)) return result<page_records>(m.err);
    od::document doc;
    if (auto e = m.parser.iterate(buf, page.size(), page.size() + simdjson::SIMDJSON_PADDING).get(doc)) {
      m.fail_simdjson(e, nullptr);
      return result<page_records>(m.err);
    }
    od::object root;
    if (auto e = doc.get_object().get(root)) {
      if (e == simdjson::INCORRECT_TYPE)
        return result<page_records>(status::page_malformed, "page is not a JSON object", 0);
      m.fail_simdjson(e, buf);
      return result<page_records>(m.err);
    }
    page_records records;
    bool found_items = false;
    for (auto field_result : root) {
      od::field field;
      if (auto e = std::move(field_result).get(field)) {
        m.fail_simdjson(e, nullptr);
        return result<page_records>(m.err);
      }
      std::string key;
      if (!m.read_string(field.key().raw(), &key, nullptr)) return result<page_records>(m.err);
      if (key == popts.items_key) {
        // json.loads would keep the last array and silently drop the first one's entities:
        // records for one array only would let a caller miss real changes. Refused instead.
        if (found_items)
          return result<page_records>(status::page_malformed,
                                      "page has more than one \"" + popts.items_key +
                                          "\" member: refused rather than guessing which array holds the entities",
                                      static_cast<std::size_t>(field.key().raw() - 1 - buf));
        od::array items;
        if (auto e = field.value().get_array().get(items)) {
          if (e == simdjson::INCORRECT_TYPE)
            return result<page_records>(status::page_malformed,
                                        "\"" + popts.items_key + "\" is not an array");
          m.fail_simdjson(e, nullptr);
          return result<page_records>(m.err);
        }
        found_items = true;
        if (!m.hash_items(items, popts, records.records)) return result<page_records>(m.err);
      } else if (key == "page_context") {
        if (!m.read_page_context(field.value(), records.has_more_page)) return result<page_records>(m.err);
      } else if (!m.validate_value(field.value())) {
        return result<page_records>(m.err);
      }
    }
    if (!m.check_trailing(doc)) return result<page_records>(m.err);
    if (m.skipped_unchecked) {
      if (const char* bad = impl::syntax_error_at(buf, buf + page.size())) {
        const std::size_t at = static_cast<std::size_t>(bad - buf);
        return result<page_records>(
            status::json_malformed,
            at == page.size()  ? std::string("truncated JSON: the page ends inside a value")
            : page[at] == '"' ? std::string("invalid JSON: malformed string")
                              : "invalid JSON: unexpected " + excerpt(page.substr(at, 1)),
            at);
      }
    }
    if (!found_items)
      return result<page_records>(status::page_malformed,
                                  "page has no \"" + popts.items_key + "\" array");
    return records;
  } catch (const std::bad_alloc&) {
    return result<page_records>(status::out_of_memory, "out of memory");
  }
}

// ---------------------------------------------------------------------------------------------
// One-shot helpers

namespace {

bool same_options(const canonical_options& a, const canonical_options& b) {
  return a.scheme == b.scheme && a.strict == b.strict && a.exclude_fields == b.exclude_fields &&
         a.exclude_pointers == b.exclude_pointers && a.max_depth == b.max_depth;
}

// A few canonicalizers per thread, most recently used first: callers usually alternate
// between one or two option sets.
result<canonicalizer*> thread_canonicalizer(const canonical_options& options) {
  thread_local std::list<canonicalizer> cache;
  for (auto it = cache.begin(); it != cache.end(); ++it) {
    if (same_options(it->options(), options)) {
      cache.splice(cache.begin(), cache, it);
      return &cache.front();
    }
  }
  auto created = canonicalizer::create(options);
  if (!created) return result<canonicalizer*>(created.error());
  cache.push_front(std::move(created).value());
  if (cache.size() > 4) cache.pop_back();
  return &cache.front();
}

}  // namespace

result<std::string> canonicalize(std::string_view json, const canonical_options& options) {
  auto c = thread_canonicalizer(options);
  if (!c) return result<std::string>(c.error());
  auto r = c.value()->canonicalize(json);
  if (!r) return result<std::string>(r.error());
  return std::string(r.value());
}

result<digest> hash_json(std::string_view json, const canonical_options& options) {
  auto c = thread_canonicalizer(options);
  if (!c) return result<digest>(c.error());
  return c.value()->hash(json);
}

}  // namespace tds
