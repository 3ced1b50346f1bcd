// Fuzz target: the RFC 8785 canonicalizer on arbitrary bytes, in both number modes (exact
// digits for big integers, and strict doubles). Properties are in canonical_invariants.hpp.
#include <cstddef>
#include <cstdint>

#include "canonical_invariants.hpp"

namespace {

tds::canonicalizer make(bool strict) {
  return std::move(tds::canonicalizer::create(tds::canonical_options::jcs(strict))).value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static tds::canonicalizer exact = make(false), exact_again = make(false);
  static tds::canonicalizer strict = make(true), strict_again = make(true);
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  tds::fuzz::check_canonical(exact, exact_again, input);
  tds::fuzz::check_canonical(strict, strict_again, input);
  return 0;
}
