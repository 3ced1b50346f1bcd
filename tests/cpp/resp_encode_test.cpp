// Pins the hand-written RESP command encoder (resp.cpp's append_command) to hiredis'
// redisFormatCommandArgv, which it replaced: the same bytes for any argv, binary included.
#include <hiredis/hiredis.h>

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "resp.hpp"

namespace {

std::string hiredis_form(const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  const int n = redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), ptrs.data(), lens.data());
  EXPECT_GE(n, 0);
  std::string out(cmd, static_cast<std::size_t>(n));
  redisFreeCommand(cmd);
  return out;
}

std::string ours(const std::vector<std::string>& argv, std::string prefix = {}) {
  const std::vector<std::string_view> views(argv.begin(), argv.end());
  EXPECT_TRUE(tds::detail::append_command(prefix, views).ok());
  return prefix;
}

TEST(RespEncode, MatchesHiredisForGeneratedArgv) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::string> argv;
    const std::size_t argc = 1 + rng() % (round % 10 == 0 ? 1200 : 12);
    for (std::size_t i = 0; i < argc; ++i) {
      std::string arg(rng() % (i % 7 == 0 ? 400 : 24), '\0');
      for (char& c : arg) c = static_cast<char>(rng());
      if (rng() % 4 == 0) arg += "\r\n$3\r\n*";
      argv.push_back(std::move(arg));
    }
    ASSERT_EQ(ours(argv), hiredis_form(argv)) << round;
  }
}

TEST(RespEncode, EdgeCasesMatchHiredis) {
  const std::vector<std::vector<std::string>> cases = {
      {"PING"},
      {""},
      {"", "", ""},
      {"MGET", std::string(1, '\0'), std::string(1 << 20, 'x')},
      {"SET", "k", std::string(9, 'v'), "EX", "86400"},
      {"SET", "k", std::string(10, 'v'), std::string(99, 'a'), std::string(100, 'b'), std::string(1000, 'c')},
  };
  for (const auto& argv : cases) EXPECT_EQ(ours(argv), hiredis_form(argv));
}

TEST(RespEncode, AppendsToWhatIsAlreadyThere) {
  EXPECT_EQ(ours({"PING"}, "*1\r\n$4\r\nPING\r\n"), "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n");
}

}  // namespace
