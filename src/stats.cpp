// stats_recorder: relaxed atomic counters and a log-linear latency histogram.
// Only arithmetic here; the client decides what to record and when.
#include "tdscache/stats.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace tds {
namespace {

constexpr auto relaxed = std::memory_order_relaxed;

// Values below 4 us get one bucket each; above, 4 buckets per power of two.
int bucket_of(std::uint64_t us, int bucket_count) noexcept {
  if (us < 4) return static_cast<int>(us);
  const int e = 63 - std::countl_zero(us);
  const int sub = static_cast<int>((us >> (e - 2)) & 3);
  const int idx = 4 * (e - 1) + sub;
  return idx < bucket_count ? idx : bucket_count - 1;
}

// The middle of a bucket, in microseconds.
double bucket_mid_us(int idx) noexcept {
  if (idx < 4) return idx + 0.5;
  const int e = idx / 4 + 1;
  const int sub = idx % 4;
  const double lower = std::ldexp(4.0 + sub, e - 2);
  const double upper = std::ldexp(5.0 + sub, e - 2);
  return (lower + upper) / 2;
}

}  // namespace

void stats_recorder::histogram::record(std::chrono::nanoseconds elapsed) noexcept {
  const auto ns = static_cast<std::uint64_t>(elapsed.count() < 0 ? 0 : elapsed.count());
  counts_[static_cast<std::size_t>(bucket_of(ns / 1000, bucket_count))].fetch_add(1, relaxed);
  std::uint64_t seen = max_ns_.load(relaxed);
  while (ns > seen && !max_ns_.compare_exchange_weak(seen, ns, relaxed)) {
  }
}

latency_summary stats_recorder::histogram::summary() const noexcept {
  latency_summary out;
  std::array<std::uint64_t, bucket_count> counts{};
  for (int i = 0; i < bucket_count; ++i) {
    counts[static_cast<std::size_t>(i)] = counts_[static_cast<std::size_t>(i)].load(relaxed);
    out.count += counts[static_cast<std::size_t>(i)];
  }
  out.max_ms = static_cast<double>(max_ns_.load(relaxed)) / 1e6;
  if (out.count == 0) return out;
  auto percentile = [&](double p) {
    const auto rank = static_cast<std::uint64_t>(std::ceil(p * static_cast<double>(out.count)));
    std::uint64_t seen = 0;
    for (int i = 0; i < bucket_count; ++i) {
      seen += counts[static_cast<std::size_t>(i)];
      if (seen >= rank && seen > 0) return std::min(bucket_mid_us(i) / 1000.0, out.max_ms);
    }
    return out.max_ms;
  };
  out.p50_ms = percentile(0.50);
  out.p99_ms = percentile(0.99);
  return out;
}

void stats_recorder::histogram::reset() noexcept {
  for (auto& c : counts_) c.store(0, relaxed);
  max_ns_.store(0, relaxed);
}

void stats_recorder::record_check(const std::array<std::uint64_t, reason_count>& by_reason,
                                  std::chrono::nanoseconds elapsed) noexcept {
  for (int i = 0; i < reason_count; ++i) {
    const auto n = by_reason[static_cast<std::size_t>(i)];
    if (n != 0) by_reason_[static_cast<std::size_t>(i)].fetch_add(n, relaxed);
  }
  check_latency_.record(elapsed);
}

void stats_recorder::record_commit(std::uint64_t written, std::uint64_t conflicts,
                                   std::uint64_t failed, std::chrono::nanoseconds elapsed) noexcept {
  synced_.fetch_add(written, relaxed);
  conflicts_.fetch_add(conflicts, relaxed);
  failed_.fetch_add(failed, relaxed);
  commit_latency_.record(elapsed);
}

stats_snapshot stats_recorder::snapshot() const noexcept {
  stats_snapshot s;
  for (int i = 0; i < reason_count; ++i) {
    const auto n = by_reason_[static_cast<std::size_t>(i)].load(relaxed);
    s.by_reason[static_cast<std::size_t>(i)] = n;
    s.checked += n;
  }
  s.skipped = s.by_reason[static_cast<std::size_t>(reason::unchanged)];
  s.to_sync = s.checked - s.skipped;
  s.cache_errors = s.by_reason[static_cast<std::size_t>(reason::cache_check_error)];
  s.synced = synced_.load(relaxed);
  s.conflicts = conflicts_.load(relaxed);
  s.failed = failed_.load(relaxed);
  s.hit_rate = s.checked == 0 ? 0.0 : static_cast<double>(s.skipped) / static_cast<double>(s.checked);
  s.check_latency = check_latency_.summary();
  s.commit_latency = commit_latency_.summary();
  return s;
}

void stats_recorder::reset() noexcept {
  for (auto& c : by_reason_) c.store(0, relaxed);
  synced_.store(0, relaxed);
  conflicts_.store(0, relaxed);
  failed_.store(0, relaxed);
  check_latency_.reset();
  commit_latency_.reset();
}

}  // namespace tds
