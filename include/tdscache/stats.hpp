// Cache statistics: per-reason counters, check/commit outcomes, hit rate and latency
// percentiles. stats_recorder is what a client updates (lock-free, any thread); a snapshot is
// a plain copy. Nothing here touches Redis.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "tdscache/decision.hpp"

namespace tds {

struct latency_summary {
  std::uint64_t count = 0;  // calls measured
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

struct stats_snapshot {
  std::array<std::uint64_t, reason_count> by_reason{};  // indexed by static_cast<int>(reason)
  std::uint64_t checked = 0;       // entities checked
  std::uint64_t skipped = 0;       // decided unchanged
  std::uint64_t to_sync = 0;       // decided anything else
  std::uint64_t cache_errors = 0;  // decided cache_check_error (Redis failed for them)
  std::uint64_t synced = 0;        // commits written
  std::uint64_t conflicts = 0;     // commits refused because the state moved since the check
  std::uint64_t failed = 0;        // commits that could not be applied (error)
  double hit_rate = 0;             // skipped / checked: the share of entities a check spared
  latency_summary check_latency;   // per check() call
  latency_summary commit_latency;  // per commit()/warm() call
};

// Thread safe: every member may be called from any thread at any time. Counters are relaxed
// atomics, so a snapshot taken during a call may show that call half-counted.
class stats_recorder {
 public:
  void record_check(const std::array<std::uint64_t, reason_count>& by_reason,
                    std::chrono::nanoseconds elapsed) noexcept;
  void record_commit(std::uint64_t written, std::uint64_t conflicts, std::uint64_t failed,
                     std::chrono::nanoseconds elapsed) noexcept;
  stats_snapshot snapshot() const noexcept;
  void reset() noexcept;

 private:
  // Log-linear buckets over microseconds: 4 per power of two (error < 19%), from 1 us up
  // to 2^40 us (12 days). Lock-free: one relaxed increment per record.
  class histogram {
   public:
    static constexpr int sub_buckets = 4;
    static constexpr int bucket_count = 41 * sub_buckets;
    void record(std::chrono::nanoseconds elapsed) noexcept;
    latency_summary summary() const noexcept;
    void reset() noexcept;

   private:
    std::array<std::atomic<std::uint64_t>, bucket_count> counts_{};
    std::atomic<std::uint64_t> max_ns_{0};
  };

  std::array<std::atomic<std::uint64_t>, reason_count> by_reason_{};
  std::atomic<std::uint64_t> synced_{0};
  std::atomic<std::uint64_t> conflicts_{0};
  std::atomic<std::uint64_t> failed_{0};
  histogram check_latency_;
  histogram commit_latency_;
};

}  // namespace tds
