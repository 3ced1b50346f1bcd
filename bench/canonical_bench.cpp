// Canonicalize-plus-hash throughput against the reference measured in the same binary: raw
// OpenSSL SHA-256 over the same canonical bytes. Each figure is printed as a ratio to it.
// Run: build/cmake/bench/canonical_bench   (see docs/benchmarks.md for recorded figures)
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>

#include <simdjson.h>

#include "tdscache/canonical.hpp"
#include "zoho_sample.hpp"

namespace {

struct input {
  const char* name;
  std::string json;
};

const std::vector<input>& inputs() {
  static const std::vector<input> v = {
      {"item_2KB", tds::bench::zoho_item(42)},
      {"page_200", tds::bench::zoho_page(200)},
      {"doc_1MB", tds::bench::large_document(1 << 20)},
  };
  return v;
}

tds::canonical_options options_for(int scheme) {
  return scheme == 0 ? tds::canonical_options::legacy() : tds::canonical_options::jcs();
}

const char* scheme_label(int scheme) { return scheme == 0 ? "legacy" : "jcs"; }

// Reference: SHA-256 alone over the bytes the canonicalizer produces for this input.
void BM_sha256_reference(benchmark::State& state) {
  const auto& in = inputs()[static_cast<std::size_t>(state.range(0))];
  const std::string canonical = tds::canonicalize(in.json, options_for(static_cast<int>(state.range(1)))).value();
  for (auto _ : state) benchmark::DoNotOptimize(tds::sha256(canonical));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * in.json.size()));
  state.SetLabel(std::string(in.name) + "/" + scheme_label(static_cast<int>(state.range(1))));
}

void BM_canonicalize_and_hash(benchmark::State& state) {
  const auto& in = inputs()[static_cast<std::size_t>(state.range(0))];
  auto c = tds::canonicalizer::create(options_for(static_cast<int>(state.range(1)))).value();
  for (auto _ : state) benchmark::DoNotOptimize(c.hash(in.json).value());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * in.json.size()));
  state.SetLabel(std::string(in.name) + "/" + scheme_label(static_cast<int>(state.range(1))));
}

void BM_hash_page(benchmark::State& state) {
  const std::string page = tds::bench::zoho_page(200);
  auto c = tds::canonicalizer::create(options_for(static_cast<int>(state.range(0)))).value();
  for (auto _ : state) benchmark::DoNotOptimize(c.hash_page(page).value().records.size());
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 200));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * page.size()));
  state.SetLabel(std::string("page_200/") + scheme_label(static_cast<int>(state.range(0))));
}

// The floor under any On-Demand canonicalizer: visiting every key and value once, writing
// nothing, sorting nothing. Printed so the ratio target can be judged against it.
std::size_t visit(simdjson::ondemand::value v) {
  namespace od = simdjson::ondemand;
  std::size_t n = 0;
  switch (v.type().value_unsafe()) {
    case od::json_type::object:
      for (auto field : v.get_object()) {
        n += static_cast<unsigned char>(field.key().value_unsafe().raw()[0]);
        n += visit(field.value());
      }
      break;
    case od::json_type::array:
      for (auto element : v.get_array()) n += visit(element.value_unsafe());
      break;
    default:
      n += v.raw_json_token().size();
  }
  return n;
}

void BM_ondemand_visit_floor(benchmark::State& state) {
  const auto& in = inputs()[static_cast<std::size_t>(state.range(0))];
  simdjson::padded_string padded(in.json);
  simdjson::ondemand::parser parser;
  for (auto _ : state) {
    auto doc = parser.iterate(padded);
    std::size_t n = 0;
    for (auto field : doc.get_object()) n += visit(field.value());
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * in.json.size()));
  state.SetLabel(in.name);
}

void args(benchmark::internal::Benchmark* b) {
  for (int i = 0; i < 3; ++i)
    for (int s = 0; s < 2; ++s) b->Args({i, s});
}

BENCHMARK(BM_sha256_reference)->Apply(args);
BENCHMARK(BM_canonicalize_and_hash)->Apply(args);
BENCHMARK(BM_hash_page)->Arg(0)->Arg(1);
BENCHMARK(BM_ondemand_visit_floor)->Arg(0)->Arg(1);

// Collects per-label times so the ratios can be printed after the run.
class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.run_type != Run::RT_Iteration) continue;
      const double t = r.GetAdjustedRealTime();
      if (r.benchmark_name().find("sha256_reference") != std::string::npos) reference_[r.report_label] = t;
      else if (r.benchmark_name().find("canonicalize_and_hash") != std::string::npos) measured_[r.report_label] = t;
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nThroughput of canonicalize+hash as a fraction of raw SHA-256 over the same canonical bytes\n");
    std::printf("(reference and measurement from this run; target >= 0.50 on item_2KB):\n");
    for (const auto& [label, t] : measured_) {
      auto it = reference_.find(label);
      if (it != reference_.end()) std::printf("  %-18s %.2f\n", label.c_str(), it->second / t);
    }
  }

 private:
  std::map<std::string, double> reference_, measured_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
