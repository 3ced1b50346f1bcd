// Fuzz target: the direct walker (src/canonical_direct.cpp, the fast path) against the
// On-Demand reference walker (src/canonical.cpp), on arbitrary bytes, for legacy, jcs and strict
// jcs. Both must agree on everything a caller sees: success, the canonical bytes, the error's
// code, message and offset, and for hash_page every record. A fast path that accepts what the
// reference refuses, or writes one byte differently, is a wrong digest.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "tdscache/canonical.hpp"

namespace {

struct walker_pair {
  tds::canonicalizer reference, direct;
};

walker_pair make_pair(const tds::canonical_options& options) {
  walker_pair p{tds::canonicalizer::create(options).value(), tds::canonicalizer::create(options).value()};
  tds::detail::use_direct_walker(p.reference, false);
  return p;
}

bool same_error(const tds::error& a, const tds::error& b) {
  return a.code == b.code && a.message == b.message && a.offset == b.offset;
}

void compare_canonical(walker_pair& p, std::string_view input) {
  auto want = p.reference.canonicalize(input);
  const bool want_ok = want.ok();
  const std::string want_text = want_ok ? std::string(want.value()) : std::string();
  const tds::error want_error = want_ok ? tds::error{} : want.error();
  auto got = p.direct.canonicalize(input);
  TDS_FUZZ_CHECK(got.ok() == want_ok);
  if (want_ok) TDS_FUZZ_CHECK(got.value() == want_text);
  else TDS_FUZZ_CHECK(same_error(got.error(), want_error));
}

void compare_page(walker_pair& p, std::string_view input) {
  auto want = p.reference.hash_page(input);
  auto got = p.direct.hash_page(input);
  TDS_FUZZ_CHECK(got.ok() == want.ok());
  if (!want.ok()) {
    TDS_FUZZ_CHECK(got.error().code == want.error().code);
    TDS_FUZZ_CHECK(got.error().message == want.error().message);
    return;
  }
  const auto& x = want.value().records;
  const auto& y = got.value().records;
  TDS_FUZZ_CHECK(x.size() == y.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    TDS_FUZZ_CHECK(x[i].id == y[i].id);
    TDS_FUZZ_CHECK(x[i].last_modified_time == y[i].last_modified_time);
    TDS_FUZZ_CHECK(x[i].offset == y[i].offset && x[i].length == y[i].length);
    TDS_FUZZ_CHECK(x[i].error.code == y[i].error.code);
    if (x[i].ok()) TDS_FUZZ_CHECK(x[i].content_digest == y[i].content_digest);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static walker_pair pairs[] = {make_pair(tds::canonical_options::legacy()),
                                make_pair(tds::canonical_options::jcs()),
                                make_pair(tds::canonical_options::jcs(true))};
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (auto& p : pairs) {
    compare_canonical(p, input);
    compare_page(p, input);
  }
  return 0;
}
