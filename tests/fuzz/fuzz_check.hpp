// What every fuzz target shares: an invariant check that aborts with a message (libFuzzer then
// keeps the input as a crash reproducer), and the rules every error value must follow.
// No target logic lives here.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "tdscache/error.hpp"

namespace tds::fuzz {

[[noreturn]] inline void violated(const char* what, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
  std::abort();
}

#define TDS_FUZZ_CHECK(cond) \
  ((cond) ? (void)0 : ::tds::fuzz::violated(#cond, __FILE__, __LINE__))

// Error messages are read by people and land in logs: never empty, never a copy of a large
// input (messages quote at most a short excerpt), and an offset always points into the input.
inline constexpr std::size_t message_limit = 512;

inline void check_error(const tds::error& e, std::size_t input_size) {
  TDS_FUZZ_CHECK(e.code != status::ok);
  TDS_FUZZ_CHECK(e.code != status::internal);
  TDS_FUZZ_CHECK(!e.message.empty());
  TDS_FUZZ_CHECK(e.message.size() <= message_limit);
  TDS_FUZZ_CHECK(e.offset == no_offset || e.offset <= input_size);
}

}  // namespace tds::fuzz
