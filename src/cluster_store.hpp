// The Redis Cluster store: keys routed to primaries by hash slot, MOVED/ASK/TRYAGAIN followed,
// the slot map read with CLUSTER SLOTS. Internal; what the commands mean is client.cpp's, and
// sockets are transport.hpp's. The single-node store is single_store.cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "store.hpp"

namespace tds::detail {

// Timing and retry bounds of the cluster store. Clients get the defaults; tests narrow them.
struct cluster_tuning {
  // A MOVED reply (or a node that stopped answering) asks for a full slot-map refresh, at most
  // once per cooldown: a MOVED reply already names the slot's new owner, which is used at once,
  // so the refresh only has to catch the rest of a resharding, and a storm of MOVED replies
  // over many batches costs one CLUSTER SLOTS per second, not one per batch.
  std::chrono::milliseconds refresh_cooldown{1000};
  // The slot map is read again when it is older than this, even without a MOVED: it picks up
  // failovers and new primaries before a request runs into them.
  std::chrono::milliseconds refresh_interval{30000};
  // Rounds of one operation: the first sends, the rest follow redirections. Five is what
  // hiredis-cluster allows; a slot rarely needs more than two (MOVED, then ASK).
  int max_rounds = 5;
  // Pause before a round that retries a TRYAGAIN, doubled each round (10, 20, 40, 80 ms): a
  // migration moves a slot's keys in milliseconds, and the retried keys go one per command,
  // which a migration can no longer refuse with TRYAGAIN.
  std::chrono::milliseconds tryagain_backoff{10};
};

// Process-wide counts of what the cluster stores met, for diagnostics and tests. Relaxed
// atomics: a snapshot taken during an operation may show it half counted.
struct cluster_counters {
  std::atomic<std::uint64_t> moved{0};             // MOVED replies
  std::atomic<std::uint64_t> ask{0};               // ASK replies
  std::atomic<std::uint64_t> tryagain{0};          // TRYAGAIN replies
  std::atomic<std::uint64_t> noscript{0};          // NOSCRIPT replies (script reloaded on that node)
  std::atomic<std::uint64_t> refreshes{0};         // slot maps read successfully
  std::atomic<std::uint64_t> refresh_failures{0};  // refreshes that found no node able to answer
  std::atomic<std::uint64_t> node_failures{0};     // per-node exchanges that broke (down, timeout)
  std::atomic<std::uint64_t> exhausted{0};         // items failed because the round budget ran out
};
cluster_counters& cluster_diagnostics() noexcept;

// Connects to nothing: the slot map is read on first use, so a cluster that is down at
// creation makes the first operations fail (and sync), not the constructor.
result<std::unique_ptr<store>> make_cluster_store(const client_config& cfg,
                                                  const cluster_tuning& tuning = {});

}  // namespace tds::detail
