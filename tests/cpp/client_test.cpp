// The cache client against a healthy redis-server: every decision reason end to end, the
// legacy value format in both directions, TTLs, round-trip counts (INFO commandstats), the
// conflict rule with concurrent writers, invalidation, warming, batch markers and statistics.
// Failure behaviour (dead, stalled, refusing servers) is in client_fault_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <string>
#include <thread>
#include <vector>

#include "redis_server.hpp"
#include "store.hpp"
#include "tdscache/client.hpp"
#include "tdscache/timestamp.hpp"

namespace {

using namespace std::chrono_literals;
using tds::check_result;
using tds::client;
using tds::commit_item;
using tds::commit_outcome;
using tds::entity_check;
using tds::hash_scheme;
using tds::reason;
using tds::testing::redis_server;

tds::digest digest_of(std::string_view content) { return tds::sha256(content); }

entity_check item(std::string_view type, std::string_view id, const tds::digest& d,
                  std::optional<std::string_view> lmt = std::nullopt, bool force = false,
                  hash_scheme scheme = hash_scheme::legacy) {
  entity_check c;
  c.entity_type = type;
  c.entity_id = id;
  c.content_digest = d;
  c.last_modified_time = lmt;
  c.force = force;
  c.scheme = scheme;
  return c;
}

// Commits what the check saw, as a caller does after its database writes succeeded.
std::vector<commit_item> commits_for(std::span<const entity_check> checks, const check_result& seen) {
  std::vector<commit_item> out;
  for (std::size_t i = 0; i < checks.size(); ++i) {
    const auto& c = checks[i];
    out.push_back(commit_item{c.entity_type, c.entity_id, c.content_digest, c.scheme,
                              c.last_modified_time, std::nullopt, &seen.items[i].observed});
  }
  return out;
}

// The legacy service's sample value, byte for byte, with a real digest.
std::string legacy_value(std::string_view id, const tds::digest& d, std::string_view cached_at,
                         int sync_count = 3) {
  return "{\"entity_type\": \"product\", \"entity_id\": \"" + std::string(id) +
         "\", \"local_id\": \"12345\", \"content_hash\": \"" + d.hex() +
         "\", \"last_modified_time\": \"2025-11-13T08:30:00\", \"cached_at\": \"" +
         std::string(cached_at) + "\", \"sync_count\": " + std::to_string(sync_count) + "}";
}

// n checks over 19-digit Zoho-like ids (kept in `ids`, which the checks view), each with its
// id's digest.
std::vector<entity_check> numbered_checks(std::vector<std::string>& ids, int n) {
  ids.clear();
  for (int i = 0; i < n; ++i) ids.push_back(std::to_string(2646610000000000000LL + i));
  std::vector<entity_check> checks;
  for (const auto& id : ids) checks.push_back(item("product", id, digest_of(id)));
  return checks;
}

// One server for the suite; each test starts from an empty database and zeroed commandstats.
class Client : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new redis_server();
    if (!server_->start()) start_error_ = server_->last_error();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(start_error_.empty()) << start_error_;
    ASSERT_TRUE(server_->command({"FLUSHALL"}).ok());
    ASSERT_TRUE(server_->reset_stats());
  }

  static client make(std::function<void(tds::client_config&)> tweak = {}) {
    auto cfg = server_->unix_config();
    if (tweak) tweak(cfg);
    auto c = client::connect(cfg);
    EXPECT_TRUE(c.ok()) << c.error().message;
    return std::move(c).value();
  }

  static std::string get(std::string_view key) {
    auto r = server_->command({"GET", key});
    return r.ok() ? r.value().str : "<error>";
  }
  static long long ttl(std::string_view key) {
    auto r = server_->command({"TTL", key});
    return r.ok() ? r.value().integer : -100;
  }
  static long long dbsize() {
    auto r = server_->command({"DBSIZE"});
    return r.ok() ? r.value().integer : -1;
  }
  // Keys that still vouch for some digest: every key but the markers a lost conflict leaves
  // (an all-zero content_hash; see docs/commit-protocol.md).
  static long long vouching_states() {
    auto keys = server_->command({"KEYS", "*"});
    if (!keys.ok()) return -1;
    long long n = 0;
    for (const auto& k : keys.value().elements) {
      if (get(k.str).find("\"content_hash\": \"" + std::string(64, '0') + "\"") == std::string::npos) ++n;
    }
    return n;
  }

  static redis_server* server_;
  static std::string start_error_;
};
redis_server* Client::server_ = nullptr;
std::string Client::start_error_;

TEST_F(Client, EveryDecisionReasonEndToEnd) {
  auto c = make();
  const auto v1 = digest_of("v1"), v2 = digest_of("v2");
  const std::string lmt = "2025-11-13T08:30:00Z";
  // Seed states for ids 1..6 through the client's own commit path.
  std::vector<entity_check> seed;
  for (const char* id : {"1", "2", "3", "4", "5", "6"}) seed.push_back(item("product", id, v1, lmt));
  auto seen = c.check(seed);
  auto seeded = c.commit(commits_for(seed, seen));
  ASSERT_EQ(seeded.written, 6u) << seeded.error.message;
  // id 7: an entry that is not JSON; id 8: a legacy entry cached long ago.
  ASSERT_TRUE(server_->command({"SET", "tds:entity:state:product:7", "{not json"}).ok());
  ASSERT_TRUE(server_->command({"SET", "tds:entity:state:product:8",
                                legacy_value("8", v1, "2020-01-01T00:00:00.000001")}).ok());

  const std::vector<entity_check> checks = {
      item("product", "1", v1, lmt, /*force=*/true),                   // forced_sync
      item("product", "", v1, lmt),                                     // no_id
      item("product", "999", v1, lmt),                                  // no_cache_entry
      item("product", "7", v1, lmt),                                    // cache_entry_corrupt
      item("product", "2", v1, lmt, false, hash_scheme::jcs),           // hash_scheme_changed
      item("product", "3", v2, lmt),                                    // content_changed
      item("product", "8", v1, "2025-11-13T08:30:00"),                  // cache_expired
      item("product", "4", v1, "2025-11-13T08:30:01Z"),                 // timestamp_newer
      item("product", "5", v1, lmt),                                    // unchanged
  };
  const reason expected[] = {reason::forced_sync,    reason::no_id,
                             reason::no_cache_entry, reason::cache_entry_corrupt,
                             reason::hash_scheme_changed, reason::content_changed,
                             reason::cache_expired,  reason::timestamp_newer,
                             reason::unchanged};
  auto r = c.check(checks);
  ASSERT_EQ(r.items.size(), checks.size());
  for (std::size_t i = 0; i < checks.size(); ++i) {
    EXPECT_EQ(r.items[i].why, expected[i])
        << "item " << i << ": got " << tds::reason_name(r.items[i].why) << ", want "
        << tds::reason_name(expected[i]);
  }
  EXPECT_EQ(r.skipped, 1u);
  EXPECT_EQ(r.to_sync, 8u);
  EXPECT_EQ(r.cache_errors, 0u);
  EXPECT_EQ(r.error.code, tds::status::ok);

  // The tenth reason needs a failing cache: a client whose server is gone.
  auto dead_cfg = tds::client_config{};
  dead_cfg.port = tds::testing::free_tcp_port();
  auto dead = client::connect(dead_cfg);
  ASSERT_TRUE(dead.ok());
  auto failed = dead.value().check(std::span(checks).subspan(2, 1));
  EXPECT_EQ(failed.items[0].why, reason::cache_check_error);
}

TEST_F(Client, NineteenDigitIdsKeepEveryDigit) {
  auto c = make();
  const std::string a = "2646610000000113574", b = "2646610000000113575";
  const auto da = digest_of("a"), db = digest_of("b");
  const std::vector<entity_check> seed = {item("product", a, da), item("product", b, db)};
  auto seen = c.check(seed);
  ASSERT_EQ(c.commit(commits_for(seed, seen)).written, 2u);
  EXPECT_NE(get("tds:entity:state:product:2646610000000113574").find("\"entity_id\": \"2646610000000113574\""),
            std::string::npos);
  // Ids that a double would merge stay apart: each matches its own digest only.
  auto r = c.check(std::vector{item("product", a, da), item("product", b, db),
                               item("product", a, db), item("product", b, da)});
  EXPECT_EQ(r.items[0].why, reason::unchanged);
  EXPECT_EQ(r.items[1].why, reason::unchanged);
  EXPECT_EQ(r.items[2].why, reason::content_changed);
  EXPECT_EQ(r.items[3].why, reason::content_changed);
}

TEST_F(Client, TimestampsWithOffsetsCompareAsInstants) {
  auto c = make();
  const auto d = digest_of("x");
  const std::vector<entity_check> seed = {item("invoice", "1", d, "2025-01-01T04:30:00Z")};
  auto seen = c.check(seed);
  ASSERT_EQ(c.commit(commits_for(seed, seen)).written, 1u);
  auto same = c.check(std::vector{item("invoice", "1", d, "2025-01-01T10:00:00+0530")});
  EXPECT_EQ(same.items[0].why, reason::unchanged) << "+0530 10:00 is 04:30Z: the same instant";
  auto later = c.check(std::vector{item("invoice", "1", d, "2025-01-01T10:00:01+05:30")});
  EXPECT_EQ(later.items[0].why, reason::timestamp_newer);
  auto earlier = c.check(std::vector{item("invoice", "1", d, "2025-01-01T04:29:59Z")});
  EXPECT_EQ(earlier.items[0].why, reason::unchanged);
}

TEST_F(Client, LegacyValuesAreReadAsTheLegacyServiceWroteThem) {
  const auto d = digest_of("legacy content");
  const std::string key = "tds:entity:state:product:2646610000000113574";
  ASSERT_TRUE(server_->command({"SET", key, legacy_value("2646610000000113574", d,
                                                         "2025-11-13T08:35:21.123456")}).ok());
  // The sample was cached in 2025; with the age rule off, only content and time decide.
  auto c = make([](auto& cfg) { cfg.max_age_seconds = 0; });
  const std::string_view id = "2646610000000113574";
  auto r = c.check(std::vector{item("product", id, d, "2025-11-13T08:30:00"),
                               item("product", id, digest_of("other"), "2025-11-13T08:30:00"),
                               item("product", id, d, "2025-11-13T08:30:00", false, hash_scheme::jcs),
                               item("product", id, d, "2025-11-13T09:00:00")});
  EXPECT_EQ(r.items[0].why, reason::unchanged);
  EXPECT_EQ(r.items[1].why, reason::content_changed);
  EXPECT_EQ(r.items[2].why, reason::hash_scheme_changed) << "no hash_scheme field means legacy";
  EXPECT_EQ(r.items[3].why, reason::timestamp_newer);
  // With the default 24 h rule the 2025 cached_at is read, and it is old.
  auto aged = make().check(std::vector{item("product", id, d, "2025-11-13T08:30:00")});
  EXPECT_EQ(aged.items[0].why, reason::cache_expired);

  auto state = c.get_state("product", id);
  ASSERT_TRUE(state.ok()) << state.error().message;
  ASSERT_TRUE(state.value().has_value());
  EXPECT_EQ(state.value()->local_id, "12345");
  EXPECT_EQ(state.value()->sync_count, 3);
  EXPECT_EQ(state.value()->content_hash, d.hex());
  EXPECT_FALSE(state.value()->scheme.has_value());
}

TEST_F(Client, CommitOverALegacyValueIncrementsItsSyncCountAndKeepsTheFormat) {
  const auto d = digest_of("legacy content");
  const std::string id = "2646610000000113574";
  const std::string key = "tds:entity:state:product:" + id;
  ASSERT_TRUE(server_->command({"SET", key, legacy_value(id, d, "2025-11-13T08:35:21.123456")}).ok());
  auto c = make();
  const std::vector<entity_check> checks = {item("product", id, d, "2025-11-13T08:30:00")};
  auto seen = c.check(checks);
  ASSERT_EQ(seen.items[0].why, reason::cache_expired);
  std::vector<commit_item> commits = commits_for(checks, seen);
  commits[0].local_id = "12345";
  auto done = c.commit(commits);
  ASSERT_EQ(done.items[0], commit_outcome::written) << done.error.message;
  EXPECT_EQ(done.sync_counts[0], 4);
  // What we wrote is what the legacy service writes: same fields, order and separators.
  const std::string stored = get(key);
  auto decoded = tds::decode_state(stored);
  ASSERT_TRUE(decoded.ok()) << stored;
  EXPECT_EQ(decoded.value().sync_count, 4);
  EXPECT_EQ(stored, legacy_value(id, d, decoded.value().cached_at, 4));
}

TEST_F(Client, JcsEntriesCarryTheirScheme) {
  auto c = make();
  const auto d = digest_of("j");
  const std::vector<entity_check> checks = {item("order", "9", d, std::nullopt, false, hash_scheme::jcs)};
  auto seen = c.check(checks);
  ASSERT_EQ(c.commit(commits_for(checks, seen)).written, 1u);
  EXPECT_NE(get("tds:entity:state:order:9").find("\"hash_scheme\": \"jcs\""), std::string::npos);
  EXPECT_EQ(c.check(checks).items[0].why, reason::unchanged);
}

TEST_F(Client, StateKeysGetTheConfiguredTtl) {
  const auto d = digest_of("t");
  auto commit_one = [&](client& c, std::string_view id) {
    const std::vector<entity_check> checks = {item("product", id, d)};
    auto seen = c.check(checks);
    return c.commit(commits_for(checks, seen)).written;
  };
  auto by_default = make();
  ASSERT_EQ(commit_one(by_default, "1"), 1u);
  EXPECT_GT(ttl("tds:entity:state:product:1"), 86400 - 10);
  EXPECT_LE(ttl("tds:entity:state:product:1"), 86400);
  auto short_ttl = make([](auto& cfg) { cfg.ttl_seconds = 120; });
  ASSERT_EQ(commit_one(short_ttl, "2"), 1u);
  EXPECT_GT(ttl("tds:entity:state:product:2"), 100);
  EXPECT_LE(ttl("tds:entity:state:product:2"), 120);
  auto forever = make([](auto& cfg) { cfg.ttl_seconds = 0; });
  ASSERT_EQ(commit_one(forever, "3"), 1u);
  EXPECT_EQ(ttl("tds:entity:state:product:3"), -1) << "ttl 0 means no expiry";
}

TEST_F(Client, CheckOf1312EntitiesIsTwoMgetsAndCommitSendsOnlyEvalsha) {
  auto c = make();
  std::vector<std::string> ids;
  const std::vector<entity_check> checks = numbered_checks(ids, 1312);
  ASSERT_TRUE(server_->reset_stats());
  auto seen = c.check(checks);
  EXPECT_EQ(seen.by_reason[static_cast<int>(reason::no_cache_entry)], 1312u);
  EXPECT_EQ(server_->calls("mget"), 2u) << "1312 keys, at most 1000 per MGET";
  EXPECT_EQ(server_->calls("get"), 0u);

  ASSERT_TRUE(server_->reset_stats());
  auto done = c.commit(commits_for(checks, seen));
  EXPECT_EQ(done.written, 1312u) << done.error.message;
  // The client sends EVALSHA only (64 keys per call), plus SCRIPT LOAD once per connection.
  // commandstats also counts what scripts run inside the server: one SET per entity (it
  // returns the old value for the comparison), and no GET at all.
  EXPECT_EQ(server_->calls("evalsha"), (1312u + 63) / 64);
  EXPECT_LE(server_->calls("script|load"), 1u);
  EXPECT_EQ(server_->calls("get"), 0u);
  EXPECT_EQ(server_->calls("set"), 1312u);
  EXPECT_EQ(server_->calls("mget"), 0u);

  ASSERT_TRUE(server_->reset_stats());
  auto again = c.check(checks);
  EXPECT_EQ(again.skipped, 1312u);
  EXPECT_EQ(server_->calls("mget"), 2u);
}

// Keys per MGET as the server saw them: SLOWLOG (everything logged) shows a command's first
// 31 arguments, then "... (N more arguments)".
std::vector<std::size_t> logged_mget_sizes(redis_server& server) {
  std::vector<std::size_t> sizes;
  auto log = server.command({"SLOWLOG", "GET", "1000"});
  if (!log.ok()) return sizes;
  for (const auto& entry : log.value().elements) {
    if (entry.elements.size() < 4) continue;
    const auto& args = entry.elements[3].elements;
    if (args.empty() || args[0].str != "MGET") continue;
    std::size_t keys = args.size() - 1;
    if (const auto& last = args.back().str; last.rfind("... (", 0) == 0) {
      keys = args.size() - 2 + std::stoul(last.substr(5));
    }
    sizes.push_back(keys);
  }
  std::reverse(sizes.begin(), sizes.end());  // SLOWLOG lists the newest first
  return sizes;
}

TEST_F(Client, MgetChunksAreEvenSoTheServerServesOneWhileTheClientDecodesAnother) {
  auto c = make();
  std::vector<std::string> ids;
  const std::vector<entity_check> checks = numbered_checks(ids, 1312);
  ASSERT_TRUE(c.commit(commits_for(checks, c.check(checks))).written == 1312u);
  ASSERT_TRUE(server_->command({"CONFIG", "SET", "slowlog-log-slower-than", "0"}).ok());
  ASSERT_TRUE(server_->command({"SLOWLOG", "RESET"}).ok());
  auto again = c.check(checks);
  const auto sizes = logged_mget_sizes(*server_);
  ASSERT_TRUE(server_->command({"CONFIG", "SET", "slowlog-log-slower-than", "10000"}).ok());
  EXPECT_EQ(again.skipped, 1312u) << again.error.message;
  EXPECT_EQ(sizes, (std::vector<std::size_t>{656, 656})) << "not 1000 + 312";
}

TEST(ChunkLayout, CutsIntoTheFewestCommandsOfEvenSizeNoneOverTheChunk) {
  for (const std::size_t chunk : {1u, 2u, 3u, 100u, 1000u}) {
    for (const std::size_t n : {0u, 1u, 2u, 99u, 100u, 101u, 999u, 1000u, 1001u, 1312u, 2999u, 100000u}) {
      const tds::detail::chunk_layout layout(n, chunk);
      ASSERT_EQ(layout.commands(), (n + chunk - 1) / chunk) << n << " keys, chunk " << chunk;
      std::size_t next = 0, smallest = SIZE_MAX, largest = 0;
      for (std::size_t i = 0; i < layout.commands(); ++i) {
        ASSERT_EQ(layout.start(i), next) << "command " << i << " of " << n << " keys, chunk " << chunk;
        ASSERT_GE(layout.size(i), 1u);
        ASSERT_LE(layout.size(i), chunk);
        smallest = std::min(smallest, layout.size(i));
        largest = std::max(largest, layout.size(i));
        next += layout.size(i);
      }
      EXPECT_EQ(next, n);
      EXPECT_EQ(layout.start(layout.commands()), n) << "the keys a failure leaves unanswered start here";
      if (n > 0) EXPECT_LE(largest - smallest, 1u);
    }
  }
  const tds::detail::chunk_layout layout(1312, 1000);
  EXPECT_EQ(layout.size(0), 656u);
  EXPECT_EQ(layout.size(1), 656u);
}

// observe() then check(items, observation): the reads go out before the digests are known
// (the Python dict path hashes meanwhile), and the decisions are check()'s own.
TEST_F(Client, ObserveThenCheckDecidesAsCheckDoesWithTheSameMgets) {
  auto c = make();
  const auto v1 = digest_of("v1"), v2 = digest_of("v2");
  const std::string lmt = "2025-11-13T08:30:00Z";
  std::vector<entity_check> seed;
  for (const char* id : {"1", "2", "3", "4"}) seed.push_back(item("product", id, v1, lmt));
  ASSERT_EQ(c.commit(commits_for(seed, c.check(seed))).written, 4u);
  ASSERT_TRUE(server_->command({"SET", "tds:entity:state:product:7", "{not json"}).ok());
  const std::vector<entity_check> checks = {
      item("product", "1", v1, lmt, /*force=*/true), item("product", "", v1, lmt),
      item("product", "999", v1, lmt),               item("product", "7", v1, lmt),
      item("product", "2", v1, lmt, false, hash_scheme::jcs), item("product", "3", v2, lmt),
      item("product", "4", v1, "2025-11-13T08:30:01Z"),      item("product", "4", v1, lmt),
  };
  const auto expected = c.check(checks);
  // The ids alone, digests still unknown.
  std::vector<entity_check> ids_only = checks;
  for (auto& it : ids_only) it.content_digest = tds::digest{};
  ASSERT_TRUE(server_->reset_stats());
  tds::observation seen = c.observe(ids_only);
  EXPECT_EQ(seen.size(), checks.size());
  EXPECT_EQ(server_->calls("mget"), 1u);
  auto r = c.check(checks, std::move(seen));
  EXPECT_EQ(server_->calls("mget"), 1u) << "deciding sends nothing";
  ASSERT_EQ(r.items.size(), checks.size());
  for (std::size_t i = 0; i < checks.size(); ++i) {
    EXPECT_EQ(r.items[i].why, expected.items[i].why) << "item " << i << ": " << tds::reason_name(r.items[i].why);
    EXPECT_EQ(r.items[i].observed.kind, expected.items[i].observed.kind) << i;
    EXPECT_EQ(r.items[i].observed.value, expected.items[i].observed.value) << i;
  }
  EXPECT_EQ(r.skipped, 1u);
  EXPECT_EQ(r.by_reason, expected.by_reason);
  EXPECT_EQ(r.error.code, tds::status::ok);
  // The observations carry to the commit as check()'s do: a state changed meanwhile conflicts.
  ASSERT_TRUE(server_->command({"SET", "tds:entity:state:product:3", legacy_value("3", v1, "2025-11-13T08:35:21.123456")}).ok());
  auto done = c.commit(commits_for(checks, r));
  // Id 3 changed after it was observed; id 4's second commit finds its first one's write.
  EXPECT_EQ(done.conflicts, 2u);
  EXPECT_EQ(done.items[5], tds::commit_outcome::conflict);
  EXPECT_EQ(done.errors, 1u) << "the entity without an id";
}

TEST_F(Client, AnObservationOnlyDecidesTheItemsItWasMadeFor) {
  auto c = make();
  const auto v1 = digest_of("v1");
  std::vector<entity_check> seed = {item("product", "1", v1), item("product", "2", v1)};
  ASSERT_EQ(c.commit(commits_for(seed, c.check(seed))).written, 2u);
  const auto all_sync = [](const check_result& r, std::size_t n) {
    EXPECT_EQ(r.items.size(), n);
    EXPECT_EQ(r.cache_errors, n);
    EXPECT_EQ(r.skipped, 0u);
  };
  // Other ids: deciding "2" on the state of "1" could skip a change.
  std::vector<entity_check> swapped = {seed[1], seed[0]};
  auto r = c.check(swapped, c.observe(seed));
  all_sync(r, 2);
  EXPECT_EQ(r.error.code, tds::status::invalid_argument) << r.error.message;
  // Another type, another length, another place for the entity without an id.
  all_sync(c.check(std::vector{item("customer", "1", v1), item("customer", "2", v1)}, c.observe(seed)), 2);
  all_sync(c.check(std::span(seed).first(1), c.observe(seed)), 1);
  std::vector<entity_check> with_gap = {item("product", "", v1), seed[0], seed[1]};
  std::vector<entity_check> gap_moved = {seed[0], item("product", "", v1), seed[1]};
  r = c.check(gap_moved, c.observe(with_gap));
  EXPECT_EQ(r.skipped, 0u);
  // An empty observation, and one already used.
  all_sync(c.check(seed, tds::observation{}), 2);
  tds::observation once = c.observe(seed);
  EXPECT_EQ(c.check(seed, std::move(once)).skipped, 2u);
  all_sync(c.check(seed, std::move(once)), 2);  // NOLINT(bugprone-use-after-move): on purpose
  // A server that is gone: the reads fail, every entity syncs.
  auto dead_cfg = tds::client_config{};
  dead_cfg.port = tds::testing::free_tcp_port();
  auto dead = client::connect(dead_cfg);
  ASSERT_TRUE(dead.ok());
  auto failed = dead.value().check(seed, dead.value().observe(seed));
  all_sync(failed, 2);
  EXPECT_NE(failed.error.code, tds::status::ok);
}

TEST_F(Client, MgetChunkIsConfigurable) {
  auto c = make([](auto& cfg) { cfg.mget_chunk = 100; });
  std::vector<std::string> ids;
  for (int i = 0; i < 1001; ++i) ids.push_back(std::to_string(i));
  std::vector<entity_check> checks;
  for (const auto& id : ids) checks.push_back(item("product", id, digest_of(id)));
  ASSERT_TRUE(server_->reset_stats());
  auto r = c.check(checks);
  EXPECT_EQ(r.cache_errors, 0u);
  EXPECT_EQ(server_->calls("mget"), 11u);
}

TEST_F(Client, SequentialCommitsIncrementSyncCount) {
  auto c = make();
  const std::vector<entity_check> checks = {item("product", "1", digest_of("a"), std::nullopt, true)};
  for (int round = 1; round <= 3; ++round) {
    auto seen = c.check(checks);
    auto done = c.commit(commits_for(checks, seen));
    ASSERT_EQ(done.items[0], commit_outcome::written);
    EXPECT_EQ(done.sync_counts[0], round);
  }
  auto state = c.get_state("product", "1");
  ASSERT_TRUE(state.ok() && state.value().has_value());
  EXPECT_EQ(state.value()->sync_count, 3);
}

TEST_F(Client, StaleObservationMakesTheCommitAConflictThatRetractsTheState) {
  auto a = make();
  auto b = make();
  const std::vector<entity_check> old_content = {item("product", "1", digest_of("old"))};
  auto seeded = a.check(old_content);
  ASSERT_EQ(a.commit(commits_for(old_content, seeded)).written, 1u);

  // Both workers see the same state; B commits first, then A with its stale observation.
  const std::vector<entity_check> from_a = {item("product", "1", digest_of("A"))};
  const std::vector<entity_check> from_b = {item("product", "1", digest_of("B"))};
  auto seen_a = a.check(from_a);
  auto seen_b = b.check(from_b);
  ASSERT_EQ(b.commit(commits_for(from_b, seen_b)).items[0], commit_outcome::written);
  auto late = a.commit(commits_for(from_a, seen_a));
  EXPECT_EQ(late.items[0], commit_outcome::conflict);
  EXPECT_EQ(vouching_states(), 0) << "the state must be retracted: the database may hold A's or B's write";
  EXPECT_EQ(a.check(from_a).items[0].why, reason::no_cache_entry);
  EXPECT_EQ(b.check(from_b).items[0].why, reason::no_cache_entry);
}

TEST_F(Client, ObservedMissingButCreatedMeanwhileIsAConflict) {
  auto a = make();
  auto b = make();
  const std::vector<entity_check> from_a = {item("product", "1", digest_of("A"))};
  const std::vector<entity_check> from_b = {item("product", "1", digest_of("B"))};
  auto seen_a = a.check(from_a);
  auto seen_b = b.check(from_b);
  ASSERT_EQ(b.commit(commits_for(from_b, seen_b)).written, 1u);
  EXPECT_EQ(a.commit(commits_for(from_a, seen_a)).items[0], commit_outcome::conflict);
  EXPECT_EQ(vouching_states(), 0);
}

TEST_F(Client, CommitWithoutAnObservationRetractsInsteadOfGuessing) {
  auto c = make();
  const std::vector<entity_check> checks = {item("product", "1", digest_of("A"))};
  auto seen = c.check(checks);
  ASSERT_EQ(c.commit(commits_for(checks, seen)).written, 1u);
  tds::observed_state unknown;  // what a failed check hands back
  auto commits = commits_for(checks, seen);
  commits[0].observed = &unknown;
  EXPECT_EQ(c.commit(commits).items[0], commit_outcome::conflict);
  EXPECT_EQ(vouching_states(), 0);
}

TEST_F(Client, TwoConcurrentWritersNeverBothWinAndLeaveNoVouchingState) {
  // Two workers with their own clients check the same 400 entities, then commit different
  // digests at the same moment. Per entity exactly one commit may win; the other must see a
  // conflict and delete, so no state survives that either database write might contradict.
  constexpr int n = 400;
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back(std::to_string(i));
  {
    auto seed_client = make();
    std::vector<entity_check> seed;
    for (const auto& id : ids) seed.push_back(item("product", id, digest_of("v0")));
    auto seen = seed_client.check(seed);
    ASSERT_EQ(seed_client.commit(commits_for(seed, seen)).written, static_cast<std::size_t>(n));
  }
  std::barrier sync_point(2);
  std::vector<commit_outcome> outcomes[2];
  auto worker = [&](int w) {
    auto c = make();
    std::vector<entity_check> checks;
    const auto d = digest_of(w == 0 ? "from A" : "from B");
    for (const auto& id : ids) checks.push_back(item("product", id, d));
    auto seen = c.check(checks);
    sync_point.arrive_and_wait();  // both have observed before either commits
    outcomes[w] = c.commit(commits_for(checks, seen)).items;
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  ASSERT_EQ(outcomes[0].size(), static_cast<std::size_t>(n));
  ASSERT_EQ(outcomes[1].size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const bool a_won = outcomes[0][i] == commit_outcome::written;
    const bool b_won = outcomes[1][i] == commit_outcome::written;
    EXPECT_NE(a_won, b_won) << "entity " << i << ": exactly one writer wins";
    EXPECT_TRUE(outcomes[0][i] != commit_outcome::error && outcomes[1][i] != commit_outcome::error);
  }
  EXPECT_EQ(vouching_states(), 0) << "every loser retracted the winner's state";
}

TEST_F(Client, ConcurrentUnconditionalWritesLoseNoIncrement) {
  // warm() has no observation, so each call increments whatever is stored. 4 threads x 100
  // writes on one key: a read-then-write race would lose some; the script loses none.
  constexpr int threads = 4, rounds = 100;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      auto c = make();
      const tds::warm_record rec{"1", digest_of("w"), hash_scheme::legacy, std::nullopt, std::nullopt};
      for (int i = 0; i < rounds; ++i) ASSERT_EQ(c.warm("product", std::span(&rec, 1)).written, 1u);
    });
  }
  for (auto& t : pool) t.join();
  auto state = make().get_state("product", "1");
  ASSERT_TRUE(state.ok() && state.value().has_value());
  EXPECT_EQ(state.value()->sync_count, threads * rounds);
}

TEST_F(Client, OneClientSharedByThreadsGivesCorrectAnswersAndCounts) {
  auto c = make();
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) ids.push_back(std::to_string(i));
  std::vector<entity_check> checks;
  for (const auto& id : ids) checks.push_back(item("product", id, digest_of(id)));
  auto seen = c.check(checks);
  ASSERT_EQ(c.commit(commits_for(checks, seen)).written, ids.size());
  c.reset_stats();
  std::atomic<int> wrong{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t) {
    pool.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        if (c.check(checks).skipped != checks.size()) ++wrong;
      }
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_EQ(wrong.load(), 0);
  const auto s = c.stats();
  EXPECT_EQ(s.checked, 4u * 25 * checks.size());
  EXPECT_EQ(s.skipped, s.checked);
  EXPECT_EQ(s.check_latency.count, 100u);
}

TEST_F(Client, InvalidateTypeScansFiftyThousandKeysWithoutKeys) {
  auto c = make();
  std::vector<std::string> ids;
  for (int i = 0; i < 50000; ++i) ids.push_back(std::to_string(i));
  std::vector<tds::warm_record> records;
  for (const auto& id : ids) records.push_back({id, digest_of("p"), hash_scheme::legacy, std::nullopt, std::nullopt});
  ASSERT_EQ(c.warm("product", records).written, 50000u);
  ASSERT_EQ(c.warm("order", std::span(records).first(10)).written, 10u);
  ASSERT_TRUE(server_->reset_stats());
  auto removed = c.invalidate_type("product");
  ASSERT_TRUE(removed.ok()) << removed.error().message;
  EXPECT_EQ(removed.value(), 50000u);
  EXPECT_EQ(dbsize(), 10);
  EXPECT_EQ(server_->calls("keys"), 0u);
  EXPECT_GE(server_->calls("scan"), 50u);
  EXPECT_GE(server_->calls("unlink"), 50u);
}

TEST_F(Client, GlobCharactersInTypesAndPrefixesMatchOnlyThemselves) {
  auto c = make([](auto& cfg) { cfg.key_prefix = "app[1]:state*"; });
  const tds::warm_record rec{"1", digest_of("g"), hash_scheme::legacy, std::nullopt, std::nullopt};
  for (const char* type : {"product", "pro*", "p?oduct", "[p]roduct", "pro\\duct"}) {
    ASSERT_EQ(c.warm(type, std::span(&rec, 1)).written, 1u) << type;
  }
  // The client's keys are state_key()'s, byte for byte.
  auto exists = server_->command({"EXISTS", tds::state_key("app[1]:state*", "[p]roduct", "1")});
  ASSERT_TRUE(exists.ok());
  EXPECT_EQ(exists.value().integer, 1);
  auto other_prefix = make([](auto& cfg) { cfg.key_prefix = "app1:stateX"; });
  ASSERT_EQ(other_prefix.warm("product", std::span(&rec, 1)).written, 1u);
  ASSERT_EQ(dbsize(), 6);

  auto removed = c.invalidate_type("pro*");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed.value(), 1u) << "'pro*' must not match 'product' or 'pro\\duct'";
  EXPECT_EQ(c.invalidate_type("p?oduct").value(), 1u);
  EXPECT_EQ(c.invalidate_type("[p]roduct").value(), 1u);
  EXPECT_EQ(c.invalidate_type("pro\\duct").value(), 1u);
  EXPECT_EQ(dbsize(), 2);
  EXPECT_EQ(c.invalidate_type("product").value(), 1u) << "the other prefix's key must survive";
  EXPECT_EQ(dbsize(), 1);
}

TEST_F(Client, InvalidateOneEntityAndReadStatesInBatches) {
  auto c = make();
  std::vector<tds::warm_record> records = {
      {"1", digest_of("1"), hash_scheme::legacy, "2025-01-01T00:00:00Z", "L1"},
      {"2", digest_of("2"), hash_scheme::jcs, std::nullopt, std::nullopt}};
  ASSERT_EQ(c.warm("customer", records).written, 2u);
  ASSERT_TRUE(server_->command({"SET", "tds:entity:state:customer:3", "garbage"}).ok());
  const std::string_view ids[] = {"1", "2", "3", "4"};
  auto states = c.get_states("customer", ids);
  ASSERT_TRUE(states.ok());
  ASSERT_EQ(states.value().size(), 4u);
  ASSERT_TRUE(states.value()[0].ok() && states.value()[0].value().has_value());
  EXPECT_EQ(states.value()[0].value()->local_id, "L1");
  EXPECT_EQ(states.value()[0].value()->last_modified_time, "2025-01-01T00:00:00Z");
  EXPECT_EQ(states.value()[0].value()->content_hash, digest_of("1").hex());
  ASSERT_TRUE(states.value()[1].ok() && states.value()[1].value().has_value());
  EXPECT_EQ(states.value()[1].value()->scheme, hash_scheme::jcs);
  EXPECT_FALSE(states.value()[2].ok()) << "an undecodable value is an error, not a state";
  ASSERT_TRUE(states.value()[3].ok());
  EXPECT_FALSE(states.value()[3].value().has_value());

  EXPECT_EQ(c.invalidate("customer", "1").value(), 1u);
  EXPECT_EQ(c.invalidate("customer", "1").value(), 0u);
  auto gone = c.get_state("customer", "1");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone.value().has_value());
}

TEST_F(Client, BatchMarkersRecordStatsAndTellHowRecentTheyAre) {
  auto c = make();
  ASSERT_TRUE(c.mark_batch_complete("product", "batch-42", R"({"total": 1312, "skipped": 1300})").ok());
  const std::string key = "tds:batch:sync:product:batch-42";
  EXPECT_EQ(get(key), R"({"total": 1312, "skipped": 1300})");
  EXPECT_GT(ttl(key), 7190);
  EXPECT_LE(ttl(key), 7200);
  EXPECT_TRUE(c.was_batch_synced_recently("product", 60).value());
  EXPECT_FALSE(c.was_batch_synced_recently("customer", 60).value());
  EXPECT_FALSE(c.was_batch_synced_recently("prod*", 60).value()) << "the type is not a pattern";

  // A marker written ten minutes ago: its TTL has run down by 600 s.
  ASSERT_TRUE(server_->command({"EXPIRE", key, "6600"}).ok());
  EXPECT_FALSE(c.was_batch_synced_recently("product", 300).value());
  EXPECT_TRUE(c.was_batch_synced_recently("product", 900).value());
  // Without a TTL its age is unknown: not "recent", so the caller syncs.
  ASSERT_TRUE(server_->command({"PERSIST", key}).ok());
  EXPECT_FALSE(c.was_batch_synced_recently("product", 7200).value());
}

TEST_F(Client, StatisticsCountReasonsOutcomesAndLatency) {
  auto c = make();
  std::vector<entity_check> checks = {item("product", "1", digest_of("1")),
                                      item("product", "2", digest_of("2")),
                                      item("product", "", digest_of("3"))};
  auto seen = c.check(checks);
  auto commits = commits_for(std::span(checks).first(2), seen);
  ASSERT_EQ(c.commit(commits).written, 2u);
  auto again = c.check(checks);
  ASSERT_EQ(again.skipped, 2u);
  auto s = c.stats();
  EXPECT_EQ(s.checked, 6u);
  EXPECT_EQ(s.by_reason[static_cast<int>(reason::no_cache_entry)], 2u);
  EXPECT_EQ(s.by_reason[static_cast<int>(reason::no_id)], 2u);
  EXPECT_EQ(s.by_reason[static_cast<int>(reason::unchanged)], 2u);
  EXPECT_EQ(s.skipped, 2u);
  EXPECT_EQ(s.to_sync, 4u);
  EXPECT_EQ(s.synced, 2u);
  EXPECT_EQ(s.conflicts, 0u);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_DOUBLE_EQ(s.hit_rate, 2.0 / 6.0);
  EXPECT_EQ(s.check_latency.count, 2u);
  EXPECT_EQ(s.commit_latency.count, 1u);
  EXPECT_GT(s.check_latency.p50_ms, 0.0);
  EXPECT_LE(s.check_latency.p50_ms, s.check_latency.p99_ms);
  EXPECT_LE(s.check_latency.p99_ms, s.check_latency.max_ms);
  c.reset_stats();
  s = c.stats();
  EXPECT_EQ(s.checked, 0u);
  EXPECT_EQ(s.synced, 0u);
  EXPECT_EQ(s.check_latency.count, 0u);
  EXPECT_EQ(s.hit_rate, 0.0);
}

TEST_F(Client, UrlSelectsTheDatabase) {
  auto c = client::from_url("unix://" + server_->unix_path() + "?db=3");
  ASSERT_TRUE(c.ok()) << c.error().message;
  const tds::warm_record rec{"1", digest_of("db"), hash_scheme::legacy, std::nullopt, std::nullopt};
  ASSERT_EQ(c.value().warm("product", std::span(&rec, 1)).written, 1u);
  EXPECT_EQ(dbsize(), 0);
  ASSERT_TRUE(server_->command({"SELECT", "3"}).ok());
  EXPECT_EQ(dbsize(), 1);
  ASSERT_TRUE(server_->command({"SELECT", "0"}).ok());
}

TEST_F(Client, ReloadsTheScriptAfterScriptFlush) {
  auto c = make();
  const std::vector<entity_check> checks = {item("product", "1", digest_of("s"))};
  auto seen = c.check(checks);
  ASSERT_EQ(c.commit(commits_for(checks, seen)).written, 1u);
  ASSERT_TRUE(server_->command({"SCRIPT", "FLUSH"}).ok());
  ASSERT_TRUE(server_->reset_stats());
  auto forced = checks;
  forced[0].force = true;
  auto seen2 = c.check(forced);
  auto done = c.commit(commits_for(forced, seen2));
  EXPECT_EQ(done.items[0], commit_outcome::written) << done.error.message;
  EXPECT_EQ(done.sync_counts[0], 2);
  EXPECT_EQ(server_->calls("evalsha"), 2u) << "NOSCRIPT, then the retry";
}

TEST_F(Client, CommitRejectsAnEntityWithoutAnIdAndWritesTheRest) {
  auto c = make();
  const tds::digest d = digest_of("x");
  const std::vector<commit_item> items = {
      commit_item{"product", "", d, hash_scheme::legacy, std::nullopt, std::nullopt, nullptr},
      commit_item{"product", "5", d, hash_scheme::legacy, std::nullopt, std::nullopt, nullptr}};
  auto done = c.commit(items);
  EXPECT_EQ(done.items[0], commit_outcome::error);
  EXPECT_EQ(done.items[1], commit_outcome::written);
  EXPECT_EQ(done.error.code, tds::status::invalid_argument);
}

// ---------------------------------------------------------------- over TLS

TEST(ClientTls, ChecksAndCommitsOverVerifiedTls) {
  tds::testing::temp_dir dir("tds-client-tls");
  std::string why;
  auto material = tds::testing::tls_material::generate(dir.path(), &why);
  ASSERT_TRUE(material.has_value()) << why;
  redis_server server({.tls = &*material, .tls_auth_clients = true});
  ASSERT_TRUE(server.start()) << server.last_error();
  auto c = client::connect(server.config());
  ASSERT_TRUE(c.ok()) << c.error().message;
  const std::vector<entity_check> checks = {item("product", "1", digest_of("tls"))};
  auto seen = c.value().check(checks);
  ASSERT_EQ(seen.items[0].why, reason::no_cache_entry) << seen.error.message;
  ASSERT_EQ(c.value().commit(commits_for(checks, seen)).written, 1u);
  EXPECT_EQ(c.value().check(checks).items[0].why, reason::unchanged);
}

}  // namespace
