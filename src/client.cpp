// The decision engine: turns entity batches into store calls and store answers into decisions
// and commit outcomes; owns the commit script, the circuit breaker and the statistics.
// No socket code and no routing here: those are the store's (store.hpp, transport.hpp).
#include "tdscache/client.hpp"

#include <openssl/evp.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <unordered_set>
#include <new>
#include <string>
#include <utility>

#include "store.hpp"
#include "tdscache/timestamp.hpp"

namespace tds {
namespace {

using detail::deadline;
using detail::lookup_result;
using detail::no_deadline;
using steady = std::chrono::steady_clock;

// The commit script. Runs atomically on the server, one call per key (several keys may share
// one EVALSHA; see store.hpp). String operations only: cjson costs ~5x a SET per key.
// The protocol and its invariant are argued in docs/commit-protocol.md.
constexpr std::string_view commit_script_source = R"lua(-- tdscache commit v3
-- ARGV[1] = TTL in seconds ('0': none). Then per key i, ARGV[3i-1 .. 3i+1] = mode, a, b:
--   m: write a if the key is missing
--   p: write b if the key still holds a (the value the check observed)
--   u: write a .. (stored sync_count + 1) .. b, whatever is stored
--   x: nothing was observed; retract (a: this commit's value, to shape the marker)
-- A condition that fails retracts the key. Result per key: 1 written (m, p), the sync_count
-- written (u), 0 conflict (retracted), or the error of the write.
local ttl = ARGV[1]
local function write(key, value, get_old)
  if ttl == '0' then
    if get_old then return redis.pcall('SET', key, value, 'GET') end
    return redis.pcall('SET', key, value)
  end
  if get_old then return redis.pcall('SET', key, value, 'EX', ttl, 'GET') end
  return redis.pcall('SET', key, value, 'EX', ttl)
end
local function failed(r)
  return type(r) == 'table' and r.err ~= nil
end
-- A retraction must not leave the key missing: a worker whose check saw it missing before
-- the winning commit would find it missing again, and write. The marker is this commit's own
-- value with an all-zero content_hash: as unique as any state (its cached_at and count), and
-- it matches no digest, so every reader syncs. When it cannot be written (OOM), delete.
local function retract(key, value)
  local marker, n = string.gsub(value, '"content_hash": "%x+"', '"content_hash": "' .. string.rep('0', 64) .. '"', 1)
  if n == 1 and not failed(write(key, marker, false)) then return end
  redis.pcall('DEL', key)
end
local function stored_count(v)
  local at = string.find(v, '"sync_count": ', 1, true)
  local n
  if at then n = tonumber(string.match(v, '^%d+', at + 14)) end
  if not n then n = tonumber(string.match(v, '"sync_count"%s*:%s*(%d+)')) end
  if not n or n >= 1e15 then return 0 end
  return n
end
local out = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local b = 3 * i - 1
  local mode = ARGV[b]
  if mode == 'u' then
    local cur = redis.pcall('GET', key)
    local count = 1
    if type(cur) == 'string' then count = stored_count(cur) + 1 end
    local r = write(key, ARGV[b + 1] .. string.format('%d', count) .. ARGV[b + 2], false)
    if failed(r) then out[i] = r else out[i] = count end
  elseif mode == 'm' or mode == 'p' then
    local expected, value = false, ARGV[b + 1]
    if mode == 'p' then expected, value = ARGV[b + 1], ARGV[b + 2] end
    -- Set and read the old value in one call; a mismatch is undone by the delete below
    -- before any other client can see it (the script is atomic).
    local old = write(key, value, true)
    if failed(old) then
      if string.sub(old.err, 1, 9) == 'WRONGTYPE' then
        old = true  -- a non-string where a state should be: never what was observed
      else
        -- The write was refused (OOM, ...). The conflict rule must hold anyway.
        local cur = redis.pcall('GET', key)
        if cur == expected then out[i] = old else retract(key, value); out[i] = 0 end
      end
    end
    if out[i] == nil then
      if old == expected then out[i] = 1 else retract(key, value); out[i] = 0 end
    end
  else
    retract(key, ARGV[b + 1])
    out[i] = 0
  end
end
return out
)lua";
constexpr std::size_t commit_args_per_key = 3;

constexpr std::string_view batch_marker_prefix = "tds:batch:sync:";

std::string sha1_hex(std::string_view text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), md, &len, EVP_sha1(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

// The stored sync_count, found the way the script finds it (first `"sync_count": ` then a
// looser spelling), so that a conditional write's count is the stored count + 1 exactly.
std::int64_t stored_sync_count(std::string_view value) noexcept {
  auto digits_at = [&](std::size_t pos) -> std::optional<std::int64_t> {
    std::int64_t n = 0;
    std::size_t i = pos;
    while (i < value.size() && value[i] >= '0' && value[i] <= '9') {
      if (n >= 100'000'000'000'000) return std::nullopt;  // >= 1e15: treated as corrupt
      n = n * 10 + (value[i] - '0');
      ++i;
    }
    if (i == pos) return std::nullopt;
    return n;
  };
  constexpr std::string_view exact = "\"sync_count\": ";
  if (const auto at = value.find(exact); at != std::string_view::npos) {
    if (auto n = digits_at(at + exact.size())) return *n;
  }
  constexpr std::string_view name = "\"sync_count\"";
  for (auto at = value.find(name); at != std::string_view::npos; at = value.find(name, at + 1)) {
    std::size_t i = at + name.size();
    auto skip_space = [&] {
      while (i < value.size() && (value[i] == ' ' || value[i] == '\t' || value[i] == '\n' ||
                                  value[i] == '\r' || value[i] == '\f' || value[i] == '\v')) {
        ++i;
      }
    };
    skip_space();
    if (i >= value.size() || value[i] != ':') continue;
    ++i;
    skip_space();
    if (auto n = digits_at(i)) return *n;
  }
  return 0;
}

// The state key layout of state.hpp's state_key(), "{prefix}:{entity_type}:{entity_id}",
// written into a shared buffer (tests compare the two).
std::size_t key_size(std::string_view prefix, std::string_view type, std::string_view id) noexcept {
  return prefix.size() + type.size() + id.size() + 2;
}
// Writes the key's key_size() bytes at out; returns their end.
char* write_key(char* out, std::string_view prefix, std::string_view type, std::string_view id) noexcept {
  const auto put = [&](std::string_view text) {
    if (!text.empty()) std::memcpy(out, text.data(), text.size());
    out += text.size();
  };
  put(prefix);
  *out++ = ':';
  put(type);
  *out++ = ':';
  put(id);
  return out;
}
void append_key(std::string& out, std::string_view prefix, std::string_view type, std::string_view id) {
  const std::size_t at = out.size();
  out.resize(at + key_size(prefix, type, id));
  write_key(out.data() + at, prefix, type, id);
}

bool is_transport_status(status s) noexcept {
  return s == status::connect_failed || s == status::timeout || s == status::io ||
         s == status::protocol || s == status::tls;
}

error from_exception() noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return error{status::out_of_memory, "out of memory", no_offset};
  } catch (...) {
    return error{status::internal, "internal error (exception caught at the API boundary)", no_offset};
  }
}

result<void> validate(const client_config& c) {
  auto bad = [](std::string why) { return result<void>(status::invalid_argument, std::move(why)); };
  if (c.unix_path.empty() && !c.cluster && c.host.empty()) return bad("config: host is empty");
  if (c.unix_path.empty() && (c.port < 1 || c.port > 65535)) return bad("config: port must be 1-65535");
  if (c.db < 0) return bad("config: db must be >= 0");
  if (c.connect_timeout.count() <= 0 || c.command_timeout.count() <= 0) {
    return bad("config: connect_timeout and command_timeout must be positive");
  }
  if (c.keepalive_seconds < 0) return bad("config: keepalive_seconds must be >= 0 (0 = off)");
  if (c.key_prefix.empty()) return bad("config: key_prefix is empty");
  if (c.ttl_seconds < 0) return bad("config: ttl_seconds must be >= 0 (0 = no TTL)");
  if (c.mget_chunk == 0 || c.mget_chunk > 1'000'000) {
    // The upper bound keeps every MGET reply under detail::max_reply_elements.
    return bad("config: mget_chunk must be from 1 to 1000000");
  }
  if (c.breaker_cooldown.count() < 0) return bad("config: breaker_cooldown must be >= 0");
  if (c.reconnect_backoff_min.count() < 0 || c.reconnect_backoff_max < c.reconnect_backoff_min) {
    return bad("config: need 0 <= reconnect_backoff_min <= reconnect_backoff_max");
  }
  if (c.cluster && c.cluster_seeds.empty()) return bad("config: cluster mode needs seeds");
  return {};
}

}  // namespace

struct client::impl {
  client_config cfg;
  std::unique_ptr<detail::store> store;
  detail::script commit_script;
  std::string ttl_text;
  stats_recorder recorder;

  // Guards store and breaker state: one pipeline at a time on the connection.
  std::mutex mu;
  int consecutive_failures = 0;
  bool breaker_open = false;  // open, or half-open once retry_at has passed
  steady::time_point retry_at{};
  std::string breaker_cause;

  // Call with mu held. A refusal while the breaker is open costs no network at all.
  std::optional<error> gate() {
    if (!breaker_open || cfg.breaker_failures <= 0) return std::nullopt;
    const auto now = steady::now();
    if (now >= retry_at) return std::nullopt;  // half-open: this caller is the one probe
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(retry_at - now);
    return make_error(status::circuit_open,
                      "Redis skipped for another " + std::to_string(left.count() + 1) +
                          " ms after " + std::to_string(consecutive_failures) +
                          " consecutive failures (last: " + breaker_cause + ")");
  }

  detail::batch_report fetch(std::span<const std::string_view> keys, std::vector<detail::lookup_result>& lookups,
                             const detail::store::ready_handler& on_ready);
  void finish_check(check_result& out, steady::duration elapsed) noexcept;

  // Call with mu held, after an operation that reached the gate.
  void settle(bool unreachable, const error& why) {
    if (!unreachable) {
      consecutive_failures = 0;
      breaker_open = false;
      return;
    }
    ++consecutive_failures;
    breaker_cause = why.message;
    if (cfg.breaker_failures > 0 &&
        (breaker_open || consecutive_failures >= cfg.breaker_failures)) {
      breaker_open = true;
      retry_at = steady::now() + cfg.breaker_cooldown;
    }
  }

  template <class T>
  void settle_result(const result<T>& r) {
    settle(!r.ok() && is_transport_status(r.code()), r.ok() ? error{} : r.error());
  }

  // Call with mu held. Every key matching the glob (SCAN MATCH on every node), each handed to
  // on_key by reference so it may be moved from.
  template <class OnKey>
  result<void> scan_keys(std::string_view match, OnKey&& on_key) {
    auto scanned = store->scan(
        match,
        [&](std::vector<std::string>& keys) -> result<void> {
          for (auto& k : keys) on_key(k);
          return {};
        },
        no_deadline);
    settle_result(scanned);
    return scanned;
  }

  commit_result commit_items(std::span<const commit_item> items);
};

client::client(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;
client::~client() = default;

result<client> client::connect(client_config config) {
  try {
    if (auto v = validate(config); !v.ok()) return v.error();
    auto p = std::make_unique<impl>();
    p->cfg = std::move(config);
    auto s = detail::make_store(p->cfg);
    if (!s.ok()) return s.error();
    p->store = std::move(s).value();
    p->commit_script.source = commit_script_source;
    p->commit_script.sha1 = sha1_hex(commit_script_source);
    p->commit_script.args_per_key = commit_args_per_key;
    p->ttl_text = std::to_string(p->cfg.ttl_seconds);
    return client(std::move(p));
  } catch (...) {
    return from_exception();
  }
}

result<client> client::from_url(std::string_view url) {
  auto cfg = parse_redis_url(url);
  if (!cfg.ok()) return cfg.error();
  return connect(std::move(cfg).value());
}

namespace {

// The keys of a check's entities, in one arena (one allocation per batch instead of one per
// entity). Entities without an id have no key: decide() answers no_id for them.
struct key_plan {
  std::string arena;
  std::vector<std::string_view> keys;
  std::vector<std::size_t> item_of_key;  // keys[k] belongs to items[item_of_key[k]]
};

key_plan plan_keys(const std::string& prefix, std::span<const entity_check> items) {
  key_plan plan;
  std::size_t arena_size = 0;
  std::size_t with_id = 0;
  for (const auto& it : items) {
    if (it.entity_id.empty()) continue;
    arena_size += key_size(prefix, it.entity_type, it.entity_id);
    ++with_id;
  }
  // Sized once and written through a pointer: one key is three copies, not five appends
  // that each check the capacity; the views stay valid because the arena never grows.
  plan.arena.resize(arena_size);
  plan.keys.reserve(with_id);
  plan.item_of_key.reserve(with_id);
  char* at = plan.arena.data();
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].entity_id.empty()) continue;
    char* const start = at;
    at = write_key(at, prefix, items[i].entity_type, items[i].entity_id);
    plan.keys.emplace_back(start, static_cast<std::size_t>(at - start));
    plan.item_of_key.push_back(i);
  }
  return plan;
}

// The entities without an id have no key, so no read: decide() answers no_id for them.
void decide_without_ids(check_result& out, std::span<const entity_check> items, const decision_policy& policy,
                        instant now) noexcept {
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].entity_id.empty()) out.items[i].why = decide(items[i], cached_lookup{}, policy, now);
  }
}

// One entity's decision on what was read for its key. The value moves into the outcome, where
// commit() compares against it.
void decide_one(check_outcome& o, const entity_check& item, detail::lookup_result& found,
                const decision_policy& policy, instant now) noexcept {
  o.why = decide(item, cached_lookup{found.kind, found.value}, policy, now);
  o.observed.kind = found.kind;
  o.observed.value = std::move(found.value);
}

}  // namespace

struct observation::data {
  key_plan plan;
  std::size_t items = 0;
  std::vector<detail::lookup_result> lookups;
  detail::batch_report report;
  steady::duration elapsed{};
};

observation::observation() = default;
observation::observation(observation&&) noexcept = default;
observation& observation::operator=(observation&&) noexcept = default;
observation::~observation() = default;
std::size_t observation::size() const noexcept { return data_ ? data_->items : 0; }

// The reads of a check: every key's MGET in one pipeline, through the circuit breaker.
// on_ready(first, count) runs as each reply lands, so decisions overlap the next replies.
detail::batch_report client::impl::fetch(std::span<const std::string_view> keys,
                                         std::vector<detail::lookup_result>& lookups,
                                         const detail::store::ready_handler& on_ready) {
  detail::batch_report report;
  if (keys.empty()) return report;
  std::lock_guard<std::mutex> lock(mu);
  if (auto refused = gate()) {
    lookups.assign(keys.size(), detail::lookup_result{});
    report.note(*refused, keys.size(), false);
    if (on_ready) on_ready(0, keys.size());
  } else {
    report = store->mget(keys, lookups, on_ready, no_deadline);
    settle(report.unreachable, report.first_error);
  }
  return report;
}

// The totals and the statistics of a check whose decisions are all made. Nothing here can
// fail, so the totals always agree with the decisions, failed checks included.
void client::impl::finish_check(check_result& out, steady::duration elapsed) noexcept {
  std::array<std::uint64_t, reason_count> counts{};
  for (const auto& o : out.items) {
    const auto r = static_cast<std::size_t>(o.why);
    ++out.by_reason[r];
    ++counts[r];
  }
  out.skipped = out.by_reason[static_cast<std::size_t>(reason::unchanged)];
  out.to_sync = out.items.size() - out.skipped;
  out.cache_errors = out.by_reason[static_cast<std::size_t>(reason::cache_check_error)];
  recorder.record_check(counts, elapsed);
}

// Fail open: whatever went wrong, every entity syncs.
static void fail_open(check_result& out, error why) {
  out.error = std::move(why);
  for (auto& o : out.items) {
    o.why = reason::cache_check_error;
    o.observed = observed_state{};
  }
}

check_result client::check(std::span<const entity_check> items) noexcept {
  const auto started = steady::now();
  check_result out;
  const decision_policy policy{impl_->cfg.max_age_seconds};
  const instant now = now_utc();
  try {
    out.items.resize(items.size());
    const key_plan plan = plan_keys(impl_->cfg.key_prefix, items);
    std::vector<detail::lookup_result> lookups;
    // Decisions are made as each MGET reply lands, while the server works on the next ones.
    auto decide_keys = [&](std::size_t first, std::size_t count) {
      for (std::size_t k = first; k < first + count; ++k) {
        const std::size_t i = plan.item_of_key[k];
        decide_one(out.items[i], items[i], lookups[k], policy, now);
      }
    };
    out.error = impl_->fetch(plan.keys, lookups, decide_keys).first_error;
    decide_without_ids(out, items, policy, now);
  } catch (...) {
    fail_open(out, from_exception());
  }
  impl_->finish_check(out, steady::now() - started);
  return out;
}

observation client::observe(std::span<const entity_check> items) noexcept {
  const auto started = steady::now();
  observation seen;
  try {
    seen.data_ = std::make_unique<observation::data>();
    observation::data& d = *seen.data_;
    d.items = items.size();
    d.plan = plan_keys(impl_->cfg.key_prefix, items);
    d.report = impl_->fetch(d.plan.keys, d.lookups, nullptr);
    d.elapsed = steady::now() - started;
  } catch (...) {
    seen.data_.reset();  // check() answers cache_check_error for every entity
  }
  return seen;
}

check_result client::check(std::span<const entity_check> items, observation&& seen) noexcept {
  const auto started = steady::now();
  check_result out;
  const decision_policy policy{impl_->cfg.max_age_seconds};
  const instant now = now_utc();
  steady::duration observing{};
  try {
    out.items.resize(items.size());
    observation::data* d = seen.data_.get();
    if (d == nullptr) {
      fail_open(out, make_error(status::internal, "the cache could not be observed for this check"));
    } else {
      observing = d->elapsed;
      // Deciding an entity on another entity's state could skip a change: the items must be
      // the ones observed, key for key.
      const key_plan plan = plan_keys(impl_->cfg.key_prefix, items);
      if (d->items != items.size() || plan.arena != d->plan.arena || plan.item_of_key != d->plan.item_of_key ||
          d->lookups.size() != d->plan.keys.size()) {
        fail_open(out, make_error(status::invalid_argument,
                                  "check(items, observation): the items are not the ones observed"));
      } else {
        out.error = d->report.first_error;
        for (std::size_t k = 0; k < plan.item_of_key.size(); ++k) {
          const std::size_t i = plan.item_of_key[k];
          decide_one(out.items[i], items[i], d->lookups[k], policy, now);
        }
        decide_without_ids(out, items, policy, now);
      }
    }
  } catch (...) {
    fail_open(out, from_exception());
  }
  seen.data_.reset();
  impl_->finish_check(out, observing + (steady::now() - started));
  return out;
}

commit_result client::impl::commit_items(std::span<const commit_item> items) {
  commit_result out;
  const std::size_t n = items.size();
  out.items.assign(n, commit_outcome::error);
  out.sync_counts.assign(n, 0);

  // Every argument goes into one arena (or stays in the caller's observed value); views are
  // made once the arena has stopped growing.
  struct piece {
    std::size_t offset = 0;
    std::size_t length = 0;
    const char* external = nullptr;  // set: a view of caller memory, not of the arena
  };
  struct call_plan {
    std::string_view mode;
    piece key, a, b;
    std::int64_t count = 0;  // the sync_count a conditional write stores; 0: the script says
  };
  std::string arena;
  arena.reserve(n * 384);
  std::vector<call_plan> plans;
  plans.reserve(n);
  std::vector<std::size_t> item_of_call;
  item_of_call.reserve(n);
  auto append = [&](std::string_view text) {
    const piece p{arena.size(), text.size(), nullptr};
    arena.append(text);
    return p;
  };

  const std::string cached_at = format_cached_at(now_utc());
  entity_state st;
  st.cached_at = cached_at;
  for (std::size_t i = 0; i < n; ++i) {
    const commit_item& it = items[i];
    if (it.entity_id.empty()) {
      if (out.error.code == status::ok) {
        out.error = make_error(status::invalid_argument, "commit: an entity without an id has no cache entry");
      }
      continue;
    }
    call_plan plan;
    plan.key.offset = arena.size();
    append_key(arena, cfg.key_prefix, it.entity_type, it.entity_id);
    plan.key.length = arena.size() - plan.key.offset;
    st.entity_type.assign(it.entity_type);
    st.entity_id.assign(it.entity_id);
    if (it.local_id) st.local_id.emplace(*it.local_id);
    else st.local_id.reset();
    st.content_hash.resize(64);
    it.content_digest.hex_into(st.content_hash.data());
    if (it.last_modified_time) st.last_modified_time.emplace(*it.last_modified_time);
    else st.last_modified_time.reset();
    // A legacy-scheme entry is written without the field, byte-identical to the legacy
    // service's values (absent means legacy).
    st.scheme = it.scheme == hash_scheme::legacy ? std::nullopt : std::optional<hash_scheme>(it.scheme);
    const encoded_state parts = encode_state_parts(st);
    if (it.observed == nullptr) {
      plan.mode = "u";
      plan.a = append(parts.head);
      plan.b = append(parts.tail);
    } else if (it.observed->kind == lookup_kind::error) {
      // Nothing was observed, so nothing can be vouched for: the key is retracted, and this
      // value only shapes the marker (see the protocol doc).
      plan.mode = "x";
      plan.a.offset = arena.size();
      arena.append(parts.head).append("1").append(parts.tail);
      plan.a.length = arena.size() - plan.a.offset;
    } else {
      const bool present = it.observed->kind == lookup_kind::present;
      plan.count = present ? stored_sync_count(it.observed->value) + 1 : 1;
      piece value{arena.size(), 0, nullptr};
      arena.append(parts.head).append(std::to_string(plan.count)).append(parts.tail);
      value.length = arena.size() - value.offset;
      if (present) {
        plan.mode = "p";
        plan.a = piece{0, it.observed->value.size(), it.observed->value.data()};
        plan.b = value;
      } else {
        plan.mode = "m";
        plan.a = value;
      }
    }
    plans.push_back(plan);
    item_of_call.push_back(i);
  }

  detail::script_calls calls;
  calls.shared_args.push_back(ttl_text);
  calls.keys.reserve(plans.size());
  calls.args.reserve(plans.size() * commit_args_per_key);
  auto view = [&](const piece& p) {
    return std::string_view(p.external != nullptr ? p.external : arena.data() + p.offset, p.length);
  };
  for (const auto& plan : plans) {
    calls.keys.push_back(view(plan.key));
    calls.args.insert(calls.args.end(), {plan.mode, view(plan.a), view(plan.b)});
  }

  std::vector<detail::call_result> results;
  detail::batch_report report;
  if (!calls.keys.empty()) {
    std::lock_guard<std::mutex> lock(mu);
    if (auto refused = gate()) {
      results.resize(calls.keys.size());
      for (auto& r : results) r.code = refused->code;
      report.note(*refused, calls.keys.size(), false);
    } else {
      report = store->eval_each(commit_script, calls, results, no_deadline);
      settle(report.unreachable, report.first_error);
    }
  }
  if (out.error.code == status::ok) out.error = report.first_error;
  for (std::size_t c = 0; c < item_of_call.size(); ++c) {
    const std::size_t i = item_of_call[c];
    const detail::call_result& r = results[c];
    if (r.code == status::ok && r.value.type == detail::reply::kind::integer) {
      if (r.value.integer > 0) {
        out.items[i] = commit_outcome::written;
        out.sync_counts[i] = plans[c].count != 0 ? plans[c].count : r.value.integer;
      } else {
        out.items[i] = commit_outcome::conflict;
      }
    } else if (r.code == status::ok && out.error.code == status::ok) {
      out.error = make_error(status::protocol, "commit script gave an unexpected reply");
    }
  }
  for (const auto o : out.items) {
    if (o == commit_outcome::written) ++out.written;
    else if (o == commit_outcome::conflict) ++out.conflicts;
    else ++out.errors;
  }
  return out;
}

commit_result client::commit(std::span<const commit_item> items) noexcept {
  const auto started = steady::now();
  commit_result out;
  try {
    out = impl_->commit_items(items);
  } catch (...) {
    out = commit_result{};
    out.items.assign(items.size(), commit_outcome::error);
    out.sync_counts.assign(items.size(), 0);
    out.errors = items.size();
    out.error = from_exception();
  }
  impl_->recorder.record_commit(out.written, out.conflicts, out.errors, steady::now() - started);
  return out;
}

commit_result client::warm(std::string_view entity_type,
                           std::span<const warm_record> records) noexcept {
  const auto started = steady::now();
  commit_result out;
  try {
    std::vector<commit_item> items;
    items.reserve(records.size());
    for (const auto& r : records) {
      items.push_back(commit_item{entity_type, r.entity_id, r.content_digest, r.scheme,
                                  r.last_modified_time, r.local_id, nullptr});
    }
    out = impl_->commit_items(items);
  } catch (...) {
    out = commit_result{};
    out.items.assign(records.size(), commit_outcome::error);
    out.sync_counts.assign(records.size(), 0);
    out.errors = records.size();
    out.error = from_exception();
  }
  impl_->recorder.record_commit(out.written, out.conflicts, out.errors, steady::now() - started);
  return out;
}

result<std::vector<result<std::optional<entity_state>>>> client::get_states(
    std::string_view entity_type, std::span<const std::string_view> entity_ids) noexcept {
  try {
    std::vector<std::string> key_storage;
    key_storage.reserve(entity_ids.size());
    for (const auto id : entity_ids) key_storage.push_back(state_key(impl_->cfg.key_prefix, entity_type, id));
    std::vector<std::string_view> keys(key_storage.begin(), key_storage.end());
    std::vector<lookup_result> lookups;
    detail::batch_report report;
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      if (auto refused = impl_->gate()) return *refused;
      report = impl_->store->mget(keys, lookups, {}, no_deadline);
      impl_->settle(report.unreachable, report.first_error);
    }
    if (report.unreachable) return report.first_error;
    std::vector<result<std::optional<entity_state>>> out;
    out.reserve(entity_ids.size());
    for (auto& found : lookups) {
      switch (found.kind) {
        case lookup_kind::missing: out.emplace_back(std::optional<entity_state>{}); break;
        case lookup_kind::present: {
          auto decoded = decode_state(found.value);
          if (decoded.ok()) {
            out.emplace_back(std::optional<entity_state>(std::move(decoded).value()));
          } else {
            out.emplace_back(decoded.error());
          }
          break;
        }
        default: out.emplace_back(report.first_error); break;
      }
    }
    return out;
  } catch (...) {
    return from_exception();
  }
}

result<std::optional<entity_state>> client::get_state(std::string_view entity_type,
                                                      std::string_view entity_id) noexcept {
  const std::string_view ids[] = {entity_id};
  auto all = get_states(entity_type, ids);
  if (!all.ok()) return all.error();
  return std::move(all.value().front());
}

result<std::uint64_t> client::invalidate(std::string_view entity_type,
                                         std::string_view entity_id) noexcept {
  try {
    const std::string key = state_key(impl_->cfg.key_prefix, entity_type, entity_id);
    const std::string_view keys[] = {key};
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (auto refused = impl_->gate()) return *refused;
    auto r = impl_->store->unlink(keys, no_deadline);
    impl_->settle_result(r);
    return r;
  } catch (...) {
    return from_exception();
  }
}

result<std::uint64_t> client::invalidate_type(std::string_view entity_type) noexcept {
  try {
    const std::string match = detail::escape_glob(impl_->cfg.key_prefix) + ":" +
                              detail::escape_glob(entity_type) + ":*";
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (auto refused = impl_->gate()) return *refused;
    auto r = impl_->store->scan_unlink(match, no_deadline);
    impl_->settle_result(r);
    return r;
  } catch (...) {
    return from_exception();
  }
}

result<std::map<std::string, std::uint64_t, std::less<>>> client::count_states() noexcept {
  try {
    const std::string head = impl_->cfg.key_prefix + ":";
    const std::string match = detail::escape_glob(impl_->cfg.key_prefix) + ":*";
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (auto refused = impl_->gate()) return *refused;
    // Every key once: SCAN may report a key twice while the server resizes its table.
    std::unordered_set<std::string> seen;
    auto scanned = impl_->scan_keys(match, [&](std::string& k) { seen.insert(std::move(k)); });
    if (!scanned.ok()) return scanned.error();
    std::map<std::string, std::uint64_t, std::less<>> counts;
    for (const auto& key : seen) {
      if (key.size() <= head.size() || key.compare(0, head.size(), head) != 0) continue;
      const std::string_view rest = std::string_view(key).substr(head.size());
      const auto colon = rest.find(':');
      if (colon == std::string_view::npos) continue;  // not prefix:type:id
      const std::string_view type = rest.substr(0, colon);
      auto it = counts.find(type);
      if (it == counts.end()) it = counts.emplace(std::string(type), 0).first;
      ++it->second;
    }
    return counts;
  } catch (...) {
    return from_exception();
  }
}

result<void> client::mark_batch_complete(std::string_view entity_type, std::string_view batch_id,
                                         std::string_view stats_json) noexcept {
  try {
    std::string key(batch_marker_prefix);
    key.append(entity_type).append(":").append(batch_id);
    const std::string ttl = std::to_string(batch_marker_ttl_seconds);
    const std::vector<std::vector<std::string_view>> commands = {{"SET", key, stats_json, "EX", ttl}};
    std::vector<detail::call_result> results;
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (auto refused = impl_->gate()) return *refused;
    const auto report = impl_->store->keyed(commands, results, no_deadline);
    impl_->settle(report.unreachable, report.first_error);
    if (!report.ok()) return report.first_error;
    return {};
  } catch (...) {
    return from_exception();
  }
}

result<bool> client::was_batch_synced_recently(std::string_view entity_type,
                                               std::int64_t window_seconds) noexcept {
  try {
    if (window_seconds <= 0) return false;
    const std::string match = detail::escape_glob(std::string(batch_marker_prefix)) +
                              detail::escape_glob(entity_type) + ":*";
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (auto refused = impl_->gate()) return *refused;
    std::vector<std::string> markers;
    auto scanned = impl_->scan_keys(match, [&](std::string& k) { markers.push_back(std::move(k)); });
    if (!scanned.ok()) return scanned.error();
    if (markers.empty()) return false;
    std::vector<std::vector<std::string_view>> commands;
    commands.reserve(markers.size());
    for (const auto& k : markers) commands.push_back({"PTTL", k});
    std::vector<detail::call_result> results;
    const auto report = impl_->store->keyed(commands, results, no_deadline);
    impl_->settle(report.unreachable, report.first_error);
    if (report.unreachable) return report.first_error;
    const std::int64_t ttl_ms = batch_marker_ttl_seconds * 1000;
    for (const auto& r : results) {
      if (r.code != status::ok || r.value.type != detail::reply::kind::integer) continue;
      const long long left = r.value.integer;  // -1: no TTL, -2: gone since the scan
      if (left > 0 && ttl_ms - left <= window_seconds * 1000) return true;
    }
    return false;
  } catch (...) {
    return from_exception();
  }
}

result<void> client::ping() noexcept {
  try {
    const std::string_view argv[] = {"PING"};
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (auto refused = impl_->gate()) return *refused;
    auto r = impl_->store->server_command(argv, no_deadline);
    impl_->settle_result(r);
    if (!r.ok()) return r.error();
    if (r.value().is_error()) {
      return {detail::error_reply_status(r.value().str), "PING refused: " + r.value().str};
    }
    return {};
  } catch (...) {
    return from_exception();
  }
}

stats_snapshot client::stats() const noexcept { return impl_->recorder.snapshot(); }
void client::reset_stats() noexcept { impl_->recorder.reset(); }
const client_config& client::config() const noexcept { return impl_->cfg; }
std::uint64_t client::connect_attempts() const noexcept { return impl_->store->connect_attempts(); }

}  // namespace tds
