// Where tests find data that lives outside the repo (the RFC 8785 vectors in ../shared), and a
// file reader. Tests that need ../shared skip with a reason when a clone doesn't have it.
#pragma once

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace tds::testing {

inline std::optional<std::filesystem::path> shared_testdata() {
  if (const char* env = std::getenv("TDS_SHARED_TESTDATA")) {
    if (std::filesystem::exists(env)) return std::filesystem::path(env);
  }
  std::filesystem::path p = TDS_SHARED_TESTDATA;
  if (std::filesystem::exists(p / "jcs")) return p;
  return std::nullopt;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

#define TDS_REQUIRE_SHARED_TESTDATA(var)                                                     \
  auto var##_opt = ::tds::testing::shared_testdata();                                        \
  if (!var##_opt) GTEST_SKIP() << "../shared/testdata is absent (it ships beside the repo "  \
                                  "in CI, not in a user's clone)";                           \
  const std::filesystem::path var = *var##_opt

}  // namespace tds::testing
