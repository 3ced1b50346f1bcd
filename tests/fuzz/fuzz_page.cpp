// Fuzz target: hash_page, the page-to-records path, on arbitrary bytes. A page either fails as
// a whole with a clean error, or gives records whose spans lie inside the body, and each
// hashed record's digest is the digest of exactly the bytes its span names.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "tdscache/canonical.hpp"

namespace {

bool is_page_error(tds::status code) {
  switch (code) {
    case tds::status::json_malformed:
    case tds::status::utf8_invalid:
    case tds::status::depth_exceeded:
    case tds::status::page_malformed:
    case tds::status::out_of_memory:
      return true;
    default:
      return false;
  }
}

// What may stop one item without stopping the page.
bool is_item_error(tds::status code) {
  switch (code) {
    case tds::status::item_not_object:
    case tds::status::item_no_id:
    case tds::status::depth_exceeded:
    case tds::status::number_nan_inf:
    case tds::status::number_out_of_range:
      return true;
    default:
      return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static tds::canonicalizer pages = std::move(tds::canonicalizer::create()).value();
  static tds::canonicalizer items = std::move(tds::canonicalizer::create()).value();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto r = pages.hash_page(body);
  if (!r.ok()) {
    tds::fuzz::check_error(r.error(), size);
    TDS_FUZZ_CHECK(is_page_error(r.code()));
    return 0;
  }
  for (const tds::entity_record& rec : r.value().records) {
    TDS_FUZZ_CHECK(rec.offset <= size && rec.length <= size - rec.offset);
    TDS_FUZZ_CHECK(rec.length > 0);
    const std::string_view item = body.substr(rec.offset, rec.length);
    if (!rec.ok()) {
      tds::fuzz::check_error(rec.error, size);
      TDS_FUZZ_CHECK(is_item_error(rec.error.code));
      continue;
    }
    // A hashed record always has an id: an id-less one must be synced, so it is an error.
    TDS_FUZZ_CHECK(!rec.id.empty());
    auto alone = items.hash(item);
    TDS_FUZZ_CHECK(alone.ok());
    TDS_FUZZ_CHECK(alone.value() == rec.content_digest);
  }
  return 0;
}
