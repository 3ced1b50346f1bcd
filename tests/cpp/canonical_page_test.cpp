// hash_page on bodies json.loads reads in a way the records could not show: a second items
// array (json.loads keeps only the last, dropping the first one's entities) is refused.
#include <gtest/gtest.h>

#include "tdscache/canonical.hpp"

namespace {

using tds::status;

TEST(CanonicalPageDuplicates, TwoItemsArraysAreRefusedWithTheSecondKeysOffset) {
  auto c = tds::canonicalizer::create().value();
  const std::string page =
      R"({"code":0,"items":[{"item_id":1,"a":1}],"message":"x","items":[{"item_id":2,"a":2}]})";
  auto r = c.hash_page(page);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, status::page_malformed);
  EXPECT_NE(r.error().message.find("more than one \"items\""), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().offset, page.rfind("\"items\""));
}

TEST(CanonicalPageDuplicates, AnEscapedSpellingOfTheItemsKeyCountsAsTheSameKey) {
  auto c = tds::canonicalizer::create().value();
  auto r = c.hash_page(R"({"items":[],"it\u0065ms":[{"item_id":2}]})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, status::page_malformed);
}

TEST(CanonicalPageDuplicates, ConfiguredItemsKeyIsTheOneChecked) {
  auto c = tds::canonicalizer::create().value();
  tds::page_options popts;
  popts.items_key = "contacts";
  popts.id_field = "contact_id";
  // Two "items" members are no concern when the entities live under "contacts".
  auto ok = c.hash_page(R"({"items":1,"items":2,"contacts":[{"contact_id":5}]})", popts);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok.value().records.size(), 1u);
  auto refused = c.hash_page(R"({"contacts":[{"contact_id":5}],"contacts":[]})", popts);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, status::page_malformed);
}

TEST(CanonicalPageDuplicates, OneItemsArrayStillHashes) {
  auto c = tds::canonicalizer::create().value();
  auto r = c.hash_page(R"({"items":[{"item_id":1,"a":1},{"item_id":2,"a":2}],"page_context":{"has_more_page":false}})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r.value().records.size(), 2u);
  EXPECT_EQ(r.value().records[1].id, "2");
}

}  // namespace
