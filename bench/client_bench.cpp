// Benchmark (not a test): check and commit throughput of the cache client against a
// redis-server this program starts, over a unix socket and TCP, next to redis-benchmark's
// MGET key rate and SET rate on the same server, with the ratios the issue targets.
//
// Run: build/<dir>/bench/client_bench [--million] [--pin] [--benchmark_filter=...]
//   --million   also run the 1,000,000-entity cases (slow: two to three minutes, ~2 GB of RAM)
//   --pin       server on core 1, this process and redis-benchmark on core 0 (steadier on an
//               idle box; worse on a shared one, where pinned processes cannot move away)
#include <benchmark/benchmark.h>
#include <sched.h>

#include <thread>

#include <cstdio>
#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../tests/cpp/redis_server.hpp"
#include "tdscache/client.hpp"
#include "workload.hpp"

namespace {

using tds::testing::redis_server;

redis_server* server = nullptr;
bool with_million = false;

std::vector<std::int64_t> check_sizes() {
  std::vector<std::int64_t> sizes = {1312, 100000};
  if (with_million) sizes.push_back(1000000);
  return sizes;
}
bool pin_cores = false;

using tds::bench::collecting_reporter;
using tds::bench::entities;
using tds::bench::entity_set;

tds::client make_client(bool over_tcp) {
  return tds::bench::connect_or_exit(over_tcp ? server->config() : server->unix_config());
}

// Every entity stored and unchanged: the steady state of a sync.
void check_bench(benchmark::State& state, bool over_tcp) {
  auto c = make_client(over_tcp);
  tds::bench::time_checks(state, c, entities(static_cast<std::size_t>(state.range(0))));
}

// Nothing stored (a first sync, or after invalidation): the transport's own cost per entity,
// with the cheapest decision. Compared with redis-benchmark's MGET of missing keys.
void check_empty_bench(benchmark::State& state, bool over_tcp) {
  const auto n = static_cast<std::size_t>(state.range(0));
  entity_set set(n, 1);
  for (auto& c : set.checks) c.entity_type = "absent";  // a type nothing was stored under
  // An empty server, like the one redis-benchmark's MGET reference runs against: lookups in a
  // large keyspace miss the CPU caches and would make the comparison unfair to us.
  (void)server->command({"FLUSHALL"});
  auto c = make_client(over_tcp);
  for (auto _ : state) {
    auto r = c.check(set.checks);
    if (r.by_reason[static_cast<int>(tds::reason::no_cache_entry)] != n) {
      state.SkipWithError(("check failed: " + r.error.message).c_str());
    }
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// `cmdstat_<name>` of INFO commandstats: calls and microseconds inside the server.
struct command_cost {
  double calls = 0, usec = 0;
};
command_cost server_cost(std::string_view name) {
  auto info = server->command({"INFO", "commandstats"});
  command_cost cost;
  if (!info.ok()) return cost;
  const std::string& text = info.value().str;
  const std::string needle = "cmdstat_" + std::string(name) + ":calls=";
  const auto at = text.find(needle);
  if (at == std::string::npos) return cost;
  char* rest = nullptr;
  cost.calls = std::strtod(text.c_str() + at + needle.size(), &rest);
  if (std::strncmp(rest, ",usec=", 6) == 0) cost.usec = std::strtod(rest + 6, nullptr);
  return cost;
}

// Commits as after a sync in which every entity changed (tds::bench::time_commits), plus
// server_us_per_key: the server's own time in the commit script per key (INFO commandstats),
// the figure the script's design is judged by, free of client and scheduling noise.
void commit_bench(benchmark::State& state, bool over_tcp) {
  const entity_set& set = entities(static_cast<std::size_t>(state.range(0)));
  auto c = make_client(over_tcp);
  (void)server->reset_stats();
  tds::bench::time_commits(state, c, set);
  const double keys = static_cast<double>(state.iterations() * set.checks.size());
  if (keys > 0) state.counters["server_us_per_key"] = server_cost("evalsha").usec / keys;
}

using bench_fn = void (*)(benchmark::State&, bool);

// One benchmark per transport and size; the largest sizes get a fixed, small iteration count
// (a single 1,000,000-entity commit already takes seconds).
void register_family(const char* name, bench_fn fn, const std::vector<std::int64_t>& sizes,
                     std::int64_t fixed_from, int fixed_iterations) {
  for (const bool tcp : {false, true}) {
    for (auto n : sizes) {
      auto* b = benchmark::RegisterBenchmark((std::string(name) + (tcp ? "/tcp" : "/unix")).c_str(),
                                             [fn, tcp](benchmark::State& s) { fn(s, tcp); });
      b->Arg(n)->UseRealTime()->Unit(benchmark::kMillisecond);
      if (n >= fixed_from) b->Iterations(n >= 1000000 ? std::min(fixed_iterations, 2) : fixed_iterations);
    }
  }
}

void register_benchmarks() {
  const std::vector<std::int64_t> sizes = check_sizes();
  register_family("check", check_bench, sizes, 1000000, 2);
  register_family("check_empty", check_empty_bench, sizes, 1000000, 2);
  register_family("commit", commit_bench, sizes, 100000, 3);
}

// requests/s from `redis-benchmark ... --csv`, or 0.
double redis_benchmark_rps(std::vector<std::string> args) {
  const std::string out = server->dir() + "/redis-benchmark.csv";
  std::remove(out.c_str());
  std::vector<std::string> argv = {"redis-benchmark", "-s", server->unix_path(), "--csv"};
  argv.insert(argv.end(), args.begin(), args.end());
  if (!tds::testing::run_program(argv, out)) return 0;
  const std::string csv = tds::testing::read_file(out);
  // Last line: "name","rps",...; the name may contain commas, so take the field after it.
  const auto line = csv.rfind("\n\"", csv.size() - 2);
  const auto start = line == std::string::npos ? 0 : line + 1;
  const auto rps_at = csv.find("\",\"", start);
  if (rps_at == std::string::npos) return 0;
  return std::strtod(csv.c_str() + rps_at + 3, nullptr);
}

struct reference_rates {
  double mget_missing = 0, mget_present = 0, set_tiny = 0, set_state_sized = 0, set_ceiling = 0;
  double set_us_per_call = 0;  // the server's own time per SET of the ceiling run
  // By keyspace size: 100-key MGETs (-P 8) of keys drawn at random from that many stored states.
  std::map<std::int64_t, double> mget_keyspace;
  static reference_rates mean(const reference_rates& a, const reference_rates& b) {
    reference_rates m{(a.mget_missing + b.mget_missing) / 2, (a.mget_present + b.mget_present) / 2,
                      (a.set_tiny + b.set_tiny) / 2, (a.set_state_sized + b.set_state_sized) / 2,
                      (a.set_ceiling + b.set_ceiling) / 2, (a.set_us_per_call + b.set_us_per_call) / 2, {}};
    for (const auto& [n, rate] : a.mget_keyspace) m.mget_keyspace[n] = (rate + b.mget_keyspace.at(n)) / 2;
    return m;
  }
};

// The entity count in a run's name ("check/unix/100000/real_time"), or 0.
std::int64_t size_in_name(const std::string& name) {
  const auto first = name.find('/', name.find('/') + 1);
  return first == std::string::npos ? 0 : std::strtoll(name.c_str() + first + 1, nullptr, 10);
}

std::string state_sized_value() {
  const auto d = tds::sha256("x");
  return "{\"entity_type\": \"product\", \"entity_id\": \"2646610000000113574\", \"local_id\": \"12345\", "
         "\"content_hash\": \"" + d.hex() + "\", \"last_modified_time\": \"2025-11-13T08:30:00+0530\", "
         "\"cached_at\": \"2025-11-13T08:35:21.123456\", \"sync_count\": 3}";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--million") == 0) with_million = true;
    else if (std::strcmp(argv[i], "--pin") == 0) pin_cores = true;
    else args.push_back(argv[i]);
  }
  int bench_argc = static_cast<int>(args.size());
  benchmark::Initialize(&bench_argc, args.data());

  redis_server local;
  if (!local.start()) {
    std::fprintf(stderr, "cannot start redis-server: %s\n", local.last_error().c_str());
    return 1;
  }
  server = &local;

  // Two cores here: the server gets one, this process (and redis-benchmark, which inherits its
  // affinity) the other, so both sides of each comparison run under the same conditions.
  if (pin_cores && std::thread::hardware_concurrency() >= 2) {
    cpu_set_t mine, theirs;
    CPU_ZERO(&mine);
    CPU_ZERO(&theirs);
    CPU_SET(0, &mine);
    CPU_SET(1, &theirs);
    sched_setaffinity(0, sizeof mine, &mine);
    sched_setaffinity(local.pid(), sizeof theirs, &theirs);
  }

  // redis-benchmark on the same server, before and after our runs: the machine is shared, so
  // the spread between the two says how much to trust a ratio.
  const std::string value = state_sized_value();
  auto reference = [&] {
    reference_rates r;
    std::vector<std::string> mget = {"-n", "200000", "-P", "8", "mget"};
    for (int i = 1; i <= 100; ++i) mget.push_back("k" + std::to_string(i));
    (void)local.command({"FLUSHALL"});
    r.mget_missing = redis_benchmark_rps(mget) * 100;
    for (int i = 1; i <= 100; ++i) (void)local.command({"SET", "k" + std::to_string(i), value});
    mget[1] = "50000";
    r.mget_present = redis_benchmark_rps(mget) * 100;
    r.set_tiny = redis_benchmark_rps({"-n", "1000000", "-P", "16", "-t", "set"});
    r.set_state_sized = redis_benchmark_rps({"-n", "1000000", "-P", "16", "-t", "set", "-d",
                                             std::to_string(value.size()), "-r", "1000000"});
    // The ceiling of any commit: what a commit writes, and nothing else. A state-sized value
    // with EX on distinct keys named like ours, pipelined as deep. (Bytes of 'x': the CSV
    // output cannot carry the quotes of a real state.)
    (void)local.reset_stats();
    r.set_ceiling = redis_benchmark_rps({"-n", "1000000", "-P", "16", "-r", "1000000", "SET",
                                         "tds:entity:state:product:26466100__rand_int__",
                                         std::string(value.size(), 'x'), "EX", "86400"});
    const command_cost set_cost = server_cost("set");
    if (set_cost.calls > 0) r.set_us_per_call = set_cost.usec / set_cost.calls;
    // The hot 100 keys above stay in the server's CPU caches; a check of 100,000 entities reads
    // 100,000 distinct keys, and the server's lookups then miss its caches. So the same MGET
    // again, over as many stored states as each check reads, named like ours (redis-benchmark
    // writes __rand_int__ as 12 digits, so the states are stored under such names).
    for (const std::int64_t n : check_sizes()) {
      (void)local.command({"FLUSHALL"});
      const std::string count = std::to_string(n);
      (void)local.command({"EVAL",
                           "for i = 0, tonumber(ARGV[1]) - 1 do redis.call('SET', "
                           "'tds:entity:state:product:' .. string.format('%012d', i), ARGV[2]) end",
                           "0", count, value});
      std::vector<std::string> spread = {"-n", "50000", "-P", "8", "-r", count, "mget"};
      for (int i = 1; i <= 100; ++i) spread.push_back("tds:entity:state:product:__rand_int__");
      r.mget_keyspace[n] = redis_benchmark_rps(spread) * 100;
    }
    (void)local.command({"FLUSHALL"});
    return r;
  };
  const reference_rates before = reference();

  register_benchmarks();
  collecting_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const reference_rates after = reference();
  const reference_rates mean = reference_rates::mean(before, after);

  std::printf("\nredis-benchmark on the same server (unix socket), before / after the runs:\n");
  std::printf("  MGET of 100 missing keys, -P 8:           %10.0f / %10.0f keys/s\n", before.mget_missing, after.mget_missing);
  std::printf("  MGET of 100 stored %zu-byte values, -P 8: %10.0f / %10.0f keys/s\n", value.size(),
              before.mget_present, after.mget_present);
  std::printf("  SET -t set -P 16 (3-byte values):          %10.0f / %10.0f keys/s\n", before.set_tiny, after.set_tiny);
  std::printf("  SET -P 16 -d %zu -r 1000000:               %10.0f / %10.0f keys/s\n", value.size(),
              before.set_state_sized, after.set_state_sized);
  std::printf("  SET key %zu-byte-value EX 86400, -P 16, distinct keys: %10.0f / %10.0f keys/s"
              " (server: %.2f / %.2f us per SET)\n",
              value.size(), before.set_ceiling, after.set_ceiling, before.set_us_per_call,
              after.set_us_per_call);
  for (const auto& [n, rate] : before.mget_keyspace)
    std::printf("  MGET of 100 of %7lld stored values, -P 8:  %10.0f / %10.0f keys/s\n", static_cast<long long>(n),
                rate, after.mget_keyspace.at(n));
  std::printf("\nratios against the mean of before and after:\n");
  std::printf("%-44s %12s %16s %16s %16s\n", "run", "entities/s", "vs MGET missing", "vs MGET stored",
              "vs same keyspace");
  for (const auto& [name, rate] : reporter.rates) {
    if (name.rfind("check", 0) == 0) {
      std::printf("%-44s %12.0f %15.0f%% %15.0f%%", name.c_str(), rate, 100 * rate / mean.mget_missing,
                  100 * rate / mean.mget_present);
      // Only where states are stored: check_empty reads missing keys.
      const auto keyspace = mean.mget_keyspace.find(size_in_name(name));
      if (name.rfind("check/", 0) == 0 && keyspace != mean.mget_keyspace.end() && keyspace->second > 0)
        std::printf(" %15.0f%%", 100 * rate / keyspace->second);
      std::printf("\n");
    }
  }
  std::printf("\n%-44s %12s %16s %16s\n", "run", "entities/s", "vs SET -P 16", "vs SET+EX ceiling");
  for (const auto& [name, rate] : reporter.rates) {
    if (name.rfind("commit", 0) == 0) {
      std::printf("%-44s %12.0f %15.0f%% %15.0f%%\n", name.c_str(), rate, 100 * rate / mean.set_tiny,
                  100 * rate / mean.set_ceiling);
    }
  }
  std::printf("%-44s %12.0f %15.0f%%   (no commit can beat this: it is the write alone)\n",
              "ceiling: SET state-sized value EX, distinct keys", mean.set_ceiling,
              100 * mean.set_ceiling / mean.set_tiny);
  std::printf("\ntargets: check >= 40%% of the MGET key rate, commit >= 40%% of the SET rate\n");
  benchmark::Shutdown();
  return 0;
}
