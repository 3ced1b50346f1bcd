// RFC 8785 conformance: every vector in ../shared/testdata/jcs, in strict mode. The data judges
// the code: input -> output files, the 50,000 ES6 number lines, Appendix B, the must-reject list,
// the sorting test and the erdtman extras.
#include <gtest/gtest.h>

#include <charconv>
#include <cstring>
#include <vector>

#include "tdscache/canonical.hpp"
#include "test_data.hpp"

namespace {

using tds::testing::read_file;

std::string canonical_jcs(const std::string& in) {
  auto r = tds::canonicalize(in, tds::canonical_options::jcs(/*strict_numbers=*/true));
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? r.value() : std::string();
}

std::string unhex(const std::string& text) {
  std::string bytes, digits;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) digits.push_back(c);
  for (std::size_t i = 0; i + 1 < digits.size(); i += 2)
    bytes.push_back(static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  return bytes;
}

double from_bits(const std::string& hex) {
  std::uint64_t bits = 0;
  std::from_chars(hex.data(), hex.data() + hex.size(), bits, 16);
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

// A double as JSON text that parses back to exactly the same value.
std::string json_number(double d) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

struct number_line {
  std::string hex, expected;
};

std::vector<number_line> read_number_lines(const std::filesystem::path& p) {
  std::vector<number_line> lines;
  std::istringstream in(read_file(p));
  std::string line;
  while (std::getline(in, line)) {
    auto comma = line.find(',');
    if (comma == std::string::npos) continue;
    lines.push_back({line.substr(0, comma), line.substr(comma + 1)});
  }
  return lines;
}

TEST(JcsConformance, InputFilesCanonicalizeToOutputFilesAndAreFixedPoints) {
  TDS_REQUIRE_SHARED_TESTDATA(data);
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(data / "jcs" / "input")) {
    const auto name = entry.path().filename();
    const std::string expected = read_file(data / "jcs" / "output" / name);
    EXPECT_EQ(canonical_jcs(read_file(entry.path())), expected) << name;
    EXPECT_EQ(canonical_jcs(expected), expected) << name << " is not a fixed point";
    auto outhex = data / "jcs" / "outhex" / name.stem().concat(".txt");
    EXPECT_EQ(unhex(read_file(outhex)), expected) << name;
    // The digest of a document is the SHA-256 of its canonical bytes.
    auto d = tds::hash_json(read_file(entry.path()), tds::canonical_options::jcs(true));
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d.value(), tds::sha256(expected));
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

TEST(JcsConformance, Es6NumberFileFirst50000Lines) {
  TDS_REQUIRE_SHARED_TESTDATA(data);
  auto lines = read_number_lines(data / "jcs" / "numbers" / "es6testfile100m-first50000.txt");
  ASSERT_EQ(lines.size(), 50000u);
  int failures = 0;
  for (const auto& l : lines) {
    const std::string got = canonical_jcs("[" + json_number(from_bits(l.hex)) + "]");
    if (got != "[" + l.expected + "]" && ++failures <= 10)
      ADD_FAILURE() << l.hex << ": expected " << l.expected << " got " << got;
  }
  EXPECT_EQ(failures, 0);
}

TEST(JcsConformance, AppendixBAndDiscreteNumbers) {
  TDS_REQUIRE_SHARED_TESTDATA(data);
  for (const char* file : {"rfc8785-appendix-b.txt", "verify-numbers-discrete.txt"}) {
    auto lines = read_number_lines(data / "jcs" / "numbers" / file);
    EXPECT_FALSE(lines.empty()) << file;
    for (const auto& l : lines)
      EXPECT_EQ(canonical_jcs("[" + json_number(from_bits(l.hex)) + "]"), "[" + l.expected + "]")
          << file << " " << l.hex;
  }
}

TEST(JcsConformance, MustRejectNaNAndInfinity) {
  TDS_REQUIRE_SHARED_TESTDATA(data);
  auto lines = read_number_lines(data / "jcs" / "numbers" / "must-reject.txt");
  ASSERT_EQ(lines.size(), 3u);
  for (const auto& l : lines) {
    // JSON text cannot spell these values; the ways an input could carry them must all fail.
    std::vector<std::string> spellings;
    if (l.expected == "NaN") spellings = {"[NaN]", "[-NaN]"};
    if (l.expected == "Infinity") spellings = {"[Infinity]", "[1e400]"};
    if (l.expected == "-Infinity") spellings = {"[-Infinity]", "[-1e400]"};
    ASSERT_FALSE(spellings.empty()) << l.expected;
    for (const auto& s : spellings) {
      auto r = tds::canonicalize(s, tds::canonical_options::jcs(true));
      EXPECT_FALSE(r.ok()) << s;
      EXPECT_TRUE(r.code() == tds::status::number_nan_inf || r.code() == tds::status::number_out_of_range)
          << s << " gave " << tds::status_name(r.code());
    }
  }
}

TEST(JcsConformance, SortingTestGivesTheRfcValueOrder) {
  TDS_REQUIRE_SHARED_TESTDATA(data);
  const std::string canonical = canonical_jcs(read_file(data / "jcs" / "extra" / "rfc8785-sorting" / "input.json"));
  std::istringstream expected(read_file(data / "jcs" / "extra" / "rfc8785-sorting" / "expected-value-order.txt"));
  std::string value;
  std::size_t pos = 0;
  int n = 0;
  while (std::getline(expected, value)) {
    if (value.empty()) continue;
    auto found = canonical.find(":" + value, pos);
    ASSERT_NE(found, std::string::npos) << value << " missing or out of order in " << canonical;
    pos = found + 1;
    ++n;
  }
  EXPECT_GT(n, 5);
}

TEST(JcsConformance, ErdtmanExtras) {
  TDS_REQUIRE_SHARED_TESTDATA(data);
  for (const char* name : {"structures.json", "weird.json"}) {
    auto dir = data / "jcs" / "extra" / "erdtman-canonicalize";
    std::string expected = read_file(dir / "output" / name);
    ASSERT_FALSE(expected.empty());
    if (expected.back() == '\n') expected.pop_back();
    EXPECT_EQ(canonical_jcs(read_file(dir / "input" / name)), expected) << name;
  }
}

TEST(JcsConformance, PublishedPrefixHashesOfTheNumberFile) {
  TDS_REQUIRE_SHARED_TESTDATA(data);
  const std::string text = read_file(data / "jcs" / "numbers" / "es6testfile100m-first50000.txt");
  auto prefix = [&](int lines) {
    std::size_t pos = 0;
    for (int i = 0; i < lines; ++i) pos = text.find('\n', pos) + 1;
    return text.substr(0, pos);
  };
  EXPECT_EQ(tds::sha256(prefix(1000)).hex(), "be18b62b6f69cdab33a7e0dae0d9cfa869fda80ddc712221570f9f40a5878687");
  EXPECT_EQ(tds::sha256(prefix(10000)).hex(), "b9f7a8e75ef22a835685a52ccba7f7d6bdc99e34b010992cbc5864cd12be6892");
}

}  // namespace
