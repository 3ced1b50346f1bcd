// Fuzz target: the legacy canonicalizer (the production service's json.dumps form) on
// arbitrary bytes. Properties checked are in canonical_invariants.hpp.
#include <cstddef>
#include <cstdint>

#include "canonical_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Created once: building the options is not what is being fuzzed.
  static tds::canonicalizer first = std::move(tds::canonicalizer::create(tds::canonical_options::legacy())).value();
  static tds::canonicalizer second = std::move(tds::canonicalizer::create(tds::canonical_options::legacy())).value();
  tds::fuzz::check_canonical(first, second,
                             std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
