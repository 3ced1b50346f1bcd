// Tests for the cached state value (state.hpp): the key, decoding what the legacy Python
// service wrote, rejecting corrupt values, and encoding bytes Python's json.loads reads back.
// Expected bytes were produced by CPython's json.dumps and pasted here.
#include "tdscache/state.hpp"

#include <gtest/gtest.h>

#include <string>

#include "tdscache/detail/ascii_json.hpp"

namespace {

using tds::entity_state;
using tds::hash_scheme;
using tds::status;

// Byte for byte what the legacy service stores (json.dumps, default separators).
constexpr std::string_view legacy_sample =
    R"({"entity_type": "product", "entity_id": "2646610000000113574", "local_id": "12345", )"
    R"("content_hash": "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7", )"
    R"("last_modified_time": "2025-11-13T08:30:00", "cached_at": "2025-11-13T08:35:21.123456", )"
    R"("sync_count": 3})";

constexpr std::string_view sample_hash =
    "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7";

entity_state must_decode(std::string_view value) {
  auto decoded = tds::decode_state(value);
  EXPECT_TRUE(decoded.ok()) << decoded.error().message << "\nvalue: " << value;
  return decoded.ok() ? decoded.value() : entity_state{};
}

// A valid value with one field's JSON text replaced (or the field dropped when json is empty).
std::string with_field(std::string_view name, std::string_view json) {
  std::string value = "{";
  const std::pair<std::string_view, std::string_view> fields[] = {
      {"entity_type", R"("product")"},
      {"entity_id", R"("42")"},
      {"local_id", R"("7")"},
      {"content_hash", R"("3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7")"},
      {"last_modified_time", R"("2025-11-13T08:30:00")"},
      {"cached_at", R"("2025-11-13T08:35:21")"},
      {"sync_count", "1"},
  };
  bool replaced = false;
  for (const auto& [field, text] : fields) {
    const std::string_view written = field == name ? json : text;
    replaced = replaced || field == name;
    if (written.empty()) continue;
    if (value.size() > 1) value += ", ";
    value.append("\"").append(field).append("\": ").append(written);
  }
  if (!replaced) value.append(", \"").append(name).append("\": ").append(json);
  return value + "}";
}

entity_state sample_state() {
  entity_state s;
  s.entity_type = "product";
  s.entity_id = "2646610000000113574";
  s.local_id = "12345";
  s.content_hash = std::string(sample_hash);
  s.last_modified_time = "2025-11-13T08:30:00";
  s.cached_at = "2025-11-13T08:35:21.123456";
  s.sync_count = 3;
  return s;
}

void expect_same_fields(const entity_state& a, const entity_state& b) {
  EXPECT_EQ(a.entity_type, b.entity_type);
  EXPECT_EQ(a.entity_id, b.entity_id);
  EXPECT_EQ(a.local_id, b.local_id);
  EXPECT_EQ(a.content_hash, b.content_hash);
  EXPECT_EQ(a.last_modified_time, b.last_modified_time);
  EXPECT_EQ(a.cached_at, b.cached_at);
  EXPECT_EQ(a.sync_count, b.sync_count);
  EXPECT_EQ(a.scheme, b.scheme);
}

TEST(StateKey, JoinsPrefixTypeAndIdWithColons) {
  EXPECT_EQ(tds::state_key(tds::default_key_prefix, "product", "2646610000000113574"),
            "tds:entity:state:product:2646610000000113574");
  EXPECT_EQ(tds::state_key("p", "", ""), "p::");
}

TEST(StateDecode, ReadsTheLegacySampleExactly) {
  const entity_state s = must_decode(legacy_sample);
  EXPECT_EQ(s.entity_type, "product");
  EXPECT_EQ(s.entity_id, "2646610000000113574");
  EXPECT_EQ(s.local_id, "12345");
  EXPECT_EQ(s.content_hash, sample_hash);
  EXPECT_EQ(s.last_modified_time, "2025-11-13T08:30:00");
  EXPECT_EQ(s.cached_at, "2025-11-13T08:35:21.123456");
  EXPECT_EQ(s.sync_count, 3);
  EXPECT_FALSE(s.scheme.has_value());
  EXPECT_EQ(tds::effective_scheme(s), hash_scheme::legacy);
}

TEST(StateDecode, ReadsHashSchemeWhenPresent) {
  EXPECT_EQ(must_decode(with_field("hash_scheme", R"("jcs")")).scheme, hash_scheme::jcs);
  EXPECT_EQ(must_decode(with_field("hash_scheme", R"("legacy")")).scheme, hash_scheme::legacy);
  EXPECT_EQ(tds::effective_scheme(must_decode(with_field("hash_scheme", R"("jcs")"))),
            hash_scheme::jcs);
}

TEST(StateDecode, NullOrAbsentOptionalFieldsAreEmpty) {
  EXPECT_FALSE(must_decode(with_field("local_id", "null")).local_id.has_value());
  EXPECT_FALSE(must_decode(with_field("local_id", "")).local_id.has_value());
  EXPECT_FALSE(must_decode(with_field("last_modified_time", "null")).last_modified_time);
  EXPECT_FALSE(must_decode(with_field("last_modified_time", "")).last_modified_time);
}

TEST(StateDecode, IntegerIdsKeepTheirExactDigits) {
  // 19 digits: a double would round 2646610000000113574 to 2646610000000113664.
  EXPECT_EQ(must_decode(with_field("local_id", "2646610000000113574")).local_id,
            "2646610000000113574");
  EXPECT_EQ(must_decode(with_field("entity_id", "2646610000000113575")).entity_id,
            "2646610000000113575");
  EXPECT_EQ(must_decode(with_field("local_id", "18446744073709551615")).local_id,
            "18446744073709551615");
  EXPECT_EQ(must_decode(with_field("local_id", "-5")).local_id, "-5");
}

TEST(StateDecode, UnknownFieldsAreIgnored) {
  const entity_state s = must_decode(with_field("extra", R"({"nested": [1, 2, null]})"));
  EXPECT_EQ(s.entity_id, "42");
}

TEST(StateDecode, RepeatedFieldTakesTheLastValueLikePython) {
  const std::string value = with_field("content_hash", "");
  const std::string twice =
      value.substr(0, value.size() - 1) +
      R"(, "sync_count": 9, "content_hash": ")" + std::string(64, 'a') + "\"}";
  const entity_state s = must_decode(twice);
  EXPECT_EQ(s.sync_count, 9);
  EXPECT_EQ(s.content_hash, std::string(64, 'a'));
}

TEST(StateDecode, AcceptsUppercaseHexDigest) {
  EXPECT_EQ(must_decode(with_field("content_hash", "\"" + std::string(64, 'F') + "\"")).content_hash,
            std::string(64, 'F'));
}

struct corrupt_case {
  std::string value;
  status code;
  std::string message_part;
};

TEST(StateDecode, RejectsEveryKindOfCorruptionWithAClearError) {
  const corrupt_case cases[] = {
      {"", status::json_malformed, "not valid JSON"},
      {"not json", status::json_malformed, "not valid JSON"},
      {std::string(legacy_sample.substr(0, 60)), status::json_malformed, "not valid JSON"},
      {std::string(legacy_sample) + " x", status::json_malformed, "not valid JSON"},
      {std::string(legacy_sample) + "}", status::json_malformed, "not valid JSON"},
      {"{\"entity_type\": \"\xff\"}", status::json_malformed, "not valid JSON"},
      {"[1, 2]", status::json_malformed, "must be a JSON object, got an array"},
      {"\"a string\"", status::json_malformed, "must be a JSON object, got a string"},
      {"null", status::json_malformed, "must be a JSON object, got null"},
      {with_field("content_hash", ""), status::invalid_argument, "\"content_hash\" is missing"},
      {with_field("content_hash", "\"" + std::string(63, 'a') + "\""), status::invalid_argument,
       "64 hex digits"},
      {with_field("content_hash", "\"" + std::string(65, 'a') + "\""), status::invalid_argument,
       "64 hex digits"},
      {with_field("content_hash", "\"" + std::string(63, 'a') + "g\""), status::invalid_argument,
       "64 hex digits"},
      {with_field("content_hash", "12"), status::invalid_argument,
       "\"content_hash\" must be a string, got an integer"},
      {with_field("content_hash", "null"), status::invalid_argument,
       "\"content_hash\" must be a string, got null"},
      {with_field("sync_count", "3.0"), status::invalid_argument,
       "\"sync_count\" must be an integer"},
      {with_field("sync_count", "\"3\""), status::invalid_argument,
       "\"sync_count\" must be an integer"},
      // simdjson refuses integers beyond 64 bits outright, so this never reaches the field check.
      {with_field("sync_count", "99999999999999999999"), status::json_malformed, "number"},
      {with_field("sync_count", "18446744073709551615"), status::invalid_argument,
       "\"sync_count\" must be an integer that fits in 64 bits"},
      {with_field("sync_count", "-1"), status::invalid_argument, "must not be negative"},
      {with_field("sync_count", ""), status::invalid_argument, "\"sync_count\" is missing"},
      {with_field("hash_scheme", "\"sha1\""), status::invalid_argument,
       "unknown hash_scheme \"sha1\""},
      {with_field("hash_scheme", "1"), status::invalid_argument, "\"hash_scheme\" must be a string"},
      {with_field("hash_scheme", "null"), status::invalid_argument,
       "\"hash_scheme\" must be a string"},
      {with_field("entity_type", "5"), status::invalid_argument, "\"entity_type\" must be a string"},
      {with_field("entity_type", ""), status::invalid_argument, "\"entity_type\" is missing"},
      {with_field("entity_id", "1.5"), status::invalid_argument, "\"entity_id\" must be a string or an integer"},
      {with_field("entity_id", ""), status::invalid_argument, "\"entity_id\" is missing"},
      {with_field("local_id", "true"), status::invalid_argument, "\"local_id\" must be a string, an integer or null"},
      {with_field("local_id", "[]"), status::invalid_argument, "got an array"},
      {with_field("last_modified_time", "1731486600"), status::invalid_argument,
       "\"last_modified_time\" must be a string or null"},
      {with_field("cached_at", "{}"), status::invalid_argument, "\"cached_at\" must be a string, got an object"},
      {with_field("cached_at", ""), status::invalid_argument, "\"cached_at\" is missing"},
  };
  for (const corrupt_case& c : cases) {
    const auto decoded = tds::decode_state(c.value);
    ASSERT_FALSE(decoded.ok()) << "accepted: " << c.value;
    EXPECT_EQ(decoded.code(), c.code) << c.value;
    EXPECT_NE(decoded.error().message.find(c.message_part), std::string::npos)
        << "message: " << decoded.error().message << "\nvalue: " << c.value;
  }
}

TEST(StateEncode, ReproducesTheLegacySampleByteForByte) {
  EXPECT_EQ(tds::encode_state(sample_state()), legacy_sample);
  EXPECT_EQ(tds::encode_state(must_decode(legacy_sample)), legacy_sample);
}

TEST(StateEncode, EscapesLikePythonJsonDumpsWithEnsureAscii) {
  entity_state s = sample_state();
  s.entity_id = "\xd9\x85\xd9\x86\xd8\xaa\xd8\xac-\xf0\x9f\x98\x80\"\\\n\x7f";  // "منتج-😀"...
  s.local_id.reset();
  s.content_hash = std::string(32, 'a') + std::string(32, 'b');
  s.last_modified_time = "2025-11-13T08:30:00+0300";
  s.scheme = hash_scheme::jcs;
  // python3 -c 'import json; print(json.dumps({...}))' on the same fields:
  EXPECT_EQ(tds::encode_state(s),
            R"({"entity_type": "product", "entity_id": "\u0645\u0646\u062a\u062c-\ud83d\ude00\"\\\n\u007f", )"
            R"("local_id": null, "content_hash": ")" + std::string(32, 'a') + std::string(32, 'b') +
                R"(", "last_modified_time": "2025-11-13T08:30:00+0300", )"
                R"("cached_at": "2025-11-13T08:35:21.123456", "hash_scheme": "jcs", "sync_count": 3})");
}

TEST(StateEncode, ArabicInAnIdBecomesUnicodeEscapes) {
  std::string out;
  tds::detail::append_ascii_json_string(out, "\xd8\xa7\xd9\x84\xd9\x85");  // "الم"
  EXPECT_EQ(out, R"("\u0627\u0644\u0645")");
}

TEST(StateEncode, ControlCharactersUseShortFormsWherePythonDoes) {
  std::string out;
  tds::detail::append_ascii_json_string(out, "\b\f\t\r\x01\x1f ~");
  EXPECT_EQ(out, R"("\b\f\t\r\u0001\u001f ~")");
  out.clear();
  tds::detail::append_ascii_json_string(out, "\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e");  // é € 𝄞
  EXPECT_EQ(out, R"("\u00e9\u20ac\ud834\udd1e")");
}

TEST(StateEncode, BytesThatAreNotUtf8BecomeOneEscapePerByte) {
  const struct {
    std::string_view bytes;
    std::string_view escaped;
  } cases[] = {
      {"a\xff" "b", R"("a\u00ffb")"},
      {"\xc3", R"("\u00c3")"},                                // truncated sequence
      {"\xc0\xaf", R"("\u00c0\u00af")"},                      // overlong '/'
      {"\xed\xa0\x80", R"("\u00ed\u00a0\u0080")"},            // encoded surrogate
      {"\xf4\x90\x80\x80", R"("\u00f4\u0090\u0080\u0080")"},  // above U+10FFFF
      {"\xe2\x82" "x", R"("\u00e2\u0082x")"},                 // cut short by ASCII
  };
  for (const auto& c : cases) {
    std::string out;
    tds::detail::append_ascii_json_string(out, c.bytes);
    EXPECT_EQ(out, c.escaped);
  }
}

TEST(StateEncode, ValueWithABadUtf8IdStillDecodes) {
  entity_state s = sample_state();
  s.entity_id = "id\xff";
  const entity_state back = must_decode(tds::encode_state(s));
  EXPECT_EQ(back.entity_id, "id\xc3\xbf");  // U+00FF: the value stays valid JSON
}

TEST(StateEncode, HeadPlusCountPlusTailIsTheWholeValue) {
  for (const std::int64_t count : {std::int64_t{0}, std::int64_t{3}, std::int64_t{1} << 40}) {
    entity_state s = sample_state();
    s.sync_count = count;
    const tds::encoded_state parts = tds::encode_state_parts(s);
    EXPECT_EQ(parts.tail, "}");
    EXPECT_EQ(parts.head + std::to_string(count) + parts.tail, tds::encode_state(s));
    EXPECT_TRUE(parts.head.ends_with(R"("sync_count": )"));
  }
}

TEST(StateEncode, PartsDoNotDependOnTheCount) {
  entity_state a = sample_state();
  entity_state b = sample_state();
  b.sync_count = 77;
  EXPECT_EQ(tds::encode_state_parts(a).head, tds::encode_state_parts(b).head);
}

TEST(StateEncode, SchemeFieldIsWrittenOnlyWhenSet) {
  entity_state s = sample_state();
  EXPECT_EQ(tds::encode_state(s).find("hash_scheme"), std::string::npos);
  s.scheme = hash_scheme::legacy;
  EXPECT_NE(tds::encode_state(s).find(R"(, "hash_scheme": "legacy", "sync_count": 3})"),
            std::string::npos);
}

TEST(StateRoundTrip, EncodedValueDecodesToTheSameFields) {
  entity_state plain = sample_state();
  entity_state jcs = sample_state();
  jcs.scheme = hash_scheme::jcs;
  jcs.local_id.reset();
  jcs.last_modified_time.reset();
  jcs.sync_count = 9'223'372'036'854'775'807;
  entity_state legacy = sample_state();
  legacy.scheme = hash_scheme::legacy;
  legacy.entity_type = "ص\"\\\t";
  legacy.entity_id = "9999999999999999999";
  legacy.local_id = "😀";
  for (const entity_state& s : {plain, jcs, legacy}) {
    const std::string value = tds::encode_state(s);
    expect_same_fields(must_decode(value), s);
    EXPECT_EQ(tds::encode_state(must_decode(value)), value);
  }
}

TEST(StateRoundTrip, OutputIsPureAscii) {
  entity_state s = sample_state();
  s.entity_id = "ا\xff\x01";
  for (const char c : tds::encode_state(s)) {
    EXPECT_GE(static_cast<unsigned char>(c), 0x20);
    EXPECT_LT(static_cast<unsigned char>(c), 0x7f);
  }
}

}  // namespace
