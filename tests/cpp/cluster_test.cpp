// The cache client and the cluster store against a real 3-primary Redis Cluster on loopback:
// the same decisions as one node, one MGET per slot, slot migration (ASK, TRYAGAIN), resharding
// (MOVED, refresh), a killed primary, invalidation across nodes, NOSCRIPT, and the retry budget.
// The cluster is started once for the whole binary (it takes seconds) and shared by the suites.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster_store.hpp"
#include "redis_cluster.hpp"
#include "redis_server.hpp"
#include "tdscache.h"
#include "tdscache/client.hpp"
#include "tdscache/slot.hpp"

namespace {

using tds::check_result;
using tds::client;
using tds::commit_item;
using tds::commit_outcome;
using tds::entity_check;
using tds::hash_scheme;
using tds::reason;
using tds::status;
using tds::detail::cluster_diagnostics;
using tds::testing::redis_cluster;
using tds::testing::redis_server;

constexpr std::string_view prefix = "tds:entity:state";

std::string state_key(std::string_view type, std::string_view id) {
  return std::string(prefix) + ":" + std::string(type) + ":" + std::string(id);
}

// One cluster (and one single node, for comparisons) for the whole test binary, started on
// first use, so filtering other suites costs nothing.
class shared_servers : public ::testing::Environment {
 public:
  void TearDown() override {
    cluster().reset();
    single().reset();
  }
  static std::unique_ptr<redis_cluster>& cluster() {
    static std::unique_ptr<redis_cluster> c;
    return c;
  }
  static std::unique_ptr<redis_server>& single() {
    static std::unique_ptr<redis_server> s;
    return s;
  }
};
[[maybe_unused]] const auto* const shared_env = ::testing::AddGlobalTestEnvironment(new shared_servers);

// A snapshot of the process-wide cluster counters, for deltas.
struct counters {
  std::uint64_t moved, ask, tryagain, noscript, refreshes, exhausted;
  static counters now() {
    auto& c = cluster_diagnostics();
    return {c.moved.load(), c.ask.load(), c.tryagain.load(), c.noscript.load(), c.refreshes.load(),
            c.exhausted.load()};
  }
};

// Entities with 19-digit ids (or ids chosen to land in given slots), as checks.
struct batch {
  std::vector<std::string> ids;
  std::vector<std::string> lmts;
  std::vector<entity_check> checks;

  void add(std::string id, std::string_view content = "v1", std::string lmt = "2025-11-13T08:30:00Z") {
    ids.push_back(std::move(id));
    lmts.push_back(std::move(lmt));
    entity_check c;
    c.entity_type = "product";
    c.content_digest = tds::sha256(content);
    checks.push_back(c);
  }
  // Views into ids/lmts are taken once the vectors stopped growing.
  void bind() {
    for (std::size_t i = 0; i < checks.size(); ++i) {
      checks[i].entity_id = ids[i];
      checks[i].last_modified_time = lmts[i];
    }
  }
  static batch numbered(std::size_t n, std::uint64_t first = 2646610000000000000ULL) {
    batch b;
    for (std::size_t i = 0; i < n; ++i) b.add(std::to_string(first + i));
    b.bind();
    return b;
  }
  std::string key(std::size_t i) const { return state_key("product", ids[i]); }
};

std::vector<commit_item> commits_for(const batch& b, const check_result& seen,
                                     const std::vector<std::size_t>* only = nullptr) {
  std::vector<commit_item> out;
  auto add = [&](std::size_t i) {
    const auto& c = b.checks[i];
    if (c.entity_id.empty()) return;
    out.push_back(commit_item{c.entity_type, c.entity_id, c.content_digest, c.scheme,
                              c.last_modified_time, std::nullopt, &seen.items[i].observed});
  };
  if (only) {
    for (const auto i : *only) add(i);
  } else {
    for (std::size_t i = 0; i < b.checks.size(); ++i) add(i);
  }
  return out;
}

std::vector<reason> reasons(const check_result& r) {
  std::vector<reason> out;
  for (const auto& o : r.items) out.push_back(o.why);
  return out;
}

// Ids whose state keys fall into `slot`, found by trying numbers (one in 16384 does).
std::vector<std::string> ids_in_slot(std::uint16_t slot, std::size_t n, std::uint64_t start) {
  std::vector<std::string> out;
  for (std::uint64_t i = start; out.size() < n; ++i) {
    std::string id = std::to_string(i);
    if (tds::key_slot(state_key("product", id)) == slot) out.push_back(std::move(id));
  }
  return out;
}

class Cluster : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& c = shared_servers::cluster();
    static std::string start_error;
    static bool tried = false;
    if (!tried) {
      tried = true;
      auto fresh = std::make_unique<redis_cluster>();
      if (fresh->start()) {
        c = std::move(fresh);
      } else {
        start_error = fresh->last_error();
      }
    }
    ASSERT_TRUE(c) << start_error;
    cluster_ = c.get();
    // A test that killed a node brings it back; every test starts empty with zeroed stats.
    if (!cluster_->all_running()) ASSERT_TRUE(cluster_->restart_dead()) << cluster_->last_error();
    ASSERT_TRUE(cluster_->flushall());
    ASSERT_TRUE(cluster_->reset_stats());
    ASSERT_TRUE(cluster_->reload_slot_map()) << cluster_->last_error();
  }

  client make(std::function<void(tds::client_config&)> tweak = {}) {
    auto cfg = cluster_->config();
    if (tweak) tweak(cfg);
    auto c = client::connect(cfg);
    EXPECT_TRUE(c.ok()) << c.error().message;
    return std::move(c).value();
  }

  static redis_server& single() {
    auto& s = shared_servers::single();
    if (!s) {
      s = std::make_unique<redis_server>();
      EXPECT_TRUE(s->start()) << s->last_error();
    }
    return *s;
  }

  // Seeds every entity of `b` through the client (check, then commit what it saw).
  static void seed(client& c, const batch& b) {
    auto seen = c.check(b.checks);
    auto done = c.commit(commits_for(b, seen));
    ASSERT_EQ(done.written, b.checks.size()) << done.error.message;
  }

  redis_cluster* cluster_ = nullptr;
};

// ------------------------------------------------------------------ decisions

// Ten categories of entity, each landing on a different rule, stored the same way on any
// Redis: through the client, plus raw values for the corrupt and the expired ones.
struct mixed_scenario {
  batch b;
  static constexpr std::size_t n = 10000;

  mixed_scenario() {
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t kind = i % 10;
      std::string id = kind == 9 && i % 100 == 99 ? "" : std::to_string(2646610000000000000ULL + i);
      b.add(std::move(id), kind == 1 ? "v2" : "v1",
            kind == 5 ? "2025-11-14T08:30:00Z" : "2025-11-13T08:30:00Z");
    }
    b.bind();
    for (std::size_t i = 0; i < n; ++i) {
      if (i % 10 == 3) b.checks[i].scheme = hash_scheme::jcs;
      if (i % 10 == 6) b.checks[i].force = true;
    }
  }

  // The stored side: everything but kind 0 holds v1 at the older timestamp (legacy scheme);
  // kind 2 holds a value that is not JSON, kind 4 one cached two days ago.
  template <class RawSet>
  void store(client& c, RawSet raw_set) const {
    std::vector<tds::warm_record> records;
    const std::string lmt = "2025-11-13T08:30:00Z";
    for (std::size_t i = 0; i < n; ++i) {
      if (i % 10 == 0 || b.ids[i].empty()) continue;
      records.push_back(tds::warm_record{b.ids[i], tds::sha256("v1"), hash_scheme::legacy, lmt, std::nullopt});
    }
    auto warmed = c.warm("product", records);
    ASSERT_EQ(warmed.written, records.size()) << warmed.error.message;
    for (std::size_t i = 0; i < n; ++i) {
      if (i % 10 == 2) {
        raw_set(b.key(i), "{not json");
      } else if (i % 10 == 4) {
        raw_set(b.key(i), "{\"entity_type\": \"product\", \"entity_id\": \"" + b.ids[i] +
                              "\", \"local_id\": null, \"content_hash\": \"" + tds::sha256("v1").hex() +
                              "\", \"last_modified_time\": \"2025-11-13T08:30:00Z\", \"cached_at\": "
                              "\"2020-01-01T00:00:00.000000\", \"sync_count\": 1}");
      }
    }
  }
};

TEST_F(Cluster, TenThousandChecksDecideAsOnASingleNodeAndCommitsMakeThemUnchanged) {
  const mixed_scenario s;
  auto& one = single();
  ASSERT_TRUE(one.command({"FLUSHALL"}).ok());
  auto single_client = client::connect(one.config());
  ASSERT_TRUE(single_client.ok()) << single_client.error().message;
  s.store(single_client.value(), [&](const std::string& key, const std::string& value) {
    ASSERT_TRUE(one.command({"SET", key, value}).ok());
  });
  const auto on_one = single_client.value().check(s.b.checks);
  ASSERT_EQ(on_one.error.code, status::ok) << on_one.error.message;

  auto c = make();
  s.store(c, [&](const std::string& key, const std::string& value) {
    auto r = cluster_->keyed({"SET", key, value});
    ASSERT_TRUE(r.ok() && !r.value().is_error());
  });
  // The keys spread over every node.
  for (std::size_t i = 0; i < cluster_->size(); ++i) EXPECT_GT(cluster_->dbsize(i), 2000) << "node " << i;
  ASSERT_TRUE(cluster_->reset_stats());
  const auto on_cluster = c.check(s.b.checks);
  ASSERT_EQ(on_cluster.error.code, status::ok) << on_cluster.error.message;

  EXPECT_EQ(reasons(on_cluster), reasons(on_one));
  // And the single node's answers are the intended ones, category by category.
  const std::map<reason, std::size_t> expected = {
      {reason::no_cache_entry, 1000}, {reason::content_changed, 1000},
      {reason::cache_entry_corrupt, 1000}, {reason::hash_scheme_changed, 1000},
      {reason::cache_expired, 1000}, {reason::timestamp_newer, 1000},
      {reason::forced_sync, 1000}, {reason::no_id, 100}, {reason::unchanged, 2900}};
  for (const auto& [why, count] : expected) {
    EXPECT_EQ(on_cluster.by_reason[static_cast<std::size_t>(why)], count) << tds::reason_name(why);
  }
  // One MGET per slot that holds a key: keys of different slots never share one.
  std::set<std::uint16_t> slots;
  for (std::size_t i = 0; i < s.n; ++i) {
    if (!s.b.ids[i].empty()) slots.insert(tds::key_slot(s.b.key(i)));
  }
  EXPECT_EQ(cluster_->total_calls("mget"), slots.size());
  EXPECT_EQ(cluster_->total_calls("get"), 0u);

  auto done = c.commit(commits_for(s.b, on_cluster));
  EXPECT_EQ(done.written, s.n - 100) << done.error.message;
  EXPECT_EQ(done.conflicts + done.errors, 0u);
  const auto after = c.check(s.b.checks);
  EXPECT_EQ(after.by_reason[static_cast<std::size_t>(reason::unchanged)], s.n - 1000 - 100);
  EXPECT_EQ(after.by_reason[static_cast<std::size_t>(reason::forced_sync)], 1000u);
  EXPECT_EQ(after.by_reason[static_cast<std::size_t>(reason::no_id)], 100u);
  EXPECT_EQ(after.cache_errors, 0u);
}

TEST_F(Cluster, KeysSharingAHashTagGoInChunkedMgetsToOneNode) {
  // All of a type in one slot: the hash-tag layout docs/cluster.md weighs against the default.
  auto c = make([](tds::client_config& cfg) {
    cfg.key_prefix = "tds:{product}";
    cfg.mget_chunk = 400;
  });
  const auto b = batch::numbered(1000);
  seed(c, b);
  const int owner = cluster_->owner_of_key("tds:{product}:product:1");
  EXPECT_EQ(cluster_->dbsize(static_cast<std::size_t>(owner)), 1000);
  ASSERT_TRUE(cluster_->reset_stats());
  const auto r = c.check(b.checks);
  EXPECT_EQ(r.skipped, 1000u) << r.error.message;
  EXPECT_EQ(cluster_->total_calls("mget"), 3u);  // 400 + 400 + 200
  EXPECT_EQ(cluster_->node(static_cast<std::size_t>(owner)).calls("mget"), 3u);
}

// ------------------------------------------------------------------ topology changes

TEST_F(Cluster, SlotMigratedMidRunIsFollowedThroughAskAndTryagain) {
  auto c = make();
  // 40 entities in one slot, next to 2000 spread everywhere.
  const std::uint16_t slot = tds::key_slot(state_key("product", "2646610000000000000"));
  const auto from = static_cast<std::size_t>(cluster_->owner(slot));
  const std::size_t to = (from + 1) % cluster_->size();
  batch b;
  for (auto& id : ids_in_slot(slot, 40, 2646610000000000000ULL)) b.add(std::move(id));
  for (std::size_t i = 0; i < 2000; ++i) b.add(std::to_string(3646610000000000000ULL + i));
  b.bind();
  seed(c, b);
  // Half of the slot's entities and every tenth other one change.
  std::vector<bool> changed(b.checks.size(), false);
  for (std::size_t i = 0; i < b.checks.size(); ++i) {
    if ((i < 40 && i % 2 == 0) || (i >= 40 && i % 10 == 0)) {
      changed[i] = true;
      b.checks[i].content_digest = tds::sha256("v2");
    }
  }
  // Mid-migration: 20 of the slot's 40 keys (changed and unchanged ones) are on the target.
  ASSERT_TRUE(cluster_->begin_migration(slot, from, to)) << cluster_->last_error();
  std::vector<std::string> moving;
  for (std::size_t i = 0; i < 40; i += 4) moving.push_back(b.key(i)), moving.push_back(b.key(i + 1));
  ASSERT_TRUE(cluster_->migrate_keys(from, to, moving)) << cluster_->last_error();
  ASSERT_TRUE(cluster_->reset_stats());

  const auto before = counters::now();
  const auto seen = c.check(b.checks);
  const auto after = counters::now();
  EXPECT_EQ(seen.error.code, status::ok) << seen.error.message;
  EXPECT_EQ(seen.cache_errors, 0u);
  for (std::size_t i = 0; i < b.checks.size(); ++i) {
    EXPECT_EQ(seen.items[i].why, changed[i] ? reason::content_changed : reason::unchanged) << "entity " << i;
  }
  // The slot's MGET met keys on both sides (TRYAGAIN); the keys retried one by one found the
  // migrated ones through ASK, and the target saw ASKING.
  EXPECT_GE(after.tryagain - before.tryagain, 1u);
  EXPECT_GE(after.ask - before.ask, 1u);
  EXPECT_GE(cluster_->errors(from, "TRYAGAIN"), 1u);
  EXPECT_GE(cluster_->errors(from, "ASK"), 1u);
  EXPECT_GE(cluster_->node(to).calls("asking"), 10u);

  // Commits during the migration land where each key is: the conflict rule holds throughout.
  std::vector<std::size_t> to_commit;
  for (std::size_t i = 0; i < b.checks.size(); ++i) {
    if (changed[i]) to_commit.push_back(i);
  }
  const auto done = c.commit(commits_for(b, seen, &to_commit));
  EXPECT_EQ(done.written, to_commit.size()) << done.error.message;
  const auto mid = c.check(b.checks);
  EXPECT_EQ(mid.skipped, b.checks.size()) << mid.error.message;

  // The migration ends; the old owner now answers MOVED, and nothing changes in the answers.
  ASSERT_TRUE(cluster_->migrate_all_keys(slot, from, to)) << cluster_->last_error();
  ASSERT_TRUE(cluster_->finish_migration(slot, from, to)) << cluster_->last_error();
  const auto moved_before = counters::now().moved;
  const auto end = c.check(b.checks);
  EXPECT_EQ(end.skipped, b.checks.size()) << end.error.message;
  EXPECT_GE(counters::now().moved - moved_before, 1u);
}

TEST_F(Cluster, ReshardedSlotsArePickedUpAfterMovedWithOneRefresh) {
  auto c = make();
  const auto b = batch::numbered(3000);
  seed(c, b);  // the client has read the slot map
  // 100 occupied slots of node 0 go to node 1, keys and all, on every node (a reshard).
  std::set<std::uint16_t> moving;
  for (std::size_t i = 0; i < b.checks.size() && moving.size() < 100; ++i) {
    const auto slot = tds::key_slot(b.key(i));
    if (cluster_->owner(slot) == 0) moving.insert(slot);
  }
  ASSERT_EQ(moving.size(), 100u);
  for (const auto slot : moving) ASSERT_TRUE(cluster_->move_slot(slot, 0, 1)) << cluster_->last_error();
  ASSERT_TRUE(cluster_->reload_slot_map());
  ASSERT_TRUE(cluster_->reset_stats());

  const auto before = counters::now();
  const auto r = c.check(b.checks);
  const auto after = counters::now();
  EXPECT_EQ(r.skipped, b.checks.size()) << r.error.message;
  EXPECT_GE(after.moved - before.moved, 100u);  // at least one per moved slot
  // A storm of MOVED replies in one batch costs one refresh.
  EXPECT_EQ(after.refreshes - before.refreshes, 1u);
  EXPECT_EQ(cluster_->total_calls("cluster|slots"), 1u);
  // The new map holds: no MOVED the next time.
  const auto again = c.check(b.checks);
  EXPECT_EQ(again.skipped, b.checks.size());
  EXPECT_EQ(counters::now().moved, after.moved);
}

TEST_F(Cluster, LiveMigrationsInterleavedWithChecksAndCommitsNeverSkipAChange) {
  // Six slots of eight entities each move key by key, twice over, while checks and commits
  // run between every two MIGRATEs. A model of what is stored says, for each check, which
  // entities must sync.
  auto c = make();
  batch b;
  std::vector<std::uint16_t> slots;
  for (int s = 0; s < 6; ++s) {
    slots.push_back(tds::key_slot(state_key("product", "live-" + std::to_string(s))));
    for (auto& id : ids_in_slot(slots.back(), 8, 5000000000ULL * (s + 1))) b.add(std::move(id));
  }
  for (std::size_t i = 0; i < 500; ++i) b.add(std::to_string(4646610000000000000ULL + i));
  b.bind();
  const std::size_t n = b.checks.size();
  std::vector<int> version(n, 0);
  std::vector<std::optional<int>> stored(n);  // nullopt: no entry
  std::vector<bool> known(n, true);           // false: a failed commit may or may not have written

  std::atomic<std::uint64_t> rounds{0};
  std::atomic<bool> moved_all{false};
  std::string mover_error;
  std::thread mover([&] {
    auto wait_for_a_round = [&] {
      const auto seen = rounds.load();
      rounds.wait(seen);
    };
    for (int pass = 0; pass < 2 && mover_error.empty(); ++pass) {
      for (const auto slot : slots) {
        const auto from = static_cast<std::size_t>(cluster_->owner(slot));
        const std::size_t to = (from + 1) % cluster_->size();
        if (!cluster_->begin_migration(slot, from, to)) mover_error = cluster_->last_error();
        for (std::size_t i = 0; i < n && mover_error.empty(); ++i) {
          if (tds::key_slot(b.key(i)) != slot) continue;
          // A key that has no entry (deleted by a conflict) has nothing to move.
          if (!cluster_->migrate_keys(from, to, {b.key(i)}) &&
              cluster_->last_error().find("NOKEY") == std::string::npos) {
            mover_error = cluster_->last_error();
          }
          wait_for_a_round();
        }
        if (mover_error.empty() && !(cluster_->migrate_all_keys(slot, from, to) &&
                                     cluster_->finish_migration(slot, from, to) &&
                                     cluster_->reload_slot_map())) {
          mover_error = cluster_->last_error();
        }
        wait_for_a_round();
      }
    }
    moved_all = true;
  });

  const auto before = counters::now();
  std::size_t check_errors = 0, commit_errors = 0;
  for (std::uint64_t k = 0; !moved_all.load(); ++k) {
    for (std::size_t i = 0; i < n; ++i) {
      if (i % 3 == k % 3) ++version[i];
      b.checks[i].content_digest = tds::sha256("v" + std::to_string(version[i]));
    }
    const auto seen = c.check(b.checks);
    for (std::size_t i = 0; i < n; ++i) {
      const reason why = seen.items[i].why;
      if (!known[i]) continue;
      if (stored[i] == version[i]) {
        check_errors += why == reason::cache_check_error;
        EXPECT_TRUE(why == reason::unchanged || why == reason::cache_check_error) << i;
      } else {
        EXPECT_NE(why, reason::unchanged) << "round " << k << ": a changed entity was skipped: " << i;
      }
    }
    std::vector<std::size_t> to_commit;
    for (std::size_t i = 0; i < n; ++i) {
      if (seen.items[i].sync()) to_commit.push_back(i);
    }
    const auto done = c.commit(commits_for(b, seen, &to_commit));
    for (std::size_t j = 0; j < to_commit.size(); ++j) {
      const std::size_t i = to_commit[j];
      switch (done.items[j]) {
        case commit_outcome::written: stored[i] = version[i], known[i] = true; break;
        case commit_outcome::conflict: stored[i].reset(), known[i] = true; break;
        case commit_outcome::error: known[i] = false, ++commit_errors; break;
      }
    }
    rounds.fetch_add(1);
    rounds.notify_all();
  }
  mover.join();
  ASSERT_TRUE(mover_error.empty()) << mover_error;
  const auto after = counters::now();
  EXPECT_GE(after.ask - before.ask, 1u);
  EXPECT_GE(after.tryagain - before.tryagain, 1u);
  EXPECT_GE(after.moved - before.moved, 1u);
  // Redirections are followed, not given up on: nothing ends as an error.
  EXPECT_EQ(check_errors, 0u);
  EXPECT_EQ(commit_errors, 0u);
}

// ------------------------------------------------------------------ failures

TEST_F(Cluster, KilledPrimaryFailsItsOwnEntitiesAndTheOthersAreDecided) {
  auto c = make([](tds::client_config& cfg) {
    cfg.breaker_failures = 2;
    // Reconnects without backoff: the node's return below is seen by the very next check.
    cfg.reconnect_backoff_min = cfg.reconnect_backoff_max = std::chrono::milliseconds(0);
  });
  auto b = batch::numbered(3000);
  seed(c, b);
  for (std::size_t i = 0; i < b.checks.size(); i += 2) b.checks[i].content_digest = tds::sha256("v2");
  const std::size_t dead = 2;
  std::size_t on_dead = 0;
  for (std::size_t i = 0; i < b.checks.size(); ++i) on_dead += cluster_->owner_of_key(b.key(i)) == int(dead);
  ASSERT_GT(on_dead, 500u);
  cluster_->kill(dead);

  // More checks than breaker_failures: one dead node must not open the breaker for the rest.
  for (int round = 0; round < 4; ++round) {
    const auto r = c.check(b.checks);
    EXPECT_EQ(r.cache_errors, on_dead) << "round " << round;
    EXPECT_NE(r.error.code, status::ok);
    EXPECT_NE(r.error.code, status::circuit_open) << r.error.message;
    for (std::size_t i = 0; i < b.checks.size(); ++i) {
      const bool is_dead = cluster_->owner_of_key(b.key(i)) == int(dead);
      const reason want = is_dead ? reason::cache_check_error
                                  : (i % 2 == 0 ? reason::content_changed : reason::unchanged);
      ASSERT_EQ(r.items[i].why, want) << "round " << round << ", entity " << i;
    }
  }
  // Nor do batches that touch only the dead node, while the other primaries answer.
  std::size_t dead_one = 0, live_one = 0;
  while (cluster_->owner_of_key(b.key(dead_one)) != int(dead)) ++dead_one;
  while (cluster_->owner_of_key(b.key(live_one)) == int(dead)) ++live_one;
  for (int round = 0; round < 4; ++round) {
    const auto r = c.check(std::span(&b.checks[dead_one], 1));
    EXPECT_EQ(r.items[0].why, reason::cache_check_error);
    EXPECT_NE(r.error.code, status::circuit_open) << r.error.message;
  }
  EXPECT_EQ(c.check(std::span(&b.checks[live_one], 1)).items[0].why,
            live_one % 2 == 0 ? reason::content_changed : reason::unchanged);
  // Commits: the dead node's items fail, the rest are written.
  const auto seen = c.check(b.checks);
  const auto done = c.commit(commits_for(b, seen));
  EXPECT_EQ(done.errors, on_dead);
  EXPECT_EQ(done.written, b.checks.size() - on_dead);
  for (std::size_t i = 0; i < b.checks.size(); ++i) {
    const bool is_dead = cluster_->owner_of_key(b.key(i)) == int(dead);
    ASSERT_EQ(done.items[i], is_dead ? commit_outcome::error : commit_outcome::written) << i;
  }
  // Back (empty): its entities have no entry, the others are as committed.
  ASSERT_TRUE(cluster_->restart(dead)) << cluster_->last_error();
  const auto back = c.check(b.checks);
  EXPECT_EQ(back.cache_errors, 0u) << back.error.message;
  EXPECT_EQ(back.by_reason[static_cast<std::size_t>(reason::no_cache_entry)], on_dead);
  EXPECT_EQ(back.skipped, b.checks.size() - on_dead);
}

TEST_F(Cluster, StalledPrimaryCostsOneTimeoutAndOnlyItsEntities) {
  auto c = make([](tds::client_config& cfg) { cfg.command_timeout = std::chrono::milliseconds(300); });
  const auto b = batch::numbered(2000);
  seed(c, b);
  const std::size_t stalled = 0;
  cluster_->node(stalled).pause();  // SIGSTOP: connections stay open, nothing answers
  const auto started = std::chrono::steady_clock::now();
  const auto r = c.check(b.checks);
  const auto took = std::chrono::steady_clock::now() - started;
  cluster_->node(stalled).resume();
  EXPECT_EQ(r.error.code, status::timeout) << r.error.message;
  std::size_t on_stalled = 0;
  for (std::size_t i = 0; i < b.checks.size(); ++i) {
    const bool is_stalled = cluster_->owner_of_key(b.key(i)) == int(stalled);
    on_stalled += is_stalled;
    ASSERT_EQ(r.items[i].why, is_stalled ? reason::cache_check_error : reason::unchanged) << i;
  }
  EXPECT_EQ(r.cache_errors, on_stalled);
  // The nodes are waited on together: one timeout, not one per node or per round.
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  // Back to normal once it answers again.
  EXPECT_EQ(c.check(b.checks).skipped, b.checks.size());
}

TEST_F(Cluster, WholeClusterDownOpensTheBreaker) {
  auto c = make([](tds::client_config& cfg) {
    cfg.breaker_failures = 2;
    cfg.reconnect_backoff_min = cfg.reconnect_backoff_max = std::chrono::milliseconds(0);
  });
  const auto b = batch::numbered(300);
  seed(c, b);
  for (std::size_t i = 0; i < cluster_->size(); ++i) cluster_->kill(i);
  for (int round = 0; round < 2; ++round) {
    const auto r = c.check(b.checks);
    EXPECT_EQ(r.cache_errors, b.checks.size());
    EXPECT_NE(r.error.code, status::circuit_open) << r.error.message;
  }
  const auto attempts = c.connect_attempts();
  const auto r = c.check(b.checks);
  EXPECT_EQ(r.cache_errors, b.checks.size());
  EXPECT_EQ(r.error.code, status::circuit_open) << r.error.message;
  EXPECT_EQ(c.connect_attempts(), attempts);  // an open breaker keeps the client off the network
}

TEST_F(Cluster, UnreachableClusterFailsOpenAndOpensTheBreaker) {
  tds::client_config cfg;
  cfg.cluster = true;
  cfg.cluster_seeds = {{"127.0.0.1", tds::testing::free_tcp_port()}, {"127.0.0.1", tds::testing::free_tcp_port()}};
  cfg.breaker_failures = 2;
  cfg.reconnect_backoff_min = std::chrono::milliseconds(0);
  cfg.reconnect_backoff_max = std::chrono::milliseconds(0);
  auto c = client::connect(cfg);  // nothing is contacted yet
  ASSERT_TRUE(c.ok()) << c.error().message;
  const auto b = batch::numbered(50);
  for (int i = 0; i < 2; ++i) {
    const auto r = c.value().check(b.checks);
    EXPECT_EQ(r.cache_errors, 50u);
    EXPECT_EQ(r.error.code, status::connect_failed) << r.error.message;
    EXPECT_NE(r.error.message.find("slot map"), std::string::npos) << r.error.message;
  }
  const auto attempts = c.value().connect_attempts();
  EXPECT_GE(attempts, 4u);  // both seeds, twice
  const auto r = c.value().check(b.checks);
  EXPECT_EQ(r.cache_errors, 50u);
  EXPECT_EQ(r.error.code, status::circuit_open);
  EXPECT_EQ(c.value().connect_attempts(), attempts);
}

TEST_F(Cluster, PlainRedisBehindAClusterUrlIsAClearError) {
  auto& one = single();
  tds::client_config cfg;
  cfg.cluster = true;
  cfg.cluster_seeds = {{"127.0.0.1", one.port()}};
  auto c = client::connect(cfg);
  ASSERT_TRUE(c.ok());
  const auto b = batch::numbered(10);
  const auto r = c.value().check(b.checks);
  EXPECT_EQ(r.cache_errors, 10u);
  EXPECT_EQ(r.error.code, status::cluster);
  EXPECT_NE(r.error.message.find("CLUSTER SLOTS"), std::string::npos) << r.error.message;
  EXPECT_EQ(c.value().ping().code(), status::cluster);
}

TEST_F(Cluster, NoscriptOnANodeLoadsTheScriptThereAndRetries) {
  auto c = make();
  auto b = batch::numbered(600);
  seed(c, b);
  ASSERT_TRUE(cluster_->all({"SCRIPT", "FLUSH"}));
  ASSERT_TRUE(cluster_->reset_stats());
  for (auto& chk : b.checks) chk.content_digest = tds::sha256("v2");
  const auto seen = c.check(b.checks);
  const auto before = counters::now();
  const auto done = c.commit(commits_for(b, seen));
  EXPECT_EQ(done.written, b.checks.size()) << done.error.message;
  EXPECT_GE(counters::now().noscript - before.noscript, 3u);  // every node had lost it
  for (std::size_t i = 0; i < cluster_->size(); ++i) {
    EXPECT_EQ(cluster_->node(i).calls("script|load"), 1u) << "node " << i;
  }
  EXPECT_EQ(c.check(b.checks).skipped, b.checks.size());
}

// ------------------------------------------------------------------ other operations

TEST_F(Cluster, InvalidateTypeRemovesEveryKeyOnEveryNode) {
  auto c = make();
  const auto products = batch::numbered(3000);
  seed(c, products);
  std::vector<tds::warm_record> customers;
  std::vector<std::string> customer_ids;
  for (int i = 0; i < 500; ++i) customer_ids.push_back("c" + std::to_string(i));
  for (const auto& id : customer_ids) customers.push_back(tds::warm_record{id, tds::sha256("x")});
  ASSERT_EQ(c.warm("customer", customers).written, 500u);
  for (std::size_t i = 0; i < cluster_->size(); ++i) EXPECT_GT(cluster_->dbsize(i), 800) << "node " << i;

  auto removed = c.invalidate_type("product");
  ASSERT_TRUE(removed.ok()) << removed.error().message;
  EXPECT_EQ(removed.value(), 3000u);
  EXPECT_EQ(cluster_->total_dbsize(), 500);
  EXPECT_EQ(cluster_->total_calls("keys"), 0u);
  EXPECT_GE(cluster_->total_calls("scan"), 3u);  // every primary was scanned
  auto one = c.invalidate("customer", "c7");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one.value(), 1u);
  EXPECT_EQ(cluster_->total_dbsize(), 499);
}

TEST_F(Cluster, StatesMarkersAndPingWorkAcrossNodes) {
  auto c = make();
  const auto b = batch::numbered(30);
  seed(c, b);
  std::vector<std::string_view> ids(b.ids.begin(), b.ids.end());
  ids.push_back("absent");
  auto states = c.get_states("product", ids);
  ASSERT_TRUE(states.ok()) << states.error().message;
  ASSERT_EQ(states.value().size(), 31u);
  for (std::size_t i = 0; i < 30; ++i) {
    ASSERT_TRUE(states.value()[i].ok());
    ASSERT_TRUE(states.value()[i].value().has_value());
    EXPECT_EQ(states.value()[i].value()->entity_id, b.ids[i]);
  }
  EXPECT_FALSE(states.value()[30].value().has_value());

  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c.mark_batch_complete("product", "batch-" + std::to_string(i), "{}").ok());
  }
  auto recent = c.was_batch_synced_recently("product", 60);
  ASSERT_TRUE(recent.ok()) << recent.error().message;
  EXPECT_TRUE(recent.value());
  auto other = c.was_batch_synced_recently("invoice", 60);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other.value());
  EXPECT_TRUE(c.ping().ok());
}

TEST_F(Cluster, ClusterUrlWorksThroughCppAndTheCApi) {
  auto c = client::from_url(cluster_->url() + "?mget_chunk=50");
  ASSERT_TRUE(c.ok()) << c.error().message;
  const auto b = batch::numbered(200);
  seed(c.value(), b);
  EXPECT_EQ(c.value().check(b.checks).skipped, 200u);

  tds_client* capi = nullptr;
  ASSERT_EQ(tds_client_open_url(&capi, cluster_->url().c_str()), TDS_OK);
  std::vector<tds_entity> entities(b.checks.size());
  for (std::size_t i = 0; i < entities.size(); ++i) {
    entities[i].entity_type = "product";
    entities[i].entity_type_len = 7;
    entities[i].entity_id = b.ids[i].data();
    entities[i].entity_id_len = b.ids[i].size();
    std::copy(b.checks[i].content_digest.bytes.begin(), b.checks[i].content_digest.bytes.end(),
              entities[i].digest.bytes);
    entities[i].scheme = TDS_SCHEME_LEGACY;
    entities[i].last_modified_time = b.lmts[i].data();
    entities[i].last_modified_time_len = b.lmts[i].size();
  }
  entities[7].digest.bytes[0] ^= 1;  // one changed entity
  tds_check_result* r = nullptr;
  ASSERT_EQ(tds_client_check(&r, capi, entities.data(), entities.size()), TDS_OK);
  EXPECT_EQ(tds_check_result_status(r), TDS_OK) << tds_check_result_message(r);
  EXPECT_EQ(tds_check_result_skipped(r), 199u);
  EXPECT_EQ(tds_check_result_reason(r, 7), TDS_REASON_CONTENT_CHANGED);
  tds_check_result_free(r);
  tds_client_free(capi);
}

// ------------------------------------------------------------------ the store itself

using tds::detail::cluster_tuning;
using tds::detail::lookup_result;

class ClusterStore : public Cluster {
 protected:
  std::unique_ptr<tds::detail::store> store(cluster_tuning tuning = {}) {
    auto s = tds::detail::make_cluster_store(cluster_->config(), tuning);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return std::move(s).value();
  }
  // Sets key=i for every key, through the fixture.
  void put(const std::vector<std::string>& keys) {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto r = cluster_->keyed({"SET", keys[i], std::to_string(i)});
      ASSERT_TRUE(r.ok() && !r.value().is_error());
    }
  }
  // MGET through the store; every index must be reported ready exactly once.
  tds::detail::batch_report mget(tds::detail::store& s, const std::vector<std::string>& keys,
                                 std::vector<lookup_result>& out) {
    std::vector<std::string_view> views(keys.begin(), keys.end());
    std::vector<int> ready(keys.size(), 0);
    auto report = s.mget(views, out,
                         [&](std::size_t first, std::size_t count) {
                           for (std::size_t i = first; i < first + count; ++i) ++ready[i];
                         },
                         tds::detail::no_deadline);
    for (std::size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(ready[i], 1) << "key " << i;
    return report;
  }
  static std::vector<std::string> keys_of(const batch& b) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < b.ids.size(); ++i) out.push_back(b.key(i));
    return out;
  }
};

TEST_F(ClusterStore, SlotMapIsReadAgainPeriodically) {
  const auto keys = keys_of(batch::numbered(100));
  put(keys);
  std::vector<lookup_result> out;
  cluster_tuning often;
  often.refresh_interval = std::chrono::milliseconds(0);
  auto s = store(often);
  auto before = counters::now().refreshes;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(mget(*s, keys, out).ok());
  EXPECT_EQ(counters::now().refreshes - before, 3u);  // the first read, then one per operation

  auto lazy = store();
  before = counters::now().refreshes;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(mget(*lazy, keys, out).ok());
  EXPECT_EQ(counters::now().refreshes - before, 1u);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    ASSERT_EQ(out[i].kind, tds::lookup_kind::present);
    EXPECT_EQ(out[i].value, std::to_string(i));
  }
}

TEST_F(ClusterStore, MovedWithinTheCooldownUsesTheRedirectionWithoutARefresh) {
  const auto keys = keys_of(batch::numbered(500));
  put(keys);
  cluster_tuning slow;
  slow.refresh_cooldown = std::chrono::hours(1);
  auto s = store(slow);
  std::vector<lookup_result> out;
  ASSERT_TRUE(mget(*s, keys, out).ok());
  auto move_one_slot = [&](std::size_t from, std::size_t to) {
    for (const auto& k : keys) {
      const auto slot = tds::key_slot(k);
      if (cluster_->owner(slot) == int(from)) {
        EXPECT_TRUE(cluster_->move_slot(slot, from, to)) << cluster_->last_error();
        EXPECT_TRUE(cluster_->reload_slot_map());
        return;
      }
    }
  };
  move_one_slot(0, 2);
  auto before = counters::now();
  EXPECT_TRUE(mget(*s, keys, out).ok());
  EXPECT_EQ(counters::now().refreshes - before.refreshes, 1u);  // the first MOVED refreshes
  move_one_slot(1, 2);
  before = counters::now();
  const auto report = mget(*s, keys, out);
  EXPECT_TRUE(report.ok()) << report.first_error.message;
  EXPECT_GE(counters::now().moved - before.moved, 1u);
  EXPECT_EQ(counters::now().refreshes - before.refreshes, 0u);  // within the cooldown
  for (std::size_t i = 0; i < keys.size(); ++i) {
    ASSERT_EQ(out[i].kind, tds::lookup_kind::present) << i;
    EXPECT_EQ(out[i].value, std::to_string(i));
  }
}

TEST_F(ClusterStore, RedirectionsLeftWhenTheRoundsRunOutAreErrorsNeverAnswers) {
  const std::uint16_t slot = tds::key_slot("tds:entity:state:product:x");
  const auto from = static_cast<std::size_t>(cluster_->owner(slot));
  const std::size_t to = (from + 2) % cluster_->size();
  batch b;
  for (auto& id : ids_in_slot(slot, 10, 1)) b.add(std::move(id));
  for (std::size_t i = 0; i < 200; ++i) {
    if (tds::key_slot(state_key("product", "other-" + std::to_string(i))) != slot) {
      b.add("other-" + std::to_string(i));
    }
  }
  b.bind();
  const auto keys = keys_of(b);
  put(keys);
  ASSERT_TRUE(cluster_->begin_migration(slot, from, to));
  ASSERT_TRUE(cluster_->migrate_keys(from, to, {keys[0], keys[1], keys[2]}));

  cluster_tuning one_round;
  one_round.max_rounds = 1;
  auto s = store(one_round);
  std::vector<lookup_result> out;
  const auto before = counters::now().exhausted;
  auto report = mget(*s, keys, out);
  EXPECT_EQ(report.failed, 10u);  // the slot's MGET got TRYAGAIN, and no round was left
  EXPECT_EQ(report.first_error.code, status::cluster);
  EXPECT_FALSE(report.unreachable);
  EXPECT_EQ(counters::now().exhausted - before, 10u);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i < 10) {
      EXPECT_EQ(out[i].kind, tds::lookup_kind::error) << i;
    } else {
      EXPECT_EQ(out[i].kind, tds::lookup_kind::present) << i;
    }
  }
  // With the default budget the same state resolves: TRYAGAIN, then one key per command, ASK.
  auto patient = store();
  report = mget(*patient, keys, out);
  EXPECT_TRUE(report.ok()) << report.first_error.message;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    ASSERT_EQ(out[i].kind, tds::lookup_kind::present) << i;
    EXPECT_EQ(out[i].value, std::to_string(i));
  }
  ASSERT_TRUE(cluster_->migrate_all_keys(slot, from, to));
  ASSERT_TRUE(cluster_->finish_migration(slot, from, to));
}

TEST_F(ClusterStore, DeadNodeReportsEveryItemOnceAndIsNotTheWholeCluster) {
  const auto keys = keys_of(batch::numbered(1000));
  put(keys);
  auto s = store();
  std::vector<lookup_result> out;
  ASSERT_TRUE(mget(*s, keys, out).ok());
  cluster_->kill(1);
  const auto report = mget(*s, keys, out);
  std::size_t on_dead = 0;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const bool dead = cluster_->owner_of_key(keys[i]) == 1;
    on_dead += dead;
    EXPECT_EQ(out[i].kind, dead ? tds::lookup_kind::error : tds::lookup_kind::present) << i;
  }
  EXPECT_EQ(report.failed, on_dead);
  EXPECT_FALSE(report.unreachable);  // the breaker is for a cluster we cannot reach at all
  auto gone = s->scan_unlink("tds:*", tds::detail::no_deadline);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, status::cluster) << gone.error().message;
}

}  // namespace

namespace {

// TLS to a cluster: the seeds, the slot map's nodes and the MOVED targets are all reached over
// verified TLS with a client certificate (the nodes announce their TLS ports; the bus is TLS
// too). Its own cluster: the shared one speaks plain TCP.
TEST(ClusterTls, ChecksAndCommitsAcrossEveryNodeOverVerifiedTls) {
  tds::testing::temp_dir dir("tds-cluster-tls");
  std::string why;
  auto material = tds::testing::tls_material::generate(dir.path(), &why);
  ASSERT_TRUE(material.has_value()) << why;
  tds::testing::redis_cluster_options o;
  o.tls = &*material;
  redis_cluster cluster(o);
  ASSERT_TRUE(cluster.start()) << cluster.last_error();
  const tds::client_config cfg = cluster.config();
  ASSERT_TRUE(cfg.tls.enabled);
  ASSERT_TRUE(cfg.tls.verify_hostname);
  auto c = client::connect(cfg);
  ASSERT_TRUE(c.ok()) << c.error().message;
  const auto b = batch::numbered(3000);
  const auto seen = c.value().check(b.checks);
  ASSERT_EQ(seen.error.code, status::ok) << seen.error.message;
  EXPECT_EQ(seen.by_reason[static_cast<std::size_t>(reason::no_cache_entry)], 3000u);
  const auto done = c.value().commit(commits_for(b, seen));
  EXPECT_EQ(done.written, 3000u) << done.error.message;
  for (std::size_t i = 0; i < cluster.size(); ++i) EXPECT_GT(cluster.dbsize(i), 500) << "node " << i;
  const auto again = c.value().check(b.checks);
  EXPECT_EQ(again.skipped, 3000u) << again.error.message;

  // A client that does not trust the cluster's CA reaches nothing and fails open.
  tds::client_config untrusting = cfg;
  untrusting.tls.ca_file = material->other_ca_cert;
  auto stranger = client::connect(untrusting);
  ASSERT_TRUE(stranger.ok()) << stranger.error().message;
  const auto refused = stranger.value().check(b.checks);
  EXPECT_EQ(refused.cache_errors, 3000u);
  EXPECT_EQ(refused.skipped, 0u);
}

}  // namespace
