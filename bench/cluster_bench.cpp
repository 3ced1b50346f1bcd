// Benchmark (not a test): check and commit throughput of the cache client on a 3-primary Redis
// Cluster against one redis-server, both started by this program and both over loopback TCP,
// in the same run, with the cluster/single ratio per size. No scaling is expected on a box
// with fewer cores than servers; the figures say what routing per slot costs.
//
// Run: build/<dir>/bench/cluster_bench [--benchmark_filter=...] [--benchmark_min_time=...]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "../tests/cpp/redis_cluster.hpp"
#include "../tests/cpp/redis_server.hpp"
#include "tdscache/client.hpp"

namespace {

tds::testing::redis_server* single = nullptr;
tds::testing::redis_cluster* cluster = nullptr;

// Zoho-shaped entities: 19-digit ids and a timestamp with an offset, so the stored states are
// the ~300-byte values production holds.
class workload {
 public:
  explicit workload(std::size_t n) : ids_(n), checks_(n) {
    for (std::size_t i = 0; i < n; ++i) {
      ids_[i] = std::to_string(2646610000000000000ULL + 7919 * i);
      checks_[i].entity_type = "product";
      checks_[i].entity_id = ids_[i];
      checks_[i].content_digest = tds::sha256(ids_[i]);
      checks_[i].last_modified_time = "2025-11-13T08:30:00+0530";
    }
  }
  const std::vector<tds::entity_check>& checks() const { return checks_; }
  std::vector<tds::commit_item> commits(const tds::check_result& seen) const {
    std::vector<tds::commit_item> out(checks_.size());
    for (std::size_t i = 0; i < checks_.size(); ++i) {
      const auto& c = checks_[i];
      out[i] = {c.entity_type, c.entity_id, c.content_digest, c.scheme, c.last_modified_time,
                std::string_view(ids_[i]).substr(12), &seen.items[i].observed};
    }
    return out;
  }

 private:
  std::vector<std::string> ids_;
  std::vector<tds::entity_check> checks_;
};

const workload& entities(std::size_t n) {
  static std::map<std::size_t, workload> made;
  return made.try_emplace(n, n).first->second;
}

tds::client connect(bool on_cluster) {
  auto cfg = on_cluster ? cluster->config() : single->config();
  cfg.command_timeout = std::chrono::milliseconds(30000);
  auto c = tds::client::connect(cfg);
  if (!c.ok()) {
    std::fprintf(stderr, "client: %s\n", c.error().message.c_str());
    std::exit(1);
  }
  return std::move(c).value();
}

// Every entity stored and unchanged: a check reads, decodes and skips each one.
void check_bench(benchmark::State& state, bool on_cluster) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const workload& w = entities(n);
  auto c = connect(on_cluster);
  auto seeded = c.commit(w.commits(c.check(w.checks())));
  if (seeded.written + seeded.conflicts != n) state.SkipWithError("seeding failed");
  for (auto _ : state) {
    auto r = c.check(w.checks());
    if (r.skipped != n) state.SkipWithError(("check failed: " + r.error.message).c_str());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// Conditional commits over stored states; the check that observes them is not timed.
void commit_bench(benchmark::State& state, bool on_cluster) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const workload& w = entities(n);
  auto c = connect(on_cluster);
  for (auto _ : state) {
    state.PauseTiming();
    auto seen = c.check(w.checks());
    auto commits = w.commits(seen);
    state.ResumeTiming();
    auto done = c.commit(commits);
    if (done.written != n) state.SkipWithError(("commit failed: " + done.error.message).c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

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

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  tds::testing::redis_server one;
  if (!one.start()) {
    std::fprintf(stderr, "cannot start redis-server: %s\n", one.last_error().c_str());
    return 1;
  }
  tds::testing::redis_cluster three;
  if (!three.start()) {
    std::fprintf(stderr, "cannot start the cluster: %s\n", three.last_error().c_str());
    return 1;
  }
  single = &one;
  cluster = &three;

  using bench_fn = void (*)(benchmark::State&, bool);
  const std::vector<std::pair<const char*, bench_fn>> families = {{"check", check_bench},
                                                                  {"commit", commit_bench}};
  const std::vector<std::int64_t> sizes = {1312, 10000, 100000};
  for (const auto& [name, fn] : families) {
    for (const bool on_cluster : {false, true}) {
      for (const auto n : sizes) {
        auto* b = benchmark::RegisterBenchmark(
            (std::string(name) + (on_cluster ? "/cluster3" : "/single")).c_str(),
            [fn = fn, on_cluster](benchmark::State& s) { fn(s, on_cluster); });
        b->Arg(n)->UseRealTime()->Unit(benchmark::kMillisecond);
        if (n >= 100000) b->Iterations(5);  // one 100,000-entity batch takes a good part of a second
      }
    }
  }
  collecting_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  std::printf("\n%-22s %14s %14s %8s\n", "run", "single/s", "cluster3/s", "ratio");
  for (const auto& [name, fn] : families) {
    for (const auto n : sizes) {
      auto rate = [&](const char* where) {
        const std::string base = std::string(name) + "/" + where + "/" + std::to_string(n);
        for (const auto& [run, r] : reporter.rates) {
          if (run.rfind(base, 0) == 0) return r;
        }
        return 0.0;
      };
      const double s = rate("single"), c = rate("cluster3");
      if (s <= 0 || c <= 0) continue;
      std::printf("%-22s %14.0f %14.0f %7.2fx\n", (std::string(name) + "/" + std::to_string(n)).c_str(),
                  s, c, c / s);
    }
  }
  std::printf("\nratio = cluster entities/s over single-node entities/s; %u cores here\n",
              std::thread::hardware_concurrency());
  benchmark::Shutdown();
  return 0;
}
