// The engine's view of Redis: batched reads, batched script calls, scans and deletes, with
// per-item outcomes. Internal. A store decides where commands go (one node, or cluster slots);
// the engine (client.cpp) decides what they mean. Sockets stay in transport.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "resp.hpp"
#include "tdscache/config.hpp"
#include "tdscache/decision.hpp"
#include "tdscache/error.hpp"
#include "transport.hpp"

namespace tds::detail {

struct lookup_result {
  lookup_kind kind = lookup_kind::error;
  std::string value;  // present only
};

// How a batch went. Items that failed carry their own error marker (lookup_kind::error, or a
// call_result code); this says why, once.
struct batch_report {
  error first_error;         // code ok when every item was answered
  std::size_t failed = 0;    // items without an answer
  bool unreachable = false;  // a server could not be reached or stopped answering: this is
                             // what the circuit breaker counts, not refusals by a live server

  bool ok() const noexcept { return failed == 0; }
  void note(const error& e, std::size_t items, bool transport) {
    if (first_error.code == status::ok) first_error = e;
    failed += items;
    unreachable = unreachable || transport;
  }
};

// How a batch of n keys is cut into commands: ceil(n / chunk) of them, as even as the count
// allows (the later ones one key longer when n does not divide), none over `chunk` keys. Even
// cuts let the pipeline overlap: with 1,312 keys as 1000 + 312 the client decoded the big
// reply while the server had only 312 keys left to serve; as 656 + 656 the client decodes one
// half while the server serves the other. Pure arithmetic, so tests check it directly.
class chunk_layout {
 public:
  chunk_layout(std::size_t keys, std::size_t chunk)
      : count_(keys == 0 ? 0 : (keys + std::max<std::size_t>(chunk, 1) - 1) / std::max<std::size_t>(chunk, 1)),
        base_(count_ == 0 ? 0 : keys / count_),
        short_(count_ == 0 ? 0 : count_ - keys % count_) {}
  std::size_t commands() const { return count_; }
  // The first key of command i (i == commands() gives the number of keys).
  std::size_t start(std::size_t i) const { return i * base_ + (i > short_ ? i - short_ : 0); }
  std::size_t size(std::size_t i) const { return base_ + (i >= short_ ? 1 : 0); }

 private:
  std::size_t count_;
  std::size_t base_;   // keys in each of the first short_ commands; the rest hold one more
  std::size_t short_;
};

// A server-side Lua script called once per key. calls.keys[i] goes with
// calls.args[i * args_per_key, (i + 1) * args_per_key). A store may pack several calls whose
// keys it can route together into one EVALSHA; the script therefore takes any number of keys,
// reads ARGV as the shared arguments followed by the per-key ones in that stride, and returns
// an array with one element per key.
struct script {
  std::string_view source;
  std::string sha1;  // hex, of source
  std::size_t args_per_key = 0;
};

struct script_calls {
  std::vector<std::string_view> shared_args;  // every call's first ARGV entries (a TTL, say);
                                              // a packed call carries them once
  std::vector<std::string_view> keys;
  std::vector<std::string_view> args;
};

// Appends the one EVALSHA that packs the calls `items` (indices into calls, any range):
// EVALSHA sha numkeys key... shared_args... per-key args... `argv` is scratch space.
template <class Indices>
result<void> append_evalsha(std::string& out, std::vector<std::string_view>& argv, const script& s,
                            const script_calls& calls, const Indices& items) {
  const std::string numkeys = std::to_string(std::ranges::size(items));
  argv.assign({"EVALSHA", s.sha1, numkeys});
  for (const auto i : items) argv.push_back(calls.keys[i]);
  argv.insert(argv.end(), calls.shared_args.begin(), calls.shared_args.end());
  for (const auto i : items) {
    const auto first = calls.args.begin() + static_cast<std::ptrdiff_t>(i * s.args_per_key);
    argv.insert(argv.end(), first, first + static_cast<std::ptrdiff_t>(s.args_per_key));
  }
  return append_command(out, argv);
}

// One call's answer. code != ok: no answer (value.str holds why); an error reply from the
// script for this key arrives as code server_error/auth with the reply text.
struct call_result {
  status code = status::ok;
  reply value;
};

class store {
 public:
  virtual ~store() = default;

  // Called as results become final: out[first, first + count) will not change again, so the
  // caller may work on them (and move values out) while later ones are still in flight.
  // Every index is reported exactly once, failed ones included, before mget returns.
  using ready_handler = std::function<void(std::size_t first, std::size_t count)>;

  // Values for keys, in input order. All MGETs go out in one pipeline without waiting for a
  // reply, so the whole batch costs one round trip of latency.
  virtual batch_report mget(std::span<const std::string_view> keys,
                            std::vector<lookup_result>& out, const ready_handler& on_ready,
                            deadline until) = 0;

  // One result per call, in input order; EVALSHA, and on NOSCRIPT a SCRIPT LOAD and a retry.
  virtual batch_report eval_each(const script& s, const script_calls& calls,
                                 std::vector<call_result>& out, deadline until) = 0;

  // Single-key commands (the key is argv[1]), pipelined; one result per command.
  virtual batch_report keyed(std::span<const std::vector<std::string_view>> commands,
                             std::vector<call_result>& out, deadline until) = 0;

  // UNLINK in batches; returns how many keys existed.
  virtual result<std::uint64_t> unlink(std::span<const std::string_view> keys,
                                       deadline until) = 0;

  // Every key matching a glob (already escaped by the caller), via SCAN MATCH, never KEYS.
  // Keys arrive in batches; a key may be reported twice (SCAN's guarantee), never missed
  // unless it is created during the scan.
  using key_batch_handler = std::function<result<void>(std::vector<std::string>&)>;
  virtual result<void> scan(std::string_view match, const key_batch_handler& on_keys,
                            deadline until) = 0;

  // SCAN MATCH + UNLINK of each page, on every node; returns keys removed.
  virtual result<std::uint64_t> scan_unlink(std::string_view match, deadline until) = 0;

  // A command without a key (PING, INFO, CONFIG ...), sent to the (first) server.
  virtual result<reply> server_command(std::span<const std::string_view> argv,
                                       deadline until) = 0;

  // Connections opened so far, over all nodes (tests: "an open breaker opens none").
  virtual std::uint64_t connect_attempts() const noexcept = 0;
};

// The store for a config: one node (single_store.cpp), or a Redis Cluster (cluster_store.cpp).
result<std::unique_ptr<store>> make_store(const client_config& cfg);

// Escapes Redis glob metacharacters (* ? [ ] \) so that `text` matches only itself.
std::string escape_glob(std::string_view text);

}  // namespace tds::detail
