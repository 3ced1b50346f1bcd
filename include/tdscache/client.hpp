// The cache client: batched checks (which entities must be re-synced, and why), atomic
// conditional commits, state reads, invalidation, warming, batch markers and statistics.
// The decision rules themselves are in decision.hpp; sockets and RESP stay inside src/.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tdscache/canonical.hpp"
#include "tdscache/config.hpp"
#include "tdscache/decision.hpp"
#include "tdscache/error.hpp"
#include "tdscache/state.hpp"
#include "tdscache/stats.hpp"

namespace tds {

// What a check saw in the cache for one entity. Hand it back to commit() untouched: the
// commit only writes if the cache still holds exactly this.
struct observed_state {
  lookup_kind kind = lookup_kind::error;  // error: nothing could be observed
  std::string value;                      // the stored bytes, when kind is present
};

struct check_outcome {
  reason why = reason::cache_check_error;
  observed_state observed;
  bool sync() const noexcept { return should_sync(why); }
};

struct check_result {
  std::vector<check_outcome> items;  // one per input entity, in input order
  std::array<std::size_t, reason_count> by_reason{};
  std::size_t to_sync = 0;
  std::size_t skipped = 0;
  std::size_t cache_errors = 0;  // items decided cache_check_error
  tds::error error;              // why lookups failed, when some did (code ok otherwise)
};

// One entity whose database write succeeded. The digest is the one check() was given, taken
// from the raw entity, not from a transformed copy.
struct commit_item {
  std::string_view entity_type;
  std::string_view entity_id;
  digest content_digest;
  hash_scheme scheme = hash_scheme::legacy;
  std::optional<std::string_view> last_modified_time;
  std::optional<std::string_view> local_id;
  const observed_state* observed = nullptr;  // from check(); nullptr: write unconditionally
};

enum class commit_outcome : int {
  written = 0,   // the state now records this digest
  conflict = 1,  // the state changed since the check: it was retracted, the next check resyncs
  error = 2,     // nothing known to be written (Redis failed, or the item was invalid)
};

struct commit_result {
  std::vector<commit_outcome> items;     // one per input item, in input order
  std::vector<std::int64_t> sync_counts;  // the new sync_count where written, else 0
  std::size_t written = 0;
  std::size_t conflicts = 0;
  std::size_t errors = 0;
  tds::error error;  // the first failure, when some item failed (code ok otherwise)
};

// What the cache held for a list of entities, read before their digests were known: made by
// client::observe(), consumed by client::check(items, observation). A caller that hashes its
// entities can have the reads in flight meanwhile. Opaque and move-only.
class observation {
 public:
  observation();
  observation(observation&&) noexcept;
  observation& operator=(observation&&) noexcept;
  ~observation();
  std::size_t size() const noexcept;  // how many entities it was made for

 private:
  friend class client;
  struct data;
  std::unique_ptr<data> data_;
};

// A row already in the database, for warm(): written without a prior check.
struct warm_record {
  std::string_view entity_id;
  digest content_digest;
  hash_scheme scheme = hash_scheme::legacy;
  std::optional<std::string_view> last_modified_time;
  std::optional<std::string_view> local_id;
};

// Batch markers live at "tds:batch:sync:{entity_type}:{batch_id}" (the legacy layout), with
// this TTL.
inline constexpr std::int64_t batch_marker_ttl_seconds = 7200;

// Thread safe: one client may be shared by any number of threads. Calls that talk to Redis are
// serialized on the client's single connection by a mutex (a batch is one pipeline, so
// parallel calls would not be faster on one connection; a check's decisions are made under it
// too, as its replies stream in); stats() never waits for them. Threads that want parallel
// round trips use one client each.
// Nothing throws: failures come back as values, and checks fail open (cache_check_error,
// which means sync). Redis may be down when the client is created; it connects on first use.
class client {
 public:
  static result<client> connect(client_config config);
  static result<client> from_url(std::string_view url);

  client(client&&) noexcept;
  client& operator=(client&&) noexcept;
  ~client();

  // One decision per entity, in input order, following decide()'s rule order. All lookups go
  // out as ceil(N / mget_chunk) MGETs in one pipeline: one round trip whatever N is.
  check_result check(std::span<const entity_check> items) noexcept;

  // check() in two halves, for callers that know their ids before their digests: observe()
  // sends and reads the same MGETs (it looks at entity_type and entity_id only), and
  // check(items, observation) decides, with the digests filled in. The items must be the ones
  // observed, in the same order; otherwise every entity is answered cache_check_error. Either
  // half may run on any thread; statistics count the two halves' time, not the gap between.
  observation observe(std::span<const entity_check> items) noexcept;
  check_result check(std::span<const entity_check> items, observation&& seen) noexcept;

  // Records the new states in one pipeline of server-side scripts: each increments
  // sync_count atomically and, when `observed` is given, writes only if the cache still holds
  // what the check saw; otherwise it retracts the entry (conflict). See docs/commit-protocol.md.
  commit_result commit(std::span<const commit_item> items) noexcept;

  // The stored state; nullopt when there is none. A value that does not decode is an error.
  result<std::optional<entity_state>> get_state(std::string_view entity_type,
                                                std::string_view entity_id) noexcept;
  // Many at once (one round trip); per id: the state, nullopt, or the decode error.
  result<std::vector<result<std::optional<entity_state>>>> get_states(
      std::string_view entity_type, std::span<const std::string_view> entity_ids) noexcept;

  // Deletes one entity's state; returns how many keys existed (0 or 1).
  result<std::uint64_t> invalidate(std::string_view entity_type, std::string_view entity_id) noexcept;
  // Deletes every state of a type with SCAN MATCH + UNLINK (never KEYS); glob characters in
  // the prefix or type are escaped, so they match only themselves. Returns keys removed.
  result<std::uint64_t> invalidate_type(std::string_view entity_type) noexcept;

  // How many states are stored, per entity type, by SCAN MATCH over every node (never KEYS).
  // The type is the key's segment after the prefix, up to the next ':' (ids may hold ':';
  // types should not). Keys SCAN reports twice are counted once. A diagnostic for operators:
  // it reads every key name, so it costs time and memory proportional to the cache's size.
  result<std::map<std::string, std::uint64_t, std::less<>>> count_states() noexcept;

  // Unconditional commit of rows already in the database (cache warming).
  commit_result warm(std::string_view entity_type, std::span<const warm_record> records) noexcept;

  // Stores stats_json (any bytes; JSON by convention) under the batch marker, with a TTL of
  // batch_marker_ttl_seconds.
  result<void> mark_batch_complete(std::string_view entity_type, std::string_view batch_id,
                                   std::string_view stats_json) noexcept;
  // Whether a marker of this type was written within the last window_seconds. A marker's age
  // is read from its remaining TTL; a marker without a TTL has an unknown age and does not
  // count (the cautious answer: "no", so the caller syncs).
  result<bool> was_batch_synced_recently(std::string_view entity_type,
                                         std::int64_t window_seconds) noexcept;

  // A PING round trip (connects if needed). Useful at startup; checks do not need it.
  result<void> ping() noexcept;

  stats_snapshot stats() const noexcept;
  void reset_stats() noexcept;
  const client_config& config() const noexcept;
  // Connections opened or attempted since creation (diagnostics; tests use it to show that
  // an open circuit breaker keeps the client off the network).
  std::uint64_t connect_attempts() const noexcept;

 private:
  struct impl;
  explicit client(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

}  // namespace tds
