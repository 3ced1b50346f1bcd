// Benchmark (not a test): check and commit throughput of the cache client on a 3-primary Redis
// Cluster against one redis-server, both started by this program and both over loopback TCP,
// in the same run, with the cluster/single ratio per size. No scaling is expected on a box
// with fewer cores than servers; the figures say what routing per slot costs.
//
// Run: build/<dir>/bench/cluster_bench [--benchmark_filter=...] [--benchmark_min_time=...]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "../tests/cpp/redis_cluster.hpp"
#include "../tests/cpp/redis_server.hpp"
#include "tdscache/client.hpp"
#include "workload.hpp"

namespace {

tds::testing::redis_server* single = nullptr;
tds::testing::redis_cluster* cluster = nullptr;

using tds::bench::collecting_reporter;

// Ids 7,919 apart, as this bench has always spaced them (docs/benchmarks.md §4 was measured so).
constexpr std::uint64_t id_stride = 7919;

tds::client connect(bool on_cluster) {
  return tds::bench::connect_or_exit(on_cluster ? cluster->config() : single->config());
}

void check_bench(benchmark::State& state, bool on_cluster) {
  auto c = connect(on_cluster);
  tds::bench::time_checks(state, c, tds::bench::entities(static_cast<std::size_t>(state.range(0)), id_stride));
}

void commit_bench(benchmark::State& state, bool on_cluster) {
  auto c = connect(on_cluster);
  tds::bench::time_commits(state, c, tds::bench::entities(static_cast<std::size_t>(state.range(0)), id_stride));
}

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
