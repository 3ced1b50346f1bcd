// The direct walker (see canonical_direct.hpp): a strict recursive-descent JSON reader that
// writes the canonical form as it reads. Every branch it is not sure of returns false, so the
// reference walker in canonical.cpp decides: errors, NaN, nested pointer exclusions, JCS
// duplicate names and lone surrogates, and numbers that would need special handling.
#include "canonical_direct.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "tdscache/detail/json_text.hpp"
#include "tdscache/detail/stack_depth.hpp"

// The per-token steps are inlined into the object and array loops: calls through `this` made
// the compiler store and reload the cursor and the buffer ends around every token.
#define TDS_HOT_INLINE [[gnu::always_inline]] inline

namespace tds::detail {

void name_set::add(std::string name) {
  if (name.size() < 64) lengths |= std::uint64_t{1} << name.size();
  if (!name.empty()) {
    const auto b = static_cast<unsigned char>(name[0]);
    first_bytes[b >> 6] |= std::uint64_t{1} << (b & 63);
  }
  names.push_back(std::move(name));
}

void byte_buffer::grow(std::size_t need) {
  const std::size_t cap = std::max<std::size_t>({need, capacity * 2, 4096});
  std::unique_ptr<char[]> bigger(new char[cap]);
  if (size) std::memcpy(bigger.get(), data.get(), size);
  data = std::move(bigger);
  capacity = cap;
}

namespace {

// Output room, checked once per document instead of once per token. Every token the walk
// writes in place is at most `per_byte` (see out_per_byte) times the input it consumes: jcs
// writes strings, numbers and separators no longer than read; legacy's ", " and ": " are two
// bytes for one. So while out_ keeps per_byte * (input left) + out_slack bytes free, every
// store fits. The few tokens that can write more (legacy non-ASCII and DEL, numbers through a
// double, escaped names) restore that room themselves (keep_bound).
// The slack covers stores past a token's end: a name's 16-byte blocks (two: up to 31 bytes past
// its end; four for a long foreseen name: up to 32), copy_span's 31, a string block's 16,
// put_u_escape_wide's 2.
constexpr std::size_t out_slack = 128;
constexpr std::size_t out_per_byte(hash_scheme scheme) { return scheme == hash_scheme::legacy ? 2 : 1; }

// Deeper documents go to the reference walker, which knows simdjson's own depth limit (1024).
constexpr std::size_t direct_depth_limit = 256;

inline void skip_ws(const char*& p) noexcept {
  // Compact input has no space at all: one compare settles it (JSON space is <= ' ').
  if (static_cast<unsigned char>(*p) > ' ') return;
  while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') ++p;
}

// Whether the byte at p, after any space, is `c`; steps p over the space. The walk compares
// with the byte it expects first and looks for space only when that fails: compact input (the
// common case) then pays nothing for space it does not have.
inline bool at_after_space(const char*& p, char c) noexcept {
  if (*p == c) return true;
  skip_ws(p);
  return *p == c;
}

inline bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// The end of the run of ASCII digits at p, 32 bytes a look: Zoho's 19-digit ids took a
// mispredicted exit from a byte loop each. Reads up to 31 bytes past the run (padded input).
inline const char* skip_digits(const char* p) noexcept {
#if defined(__SSE2__)
  for (;; p += 32) {
    const auto digits = [](const char* q) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
      // Signed compares: bytes >= 0x80 are negative and fail the first test.
      return static_cast<unsigned>(_mm_movemask_epi8(
          _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)), _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)))));
    };
    const unsigned other = ~(digits(p) | digits(p + 16) << 16);
    if (other != 0) return p + __builtin_ctz(other);
  }
#else
  while (is_digit(*p)) ++p;
  return p;
#endif
}

// Two lowercase hex digits per byte value, first digit in the low byte (as stored).
constexpr auto hex_pairs = [] {
  std::array<std::uint16_t, 256> t{};
  constexpr char digits[] = "0123456789abcdef";
  for (unsigned b = 0; b < 256; ++b)
    t[b] = static_cast<std::uint16_t>(static_cast<unsigned char>(digits[b >> 4]) |
                                      static_cast<unsigned char>(digits[b & 0xF]) << 8);
  return t;
}();

// \uXXXX as one 8-byte store of two table pairs (Arabic text in legacy is mostly these): 2
// bytes past the escape are overwritten, so callers keep that room.
inline char* put_u_escape_wide(char* w, std::uint32_t unit) noexcept {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const std::uint64_t v = std::uint64_t{'\\'} | std::uint64_t{'u'} << 8 |
                          std::uint64_t{hex_pairs[(unit >> 8) & 0xFF]} << 16 |
                          std::uint64_t{hex_pairs[unit & 0xFF]} << 32;
  std::memcpy(w, &v, 8);
  return w + 6;
#else
  return put_u_escape(w, unit);
#endif
}

// ensure_ascii's form of a code point >= 0x80: \uXXXX, or a surrogate pair of them. Writes up
// to 14 bytes for 12.
inline char* put_legacy_non_ascii(char* w, std::uint32_t cp) noexcept {
  if (cp < 0x10000) return put_u_escape_wide(w, cp);
  const std::uint32_t v = cp - 0x10000;
  return put_u_escape_wide(put_u_escape_wide(w, 0xD800 | (v >> 10)), 0xDC00 | (v & 0x3FF));
}

// Bit i set: byte i of the block at p must leave the plain copy loop. Legacy stops at '"', '\\',
// controls and everything outside ' '..'~'; jcs stops at '"', '\\' and controls only.
// `quote` marks the '"' bytes alone: whether the first special byte ends the string is then a
// bit test, not a load of the byte through the just-computed position.
struct block_marks {
  unsigned special, quote;
};

inline block_marks scan_block(const char* p, bool legacy) noexcept;

inline unsigned special_mask(const char* p, bool legacy) noexcept { return scan_block(p, legacy).special; }

inline block_marks scan_block(const char* p, bool legacy) noexcept {
#if defined(__SSE2__)
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
  const __m128i quote_or_backslash = _mm_or_si128(quote, _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
  __m128i special;
  if (legacy) {
    // Signed compare: bytes 0x80-0xFF are negative, so one compare flags them with the controls.
    special = _mm_or_si128(_mm_or_si128(quote_or_backslash, _mm_cmplt_epi8(v, _mm_set1_epi8(0x20))),
                           _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7F)));
  } else {
    special = _mm_or_si128(quote_or_backslash,
                           _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v));
  }
  return {static_cast<unsigned>(_mm_movemask_epi8(special)), static_cast<unsigned>(_mm_movemask_epi8(quote))};
#else
  block_marks marks{0, 0};
  for (int i = 0; i < 16; ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    if (c == '"' || c == '\\' || c < 0x20 || (legacy && c >= 0x7F)) marks.special |= 1u << i;
    if (c == '"') marks.quote |= 1u << i;
  }
  return marks;
#endif
}

inline void copy_block(char* w, const char* p) noexcept {
#if defined(__SSE2__)
  _mm_storeu_si128(reinterpret_cast<__m128i*>(w), _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#else
  std::memcpy(w, p, 16);
#endif
}

inline bool is_surrogate(std::int32_t cp) noexcept { return cp >= 0xD800 && cp <= 0xDFFF; }

// Reads 8 bytes whatever the size: names live in the padded input or in keys_, which keeps 16
// spare bytes. (Byte stores into a zeroed array and one 8-byte load stalled store forwarding.)
inline std::uint64_t key_prefix(const char* key, std::size_t size) noexcept {
  std::uint64_t v;
  std::memcpy(&v, key, 8);
  v = __builtin_bswap64(v);
  // Branch-free: names of under and over 8 bytes alternate unpredictably.
  const std::uint64_t keep = size >= 8 ? ~std::uint64_t{0} : ~(~std::uint64_t{0} >> (8 * size));
  return v & keep;
}

// Copies n bytes in 16-byte blocks, at least two: up to 31 bytes past both ends are read and
// written, so both buffers keep that much room. (Most spans fit in 32 bytes, so the loop, whose
// exit mispredicted per span, is mostly skipped.)
inline char* copy_span(char* w, const char* s, std::size_t n) noexcept {
  copy_block(w, s);
  copy_block(w + 16, s + 16);
  for (std::size_t i = 32; i < n; i += 16) copy_block(w + i, s + i);
  return w + n;
}

// Whether n (> 0) bytes at a and b are equal, compared 16 at a time: both may be read up to 15
// bytes past n (names live in padded buffers; shape tails are padded).
inline bool same_bytes(const char* a, const char* b, std::size_t n) noexcept {
#if defined(__SSE2__)
  for (;; a += 16, b += 16, n -= 16) {
    const auto eq = static_cast<unsigned>(_mm_movemask_epi8(
        _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)),
                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)))));
    if (n <= 16) {
      const unsigned wanted = (1u << n) - 1;  // 32-bit: n == 16 gives 0xFFFF
      return (eq & wanted) == wanted;
    }
    if (eq != 0xFFFFu) return false;
  }
#else
  return std::memcmp(a, b, n) == 0;
#endif
}

// A multiplicative hash keeps its best bits at the top.
inline std::size_t slot_of(std::uint64_t hash) noexcept { return static_cast<std::size_t>(hash >> 58); }

inline bool same_key(const char* a, std::size_t an, const char* b, std::size_t bn) noexcept {
  return an == bn && std::memcmp(a, b, an) == 0;
}

// The longest name a pattern holds: the name and its quote fit the 64 bytes compared, and the
// mask needs no shift by 64. (Zoho has names of 31 bytes: location_actual_available_stock.)
constexpr std::size_t pattern_name_max = 62;
// Names up to this long are compared and copied in two blocks, longer ones in four.
constexpr std::size_t pattern_short_max = 30;

// The pattern of `name`, or false when it has none: too long, or not written as it reads
// (a quote, backslash or control; in legacy also DEL and non-ASCII, which are escaped).
inline bool make_pattern(std::string_view name, bool legacy, name_pattern& out) noexcept {
  if (name.size() > pattern_name_max) return false;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\' || c < 0x20 || (legacy && c >= 0x7F)) return false;
  }
  std::memset(out.text, 0, sizeof out.text);
  std::memcpy(out.text, name.data(), name.size());
  out.text[name.size()] = '"';
  out.mask = (std::uint64_t{1} << (name.size() + 1)) - 1;
  out.size = static_cast<std::uint32_t>(name.size());
  return true;
}

// Whether the key text at s (past the opening quote) is the pattern's name and closing quote.
// Reads 32 or 64 bytes at s: the input is padded by 64.
inline bool matches_pattern(const char* s, const name_pattern& e) noexcept {
#if defined(__SSE2__)
  const auto equal_bytes = [](const char* a, const char* b) -> std::uint64_t {
    const auto load = [](const char* q) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)); };
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(load(a), load(b)))) |
           static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(load(a + 16), load(b + 16)))) << 16;
  };
  std::uint64_t eq = equal_bytes(s, e.text);
  if (e.size > pattern_short_max) eq |= equal_bytes(s + 32, e.text + 32) << 32;
  return (eq & e.mask) == e.mask;
#else
  return std::memcmp(s, e.text, e.size + 1) == 0;
#endif
}

// The guess table's index for a first name.
inline std::size_t guess_index(std::uint64_t prefix, std::size_t size) noexcept {
  return slot_of((prefix ^ size) * 0x9E3779B97F4A7C15ull);
}

}  // namespace

bool direct_walker::enter(std::size_t depth) const {
  return depth <= depth_limit_ && !below_stack_floor(stack_floor_);
}

void direct_walker::start(const config& cfg, std::uintptr_t stack_floor, std::size_t input_size) {
  cfg_ = cfg;
  stack_floor_ = stack_floor;
  if (cfg.scheme != shapes_scheme_) {  // a shape's order and patterns hold for one scheme
    shapes_.clear();
    guess_slot_ = {};
    shapes_scheme_ = cfg.scheme;
  }
  depth_limit_ = std::min(cfg.max_depth, direct_depth_limit);
  out_.size = 0;
  out_.reserve_more(out_per_byte(cfg.scheme) * input_size + out_slack);
  members_.clear();
  // Decoded names are never longer than the input: views into keys_ stay valid.
  keys_.size = 0;
  keys_.reserve_more(input_size + 16);
}

bool direct_walker::run(const char* input, std::size_t size, const config& cfg, std::uintptr_t stack_floor) {
  // simdjson refuses documents of 4 GiB and more; so does this path, to agree with it.
  if (size == 0 || size >= 0xFFFFFFFFu) return false;
  if (!simdjson::validate_utf8(input, size)) return false;
  start(cfg, stack_floor, size);
  input_limit_ = reinterpret_cast<std::uintptr_t>(input) + size;
  capture_ = nullptr;
  const char* p = input;
  skip_ws(p);
  cursor o = cursor_at_end();
  bool is_null;
  if (!value(p, o, 0, is_null)) return false;
  out_.set_end(o.w);
  skip_ws(p);
  return p == input + size;
}

const char* direct_walker::run_item(const char* item, std::size_t page_size, const config& cfg,
                                    std::uintptr_t stack_floor, item_capture& capture) {
  if (*item != '{') return nullptr;
  start(cfg, stack_floor, page_size);
  // Past the page's end (an address only, never read): a bound on what is left to read.
  input_limit_ = reinterpret_cast<std::uintptr_t>(item) + page_size;
  capture.id = {};
  capture.modified = {};
  capture_ = &capture;
  const char* end = object(item, 1);
  capture_ = nullptr;
  return end;
}

direct_walker::cursor direct_walker::grow_out(cursor o, std::size_t n) {
  out_.set_end(o.w);
  out_.reserve_more(n);
  return cursor_at_end();
}

TDS_HOT_INLINE void direct_walker::room(cursor& o, std::size_t n) {
  if (static_cast<std::size_t>(o.end - o.w) < n) o = grow_out(o, n);
}

// Room for `extra` bytes and then the document's bound (out_slack) for the input from p on.
direct_walker::cursor direct_walker::keep_bound(cursor o, const char* p, std::size_t extra) {
  room(o, extra + out_per_byte(cfg_.scheme) * input_left(p) + out_slack);
  return o;
}

TDS_HOT_INLINE bool direct_walker::value(const char*& p, cursor& o, std::size_t depth, bool& is_null) {
  is_null = false;
  if (*p == '"') return string(p, o);  // the most common value: ahead of the jump table
  switch (*p) {
    case '{':
    case '[':
      // The nested walk writes through out_: hand the cursor over and take it back.
      out_.set_end(o.w);
      p = *p == '{' ? object(p, depth + 1) : array(p, depth + 1);
      o = cursor_at_end();
      return p != nullptr;
    case 't': return literal(p, o, "true");
    case 'f': return literal(p, o, "false");
    case 'n': return is_null = true, literal(p, o, "null");
    default:
      return (*p == '-' || is_digit(*p)) && number(p, o);
  }
}

TDS_HOT_INLINE bool direct_walker::literal(const char*& p, cursor& o, std::string_view word) {
  if (std::memcmp(p, word.data(), word.size()) != 0) return false;
  std::memcpy(o.w, word.data(), word.size());
  o.w += word.size();
  p += word.size();
  return true;
}

TDS_HOT_INLINE bool direct_walker::string(const char*& p, cursor& o) {
  const bool legacy = cfg_.scheme == hash_scheme::legacy;
  ++p;
  char* w = o.w;
  *w++ = '"';
  for (;;) {
    // Copy the block whole, then keep only its plain prefix.
    copy_block(w, p);
    const block_marks marks = scan_block(p, legacy);
    if (marks.special == 0) {
      p += 16;
      w += 16;
      continue;
    }
    const int n = __builtin_ctz(marks.special);
    if ((marks.quote >> n) & 1) {  // the closing quote, copied with the block
      p += n + 1;
      o.w = w + n + 1;
      return true;
    }
    p += n;
    w += n;
    const auto c = static_cast<unsigned char>(*p);
    if (c == '\\') {
      const std::int32_t cp = decode_escape(p);
      if (cp < 0) return false;
      if (legacy) {
        // ensure_ascii re-splits what the escape joined, so each UTF-16 unit maps to itself.
        w = cp < 0x80 ? put_ascii(w, static_cast<std::uint32_t>(cp), true)
                      : put_legacy_non_ascii(w, static_cast<std::uint32_t>(cp));
      } else {
        if (is_surrogate(cp)) return false;  // RFC 8785: the reference walker reports it
        w = cp < 0x80 ? put_ascii(w, static_cast<std::uint32_t>(cp), false)
                      : put_utf8(w, static_cast<std::uint32_t>(cp));
      }
      continue;
    }
    if (c < 0x20) return false;
    // Legacy only: DEL, or a run of non-ASCII characters, each to \uXXXX (astral: a pair).
    // Both write more than the document's bound allows for (see out_slack), so they make room.
    o.w = w;
    if (c == 0x7F) {
      o = keep_bound(o, p, 6);
      o.w = put_u_escape(o.w, 0x7F);
      w = o.w;
      ++p;
      continue;
    }
    // 3 bytes of output at most per input byte (\uXXXX for 2 bytes, a pair for 4): room for 3
    // times what is left covers any run and leaves the bound in place after it.
    o = keep_bound(o, p, input_left(p));
    w = o.w;
    // A single space between non-ASCII words stays in this loop: leaving for the block scan at
    // every word break cost a mispredicted exit and a block scan per word.
    for (;;) {
      if (static_cast<unsigned char>(*p) >= 0x80) {
        w = put_legacy_non_ascii(w, decode_utf8(p));
      } else if (*p == ' ' && static_cast<unsigned char>(p[1]) >= 0x80) {
        *w++ = ' ';
        ++p;
      } else {
        break;
      }
    }
  }
}

// A member name: written quoted and escaped into out_, and its decoded text returned for
// sorting and exclusion. Most names need no unescaping and no escaping: used in place.
TDS_HOT_INLINE bool direct_walker::key(const char*& p, cursor& o, std::string_view& decoded) {
  const bool legacy = cfg_.scheme == hash_scheme::legacy;
  const char* start = p + 1;
  {
    // Most names are plain and shorter than 32 bytes: copy two blocks, then look once (one
    // block made the name-length branch a coin toss on Zoho's long names).
    char* w = o.w;
    w[0] = '"';
    copy_block(w + 1, start);
    copy_block(w + 17, start + 16);
    const block_marks low = scan_block(start, legacy), high = scan_block(start + 16, legacy);
    const unsigned mask = low.special | high.special << 16;
    const unsigned quote = low.quote | high.quote << 16;
    if ((mask & -mask & quote) != 0) {  // the first special byte is the closing quote
      const auto n = static_cast<std::size_t>(__builtin_ctz(mask));
      o.w += n + 2;  // the quote was copied with the blocks
      decoded = std::string_view(start, n);
      p = start + n + 1;
      return true;
    }
  }
  const char* q = start;
  for (;;) {
    const unsigned mask = special_mask(q, legacy);
    if (mask == 0) {
      q += 16;
      continue;
    }
    q += __builtin_ctz(mask);
    break;
  }
  if (*q == '"') {
    const auto n = static_cast<std::size_t>(q - start);
    room(o, n + 2 + 32);
    char* w = o.w;
    w[0] = '"';
    copy_span(w + 1, start, n);
    w[n + 1] = '"';
    o.w += n + 2;
    decoded = std::string_view(start, n);
    p = q + 1;
    return true;
  }
  // Escapes or (legacy) non-ASCII: decode to WTF-8, then escape the decoded text the way the
  // reference walker does.
  // keys_ has room for the whole input: decoding only shrinks text.
  char* const first = keys_.data.get() + keys_.size;
  char* w = first;
  std::memcpy(w, start, static_cast<std::size_t>(q - start));
  w += q - start;
  for (;;) {
    const auto c = static_cast<unsigned char>(*q);
    if (c == '"') break;
    if (c < 0x20) return false;
    if (c == '\\') {
      const std::int32_t cp = decode_escape(q);
      if (cp < 0 || (!legacy && is_surrogate(cp))) return false;
      w = put_utf8(w, static_cast<std::uint32_t>(cp));
    } else {
      *w++ = static_cast<char>(c);
      ++q;
    }
  }
  keys_.set_end(w);
  p = q + 1;
  decoded = std::string_view(first, static_cast<std::size_t>(w - first));
  tmp_.clear();
  append_quoted(tmp_, decoded, cfg_.scheme);
  o = put_tmp(o, p);
  return true;
}

// Grammar (RFC 8259): -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
TDS_HOT_INLINE bool direct_walker::number(const char*& p, cursor& o) {
  const bool legacy = cfg_.scheme == hash_scheme::legacy;
  const char* start = p;
  const bool negative = *p == '-';
  if (negative) ++p;
  const char* int_start = p;
  if (*p == '0') {
    ++p;
  } else if (is_digit(*p)) {
    p = skip_digits(p);
  } else {
    return false;
  }
  const auto int_digits = static_cast<std::size_t>(p - int_start);
  const char* frac_start = nullptr;
  const char* frac_end = nullptr;
  if (*p == '.') {
    frac_start = ++p;
    p = skip_digits(p);
    if (p == frac_start) return false;
    frac_end = p;
  }
  bool has_exponent = false;
  if (*p == 'e' || *p == 'E') {
    has_exponent = true;
    ++p;
    if (*p == '+' || *p == '-') ++p;
    if (!is_digit(*p)) return false;
    while (is_digit(*p)) ++p;
  }
  const bool int_zero = *int_start == '0';

  // Integers: legacy prints them exactly (Python ints); jcs exactly too when they fit a double
  // exactly (|x| <= 2^53-1: the shortest digits of an exact integer are its own digits), or,
  // outside strict mode, always (the documented deviation).
  if (!frac_start && !has_exponent) {
    bool verbatim;
    if (legacy) {
      verbatim = int_digits <= 4300;  // Python's int digit limit: beyond, the reference errs
    } else {
      const bool exact = int_digits < 16 ||
                         (int_digits == 16 && std::memcmp(int_start, "9007199254740991", 16) <= 0);
      verbatim = exact || !cfg_.strict;
    }
    if (legacy && !verbatim) return false;
    if (verbatim) {
      const bool sign = negative && !int_zero;
      char* w = o.w;
      if (sign) *w++ = '-';
      o.w = copy_span(w, int_start, int_digits);
      return true;
    }
  }

  // Decimals with at most 15 significant digits and no exponent: every such decimal survives
  // the trip through a double (DBL_DIG = 15), so no shorter decimal names the same double and
  // the shortest round-trip digits are the literal's own. Inside the range where both formats
  // print positionally, the canonical text is the literal with its trailing fraction zeros
  // dropped (legacy keeps ".0"; jcs drops an empty fraction).
  if (frac_start && !has_exponent) {
    const char* frac_trim = frac_end;
    while (frac_trim > frac_start && frac_trim[-1] == '0') --frac_trim;
    const auto frac_digits = static_cast<std::size_t>(frac_trim - frac_start);
    bool fast = false;
    if (int_zero) {
      std::size_t zeros = 0;
      while (zeros < frac_digits && frac_start[zeros] == '0') ++zeros;
      if (frac_digits == 0) {  // zero: Python keeps the sign of -0.0, ECMAScript drops it
        const char* text = legacy ? (negative ? "-0.0" : "0.0") : "0";
        const std::size_t n = std::strlen(text);
        std::memcpy(o.w, text, n);
        o.w += n;
        return true;
      }
      // |x| >= 1e-4 (legacy) or 1e-6 (jcs): positional in both formats.
      fast = frac_digits - zeros <= 15 && zeros <= (legacy ? 3u : 5u);
    } else {
      std::size_t significant = int_digits + frac_digits;
      if (frac_digits == 0) {
        const char* t = int_start + int_digits;
        while (t[-1] == '0') --t, --significant;
      }
      // |x| < 1e16 (legacy) or 1e21 (jcs): positional in both formats.
      fast = significant <= 15 && int_digits <= (legacy ? 16u : 21u);
    }
    if (fast) {
      char* w = o.w;
      if (negative) *w++ = '-';
      w = copy_span(w, int_start, int_digits);
      if (frac_digits) {
        *w++ = '.';
        w = copy_span(w, frac_start, frac_digits);
      } else if (legacy) {
        *w++ = '.';
        *w++ = '0';
      }
      o.w = w;
      return true;
    }
  }

  // Everything else through a double, as the reference walker does; out of range declines.
  double v = 0;
  const auto res = std::from_chars(start, p, v);
  if (res.ec != std::errc() || res.ptr != p || !std::isfinite(v)) return false;
  tmp_.clear();
  if (legacy) append_python_float(tmp_, v);
  else append_es_number(tmp_, v);
  o = put_tmp(o, p);
  return true;
}

// Writes tmp_, which may be longer than the input it stands for, and restores the bound for the
// input from p on.
direct_walker::cursor direct_walker::put_tmp(cursor o, const char* p) {
  o = keep_bound(o, p, tmp_.size());
  std::memcpy(o.w, tmp_.data(), tmp_.size());
  o.w += tmp_.size();
  return o;
}

// ", " and ": " in legacy (Python's default separators), "," and ":" in jcs: `width` is 2 or
// 1, taken once per object or array by the caller (cfg_ is reloaded after every byte stored).
TDS_HOT_INLINE void direct_walker::separator(cursor& o, char c, std::size_t width) {
  o.w[0] = c;
  o.w[1] = ' ';
  o.w += width;
}

// Writes the opening bracket or brace at p, steps over it and any space; returns what follows.
TDS_HOT_INLINE char direct_walker::open(const char*& p, cursor& o) {
  *o.w++ = *p++;
  skip_ws(p);
  return *p;
}

// Writes the closing bracket or brace at p and steps over it.
TDS_HOT_INLINE void direct_walker::close(const char*& p, cursor& o) {
  *o.w++ = *p++;
}

// After a member or element: 1 when ',' follows (the separator is written), 0 when `closing`
// does (written and stepped over), -1 when neither: not JSON.
TDS_HOT_INLINE int direct_walker::after_element(const char*& p, cursor& o, char closing, std::size_t separator_width) {
  // ',' and `closing` are asked before any space is looked for: compact input has none.
  for (;;) {
    if (*p == ',') {
      ++p;
      skip_ws(p);
      separator(o, ',', separator_width);
      return 1;
    }
    if (*p == closing) return close(p, o), 0;
    if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') return -1;
    skip_ws(p);
  }
}

// The cursor p is a local copy, not the caller's: output stores (char) may alias anything
// reachable, and a cursor behind a reference was reloaded after each of them.
const char* direct_walker::array(const char* p, std::size_t depth) {
  if (!enter(depth)) return nullptr;
  const std::size_t separator_width = cfg_.scheme == hash_scheme::legacy ? 2 : 1;
  cursor o = cursor_at_end();
  if (open(p, o) == ']') {
    close(p, o);
    out_.set_end(o.w);
    return p;
  }
  int more = 1;
  while (more > 0) {
    bool is_null;
    if (!value(p, o, depth, is_null)) return nullptr;
    more = after_element(p, o, ']', separator_width);
  }
  out_.set_end(o.w);
  return more == 0 ? p : nullptr;
}

const char* direct_walker::object(const char* p, std::size_t depth) {
  if (!enter(depth)) return nullptr;
  const bool legacy = cfg_.scheme == hash_scheme::legacy;  // drops top-level nulls
  const std::size_t separator_width = legacy ? 2 : 1;
  const bool top = depth == 1;
  const std::size_t member_mark = members_.size();
  const std::size_t out_mark = out_.size;
  cursor o = cursor_at_end();
  if (open(p, o) == '}') {
    close(p, o);
    out_.set_end(o.w);
    return p;
  }
  // The shape the first name picked (guess_shape), kept while every next key matches its
  // pattern in turn; `expected` is the next key's.
  const shape* guess = nullptr;
  const name_pattern* expected = nullptr;
  const name_pattern* expected_end = nullptr;
  std::uint64_t writes_at_guess = 0;
  bool any_drop = false;
  int more = 1;
  while (more > 0) {
    if (*p != '"') return nullptr;
    const auto span_begin = static_cast<std::size_t>(o.w - o.base);
    std::string_view name;
    const char* key_text = p + 1;
    if (expected != expected_end && matches_pattern(key_text, *expected)) {
      // The key is the expected name, plain: written as read, in blocks as in key().
      const std::size_t n = expected->size;
      char* w = o.w;
      w[0] = '"';
      copy_block(w + 1, key_text);
      copy_block(w + 17, key_text + 16);
      if (n > pattern_short_max) {
        copy_block(w + 33, key_text + 32);
        copy_block(w + 49, key_text + 48);
      }
      o.w += n + 2;
      name = std::string_view(key_text, n);
      p = key_text + n + 1;
      ++expected;
    } else {
      const bool first = members_.size() == member_mark;
      guess = nullptr;
      expected = expected_end = nullptr;
      if (!key(p, o, name)) return nullptr;
      if (first && (guess = guess_shape(key_text, name)) != nullptr) {
        expected = guess->patterns.data() + 1;
        expected_end = guess->patterns.data() + guess->patterns.size();
        writes_at_guess = shape_writes_;
      }
    }
    if (!at_after_space(p, ':')) return nullptr;
    ++p;
    skip_ws(p);
    separator(o, ':', separator_width);
    bool is_null;
    const char* value_begin = p;
    if (!value(p, o, depth, is_null)) return nullptr;
    // Only a nested object or array can have sorted into a slot ('[' | 0x20 is '{'): asked
    // first, so plain values skip the counter.
    if ((*value_begin | 0x20) == '{' && guess && shape_writes_ != writes_at_guess) {
      guess = nullptr;
      expected = expected_end = nullptr;
    }
    if (top && capture_) {
      // The last occurrence counts, as in json.loads.
      if (name == capture_->id_field) capture_->id = std::string_view(value_begin, static_cast<std::size_t>(p - value_begin));
      if (name == capture_->modified_field)
        capture_->modified = std::string_view(value_begin, static_cast<std::size_t>(p - value_begin));
    }
    const bool drop = top && ((legacy && is_null) || (cfg_.excluded && cfg_.excluded->contains(name)));
    any_drop |= drop;
    members_.push_back(member{name.data(), 0, static_cast<std::uint32_t>(name.size()), span_begin,
                              static_cast<std::size_t>(o.w - o.base), drop});
    more = after_element(p, o, '}', separator_width);
  }
  if (more < 0) return nullptr;
  out_.set_end(o.w);
  // Every key matched the guess's names, all of them and no more: the object has its shape.
  const shape* foreseen = guess && expected == expected_end ? guess : nullptr;
  return assemble(member_mark, out_mark, foreseen, any_drop) ? p : nullptr;
}

// The cached shape an object whose first key is `first_name` (raw text at first_key_text) had
// last, when it has patterns and the first one matches; else null.
const direct_walker::shape* direct_walker::guess_shape(const char* first_key_text, std::string_view first_name) {
  const std::uint8_t slot = guess_slot_[guess_index(key_prefix(first_name.data(), first_name.size()), first_name.size())];
  if (slot == 0 || shapes_.empty()) return nullptr;
  const shape& s = shapes_[slot - 1u];
  if (s.patterns.empty() || !matches_pattern(first_key_text, s.patterns[0])) return nullptr;
  return &s;
}

const direct_walker::shape* direct_walker::find_shape(std::uint64_t hash, std::size_t member_mark,
                                                      std::size_t count) const {
  const shape& s = shapes_[slot_of(hash)];
  if (s.hash != hash || s.names.size() != count) return nullptr;
  const member* m = members_.data() + member_mark;
  const shape_name* names = s.names.data();
  const char* tails = s.tails.data();
  for (std::size_t i = 0; i < count; ++i) {
    if (m[i].prefix != names[i].prefix || m[i].key_size != names[i].size) return nullptr;
    if (m[i].key_size > 8 && !same_bytes(m[i].key + 8, tails + names[i].tail_at, m[i].key_size - 8)) return nullptr;
  }
  return &s;
}

// Sorts the members from member_mark into `into` (its names, order and duplicates). False:
// jcs has a duplicate name, which the reference walker reports.
bool direct_walker::sort_members(std::size_t member_mark, std::size_t count, shape& into) {
  ++shape_writes_;  // the slot changes: guesses taken from it are stale
  const hash_scheme scheme = cfg_.scheme;
  const member* m = members_.data() + member_mark;
  order_.clear();
  for (std::size_t i = 0; i < count; ++i) order_.push_back(sort_entry{m[i].prefix, static_cast<std::uint32_t>(i)});
  std::sort(order_.begin(), order_.end(), [m, scheme](const sort_entry& a, const sort_entry& b) {
    if (a.prefix != b.prefix) {
      // Big-endian prefixes compare as the keys' bytes do, which is code point order; jcs's
      // UTF-16 order differs only where the first differing byte is a lead >= 0xEE.
      if (scheme == hash_scheme::jcs) {
        const int shift = 56 - (__builtin_clzll(a.prefix ^ b.prefix) & ~7);
        if (static_cast<unsigned char>(a.prefix >> shift) >= 0xEE ||
            static_cast<unsigned char>(b.prefix >> shift) >= 0xEE)
          return compare_member_names({m[a.member].key, m[a.member].key_size},
                                      {m[b.member].key, m[b.member].key_size}, scheme) < 0;
      }
      return a.prefix < b.prefix;
    }
    const int c = compare_member_names({m[a.member].key, m[a.member].key_size},
                                       {m[b.member].key, m[b.member].key_size}, scheme);
    return c != 0 ? c < 0 : a.member < b.member;
  });
  into.names.clear();
  into.tails.clear();
  into.order.clear();
  into.sorted_already = true;
  for (std::size_t i = 0; i < count; ++i) {
    into.names.push_back(shape_name{m[i].prefix, m[i].key_size, static_cast<std::uint32_t>(into.tails.size())});
    if (m[i].key_size > 8) into.tails.append(m[i].key + 8, m[i].key_size - 8);
    const member& it = m[order_[i].member];
    if (i + 1 < count) {
      const member& next = m[order_[i + 1].member];
      if (same_key(it.key, it.key_size, next.key, next.key_size)) {
        if (scheme == hash_scheme::jcs) return false;
        into.sorted_already = false;
        continue;  // json.loads keeps the last of duplicate names: the next entry
      }
    }
    into.order.push_back(order_[i].member);
    if (order_[i].member != i) into.sorted_already = false;
  }
  into.tails.append(16, '\0');  // same_bytes reads whole blocks
  into.patterns.clear();
  for (std::size_t i = 0; i < count; ++i) {
    name_pattern pattern;
    if (!make_pattern({m[i].key, m[i].key_size}, scheme == hash_scheme::legacy, pattern)) {
      into.patterns.clear();  // all names or none: a partial match proves nothing
      break;
    }
    into.patterns.push_back(pattern);
  }
  return true;
}

// The members were written in input order with separators, so out_[out_mark..] is already the
// finished object when that order is sorted and nothing is dropped. Otherwise it is rebuilt in
// sorted order from the recorded spans.
bool direct_walker::assemble(std::size_t member_mark, std::size_t out_mark, const shape* foreseen, bool any_drop) {
  const std::size_t count = members_.size() - member_mark;
  if (count == 0) return true;
  const std::size_t separator_size = cfg_.scheme == hash_scheme::legacy ? 2 : 1;
  member* const m = members_.data() + member_mark;
  if (shapes_.empty()) shapes_.resize(shape_slots);
  const shape* s = foreseen;
  if (!s) {
    // Which shape this is: each name's prefix and size folded in with a rotation (so order
    // counts), mixed by one multiply (slot_of keeps the top bits). Any value works: a hit is
    // verified name by name.
    std::uint64_t h = 0;
    for (std::size_t i = 0; i < count; ++i) {
      m[i].prefix = key_prefix(m[i].key, m[i].key_size);
      h = ((h << 7) | (h >> 57)) ^ m[i].prefix ^ m[i].key_size;
    }
    const std::uint64_t hash = (h ^ count) * 0x9E3779B97F4A7C15ull;
    s = find_shape(hash, member_mark, count);
    if (!s) {
      shape& slot = shapes_[slot_of(hash)];
      if (!sort_members(member_mark, count, slot)) {
        slot.hash = 0;
        slot.names.clear();
        slot.patterns.clear();
        return false;
      }
      slot.hash = hash;
      s = &slot;
    }
    // The next object with this first name tries this shape first.
    guess_slot_[guess_index(m[0].prefix, m[0].key_size)] = static_cast<std::uint8_t>(s - shapes_.data() + 1);
  }
  if (s->sorted_already && !any_drop) {
    members_.resize(member_mark);
    return true;
  }

  const std::size_t object_size = out_.size - out_mark;
  scratch_.size = 0;
  char* w = scratch_.reserve_more(object_size + 32);
  out_.reserve_more(32);  // copy_span reads past the last span
  const char* src = out_.data.get();
  const std::uint32_t* order = s->order.data();
  const std::size_t kept = s->order.size();
  *w++ = '{';
  // The first member written goes without a separator; every later one with one, unasked.
  std::size_t i = 0;
  while (i < kept && m[order[i]].drop) ++i;
  if (i < kept) {
    const member& first = m[order[i]];
    w = copy_span(w, src + first.span_begin, first.span_end - first.span_begin);
    for (++i; i < kept; ++i) {
      const member& it = m[order[i]];
      if (it.drop) continue;
      w[0] = ',';
      w[1] = ' ';
      w += separator_size;
      w = copy_span(w, src + it.span_begin, it.span_end - it.span_begin);
    }
  }
  *w++ = '}';
  scratch_.set_end(w);
  members_.resize(member_mark);
  if (out_mark == 0) {
    std::swap(out_, scratch_);  // the root: nothing before it to keep
  } else {
    std::memcpy(out_.data.get() + out_mark, scratch_.data.get(), scratch_.size);
    out_.size = out_mark + scratch_.size;
  }
  return true;
}

}  // namespace tds::detail
