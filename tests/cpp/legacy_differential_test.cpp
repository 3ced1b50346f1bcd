// The legacy scheme against CPython: tests/cpp/legacy_oracle.py generates seeded documents and
// computes the production service's digest with json + hashlib; every native digest must match.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "tdscache/canonical.hpp"

namespace {

std::string unhex(std::string_view hex) {
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

TEST(LegacyDifferential, TwelveThousandGeneratedDocumentsMatchCPython) {
  const std::string cmd = std::string("python3 ") + TDS_SOURCE_DIR + "/tests/cpp/legacy_oracle.py 12000 20251113";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  ASSERT_TRUE(pipe) << "cannot run python3";
  auto canon = tds::canonicalizer::create(tds::canonical_options::legacy()).value();
  std::string line;
  char buf[65536];
  int checked = 0, mismatches = 0;
  while (fgets(buf, sizeof buf, pipe.get())) {
    line += buf;
    if (line.empty() || line.back() != '\n') continue;
    line.pop_back();
    const auto space = line.find(' ');
    ASSERT_NE(space, std::string::npos);
    const std::string doc = unhex(std::string_view(line).substr(0, space));
    const std::string expected = line.substr(space + 1);
    auto got = canon.hash(doc);
    if (!got.ok() || got.value().hex() != expected) {
      if (++mismatches <= 5) {
        auto text = tds::canonicalize(doc);
        ADD_FAILURE() << "document: " << doc << "\nnative: "
                      << (text.ok() ? text.value() : text.error().message);
      }
    }
    ++checked;
    line.clear();
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GE(checked, 10000) << "the oracle produced too few documents";
}

}  // namespace
