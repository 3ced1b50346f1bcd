// What client_bench and cluster_bench share: Zoho-shaped entities, the timed check and commit
// loops over them, and a reporter that keeps each run's rate for the ratio tables.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tdscache/client.hpp"

namespace tds::bench {

// Entities shaped like Zoho items: 19-digit ids, a timestamp with an offset and a local id, so
// the stored states are the ~300-byte values production holds. `stride` spaces the ids.
struct entity_set {
  std::vector<std::string> ids;
  std::vector<std::string> local_ids;
  std::vector<tds::entity_check> checks;

  entity_set(std::size_t n, std::uint64_t stride) {
    ids.reserve(n);
    local_ids.reserve(n);
    checks.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      ids.push_back(std::to_string(2646610000000000000ULL + stride * i));
      local_ids.push_back(std::to_string(100000 + i));
    }
    for (std::size_t i = 0; i < n; ++i) {  // views into ids, which no longer grows
      checks[i].entity_type = "product";
      checks[i].entity_id = ids[i];
      checks[i].content_digest = tds::sha256(ids[i]);
      checks[i].last_modified_time = "2025-11-13T08:30:00+0530";
    }
  }

  // Commits of every entity, conditional on what `seen` observed.
  std::vector<tds::commit_item> commits(const tds::check_result& seen) const {
    std::vector<tds::commit_item> out;
    out.reserve(checks.size());
    for (std::size_t i = 0; i < checks.size(); ++i) {
      out.push_back(tds::commit_item{checks[i].entity_type, checks[i].entity_id, checks[i].content_digest,
                                     checks[i].scheme, checks[i].last_modified_time, local_ids[i],
                                     &seen.items[i].observed});
    }
    return out;
  }
};

// Made once per size and stride, and kept: the benchmarks of one size share them.
inline const entity_set& entities(std::size_t n, std::uint64_t stride = 1) {
  static std::map<std::pair<std::size_t, std::uint64_t>, entity_set> made;
  return made.try_emplace({n, stride}, n, stride).first->second;
}

// A client for a benchmark program: one that cannot connect ends the program.
inline tds::client connect_or_exit(tds::client_config cfg) {
  cfg.command_timeout = std::chrono::milliseconds(30000);
  auto c = tds::client::connect(std::move(cfg));
  if (!c.ok()) {
    std::fprintf(stderr, "client: %s\n", c.error().message.c_str());
    std::exit(1);
  }
  return std::move(c).value();
}

// Every entity stored and unchanged, the steady state of a sync: each timed check reads and
// decodes every value and skips everything.
inline void time_checks(benchmark::State& state, tds::client& c, const entity_set& set) {
  const std::size_t n = set.checks.size();
  auto seeded = c.commit(set.commits(c.check(set.checks)));
  if (seeded.written + seeded.conflicts != n) state.SkipWithError("seeding failed");
  for (auto _ : state) {
    auto r = c.check(set.checks);
    if (r.skipped != n) state.SkipWithError(("check failed: " + r.error.message).c_str());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// Conditional commits over stored states (compare, increment, set), as after a sync in which
// every entity changed. The check that produces the observations is not timed.
inline void time_commits(benchmark::State& state, tds::client& c, const entity_set& set) {
  const std::size_t n = set.checks.size();
  for (auto _ : state) {
    state.PauseTiming();
    auto seen = c.check(set.checks);
    auto commits = set.commits(seen);
    state.ResumeTiming();
    auto done = c.commit(commits);
    if (done.written != n) state.SkipWithError(("commit failed: " + done.error.message).c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// Keeps items_per_second per run for the ratio tables.
class collecting_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& run : runs) {
      auto it = run.counters.find("items_per_second");
      if (it != run.counters.end()) rates[run.benchmark_name()] = it->second.value;
    }
  }
  std::map<std::string, double> rates;
};

}  // namespace tds::bench
