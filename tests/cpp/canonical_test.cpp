// Named tests for every edge case of the two canonical schemes, the error codes, exclusions,
// the page-to-records path and the digest properties (what changes a digest, what doesn't).
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "tdscache/canonical.hpp"
#include "tdscache/detail/json_text.hpp"

namespace {

using tds::canonical_options;
using tds::status;

std::string legacy(std::string_view json) {
  auto r = tds::canonicalize(json, canonical_options::legacy());
  EXPECT_TRUE(r.ok()) << json << ": " << r.error().message;
  return r.ok() ? r.value() : "<error>";
}

std::string jcs(std::string_view json, bool strict = false) {
  auto r = tds::canonicalize(json, canonical_options::jcs(strict));
  EXPECT_TRUE(r.ok()) << json << ": " << r.error().message;
  return r.ok() ? r.value() : "<error>";
}

status legacy_error(std::string_view json) { return tds::canonicalize(json, canonical_options::legacy()).code(); }
status jcs_error(std::string_view json) { return tds::canonicalize(json, canonical_options::jcs()).code(); }

// ---- legacy -------------------------------------------------------------------------------

TEST(LegacyCanonical, ExcludesDefaultFieldsAtTopLevelOnly) {
  EXPECT_EQ(legacy(R"({"name":"x","created_at":"t","updated_at":"t","zoho_synced_at":1,
      "last_sync_attempt":1,"sync_count":3,"cached_at":"c","zoho_raw_data":{},"nested":{"created_at":"kept"}})"),
            R"({"name": "x", "nested": {"created_at": "kept"}})");
}

TEST(LegacyCanonical, DropsTopLevelNullsButKeepsNestedOnes) {
  EXPECT_EQ(legacy(R"({"a":null,"b":{"c":null},"d":[null]})"), R"({"b": {"c": null}, "d": [null]})");
}

TEST(LegacyCanonical, SortsKeysByCodePointAtEveryLevel) {
  EXPECT_EQ(legacy(R"({"b":{"z":1,"a":2},"a":[{"y":1,"x":2}],"B":0})"),
            R"({"B": 0, "a": [{"x": 2, "y": 1}], "b": {"a": 2, "z": 1}})");
  // Code point order: U+FFFF sorts before U+1F600 (unlike UTF-16 order).
  EXPECT_EQ(legacy(R"({"\ud83d\ude00":1,"\uffff":2,"\u00e9":3,"z":4})"),
            R"({"z": 4, "\u00e9": 3, "\uffff": 2, "\ud83d\ude00": 1})");
}

TEST(LegacyCanonical, UsesPythonSeparators) {
  EXPECT_EQ(legacy(R"({"a":[1,2],"b":{"c":3}})"), R"({"a": [1, 2], "b": {"c": 3}})");
}

TEST(LegacyCanonical, EscapesLikeEnsureAscii) {
  EXPECT_EQ(legacy(R"({"s":"é\u007f\u2028\u0001😀 ~"})"),
            R"({"s": "\u00e9\u007f\u2028\u0001\ud83d\ude00 ~"})");
  EXPECT_EQ(legacy(R"({"s":"\"\\\/\b\f\n\r\t"})"), R"({"s": "\"\\/\b\f\n\r\t"})");
  EXPECT_EQ(legacy("{\"s\":\"\xd8\xb2\xd9\x8a\xd8\xaa\"}"), R"({"s": "\u0632\u064a\u062a"})");
  EXPECT_EQ(legacy(R"({"s":"A\u030a"})"), R"({"s": "A\u030a"})");  // no normalization
}

TEST(LegacyCanonical, KeepsLoneSurrogatesAsPythonDoes) {
  EXPECT_EQ(legacy(R"({"s":"\ud800x\udc00"})"), R"({"s": "\ud800x\udc00"})");
}

TEST(LegacyCanonical, PrintsIntegersOfAnySizeExactly) {
  EXPECT_EQ(legacy(R"({"id":2646610000000113574,"big":123456789012345678901234567890,"neg":-42})"),
            R"({"big": 123456789012345678901234567890, "id": 2646610000000113574, "neg": -42})");
}

TEST(LegacyCanonical, NegativeZeroIntegerIsZero) { EXPECT_EQ(legacy(R"({"z":-0})"), R"({"z": 0})"); }

TEST(LegacyCanonical, PrintsFloatsLikePythonRepr) {
  EXPECT_EQ(legacy("[1.0,1.5,1e-05,1e16,-0.0,0.0001,1e2,6,6.0,1e15,0.1,1.5e300,5e-324,1e22]"),
            "[1.0, 1.5, 1e-05, 1e+16, -0.0, 0.0001, 100.0, 6, 6.0, 1000000000000000.0, 0.1, 1.5e+300, "
            "5e-324, 1e+22]");
  EXPECT_EQ(legacy("[9999999999999998.0,12345678901234567.0,2.5e-3,1E2]"),
            "[9999999999999998.0, 1.2345678901234568e+16, 0.0025, 100.0]");
}

TEST(LegacyCanonical, UnderflowBecomesZeroLikePython) {
  EXPECT_EQ(legacy("[1e-400,-1e-400]"), "[0.0, -0.0]");
}

TEST(LegacyCanonical, LastDuplicateKeyWins) {
  EXPECT_EQ(legacy(R"({"a":1,"a":2})"), R"({"a": 2})");
  EXPECT_EQ(legacy(R"({"a":3,"a":null})"), "{}");  // the surviving null is then dropped
  EXPECT_EQ(legacy(R"({"a":null,"a":3})"), R"({"a": 3})");
}

TEST(LegacyCanonical, LiteralsAndEmptyContainers) {
  EXPECT_EQ(legacy(R"({"t":true,"f":false,"o":{},"a":[],"n":[null]})"),
            R"({"a": [], "f": false, "n": [null], "o": {}, "t": true})");
}

TEST(LegacyCanonical, WhitespaceAndKeyOrderDoNotMatter) {
  EXPECT_EQ(legacy(" {\n\t\"b\" : [ 1 , 2 ] ,\r\n \"a\":\"x\" } "), legacy(R"({"a":"x","b":[1,2]})"));
}

TEST(LegacyCanonical, RejectsNaNAndInfinityWhichJsonLoadsWouldAccept) {
  EXPECT_EQ(legacy_error(R"({"a":NaN})"), status::number_nan_inf);
  EXPECT_EQ(legacy_error(R"({"a":Infinity})"), status::number_nan_inf);
  EXPECT_EQ(legacy_error(R"({"a":-Infinity})"), status::number_nan_inf);
  EXPECT_EQ(legacy_error(R"({"a":1e400})"), status::number_out_of_range);
  EXPECT_EQ(legacy_error(R"({"a":-1e400})"), status::number_out_of_range);
}

TEST(LegacyCanonical, RejectsIntegersBeyondPythonsDigitLimit) {
  EXPECT_EQ(legacy_error("[" + std::string(4301, '7') + "]"), status::number_out_of_range);
  EXPECT_TRUE(tds::canonicalize("[" + std::string(4300, '7') + "]").ok());
}

// ---- jcs ----------------------------------------------------------------------------------

TEST(JcsCanonical, KeepsExactDigitsOfLargeIntegersByDefault) {
  EXPECT_EQ(jcs(R"({"id":2646610000000113574})"), R"({"id":2646610000000113574})");
  EXPECT_EQ(jcs(R"([9007199254740991,9007199254740992,-9007199254740993])"),
            "[9007199254740991,9007199254740992,-9007199254740993]");
}

TEST(JcsCanonical, StrictModeRoundsLargeIntegersThroughADouble) {
  EXPECT_EQ(jcs(R"({"id":2646610000000113574})", true), R"({"id":2646610000000113700})");
}

TEST(JcsCanonical, NineteenDigitIdsDifferingInTheLastDigitHashDifferently) {
  auto a = tds::hash_json(R"({"item_id":2646610000000113574})", canonical_options::jcs());
  auto b = tds::hash_json(R"({"item_id":2646610000000113575})", canonical_options::jcs());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a.value(), b.value());
  // In strict mode both round to the same double, which is why it is not the default.
  auto sa = tds::hash_json(R"({"item_id":2646610000000113574})", canonical_options::jcs(true));
  auto sb = tds::hash_json(R"({"item_id":2646610000000113575})", canonical_options::jcs(true));
  EXPECT_EQ(sa.value(), sb.value());
}

TEST(JcsCanonical, MinimalEscapingAndUtf8Output) {
  EXPECT_EQ(jcs("{\"s\":\"\\u00e9\\u007f\\u2028\\u0001\\ud83d\\ude00\\/\"}"),
            "{\"s\":\"\xc3\xa9\x7f\xe2\x80\xa8\\u0001\xf0\x9f\x98\x80/\"}");
}

TEST(JcsCanonical, SortsByUtf16CodeUnits) {
  // U+1F600 is D83D DE00 in UTF-16, which sorts before U+FFFF.
  EXPECT_EQ(jcs(R"({"\uffff":1,"\ud83d\ude00":2,"\u00e9":3})"),
            "{\"\xc3\xa9\":3,\"\xf0\x9f\x98\x80\":2,\"\xef\xbf\xbf\":1}");
}

TEST(JcsCanonical, NumbersFollowEcmaScript) {
  EXPECT_EQ(jcs("[1.0,1e21,1e-7,123e-9,-0,0.000001,1e300,5e-324]", true),
            "[1,1e+21,1e-7,1.23e-7,0,0.000001,1e+300,5e-324]");
}

TEST(JcsCanonical, DuplicateKeysLoneSurrogatesAndBadUtf8AreErrors) {
  EXPECT_EQ(jcs_error(R"({"a":1,"a":2})"), status::duplicate_key);
  EXPECT_EQ(jcs_error(R"({"a":"\ud800"})"), status::lone_surrogate);
  EXPECT_EQ(jcs_error(R"({"a":"\udc00\ud800"})"), status::lone_surrogate);
  EXPECT_EQ(jcs_error("{\"a\":\"\xff\"}"), status::utf8_invalid);
  EXPECT_EQ(jcs_error(R"({"a":NaN})"), status::number_nan_inf);
}

TEST(JcsCanonical, ExcludesNothingByDefault) {
  EXPECT_EQ(jcs(R"({"created_at":"x","a":null})"), R"({"a":null,"created_at":"x"})");
}

// ---- errors -------------------------------------------------------------------------------

TEST(CanonicalErrors, EachFailureHasItsOwnStatus) {
  EXPECT_EQ(legacy_error(R"({"a":[1,2)"), status::json_malformed);
  EXPECT_EQ(legacy_error(R"({"a":1} x)"), status::json_malformed);
  EXPECT_EQ(legacy_error(R"({"a":01})"), status::json_malformed);
  EXPECT_EQ(legacy_error(R"({"a":1.})"), status::json_malformed);
  EXPECT_EQ(legacy_error(R"({"a":"\x"})"), status::json_malformed);
  EXPECT_EQ(legacy_error("{\"a\":\"\x01\"}"), status::json_malformed);
  EXPECT_EQ(legacy_error(""), status::json_malformed);
  EXPECT_EQ(legacy_error("{\"a\":\"\xc3\x28\"}"), status::utf8_invalid);
  EXPECT_EQ(legacy_error("{\"a\":\"\xed\xa0\x80\"}"), status::utf8_invalid);  // encoded surrogate
  EXPECT_EQ(legacy_error(R"({"a":nul})"), status::json_malformed);
  EXPECT_EQ(legacy_error(R"({"a":tru})"), status::json_malformed);
}

TEST(CanonicalErrors, MessagesCarryTheByteOffset) {
  auto r = tds::canonicalize(R"({"a":1, "b":NaN})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().offset, 12u);
  EXPECT_NE(r.error().message.find("NaN"), std::string::npos);
  auto bad = tds::canonicalize(R"({"a":"ok","b":"\q"})");
  EXPECT_EQ(bad.error().offset, 15u);
}

TEST(CanonicalErrors, StructuralErrorsSayWhereAndWhat) {
  auto trailing = tds::canonicalize(R"({"a":1} x)");
  EXPECT_EQ(trailing.code(), status::json_malformed);
  EXPECT_EQ(trailing.error().offset, 8u);
  EXPECT_NE(trailing.error().message.find("trailing"), std::string::npos) << trailing.error().message;
  auto truncated = tds::canonicalize(R"({"a":[1,)");
  EXPECT_EQ(truncated.code(), status::json_malformed);
  EXPECT_EQ(truncated.error().offset, 8u);
  EXPECT_NE(truncated.error().message.find("truncated"), std::string::npos) << truncated.error().message;
}

TEST(CanonicalErrors, NestingBeyondTheLimitFailsCleanly) {
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(legacy_error(deep), status::depth_exceeded);
  auto opts = canonical_options::legacy();
  opts.max_depth = 3;
  EXPECT_TRUE(tds::canonicalize("[[[1]]]", opts).ok());
  EXPECT_EQ(tds::canonicalize("[[[[1]]]]", opts).code(), status::depth_exceeded);
  opts.max_depth = 0;
  EXPECT_EQ(tds::canonicalize("[]", opts).code(), status::invalid_argument);
}

TEST(CanonicalErrors, ScalarRoots) {
  EXPECT_EQ(legacy("12"), "12");
  EXPECT_EQ(legacy("\"x\""), "\"x\"");
  EXPECT_EQ(legacy("  1.5 "), "1.5");
  EXPECT_EQ(legacy_error("1 2"), status::json_malformed);
  EXPECT_EQ(legacy_error("NaN"), status::number_nan_inf);
}

// ---- exclusions ---------------------------------------------------------------------------

TEST(CanonicalExclusions, CustomTopLevelFieldsReplaceTheDefault) {
  auto opts = canonical_options::legacy();
  opts.exclude_fields = std::vector<std::string>{"secret"};
  EXPECT_EQ(tds::canonicalize(R"({"secret":1,"created_at":2})", opts).value(), R"({"created_at": 2})");
}

TEST(CanonicalExclusions, JsonPointersDropNestedMembersAndElements) {
  auto opts = canonical_options::jcs();
  opts.exclude_pointers = {"/locations/0/stock", "/a~1b/c~0d", "/list/1", "/top"};
  EXPECT_EQ(tds::canonicalize(
                R"({"top":1,"locations":[{"stock":5,"id":1},{"stock":6,"id":2}],"a/b":{"c~d":1,"e":2},"list":[1,2,3]})",
                opts)
                .value(),
            R"({"a/b":{"e":2},"list":[1,3],"locations":[{"id":1},{"id":2,"stock":6}]})");
}

TEST(CanonicalExclusions, InvalidPointersAreRejectedAtCreation) {
  auto opts = canonical_options::legacy();
  opts.exclude_pointers = {"no-slash"};
  EXPECT_EQ(tds::canonicalizer::create(opts).code(), status::pointer_invalid);
  opts.exclude_pointers = {"/a~2"};
  EXPECT_EQ(tds::canonicalizer::create(opts).code(), status::pointer_invalid);
}

// ---- pages --------------------------------------------------------------------------------

const char* sample_page = R"({"code":0,"message":"success","items":[
  {"item_id":2646610000000113574,"name":"زيت","last_modified_time":"2025-11-13T08:30:00+0300","rate":1.5},
  {"item_id":"abc","name":"B","last_modified_time":null} ,
  {"name":"no id"},
  42,
  {"item_id":7,"bad":NaN}
],"page_context":{"page":1,"has_more_page":true}})";

TEST(CanonicalPage, HashesEveryItemIntoARecord) {
  auto c = tds::canonicalizer::create().value();
  auto r = c.hash_page(sample_page);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& recs = r.value().records;
  ASSERT_EQ(recs.size(), 5u);
  EXPECT_EQ(r.value().has_more_page, std::optional<bool>(true));

  EXPECT_TRUE(recs[0].ok());
  EXPECT_EQ(recs[0].id, "2646610000000113574");
  EXPECT_EQ(recs[0].last_modified_time, std::optional<std::string>("2025-11-13T08:30:00+0300"));
  const std::string_view page(sample_page);
  const auto item0 = page.substr(recs[0].offset, recs[0].length);
  EXPECT_EQ(item0.front(), '{');
  EXPECT_EQ(item0.back(), '}');
  EXPECT_EQ(recs[0].content_digest, tds::hash_json(item0).value());

  EXPECT_TRUE(recs[1].ok());
  EXPECT_EQ(recs[1].id, "abc");
  EXPECT_FALSE(recs[1].last_modified_time.has_value());
  EXPECT_EQ(page.substr(recs[1].offset, recs[1].length), R"({"item_id":"abc","name":"B","last_modified_time":null})");

  EXPECT_EQ(recs[2].error.code, status::item_no_id);
  EXPECT_EQ(recs[3].error.code, status::item_not_object);
  EXPECT_EQ(page.substr(recs[3].offset, recs[3].length), "42");
  EXPECT_EQ(recs[4].error.code, status::number_nan_inf);
  EXPECT_EQ(recs[4].id, "7");
  EXPECT_EQ(page.substr(recs[4].offset, recs[4].length), R"({"item_id":7,"bad":NaN})");
}

TEST(CanonicalPage, ConfigurableItemsKeyAndIdField) {
  auto c = tds::canonicalizer::create(canonical_options::jcs()).value();
  tds::page_options popts;
  popts.items_key = "contacts";
  popts.id_field = "contact_id";
  auto r = c.hash_page(R"({"page_context":{"has_more_page":false},"contacts":[{"contact_id":5,"x":1}]})", popts);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.value().records.size(), 1u);
  EXPECT_EQ(r.value().records[0].id, "5");
  EXPECT_EQ(r.value().has_more_page, std::optional<bool>(false));
  EXPECT_EQ(r.value().records[0].content_digest, tds::hash_json(R"({"x":1,"contact_id":5})", canonical_options::jcs()).value());
}

TEST(CanonicalPage, MalformedPagesFailAsAWhole) {
  auto c = tds::canonicalizer::create().value();
  EXPECT_EQ(c.hash_page(R"({"items":[{"item_id":1},{"item_id":2)").code(), status::json_malformed);
  EXPECT_EQ(c.hash_page(R"({"code":0})").code(), status::page_malformed);
  EXPECT_EQ(c.hash_page(R"({"items":{}})").code(), status::page_malformed);
  EXPECT_EQ(c.hash_page(R"([1,2])").code(), status::page_malformed);
  EXPECT_EQ(c.hash_page(R"({"items":[{"item_id":1,"a":01}]})").code(), status::json_malformed);
  // The canonicalizer stays usable after an error.
  EXPECT_TRUE(c.hash_page(R"({"items":[]})").ok());
}

// ---- properties ---------------------------------------------------------------------------

std::string random_document(std::mt19937_64& rng, int depth = 0) {
  std::uniform_int_distribution<int> kind(0, depth > 2 ? 3 : 5);
  auto str = [&] {
    std::string s = "\"";
    int n = static_cast<int>(rng() % 8);
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>('a' + rng() % 26));
    return s + "\"";
  };
  switch (kind(rng)) {
    case 0: return str();
    case 1: return std::to_string(static_cast<long long>(rng() % 2000000) - 1000000);
    case 2: return std::to_string((rng() % 100000) / 7.0);
    case 3: return rng() % 2 ? "true" : "false";
    case 4: {
      std::string s = "[";
      int n = static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) s += (i ? "," : "") + random_document(rng, depth + 1);
      return s + "]";
    }
    default: {
      std::string s = "{";
      int n = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) s += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + random_document(rng, depth + 1);
      return s + "}";
    }
  }
}

TEST(DigestProperties, AnyOneCharacterChangeInAValueChangesTheDigest) {
  std::mt19937_64 rng(7);
  for (auto opts : {canonical_options::legacy(), canonical_options::jcs()}) {
    for (int round = 0; round < 300; ++round) {
      std::string doc = "{\"root\":" + random_document(rng) + ",\"s\":\"value\",\"n\":12345}";
      auto base = tds::hash_json(doc, opts);
      ASSERT_TRUE(base.ok()) << doc;
      // Change one character of a string value, a digit of a number, add and remove a key.
      std::vector<std::string> variants = {doc, doc, doc, doc};
      variants[0].replace(variants[0].find("value"), 1, "V");
      variants[1].replace(variants[1].find("12345"), 5, "12346");
      variants[2].insert(1, "\"extra\":0,");
      variants[3].replace(variants[3].find(",\"s\":\"value\""), 12, "");
      for (const auto& v : variants) {
        auto h = tds::hash_json(v, opts);
        ASSERT_TRUE(h.ok()) << v;
        EXPECT_NE(h.value(), base.value()) << doc << " vs " << v;
      }
    }
  }
}

TEST(DigestProperties, KeyOrderAndWhitespaceDoNotChangeTheDigest) {
  for (auto opts : {canonical_options::legacy(), canonical_options::jcs()}) {
    auto a = tds::hash_json(R"({"a":1,"b":{"c":[1,2],"d":"x"}})", opts).value();
    auto b = tds::hash_json(" {\"b\" : {\"d\":\"x\" ,\"c\":[ 1,2 ]},\n\"a\" :1 }", opts).value();
    EXPECT_EQ(a, b);
  }
}

TEST(DigestProperties, StringValueChangesAnywhereChangeTheDigest) {
  const std::string doc = R"({"name":"Olive Oil","sku":"SKU-1","nested":{"label":"abc"}})";
  const auto base = tds::hash_json(doc).value();
  std::set<std::string> seen{base.hex()};
  for (std::size_t i = 0; i < doc.size(); ++i) {
    if (!std::isalnum(static_cast<unsigned char>(doc[i]))) continue;
    // Only characters inside string values (not keys): between ":"" and the closing quote.
    const auto colon = doc.rfind(":\"", i);
    const auto quote = doc.find('"', colon + 2);
    if (colon == std::string::npos || i <= colon + 1 || i >= quote) continue;
    std::string v = doc;
    v[i] = v[i] == 'x' ? 'y' : 'x';
    auto h = tds::hash_json(v);
    ASSERT_TRUE(h.ok());
    EXPECT_TRUE(seen.insert(h.value().hex()).second) << v;
  }
  EXPECT_GT(seen.size(), 15u);
}

TEST(Digest, HexRoundTripAndSha256OfEmptyInput) {
  auto d = tds::sha256("");
  EXPECT_EQ(d.hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(tds::digest::from_hex(d.hex()), d);
  EXPECT_EQ(tds::digest::from_hex("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"), d);
  EXPECT_FALSE(tds::digest::from_hex("xyz").has_value());
}

}  // namespace
