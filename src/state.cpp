// Cached state values: the key layout, the decoder (simdjson DOM, which validates the whole
// document) and the encoder that writes what Python's json.dumps would. Deciding what a state
// means for a sync lives in decision.cpp; talking to Redis lives in the client.
#include "tdscache/state.hpp"

#include <simdjson.h>

#include <bit>
#include <cstring>
#include <new>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "tdscache/detail/ascii_json.hpp"
#include "tdscache/detail/json_text.hpp"

namespace tds {
namespace detail {
namespace {

bool is_continuation(unsigned char byte) noexcept { return (byte & 0xc0) == 0x80; }

// SWAR over 8 bytes: a 0x80 bit in each byte that is '"', '\\', below 0x20 or from 0x7f up.
// A flag can be wrong only in a byte above a truly flagged one, so the lowest flag is exact.
constexpr std::uint64_t ones = 0x0101010101010101ull;
constexpr std::uint64_t highs = 0x8080808080808080ull;
constexpr std::uint64_t zero_bytes(std::uint64_t x) noexcept { return (x - ones) & ~x & highs; }
constexpr std::uint64_t stop_bytes(std::uint64_t w) noexcept {
  const std::uint64_t below_space = (w - ones * 0x20) & ~w & highs;
  const std::uint64_t above_tilde = ((w + ones * (0x7f - 0x7e)) | w) & highs;
  return below_space | above_tilde | zero_bytes(w ^ (ones * '"')) | zero_bytes(w ^ (ones * '\\'));
}

bool is_stop_byte(unsigned char c) noexcept { return c < 0x20 || c > 0x7e || c == '"' || c == '\\'; }

}  // namespace

// The JSON string bytes that are written as they are, read as they are, and need no UTF-8
// check: printable ASCII except '"' and '\\'. Both the encoder and the fast decoder (which
// refuses anything else) spend most of their time here, hence 16 bytes a step.
std::size_t plain_run(const char* p, const char* end) noexcept {
  const char* const start = p;
#if defined(__SSE2__)
  // A signed compare with 0x20 catches control characters and every byte from 0x80 up.
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i del = _mm_set1_epi8(0x7f);
  const __m128i space = _mm_set1_epi8(0x20);
  while (end - p >= 16) {
    const __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i stop = _mm_or_si128(
        _mm_or_si128(_mm_cmplt_epi8(chunk, space), _mm_cmpeq_epi8(chunk, del)),
        _mm_or_si128(_mm_cmpeq_epi8(chunk, quote), _mm_cmpeq_epi8(chunk, backslash)));
    if (const auto mask = static_cast<unsigned>(_mm_movemask_epi8(stop)); mask != 0) {
      return static_cast<std::size_t>(p - start) + static_cast<std::size_t>(std::countr_zero(mask));
    }
    p += 16;
  }
#endif
  while (end - p >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
    if (const std::uint64_t stop = stop_bytes(w); stop != 0) {
      return static_cast<std::size_t>(p - start) + static_cast<std::size_t>(std::countr_zero(stop) / 8);
    }
    p += 8;
  }
  while (p < end && !is_stop_byte(static_cast<unsigned char>(*p))) ++p;
  return static_cast<std::size_t>(p - start);
}

namespace {

// Length of the well-formed UTF-8 sequence starting at bytes[at] and its code point, or 0
// when the bytes there are not one (overlong forms, surrogates, > U+10FFFF, truncation).
// json_text's decoder trusts its input; ids come from callers, so this one checks.
std::size_t decode_utf8(std::string_view bytes, std::size_t at, std::uint32_t& code_point) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(bytes[at + i]); };
  const std::size_t left = bytes.size() - at;
  const std::uint32_t lead = byte(0);
  // The second byte's allowed range depends on the lead byte (Unicode table 3-7).
  unsigned low = 0x80, high = 0xbf;
  std::size_t length = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (left < length || byte(1) < low || byte(1) > high) return 0;
  std::uint32_t value = lead & (0x7fu >> length);
  for (std::size_t i = 1; i < length; ++i) {
    if (!is_continuation(byte(i))) return 0;
    value = (value << 6) | (byte(i) & 0x3f);
  }
  code_point = value;
  return length;
}

}  // namespace

void append_ascii_json_string(std::string& out, std::string_view bytes) {
  out.push_back('"');
  std::size_t at = 0;
  while (at < bytes.size()) {
    // Copy the longest run that needs no escaping in one append.
    const std::size_t run_end = at + plain_run(bytes.data() + at, bytes.data() + bytes.size());
    out.append(bytes.substr(at, run_end - at));
    at = run_end;
    if (at == bytes.size()) break;

    const auto byte = static_cast<unsigned char>(bytes[at]);
    std::uint32_t code_point = byte;
    std::size_t length = 1;
    if (byte >= 0x80) {
      length = decode_utf8(bytes, at, code_point);
      if (length == 0) length = 1;  // a stray byte becomes \u00XX: the output stays valid JSON
    }
    append_code_point(out, code_point, hash_scheme::legacy);
    at += length;
  }
  out.push_back('"');
}

}  // namespace detail

std::string state_key(std::string_view prefix, std::string_view entity_type,
                      std::string_view entity_id) {
  std::string key;
  key.reserve(prefix.size() + entity_type.size() + entity_id.size() + 2);
  key.append(prefix).append(1, ':').append(entity_type).append(1, ':').append(entity_id);
  return key;
}

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

std::string_view type_name(element_type type) noexcept {
  switch (type) {
    case element_type::ARRAY: return "an array";
    case element_type::OBJECT: return "an object";
    case element_type::INT64:
    case element_type::UINT64: return "an integer";
    case element_type::DOUBLE: return "a non-integer number";
    case element_type::STRING: return "a string";
    case element_type::BOOL: return "a boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "an unknown type";
}

error wrong_type(std::string_view field, std::string_view expected, const element& value) {
  std::string message = "cached state: field \"";
  message.append(field).append("\" must be ").append(expected).append(", got ");
  message.append(type_name(value.type()));
  return make_error(status::invalid_argument, std::move(message));
}

error missing(std::string_view field) {
  std::string message = "cached state: required field \"";
  message.append(field).append("\" is missing");
  return make_error(status::invalid_argument, std::move(message));
}

bool is_hex_digest(std::string_view text) noexcept {
  if (text.size() != 64) return false;
#if defined(__SSE2__)
  // Per byte: a digit, or (after folding case) a to f; unsigned range checks via min.
  const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
  const __m128i a = _mm_set1_epi8('a'), five = _mm_set1_epi8(5), lower = _mm_set1_epi8(0x20);
  unsigned all = 0xffff;
  for (std::size_t i = 0; i < 64; i += 16) {
    const __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text.data() + i));
    const __m128i d = _mm_sub_epi8(chunk, zero);
    const __m128i l = _mm_sub_epi8(_mm_or_si128(chunk, lower), a);
    const __m128i ok = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(d, nine), d),
                                    _mm_cmpeq_epi8(_mm_min_epu8(l, five), l));
    all &= static_cast<unsigned>(_mm_movemask_epi8(ok));
  }
  return all == 0xffff;
#endif
  // An early exit, on purpose: GCC vectorizes an OR over the whole text into byte-by-byte
  // word assembly that costs several times this loop.
  for (const char c : text) {
    if (detail::hex_digit_values[static_cast<unsigned char>(c)] > 0xf) return false;
  }
  return true;
}

// A string, or an integer kept as its decimal digits (JSON integers have exactly one
// spelling, so the digits equal the stored text). Returns false for any other type.
bool read_id_text(const element& value, std::string& out) {
  std::string_view text;
  std::int64_t signed_value = 0;
  std::uint64_t unsigned_value = 0;
  if (value.get_string().get(text) == simdjson::SUCCESS) {
    out.assign(text);
  } else if (value.get_int64().get(signed_value) == simdjson::SUCCESS) {
    out = std::to_string(signed_value);
  } else if (value.get_uint64().get(unsigned_value) == simdjson::SUCCESS) {
    out = std::to_string(unsigned_value);
  } else {
    return false;
  }
  return true;
}

// A string field; nullopt when it is one, the error to return when it is not.
std::optional<error> read_string(std::string_view key, const element& value,
                                 std::string_view& out) {
  if (value.get_string().get(out) == simdjson::SUCCESS) return std::nullopt;
  return wrong_type(key, "a string", value);
}

// local_id and last_modified_time: null and absent mean the same.
std::optional<error> read_optional(std::string_view key, const element& value,
                                   std::optional<std::string>& out, bool allow_integer) {
  if (value.is_null()) {
    out.reset();
    return std::nullopt;
  }
  std::string text;
  if (allow_integer && read_id_text(value, text)) {
    out = std::move(text);
    return std::nullopt;
  }
  std::string_view view;
  if (!allow_integer && value.get_string().get(view) == simdjson::SUCCESS) {
    out = std::string(view);
    return std::nullopt;
  }
  return wrong_type(key, allow_integer ? "a string, an integer or null" : "a string or null",
                    value);
}

// Copies the value into a reused, padded buffer: simdjson reads up to SIMDJSON_PADDING bytes
// past the end, and the caller's bytes (a Redis reply) carry no such guarantee.
struct decoder {
  simdjson::dom::parser parser;
  std::string buffer;
};

result<entity_state> decode_object(const simdjson::dom::object& object) {
  entity_state state;
  bool have_type = false, have_id = false, have_hash = false, have_cached_at = false,
       have_count = false;
  for (const auto field : object) {
    const std::string_view key = field.key;
    const element& value = field.value;
    std::string_view text;
    std::optional<error> problem;
    if (key == "entity_type") {
      if (!(problem = read_string(key, value, text))) state.entity_type.assign(text);
      have_type = true;
    } else if (key == "entity_id") {
      if (!read_id_text(value, state.entity_id)) {
        problem = wrong_type(key, "a string or an integer", value);
      }
      have_id = true;
    } else if (key == "local_id") {
      problem = read_optional(key, value, state.local_id, true);
    } else if (key == "content_hash") {
      if (!(problem = read_string(key, value, text)) && !is_hex_digest(text)) {
        problem = make_error(status::invalid_argument,
                             "cached state: field \"content_hash\" must be 64 hex digits, got \"" +
                                 std::string(text.substr(0, 80)) + "\"");
      }
      state.content_hash.assign(text);
      have_hash = true;
    } else if (key == "last_modified_time") {
      problem = read_optional(key, value, state.last_modified_time, false);
    } else if (key == "cached_at") {
      if (!(problem = read_string(key, value, text))) state.cached_at.assign(text);
      have_cached_at = true;
    } else if (key == "sync_count") {
      if (value.get_int64().get(state.sync_count) != simdjson::SUCCESS) {
        problem = wrong_type(key, "an integer that fits in 64 bits", value);
      } else if (state.sync_count < 0) {
        problem = make_error(status::invalid_argument,
                             "cached state: field \"sync_count\" must not be negative, got " +
                                 std::to_string(state.sync_count));
      }
      have_count = true;
    } else if (key == "hash_scheme") {
      if (!(problem = read_string(key, value, text)) && !(state.scheme = parse_scheme(text))) {
        problem = make_error(status::invalid_argument,
                             "cached state: unknown hash_scheme \"" +
                                 std::string(text.substr(0, 80)) + "\" (expected \"legacy\" or \"jcs\")");
      }
    }
    if (problem) return std::move(*problem);
  }
  if (!have_type) return missing("entity_type");
  if (!have_id) return missing("entity_id");
  if (!have_hash) return missing("content_hash");
  if (!have_cached_at) return missing("cached_at");
  if (!have_count) return missing("sync_count");
  return state;
}

}  // namespace

namespace detail {

result<entity_state> decode_state_dom(std::string_view value) {
  try {
    thread_local decoder local;
    local.buffer.assign(value);
    local.buffer.append(simdjson::SIMDJSON_PADDING, '\0');
    element root;
    const auto code = local.parser.parse(local.buffer.data(), value.size(), false).get(root);
    if (code == simdjson::MEMALLOC) {
      return make_error(status::out_of_memory, "cached state: out of memory while parsing");
    }
    if (code != simdjson::SUCCESS) {
      return make_error(status::json_malformed,
                        std::string("cached state is not valid JSON: ") +
                            simdjson::error_message(code));
    }
    simdjson::dom::object object;
    if (root.get_object().get(object) != simdjson::SUCCESS) {
      return make_error(status::json_malformed, std::string("cached state must be a JSON object, got ") +
                                                    std::string(type_name(root.type())));
    }
    return decode_object(object);
  } catch (const std::bad_alloc&) {
    return make_error(status::out_of_memory, "cached state: out of memory while decoding");
  } catch (...) {
    return make_error(status::internal, "cached state: unexpected failure while decoding");
  }
}

namespace {

// The scanner accepts only what it can decode exactly as simdjson would: no escapes (the raw
// bytes are then the string), printable ASCII only (so no UTF-8 to validate), integers without
// sign, fraction or exponent and short enough for int64 whatever the digits.
constexpr std::size_t max_scanned_digits = 18;

enum class scanned_kind { string, integer, null, boolean };

struct scanned_value {
  scanned_kind kind = scanned_kind::null;
  std::string_view text;  // a string's bytes, an integer's digits
  std::int64_t integer = 0;
};

// A string at p (which is past the opening quote); p ends past the closing quote. Any byte
// plain_run stops at other than the closing quote sends the value to the DOM decoder.
inline __attribute__((always_inline)) bool scan_string(const char*& p, const char* end,
                                                  std::string_view& out) noexcept {
  const char* start = p;
  p += plain_run(p, end);
  if (p == end || *p != '"') return false;
  out = std::string_view(start, static_cast<std::size_t>(p - start));
  ++p;
  return true;
}

bool scan_literal(const char*& p, const char* end, std::string_view word) noexcept {
  if (static_cast<std::size_t>(end - p) < word.size() ||
      std::string_view(p, word.size()) != word) {
    return false;
  }
  p += word.size();
  return true;
}

bool scan_value(const char*& p, const char* end, scanned_value& out) noexcept {
  if (p >= end) return false;
  const char c = *p;
  if (c == '"') {
    out.kind = scanned_kind::string;
    return scan_string(++p, end, out.text);
  }
  if (c >= '0' && c <= '9') {
    const char* start = p;
    std::int64_t n = 0;
    for (; p < end && *p >= '0' && *p <= '9'; ++p) {
      if (static_cast<std::size_t>(p - start) == max_scanned_digits) return false;
      n = n * 10 + (*p - '0');
    }
    const auto digits = static_cast<std::size_t>(p - start);
    // "01" is not JSON; the DOM path says so.
    if (digits > 1 && *start == '0') return false;
    out.kind = scanned_kind::integer;
    out.text = std::string_view(start, digits);
    out.integer = n;
    return true;
  }
  out.kind = c == 'n' ? scanned_kind::null : scanned_kind::boolean;
  return scan_literal(p, end, "null") || scan_literal(p, end, "true") ||
         scan_literal(p, end, "false");
}

// One bit per known field (0: any other field).
constexpr unsigned f_entity_type = 1, f_entity_id = 2, f_local_id = 4, f_content_hash = 8,
                   f_last_modified_time = 16, f_cached_at = 32, f_sync_count = 64,
                   f_hash_scheme = 128;
constexpr unsigned required_fields =
    f_entity_type | f_entity_id | f_content_hash | f_cached_at | f_sync_count;

unsigned field_of(std::string_view key) noexcept {
  switch (key.size()) {
    case 8: return key == "local_id" ? f_local_id : 0;
    case 9: return key == "entity_id" ? f_entity_id : key == "cached_at" ? f_cached_at : 0;
    case 10: return key == "sync_count" ? f_sync_count : 0;
    case 11: return key == "entity_type" ? f_entity_type : key == "hash_scheme" ? f_hash_scheme : 0;
    case 12: return key == "content_hash" ? f_content_hash : 0;
    case 18: return key == "last_modified_time" ? f_last_modified_time : 0;
    default: return 0;
  }
}

// The known field whose name, with its closing quote, starts at p (then p moves past the
// quote), or 0 (p unchanged): the common keys are matched without scanning them as strings.
unsigned known_key_at(const char*& p, const char* end) noexcept {
  const auto is = [&](std::string_view quoted) {
    if (static_cast<std::size_t>(end - p) < quoted.size() || std::memcmp(p, quoted.data(), quoted.size()) != 0) {
      return false;
    }
    p += quoted.size();
    return true;
  };
  if (p == end) return 0;
  switch (*p) {
    case 'e': return is("entity_type\"") ? f_entity_type : is("entity_id\"") ? f_entity_id : 0;
    case 'l': return is("local_id\"") ? f_local_id : is("last_modified_time\"") ? f_last_modified_time : 0;
    case 'c': return is("content_hash\"") ? f_content_hash : is("cached_at\"") ? f_cached_at : 0;
    case 's': return is("sync_count\"") ? f_sync_count : 0;
    case 'h': return is("hash_scheme\"") ? f_hash_scheme : 0;
    default: return 0;
  }
}

// Stores one known field; false when its value is not one the DOM path would accept (the
// DOM path then produces the error).
bool take_field(unsigned field, const scanned_value& v, state_view& out) noexcept {
  const bool is_string = v.kind == scanned_kind::string;
  const bool is_null = v.kind == scanned_kind::null;
  const bool is_integer = v.kind == scanned_kind::integer;
  switch (field) {
    case f_entity_type:
      out.entity_type = v.text;
      return is_string;
    case f_entity_id:
      out.entity_id = v.text;
      return is_string || is_integer;
    case f_local_id:
      if (!is_null) out.local_id = v.text;
      return is_string || is_integer || is_null;
    case f_content_hash:
      out.content_hash = v.text;
      return is_string && is_hex_digest(v.text);
    case f_last_modified_time:
      if (!is_null) out.last_modified_time = v.text;
      return is_string || is_null;
    case f_cached_at:
      out.cached_at = v.text;
      return is_string;
    case f_sync_count:
      out.sync_count = v.integer;
      return is_integer;
    case f_hash_scheme:
      return is_string && (out.scheme = parse_scheme(v.text)).has_value();
    default:
      return true;  // an unknown field: any scalar will do
  }
}

// A fixed piece of text at p (then p moves past it). Compared 8 bytes a step against words
// the compiler folds from the literal, the last step overlapping the one before; GCC 12 made
// std::memcmp of these lengths a library call (measured: 4% of a check's instructions).
template <std::size_t N>
inline __attribute__((always_inline)) bool fixed_text(const char*& p, const char* end,
                                                      const char (&text)[N]) noexcept {
  constexpr std::size_t n = N - 1;
  static_assert(n >= 8, "the word compare reads 8 bytes");
  if (static_cast<std::size_t>(end - p) < n) return false;
  const auto word = [](const char* at) {
    std::uint64_t w;
    std::memcpy(&w, at, 8);
    return w;
  };
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    if (word(p + i) != word(text + i)) return false;
  }
  if constexpr (n % 8 != 0) {
    if (word(p + n - 8) != word(text + n - 8)) return false;
  }
  p += n;
  return true;
}

// A string (p at its opening quote) or null.
inline bool string_or_null(const char*& p, const char* end, std::optional<std::string_view>& out) noexcept {
  if (p != end && *p == '"') {
    std::string_view text;
    if (!scan_string(++p, end, text)) return false;
    out = text;
    return true;
  }
  if (end - p < 4 || std::memcmp(p, "null", 4) != 0) return false;
  p += 4;
  return true;
}

// The layout encode_state_parts writes, which is also the legacy service's field order and
// spacing: every name and separator sits where it is expected, so each is one fixed compare
// instead of a name lookup and a dispatch. It takes only strings for the ids (not integers),
// and nothing else is optional but the nulls and hash_scheme. Anything else returns false and
// scan_state's general loop decides; whatever this accepts, that loop accepts too, with the
// same view (same string, integer and hash rules, the same fields).
bool scan_own_layout(std::string_view value, state_view& out) noexcept {
  const char* p = value.data();
  const char* const end = p + value.size();
  // Every field is written below or reset here: zeroing the whole view (a rep stos) cost
  // more than a third of this function's time.
  out.local_id.reset();
  out.last_modified_time.reset();
  out.scheme.reset();
  if (!fixed_text(p, end, "{\"entity_type\": \"") || !scan_string(p, end, out.entity_type)) return false;
  if (!fixed_text(p, end, ", \"entity_id\": \"") || !scan_string(p, end, out.entity_id)) return false;
  if (!fixed_text(p, end, ", \"local_id\": ") || !string_or_null(p, end, out.local_id)) return false;
  // Hex digits are plain bytes, so 64 of them and a quote are exactly the string scan_string
  // would find, without scanning for its end.
  constexpr std::size_t hex_size = 64;
  if (!fixed_text(p, end, ", \"content_hash\": \"") || static_cast<std::size_t>(end - p) <= hex_size ||
      p[hex_size] != '"' || !is_hex_digest(std::string_view(p, hex_size))) {
    return false;
  }
  out.content_hash = std::string_view(p, hex_size);
  p += hex_size + 1;
  if (!fixed_text(p, end, ", \"last_modified_time\": ") || !string_or_null(p, end, out.last_modified_time)) {
    return false;
  }
  if (!fixed_text(p, end, ", \"cached_at\": \"") || !scan_string(p, end, out.cached_at)) return false;
  if (fixed_text(p, end, ", \"hash_scheme\": \"")) {
    std::string_view name;
    if (!scan_string(p, end, name) || !(out.scheme = parse_scheme(name)).has_value()) return false;
  }
  scanned_value count;
  if (!fixed_text(p, end, ", \"sync_count\": ") || p == end || *p < '0' || *p > '9' ||
      !scan_value(p, end, count)) {
    return false;
  }
  out.sync_count = count.integer;
  return p + 1 == end && *p == '}';
}

}  // namespace

bool scan_state(std::string_view value, state_view& out) noexcept {
  if (scan_own_layout(value, out)) return true;
  const char* p = value.data();
  const char* const end = p + value.size();
  if (p == end || *p++ != '{') return false;
  out = state_view{};
  unsigned seen = 0;
  for (;;) {
    if (p == end || *p++ != '"') return false;
    unsigned field = known_key_at(p, end);
    if (field == 0) {
      std::string_view key;
      if (!scan_string(p, end, key)) return false;
      field = field_of(key);
    }
    if (p == end || *p++ != ':') return false;
    if (p != end && *p == ' ') ++p;
    scanned_value v;
    if (!scan_value(p, end, v)) return false;
    // A repeated field: the DOM path applies them in order, errors included.
    if ((seen & field) != 0 || !take_field(field, v, out)) return false;
    seen |= field;
    if (p == end) return false;
    const char next = *p++;
    if (next == '}') break;
    if (next != ',') return false;
    if (p != end && *p == ' ') ++p;
  }
  if (p != end || (seen & required_fields) != required_fields) return false;
  return true;
}

entity_state to_entity_state(const state_view& v) {
  entity_state s;
  s.entity_type.assign(v.entity_type);
  s.entity_id.assign(v.entity_id);
  if (v.local_id) s.local_id.emplace(*v.local_id);
  s.content_hash.assign(v.content_hash);
  if (v.last_modified_time) s.last_modified_time.emplace(*v.last_modified_time);
  s.cached_at.assign(v.cached_at);
  s.sync_count = v.sync_count;
  s.scheme = v.scheme;
  return s;
}

}  // namespace detail

result<entity_state> decode_state(std::string_view value) {
  if (detail::state_view view; detail::scan_state(value, view)) {
    try {
      return detail::to_entity_state(view);
    } catch (const std::bad_alloc&) {
      return make_error(status::out_of_memory, "cached state: out of memory while decoding");
    }
  }
  return detail::decode_state_dom(value);
}

encoded_state encode_state_parts(const entity_state& s) {
  const auto field = [](std::string& out, std::string_view name) {
    out.append(", \"").append(name).append("\": ");
  };
  const auto text_or_null = [](std::string& out, const std::optional<std::string>& text) {
    if (text) detail::append_ascii_json_string(out, *text);
    else out.append("null");
  };

  encoded_state parts;
  std::string& out = parts.head;
  // 200 bytes: the fixed field names, a 64-digit hash and two timestamps.
  out.reserve(200 + s.entity_type.size() + s.entity_id.size());
  out.append("{\"entity_type\": ");
  detail::append_ascii_json_string(out, s.entity_type);
  field(out, "entity_id");
  detail::append_ascii_json_string(out, s.entity_id);
  field(out, "local_id");
  text_or_null(out, s.local_id);
  field(out, "content_hash");
  detail::append_ascii_json_string(out, s.content_hash);
  field(out, "last_modified_time");
  text_or_null(out, s.last_modified_time);
  field(out, "cached_at");
  detail::append_ascii_json_string(out, s.cached_at);
  if (s.scheme) {
    field(out, "hash_scheme");
    detail::append_ascii_json_string(out, scheme_name(*s.scheme));
  }
  field(out, "sync_count");
  parts.tail = "}";
  return parts;
}

std::string encode_state(const entity_state& s) {
  encoded_state parts = encode_state_parts(s);
  parts.head.append(std::to_string(s.sync_count)).append(parts.tail);
  return std::move(parts.head);
}

}  // namespace tds
