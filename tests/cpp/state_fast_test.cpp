// Pins the fast state scanner (detail::scan_state) against the reference DOM decoder
// (detail::decode_state_dom): over generated values (tdscache's and the legacy service's
// shapes, then mutated byte by byte and truncated) both must give the same state, and
// decode_state and decide() must answer as the reference does. Plus named edge cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cctype>
#include <random>
#include <string>
#include <vector>

#include "tdscache/decision.hpp"
#include "tdscache/detail/ascii_json.hpp"
#include "tdscache/state.hpp"

namespace {

using tds::entity_state;
using tds::hash_scheme;
using tds::reason;
using tds::detail::decode_state_dom;

// The view points into `value`: a temporary string would leave it dangling (ASan found three
// such calls), so temporaries are refused at compile time; scans() is for yes/no questions.
std::optional<tds::detail::state_view> scan_state(std::string_view value) {
  tds::detail::state_view out;
  if (tds::detail::scan_state(value, out)) return out;
  return std::nullopt;
}
std::optional<tds::detail::state_view> scan_state(std::string&& value) = delete;

bool scans(std::string_view value) {
  tds::detail::state_view out;
  return tds::detail::scan_state(value, out);
}

bool same_state(const entity_state& a, const entity_state& b) {
  return a.entity_type == b.entity_type && a.entity_id == b.entity_id && a.local_id == b.local_id &&
         a.content_hash == b.content_hash && a.last_modified_time == b.last_modified_time &&
         a.cached_at == b.cached_at && a.sync_count == b.sync_count && a.scheme == b.scheme;
}

std::string describe(std::string_view value) {
  std::string out;
  for (const char c : value) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7f) {
      out.push_back(c);
    } else {
      static constexpr char hex[] = "0123456789abcdef";
      out.append("\\x").append(1, hex[b >> 4]).append(1, hex[b & 15]);
    }
  }
  return out;
}

const tds::instant now = tds::parse_iso8601("2025-11-13T09:00:00Z").value();

// decide()'s rules 4-10 written out over a DOM-decoded state: what the fast path must match.
reason reference_decision(const tds::entity_check& check, std::string_view value,
                          const tds::decision_policy& policy) {
  const auto decoded = decode_state_dom(value);
  if (!decoded) return reason::cache_entry_corrupt;
  const entity_state& s = decoded.value();
  if (s.content_hash.find_first_not_of('0') == std::string::npos) return reason::no_cache_entry;
  if (tds::effective_scheme(s) != check.scheme) return reason::hash_scheme_changed;
  std::string stored_lower = s.content_hash;
  for (char& c : stored_lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (stored_lower != check.content_digest.hex()) return reason::content_changed;
  if (policy.max_age_seconds != 0) {
    const auto cached = tds::parse_iso8601(s.cached_at);
    if (!cached || *cached < tds::instant{now.seconds - policy.max_age_seconds, now.nanos}) {
      return reason::cache_expired;
    }
  }
  std::optional<std::string_view> cached_time;
  if (s.last_modified_time) cached_time = *s.last_modified_time;
  if (tds::is_timestamp_newer(check.last_modified_time, cached_time)) return reason::timestamp_newer;
  return reason::unchanged;
}

// Checks one value; returns whether the fast path took it.
bool expect_agreement(std::string_view value, const tds::digest& digest) {
  const auto fast = scan_state(value);
  const auto dom = decode_state_dom(value);
  const auto both = tds::decode_state(value);
  if (fast) {
    EXPECT_TRUE(dom.ok()) << "fast path accepted what the DOM refuses (" << dom.error().message
                          << "): " << describe(value);
    if (dom.ok()) {
      EXPECT_TRUE(same_state(tds::detail::to_entity_state(*fast), dom.value()))
          << "fast and DOM states differ: " << describe(value);
    }
  }
  EXPECT_EQ(both.ok(), dom.ok()) << describe(value);
  if (both.ok() && dom.ok()) {
    EXPECT_TRUE(same_state(both.value(), dom.value())) << describe(value);
  } else if (!both.ok() && !dom.ok()) {
    EXPECT_EQ(both.code(), dom.code()) << describe(value);
    EXPECT_EQ(both.error().message, dom.error().message) << describe(value);
  }
  // Decisions for a check that matches the stored hash, one that does not, with and without
  // an incoming timestamp, and with max_age on and off.
  for (const bool matching : {true, false}) {
    for (const hash_scheme scheme : {hash_scheme::legacy, hash_scheme::jcs}) {
      tds::entity_check check;
      check.entity_type = "product";
      check.entity_id = "1";
      check.scheme = scheme;
      check.content_digest = digest;
      if (!matching) check.content_digest.bytes[0] ^= 1;
      check.last_modified_time = matching ? std::optional<std::string_view>("2025-11-13T08:30:00Z")
                                          : std::nullopt;
      for (const std::int64_t max_age : {std::int64_t{0}, std::int64_t{86400}}) {
        const tds::decision_policy policy{max_age};
        const tds::cached_lookup lookup{tds::lookup_kind::present, value};
        EXPECT_EQ(tds::decide(check, lookup, policy, now), reference_decision(check, value, policy))
            << describe(value);
      }
    }
  }
  return fast.has_value();
}

// Random fields, in either writer's shape.
struct generator {
  std::mt19937_64 rng{20251113};

  std::size_t below(std::size_t n) { return static_cast<std::size_t>(rng() % n); }
  bool coin(int in = 2) { return below(static_cast<std::size_t>(in)) == 0; }

  std::string text() {
    static const std::vector<std::string> samples = {
        "product", "2646610000000113574", "", "12345", "a b", "quote\"inside", "back\\slash",
        "tab\there", "caf\xc3\xa9", "\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a", "\xff\xfe", "emoji \xf0\x9f\x98\x80",
        "2025-11-13T08:30:00+0530", "2025-11-13T08:35:21.123456", "not a time", "{}", "[1]", ",:",
    };
    return samples[below(samples.size())];
  }
  std::string hex(bool upper, bool zero) {
    std::string out;
    for (int i = 0; i < 64; ++i) {
      const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
      out.push_back(zero ? '0' : digits[below(16)]);
    }
    return out;
  }
  std::string digits(std::size_t max_len) {
    std::string out(1, static_cast<char>('1' + below(9)));
    const std::size_t len = below(max_len);
    for (std::size_t i = 0; i < len; ++i) out.push_back(static_cast<char>('0' + below(10)));
    return coin(10) ? "0" : out;
  }
  entity_state state() {
    entity_state s;
    s.entity_type = coin(3) ? text() : "product";
    s.entity_id = coin(3) ? text() : digits(20);
    if (!coin(4)) s.local_id = coin(2) ? digits(8) : text();
    s.content_hash = hex(coin(8), coin(10));
    if (!coin(4)) s.last_modified_time = coin(3) ? text() : "2025-11-13T08:30:00+0530";
    s.cached_at = coin(4) ? text() : "2025-11-13T08:35:21.123456";
    s.sync_count = static_cast<std::int64_t>(coin(3) ? below(10) : rng() >> (1 + below(63)));
    if (coin(2)) s.scheme = coin() ? hash_scheme::jcs : hash_scheme::legacy;
    return s;
  }
  // JSON text of a string (escaped as tdscache does) or, for digits, sometimes a bare integer.
  std::string json_string(const std::string& s) {
    std::string out;
    tds::detail::append_ascii_json_string(out, s);
    return out;
  }
  // The legacy service's shape: any field order, integers for ids, unknown fields, json.dumps
  // or compact separators, and now and then whitespace json.dumps would not write.
  std::string legacy(const entity_state& s) {
    std::vector<std::pair<std::string, std::string>> fields;
    const auto id_json = [&](const std::string& id) {
      const bool numeric = !id.empty() && id.find_first_not_of("0123456789") == std::string::npos;
      return numeric && coin() ? id : json_string(id);
    };
    fields.emplace_back("entity_type", json_string(s.entity_type));
    fields.emplace_back("entity_id", id_json(s.entity_id));
    if (s.local_id) fields.emplace_back("local_id", id_json(*s.local_id));
    else if (coin()) fields.emplace_back("local_id", "null");
    fields.emplace_back("content_hash", json_string(s.content_hash));
    if (s.last_modified_time) fields.emplace_back("last_modified_time", json_string(*s.last_modified_time));
    else if (coin()) fields.emplace_back("last_modified_time", "null");
    fields.emplace_back("cached_at", json_string(s.cached_at));
    fields.emplace_back("sync_count", std::to_string(s.sync_count));
    if (s.scheme) fields.emplace_back("hash_scheme", json_string(std::string(tds::scheme_name(*s.scheme))));
    static const std::vector<std::string> extras = {
        "1", "-1", "0", "1.5", "1e3", "true", "false", "null", "\"x\"", "[1, 2]", "{\"a\": {}}",
        "\"\\u00e9\"", "123456789012345678901234567890", "-0"};
    if (coin(3)) fields.emplace_back(coin(4) ? "extra" : "source", extras[below(extras.size())]);
    if (coin(3)) std::shuffle(fields.begin(), fields.end(), rng);
    const bool compact = coin(4);
    std::string out = coin(30) ? " {" : "{";
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out += compact ? "," : ", ";
      if (coin(40)) out += "\n";
      out += "\"" + fields[i].first + "\"" + (compact ? ":" : ": ") + fields[i].second;
    }
    out += coin(30) ? "} " : "}";
    return out;
  }
  std::string value(const entity_state& s) { return coin() ? tds::encode_state(s) : legacy(s); }

  std::string mutate(std::string v) {
    static const std::string interesting = std::string("\"\\,:{} \t\n0179aAefnx-.+[]") +
                                           std::string("\x00\x1f\x7f\x80\xc3\xff", 6);
    if (v.empty()) return v;
    const std::size_t at = below(v.size());
    switch (below(4)) {
      case 0: v[at] = interesting[below(interesting.size())]; break;
      case 1: v.erase(at, 1); break;
      case 2: v.insert(at, 1, interesting[below(interesting.size())]); break;
      default: v[at] = static_cast<char>(rng()); break;
    }
    return v;
  }
};

TEST(StateFastDifferential, GeneratedValuesDecodeAndDecideAsTheDomPathDoes) {
  generator gen;
  std::size_t values = 0, unmutated_fast = 0, mutated_fast = 0;
  for (int round = 0; round < 3000; ++round) {
    const entity_state s = gen.state();
    tds::digest d;
    // The state's own digest when its hash is one, so matching checks reach rules 8-10.
    for (std::size_t i = 0; i < d.bytes.size(); ++i) {
      d.bytes[i] = static_cast<std::uint8_t>(std::stoi(s.content_hash.substr(2 * i, 2), nullptr, 16));
    }
    const std::string v = gen.value(s);
    unmutated_fast += expect_agreement(v, d);
    ++values;
    for (int m = 0; m < 6; ++m) {
      std::string mutated = gen.mutate(v);
      if (gen.coin(3)) mutated = gen.mutate(mutated);
      mutated_fast += expect_agreement(mutated, d);
      ++values;
    }
    expect_agreement(v.substr(0, gen.below(v.size() + 1)), d);
    ++values;
    if (::testing::Test::HasFailure()) break;  // one broken value is enough to read
  }
  // The fast path must really be taken for much of what the two writers produce (a third of
  // the generated fields are unusual on purpose), and for some mutants, or this test would
  // compare the DOM path with itself.
  EXPECT_GT(unmutated_fast, 3000 / 4) << unmutated_fast << " of 3000";
  EXPECT_GT(mutated_fast, 0u);
  std::printf("%zu values; fast path: %zu of 3000 generated, %zu mutants\n", values, unmutated_fast,
              mutated_fast);
}

TEST(StateFastDifferential, EveryTruncationOfTheLegacySampleAgrees) {
  const std::string sample =
      R"({"entity_type": "product", "entity_id": "2646610000000113574", "local_id": "12345", )"
      R"("content_hash": "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7", )"
      R"("last_modified_time": "2025-11-13T08:30:00", "cached_at": "2025-11-13T08:35:21.123456", )"
      R"("sync_count": 3})";
  tds::digest d{};
  for (std::size_t cut = 0; cut <= sample.size(); ++cut) {
    const bool fast = expect_agreement(std::string_view(sample).substr(0, cut), d);
    EXPECT_EQ(fast, cut == sample.size()) << cut;
  }
}

constexpr std::string_view hash_a = "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7";

std::string legacy_with(std::string_view id_json, std::string_view extra = "") {
  return std::string(R"({"entity_type": "product", "entity_id": )") + std::string(id_json) +
         R"(, "local_id": null, "content_hash": ")" + std::string(hash_a) +
         R"(", "last_modified_time": null, "cached_at": "2025-11-13T08:35:21.123456", "sync_count": 3)" +
         std::string(extra) + "}";
}

TEST(StateFastPath, TakesBothWritersShapes) {
  entity_state s;
  s.entity_type = "product";
  s.entity_id = "2646610000000113574";
  s.content_hash = std::string(hash_a);
  s.cached_at = "2025-11-13T08:35:21.123456";
  s.sync_count = 7;
  s.scheme = hash_scheme::jcs;
  const std::string encoded = tds::encode_state(s);
  const auto fast = scan_state(encoded);
  ASSERT_TRUE(fast.has_value());
  EXPECT_TRUE(same_state(tds::detail::to_entity_state(*fast), s));
  ASSERT_TRUE(scans(legacy_with(R"("2646610000000113574")")));
  const std::string compact_value =
      R"({"entity_type":"p","entity_id":"1","content_hash":")" + std::string(hash_a) +
      R"(","cached_at":"x","sync_count":0,"extra":true,"more":false,"n":null,"i":12})";
  const auto compact = scan_state(compact_value);
  ASSERT_TRUE(compact.has_value());
  EXPECT_EQ(compact->sync_count, 0);
  EXPECT_EQ(compact->cached_at, "x");
}

TEST(StateFastPath, IntegerIdsUpTo18DigitsAreTakenLongerOnesGoToTheDom) {
  const std::string eighteen_value = legacy_with("264661000000011357");
  const auto eighteen = scan_state(eighteen_value);
  ASSERT_TRUE(eighteen.has_value());
  EXPECT_EQ(eighteen->entity_id, "264661000000011357");
  EXPECT_FALSE(scans(legacy_with("2646610000000113574")));
  EXPECT_EQ(tds::decode_state(legacy_with("2646610000000113574")).value().entity_id, "2646610000000113574");
  EXPECT_FALSE(scans(legacy_with("0264661")));
  EXPECT_FALSE(tds::decode_state(legacy_with("0264661")).ok());
  EXPECT_FALSE(scans(legacy_with("-0")));
  EXPECT_EQ(tds::decode_state(legacy_with("-0")).value().entity_id, "0");
  EXPECT_FALSE(scans(legacy_with("1.0")));
  EXPECT_FALSE(scans(legacy_with("1e2")));
}

TEST(StateFastPath, LeavesEverythingUnusualToTheDomWhichStaysTheAnswer) {
  struct edge {
    std::string value;
    bool dom_ok;
  };
  const edge cases[] = {
      {legacy_with(R"("a\"b")"), true},                       // escape in a value
      {legacy_with(R"("caf\u00e9")"), true},                  // unicode escape
      {legacy_with("\"caf\xc3\xa9\""), true},                 // raw UTF-8
      {legacy_with("\"\xc3\""), false},                       // invalid UTF-8
      {legacy_with("\"a\x01\""), false},                      // raw control character
      {legacy_with(R"("1")", R"(, "entity_id": "2")"), true},  // repeated field: last wins
      {legacy_with(R"("1")", R"(, "sync_count": -1, "sync_count": 2)"), false},  // in order
      {legacy_with(R"("1")", R"(, "x": {"entity_id": "2"})"), true},  // nesting
      {legacy_with(R"("1")", R"(, "x": [])"), true},
      {legacy_with(R"("1")", R"(, "x": 1.5)"), true},
      {legacy_with(R"("1")", R"(, "entity\u005fid": "2")"), true},  // escaped key
      {legacy_with(R"("1")") + " ", true},                    // trailing whitespace
      {" " + legacy_with(R"("1")"), true},                    // leading whitespace
      {legacy_with(R"("1")", "  "), true},                    // whitespace before }
      {legacy_with(R"("1")", ",  \"x\": 1"), true},           // two spaces
      {legacy_with(R"("1")", ",\t\"x\": 1"), true},           // a tab
      {legacy_with(R"("1")", ", \"x\" : 1"), true},           // space before the colon
      {legacy_with(R"("1")", ",}"), false},                   // trailing comma
      {legacy_with(R"("1")") + "}", false},                   // trailing garbage
      {legacy_with(R"("1")", ", \"x\": tru"), false},
      {legacy_with(R"("1")", ", \"x\": nul"), false},
      {legacy_with(R"("1")", ", \"x\": True"), false},
      {legacy_with(R"("1")", ", \"x\": 99999999999999999999"), false},
      {"{}", false},
      {"", false},
      {"[]", false},
      {"{\"entity_type\": \"p\"}", false},                   // required fields missing
  };
  for (const edge& e : cases) {
    EXPECT_FALSE(scans(e.value)) << describe(e.value);
    EXPECT_EQ(tds::decode_state(e.value).ok(), e.dom_ok) << describe(e.value);
    expect_agreement(e.value, tds::digest{});
  }
}

TEST(StateFastPath, InvalidKnownFieldsAreLeftToTheDomForItsError) {
  const std::string zeros(64, '0');
  const std::string bad_values[] = {
      legacy_with(R"("1")", R"(, "hash_scheme": "sha1")"),
      legacy_with(R"("1")", R"(, "hash_scheme": null)"),
      legacy_with("true"),
      legacy_with("null"),
      R"({"entity_type": 5, "entity_id": "1", "content_hash": ")" + std::string(hash_a) +
          R"(", "cached_at": "x", "sync_count": 1})",
      R"({"entity_type": "p", "entity_id": "1", "content_hash": ")" + std::string(63, 'a') +
          R"(", "cached_at": "x", "sync_count": 1})",
      R"({"entity_type": "p", "entity_id": "1", "content_hash": ")" + std::string(63, 'a') +
          R"(g", "cached_at": "x", "sync_count": 1})",
      R"({"entity_type": "p", "entity_id": "1", "content_hash": ")" + std::string(hash_a) +
          R"(", "cached_at": null, "sync_count": 1})",
      R"({"entity_type": "p", "entity_id": "1", "content_hash": ")" + std::string(hash_a) +
          R"(", "cached_at": "x", "sync_count": "1"})",
      R"({"entity_type": "p", "entity_id": "1", "content_hash": ")" + std::string(hash_a) +
          R"(", "cached_at": "x", "local_id": false, "sync_count": 1})",
      R"({"entity_type": "p", "entity_id": "1", "content_hash": ")" + std::string(hash_a) +
          R"(", "cached_at": "x", "last_modified_time": 5, "sync_count": 1})",
  };
  for (const auto& v : bad_values) {
    EXPECT_FALSE(scans(v)) << v;
    const auto decoded = tds::decode_state(v);
    ASSERT_FALSE(decoded.ok()) << v;
    EXPECT_EQ(decoded.error().message, decode_state_dom(v).error().message);
    expect_agreement(v, tds::digest{});
  }
}

// The scanner reads strings 16 and 8 bytes at a time, then byte by byte: every byte value at
// every position of strings long enough to reach each of those loops, and of the hash.
TEST(StateFastDifferential, EveryByteAtEveryPositionOfAStringAgrees) {
  tds::digest d{};
  for (std::size_t length = 1; length <= 40; ++length) {
    for (std::size_t at = 0; at < length; ++at) {
      for (int byte = 0; byte < 256; ++byte) {
        std::string id(length, 'x');
        id[at] = static_cast<char>(byte);
        // A quote ends the string early, so what follows is usually broken JSON: still a case.
        expect_agreement(legacy_with("\"" + id + "\""), d);
        // As the last field, the string ends within 16 bytes of the value's end, where the
        // 8-byte and byte-by-byte loops take over.
        expect_agreement(legacy_with("\"1\"", ", \"z\": \"" + id + "\""), d);
      }
    }
  }
  for (std::size_t at = 0; at < 64; ++at) {
    for (int byte = 0; byte < 256; ++byte) {
      std::string hash(hash_a);
      hash[at] = static_cast<char>(byte);
      const std::string value = legacy_with("\"1\"").replace(
          legacy_with("\"1\"").find(hash_a), 64, hash);
      const bool hex = std::isxdigit(byte) != 0;
      EXPECT_EQ(scans(value), hex) << at << " " << byte;
      EXPECT_EQ(tds::decode_state(value).ok(), hex) << at << " " << byte;
      expect_agreement(value, d);
    }
  }
}

// A state as tdscache writes it for a Zoho item: every optional field set but hash_scheme.
entity_state zoho_state() {
  entity_state s;
  s.entity_type = "product";
  s.entity_id = "2646610000000113574";
  s.local_id = "100000";
  s.content_hash = std::string(hash_a);
  s.last_modified_time = "2025-11-13T08:30:00+0530";
  s.cached_at = "2025-11-13T08:35:21.123456";
  s.sync_count = 12;
  return s;
}

// tdscache's own layout is matched name by name and separator by separator, 8 bytes a step:
// every byte value at every position of such values (names, separators, strings, nulls,
// the count), and each byte deleted or doubled, must still agree with the DOM.
TEST(StateFastDifferential, EveryByteAtEveryPositionOfTheOwnLayoutAgrees) {
  const entity_state s = zoho_state();
  entity_state bare = s;
  bare.local_id.reset();
  bare.last_modified_time.reset();
  bare.scheme = hash_scheme::jcs;
  bare.sync_count = 0;
  tds::digest d{};
  for (std::size_t i = 0; i < d.bytes.size(); ++i) {
    d.bytes[i] = static_cast<std::uint8_t>(std::stoi(std::string(hash_a.substr(2 * i, 2)), nullptr, 16));
  }
  for (const entity_state& state : {s, bare}) {
    const std::string value = tds::encode_state(state);
    ASSERT_TRUE(scans(value)) << value;
    for (std::size_t at = 0; at < value.size(); ++at) {
      for (int byte = 0; byte < 256; ++byte) {
        std::string changed = value;
        changed[at] = static_cast<char>(byte);
        expect_agreement(changed, d);
      }
      expect_agreement(std::string(value).erase(at, 1), d);
      expect_agreement(std::string(value).insert(at, 1, value[at]), d);
      if (::testing::Test::HasFailure()) return;  // one broken value is enough to read
    }
  }
}

TEST(StateFastPath, AViewScannedAgainHoldsNothingOfTheValueBefore) {
  // The scanner writes every field rather than clearing the whole view first: a value with
  // nulls and no hash_scheme, scanned into a view that held one with all of them, must not
  // inherit them.
  entity_state full = zoho_state();
  full.scheme = hash_scheme::jcs;
  entity_state bare = full;
  bare.local_id.reset();
  bare.last_modified_time.reset();
  bare.scheme.reset();
  bare.sync_count = 1;
  const std::string first = tds::encode_state(full), second = tds::encode_state(bare);
  for (const std::string* value : {&first, &second}) {
    tds::detail::state_view view;
    ASSERT_TRUE(tds::detail::scan_state(first, view));
    ASSERT_TRUE(tds::detail::scan_state(*value, view));
    const entity_state expected = value == &first ? full : bare;
    EXPECT_TRUE(same_state(tds::detail::to_entity_state(view), expected)) << *value;
  }
}

// The encoder copies plain runs 16 and 8 bytes at a time: one byte of every value at every
// position of a 1-40 byte string must come out as it does on its own.
TEST(StateFastPath, EncoderEscapesEveryByteAtEveryPositionAsOnItsOwn) {
  for (int byte = 0; byte < 256; ++byte) {
    std::string alone;
    tds::detail::append_ascii_json_string(alone, std::string(1, static_cast<char>(byte)));
    const std::string inner = alone.substr(1, alone.size() - 2);
    for (std::size_t length = 1; length <= 40; ++length) {
      for (std::size_t at = 0; at < length; ++at) {
        std::string text(length, 'x');
        text[at] = static_cast<char>(byte);
        std::string encoded;
        tds::detail::append_ascii_json_string(encoded, text);
        ASSERT_EQ(encoded, "\"" + std::string(at, 'x') + inner + std::string(length - at - 1, 'x') + "\"")
            << byte << " at " << at << " of " << length;
      }
    }
  }
}

TEST(StateFastPath, RetractionMarkerIsStillNoCacheEntry) {
  const std::string marker =
      R"({"entity_type": "p", "entity_id": "1", "content_hash": ")" + std::string(64, '0') +
      R"(", "cached_at": "2025-11-13T08:35:21.123456", "sync_count": 1})";
  ASSERT_TRUE(scans(marker));
  tds::entity_check check;
  check.entity_id = "1";
  EXPECT_EQ(tds::decide(check, {tds::lookup_kind::present, marker}, {}, now), reason::no_cache_entry);
}

}  // namespace
