// The Redis Cluster store: each batch is split into one command per hash slot, sent as one
// pipeline per primary (every primary at once, one thread each), and MOVED/ASK/TRYAGAIN are
// followed in bounded rounds; plus the slot map (CLUSTER SLOTS) and when to read it again.
// Sockets are transport.cpp's, the meaning of the commands client.cpp's.
#include "cluster_store.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tdscache/slot.hpp"

namespace tds::detail {

cluster_counters& cluster_diagnostics() noexcept {
  static cluster_counters counters;
  return counters;
}

namespace {

// Keys per EVALSHA and per UNLINK, and SCAN's COUNT: the trade-offs argued in single_store.cpp.
// In a cluster they bound a command only when many keys share a slot (a hash-tag layout).
constexpr std::size_t keys_per_eval = 64;
constexpr std::size_t unlink_batch = 1000;
constexpr std::string_view scan_count = "1000";

// Commands formatted per hand-out to the socket: with one key per slot, a batch is thousands
// of tiny commands, and one send() each would cost more than the commands themselves.
constexpr std::size_t format_batch_bytes = 64 * 1024;

constexpr std::string_view asking_command = "*1\r\n$6\r\nASKING\r\n";

using item_index = std::uint32_t;  // a batch of four billion entities is not a use case
constexpr std::int32_t no_node = -1;
// Node indices share a 64-bit sort key with the asking flag, the slot and the item.
constexpr std::size_t max_nodes = std::size_t{1} << 16;

void bump(std::atomic<std::uint64_t>& counter) noexcept {
  counter.fetch_add(1, std::memory_order_relaxed);
}

bool is_transport(status s) noexcept {
  return s == status::connect_failed || s == status::timeout || s == status::io ||
         s == status::protocol || s == status::tls;
}

// ---------------------------------------------------------------- redirections

enum class redirect_kind : std::uint8_t { none, moved, ask, tryagain };

struct redirect {
  redirect_kind kind = redirect_kind::none;
  std::uint16_t slot = 0;
  std::string host;  // empty: the host of the node that answered
  int port = 0;
};

template <class T>
bool parse_number(std::string_view text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// "MOVED 3999 127.0.0.1:6381", "ASK 3999 10.0.0.2:6380", "TRYAGAIN ...". The address is split
// at its last colon, since Redis writes IPv6 addresses without brackets. Anything else, or a
// redirection we cannot read, is kind none: an ordinary error reply.
redirect parse_redirect(std::string_view text) {
  redirect r;
  if (text.rfind("TRYAGAIN", 0) == 0) {
    r.kind = redirect_kind::tryagain;
    return r;
  }
  std::string_view rest;
  if (text.rfind("MOVED ", 0) == 0) {
    rest = text.substr(6);
  } else if (text.rfind("ASK ", 0) == 0) {
    rest = text.substr(4);
  } else {
    return r;
  }
  const std::size_t space = rest.find(' ');
  const std::size_t colon = rest.rfind(':');
  int slot = -1;
  if (space == std::string_view::npos || colon == std::string_view::npos || colon < space ||
      !parse_number(rest.substr(0, space), slot) || slot < 0 || slot >= cluster_slot_count ||
      !parse_number(rest.substr(colon + 1), r.port) || r.port < 1 || r.port > 65535) {
    return r;
  }
  r.kind = text[0] == 'M' ? redirect_kind::moved : redirect_kind::ask;
  r.slot = static_cast<std::uint16_t>(slot);
  r.host = std::string(rest.substr(space + 1, colon - space - 1));
  return r;
}

// ---------------------------------------------------------------- nodes and rounds

// One primary (or a redirection target): its connection, and what it is known to hold.
struct cluster_node {
  cluster_node(endpoint where, const client_config& cfg, std::shared_ptr<const tls_context> tls)
      : link(std::move(where), cfg, std::move(tls)) {}
  session link;
  std::map<std::string, std::uint64_t, std::less<>> loaded;  // script sha -> session generation
  bool unreachable = false;  // failed to connect or to answer since any node last answered
};

// One command of a round: items order[first, first + count), all in one slot.
struct planned_command {
  std::uint32_t first = 0;
  std::uint32_t count = 0;
  bool asking = false;
};

// One node's share of a round, and what came back from it. A worker thread owns it while the
// round runs.
struct node_work {
  std::int32_t node = no_node;
  std::vector<planned_command> commands;
  bool preamble = false;  // a command before the planned ones (SCRIPT LOAD)

  std::size_t answered = 0;  // commands whose reply arrived, in order
  bool replied = false;      // anything at all came back from the node
  error failure;             // the exchange broke: commands from `answered` on got no reply
  error preamble_failure;
  struct redirected {
    std::uint32_t command;
    redirect where;
  };
  std::vector<redirected> redirects;
  std::vector<std::uint32_t> resend;  // commands to send again as they are (NOSCRIPT)
};

// What one operation sends and how it takes the answers. The store decides where each command
// goes and follows redirections; the op never sees a MOVED, ASK or TRYAGAIN. take() runs on
// worker threads, one at a time (the store holds a lock); the rest on the caller's thread.
// Each item is taken or failed exactly once.
class routed_op {
 public:
  virtual ~routed_op() = default;
  virtual std::size_t size() const noexcept = 0;
  virtual std::string_view key(std::size_t item) const noexcept = 0;
  virtual std::size_t chunk() const noexcept = 0;  // items per command, at most
  // Appends the command for `items` (one slot). Called concurrently for different nodes, so it
  // only reads the op; argv is the caller's scratch space.
  virtual result<void> format(std::string& out, std::vector<std::string_view>& argv,
                              std::span<const item_index> items) const = 0;
  // A reply that is not a redirection. false: send these items again in the next round.
  virtual bool take(std::span<const item_index> items, reply& rep, cluster_node& node,
                    const node_work& work) = 0;
  virtual void fail(std::span<const item_index> items, const error& why) = 0;

  // A command some nodes need before this op's (SCRIPT LOAD), run in the same pipeline.
  virtual bool needs_preamble(const cluster_node&) const { return false; }
  virtual result<void> format_preamble(std::string&) const { return {}; }
  virtual void take_preamble(reply&, cluster_node&, node_work&) {}
  // After the node's exchange, on its worker thread.
  virtual void node_done(cluster_node&, const node_work&) {}
};

std::string describe(const cluster_node& node) { return node.link.where().describe(); }

error reply_failure(std::string_view command, const reply& rep, const cluster_node& node) {
  if (rep.is_error()) {
    return make_error(error_reply_status(rep.str),
                      "Redis at " + describe(node) + " refused " + std::string(command) + ": " + rep.str);
  }
  return make_error(status::protocol, std::string(command) + " from Redis at " + describe(node) +
                                          " gave an unexpected reply");
}

// Hands a node's commands to the socket: the preamble, then each planned command (after
// ASKING when it follows an ASK), a batch of them per call.
class node_source final : public command_source {
 public:
  node_source(const routed_op& op, const node_work& work, std::span<const item_index> order)
      : op_(op), work_(work), order_(order) {}

  result<std::string_view> next() override {
    bytes_.clear();
    if (work_.preamble && !preamble_sent_) {
      preamble_sent_ = true;
      if (auto r = op_.format_preamble(bytes_); !r.ok()) return r.error();
    }
    while (pos_ < work_.commands.size() && bytes_.size() < format_batch_bytes) {
      const planned_command& c = work_.commands[pos_++];
      if (c.asking) bytes_.append(asking_command);
      if (auto r = op_.format(bytes_, argv_, order_.subspan(c.first, c.count)); !r.ok()) {
        return r.error();
      }
    }
    return std::string_view(bytes_);
  }
  void rewind() override {
    pos_ = 0;
    preamble_sent_ = false;
  }

 private:
  const routed_op& op_;
  const node_work& work_;
  std::span<const item_index> order_;
  std::size_t pos_ = 0;
  bool preamble_sent_ = false;
  std::vector<std::string_view> argv_;
  std::string bytes_;
};

// ---------------------------------------------------------------- the operations

// `command key...` over a list of keys (MGET, UNLINK).
class key_list_op : public routed_op {
 public:
  key_list_op(std::string_view command, std::span<const std::string_view> keys, std::size_t chunk)
      : command_(command), keys_(keys), chunk_(chunk) {}

  std::size_t size() const noexcept override { return keys_.size(); }
  std::string_view key(std::size_t item) const noexcept override { return keys_[item]; }
  std::size_t chunk() const noexcept override { return chunk_; }

  result<void> format(std::string& out, std::vector<std::string_view>& argv,
                      std::span<const item_index> items) const override {
    argv.assign({command_});
    for (const item_index i : items) argv.push_back(keys_[i]);
    return append_command(out, argv);
  }

 private:
  std::string_view command_;
  std::span<const std::string_view> keys_;
  std::size_t chunk_;
};

class mget_op final : public key_list_op {
 public:
  mget_op(std::span<const std::string_view> keys, std::vector<lookup_result>& out,
          const store::ready_handler& on_ready, batch_report& report, std::size_t chunk)
      : key_list_op("MGET", keys, chunk), out_(out), on_ready_(on_ready), report_(report) {}

  bool take(std::span<const item_index> items, reply& rep, cluster_node& node,
            const node_work&) override {
    if (rep.type != reply::kind::array || rep.elements.size() != items.size()) {
      fail(items, reply_failure("MGET", rep, node));
      return true;
    }
    for (std::size_t j = 0; j < items.size(); ++j) {
      reply& e = rep.elements[j];
      lookup_result& found = out_[items[j]];
      if (e.type == reply::kind::nil) {
        found.kind = lookup_kind::missing;
      } else if (e.type == reply::kind::string) {
        found.kind = lookup_kind::present;
        found.value = std::move(e.str);
      } else {
        found = lookup_result{};
        report_.note(make_error(status::protocol, "MGET from Redis at " + describe(node) +
                                                      " gave a non-string element"),
                     1, false);
      }
      if (on_ready_) on_ready_(items[j], 1);
    }
    return true;
  }

  void fail(std::span<const item_index> items, const error& why) override {
    report_.note(why, items.size(), false);
    for (const item_index i : items) {
      out_[i] = lookup_result{};
      if (on_ready_) on_ready_(i, 1);
    }
  }

 private:
  std::vector<lookup_result>& out_;
  const store::ready_handler& on_ready_;
  batch_report& report_;
};

// Shared by the ops whose answers are call_results.
void fail_calls(std::vector<call_result>& out, batch_report& report,
                std::span<const item_index> items, const error& why) {
  report.note(why, items.size(), false);
  for (const item_index i : items) {
    out[i].code = why.code;
    out[i].value = reply::make_error(why.message);
  }
}

class eval_op final : public routed_op {
 public:
  eval_op(const script& s, const script_calls& calls, std::vector<call_result>& out,
          batch_report& report)
      : script_(s), calls_(calls), out_(out), report_(report) {}

  std::size_t size() const noexcept override { return calls_.keys.size(); }
  std::string_view key(std::size_t item) const noexcept override { return calls_.keys[item]; }
  std::size_t chunk() const noexcept override { return keys_per_eval; }

  result<void> format(std::string& out, std::vector<std::string_view>& argv,
                      std::span<const item_index> items) const override {
    return append_evalsha(out, argv, script_, calls_, items);
  }

  bool take(std::span<const item_index> items, reply& rep, cluster_node& node,
            const node_work& work) override {
    if (rep.type == reply::kind::array && rep.elements.size() == items.size()) {
      for (std::size_t j = 0; j < items.size(); ++j) {
        call_result& r = out_[items[j]];
        r.value = std::move(rep.elements[j]);
        r.code = r.value.is_error() ? error_reply_status(r.value.str) : status::ok;
        if (r.code != status::ok) {
          report_.note(make_error(r.code, "Redis at " + describe(node) + ": " + r.value.str), 1, false);
        }
      }
      return true;
    }
    if (rep.is_error() && rep.str.rfind("NOSCRIPT", 0) == 0 && work.preamble_failure.code == status::ok) {
      // The node lost its script cache (SCRIPT FLUSH, a restart behind the same address):
      // the next round loads it first. Nothing ran, so sending again is safe.
      bump(cluster_diagnostics().noscript);
      node.loaded.erase(script_.sha1);
      return false;
    }
    // When SCRIPT LOAD itself was refused, its reason explains the NOSCRIPTs.
    fail(items, work.preamble_failure.code != status::ok ? work.preamble_failure
                                                         : reply_failure("EVALSHA", rep, node));
    return true;
  }

  void fail(std::span<const item_index> items, const error& why) override {
    fail_calls(out_, report_, items, why);
  }

  bool needs_preamble(const cluster_node& node) const override {
    const auto it = node.loaded.find(script_.sha1);
    return !node.link.connected() || it == node.loaded.end() || it->second != node.link.generation();
  }
  result<void> format_preamble(std::string& out) const override {
    const std::string_view load[] = {"SCRIPT", "LOAD", script_.source};
    return append_command(out, load);
  }
  void take_preamble(reply& rep, cluster_node& node, node_work& work) override {
    if (rep.is_error()) {
      work.preamble_failure = reply_failure("SCRIPT LOAD", rep, node);
    } else if (rep.str != script_.sha1) {
      work.preamble_failure = make_error(status::internal, "SCRIPT LOAD on " + describe(node) +
                                                               " returned sha " + rep.str +
                                                               ", expected " + script_.sha1);
    }
  }
  void node_done(cluster_node& node, const node_work& work) override {
    if (work.preamble && work.failure.code == status::ok && work.preamble_failure.code == status::ok) {
      node.loaded[script_.sha1] = node.link.generation();
    }
  }

 private:
  const script& script_;
  const script_calls& calls_;
  std::vector<call_result>& out_;
  batch_report& report_;
};

// Single-key commands (the key is argv[1]), one per item.
class keyed_op final : public routed_op {
 public:
  keyed_op(std::span<const std::vector<std::string_view>> commands, std::vector<call_result>& out,
           batch_report& report)
      : commands_(commands), out_(out), report_(report) {}

  std::size_t size() const noexcept override { return commands_.size(); }
  std::string_view key(std::size_t item) const noexcept override {
    return commands_[item].size() > 1 ? commands_[item][1] : std::string_view{};
  }
  std::size_t chunk() const noexcept override { return 1; }

  result<void> format(std::string& out, std::vector<std::string_view>&,
                      std::span<const item_index> items) const override {
    return append_command(out, commands_[items.front()]);
  }

  bool take(std::span<const item_index> items, reply& rep, cluster_node& node,
            const node_work&) override {
    call_result& r = out_[items.front()];
    if (rep.is_error()) {
      r.code = error_reply_status(rep.str);
      report_.note(make_error(r.code, "Redis at " + describe(node) + ": " + rep.str), 1, false);
    }
    r.value = std::move(rep);
    return true;
  }

  void fail(std::span<const item_index> items, const error& why) override {
    fail_calls(out_, report_, items, why);
  }

 private:
  std::span<const std::vector<std::string_view>> commands_;
  std::vector<call_result>& out_;
  batch_report& report_;
};

class unlink_op final : public key_list_op {
 public:
  unlink_op(std::span<const std::string_view> keys, batch_report& report)
      : key_list_op("UNLINK", keys, unlink_batch), report_(report) {}

  bool take(std::span<const item_index> items, reply& rep, cluster_node& node,
            const node_work&) override {
    if (rep.type == reply::kind::integer) {
      removed += static_cast<std::uint64_t>(rep.integer);
    } else {
      fail(items, reply_failure("UNLINK", rep, node));
    }
    return true;
  }

  void fail(std::span<const item_index> items, const error& why) override {
    report_.note(why, items.size(), false);
  }

  std::uint64_t removed = 0;

 private:
  batch_report& report_;
};

// A failure as the engine should count it: the circuit breaker opens on transport errors, and
// one node that is down must not open it for the whole cluster, so a transport error that
// some node got while others answered is reported as a cluster error.
error for_engine(const error& e, bool whole_cluster_unreachable) {
  if (whole_cluster_unreachable || !is_transport(e.code)) return e;
  return make_error(status::cluster, "part of the cluster failed: " + e.message);
}

// ---------------------------------------------------------------- the store

class cluster_store final : public store {
 public:
  cluster_store(const client_config& cfg, std::shared_ptr<const tls_context> tls,
                const cluster_tuning& tuning)
      : cfg_(cfg), tls_(std::move(tls)), tuning_(tuning), owner_(cluster_slot_count, no_node) {
    for (const auto& [host, port] : cfg_.cluster_seeds) {
      seeds_.push_back(std::make_unique<session>(endpoint{host, port, ""}, cfg_, tls_));
    }
  }

  batch_report mget(std::span<const std::string_view> keys, std::vector<lookup_result>& out,
                    const ready_handler& on_ready, deadline until) override {
    batch_report report;
    out.clear();
    out.resize(keys.size());
    mget_op op(keys, out, on_ready, report, std::max<std::size_t>(1, cfg_.mget_chunk));
    report.unreachable = route(op, until);
    return report;
  }

  batch_report eval_each(const script& s, const script_calls& calls,
                         std::vector<call_result>& out, deadline until) override {
    batch_report report;
    out.clear();
    out.resize(calls.keys.size());
    eval_op op(s, calls, out, report);
    if (calls.args.size() != calls.keys.size() * s.args_per_key) {
      std::vector<item_index> all(calls.keys.size());
      std::iota(all.begin(), all.end(), item_index{0});
      op.fail(all, make_error(status::internal, "script call arguments do not match the stride"));
      return report;
    }
    report.unreachable = route(op, until);
    return report;
  }

  batch_report keyed(std::span<const std::vector<std::string_view>> commands,
                     std::vector<call_result>& out, deadline until) override {
    batch_report report;
    out.clear();
    out.resize(commands.size());
    keyed_op op(commands, out, report);
    report.unreachable = route(op, until);
    return report;
  }

  result<std::uint64_t> unlink(std::span<const std::string_view> keys, deadline until) override {
    batch_report report;
    unlink_op op(keys, report);
    const bool unreachable = route(op, until);
    if (!report.ok()) return for_engine(report.first_error, unreachable);
    return op.removed;
  }

  result<void> scan(std::string_view match, const key_batch_handler& on_keys,
                    deadline until) override {
    if (auto t = ensure_topology(until); !t.ok()) return t.error();
    node_failures failures;
    std::vector<std::string> keys;
    for (const std::int32_t n : primaries()) {
      cluster_node& node = *nodes_[static_cast<std::size_t>(n)];
      std::string cursor = "0";
      do {
        auto page = scan_page(node, match, cursor, keys, until);
        if (!page.ok()) {
          failures.note(page.error());
          break;
        }
        if (!keys.empty()) {
          if (auto r = on_keys(keys); !r.ok()) return r;
        }
      } while (cursor != "0");
      ++failures.nodes;
    }
    if (failures.failed > 0) return failures.outcome();
    return {};
  }

  // Every primary's SCAN pages, each page unlinked as it arrives. A page holds keys of many
  // slots, so its UNLINK is split per slot (CROSSSLOT otherwise) and routed like any batch.
  result<std::uint64_t> scan_unlink(std::string_view match, deadline until) override {
    std::uint64_t removed = 0;
    std::vector<std::string_view> views;
    auto scanned = scan(
        match,
        [&](std::vector<std::string>& keys) -> result<void> {
          views.assign(keys.begin(), keys.end());
          auto gone = unlink(views, until);
          if (!gone.ok()) return gone.error();
          removed += gone.value();
          return {};
        },
        until);
    if (!scanned.ok()) return scanned.error();
    return removed;
  }

  // Sent to every primary; the first one's reply is the answer, and any failure is one.
  result<reply> server_command(std::span<const std::string_view> argv, deadline until) override {
    if (auto t = ensure_topology(until); !t.ok()) return t.error();
    node_failures failures;
    std::optional<reply> first;
    for (const std::int32_t n : primaries()) {
      ++failures.nodes;
      auto r = nodes_[static_cast<std::size_t>(n)]->link.command(argv, until);
      if (!r.ok()) {
        failures.note(r.error());
      } else if (!first) {
        first = std::move(r).value();
      }
    }
    if (failures.failed > 0 || !first) return failures.outcome().error();
    return std::move(*first);
  }

  std::uint64_t connect_attempts() const noexcept override {
    std::lock_guard<std::mutex> lock(nodes_mu_);
    std::uint64_t total = 0;
    for (const auto& n : nodes_) total += n->link.connect_attempts();
    for (const auto& s : seeds_) total += s->connect_attempts();
    return total;
  }

 private:
  // Failures of per-node steps (SCAN, PING) over the primaries.
  struct node_failures {
    std::size_t nodes = 0;
    std::size_t failed = 0;
    error first;
    void note(const error& e) {
      if (failed++ == 0) first = e;
    }
    result<void> outcome() const {
      if (failed == 0) return {};
      if (failed >= nodes) return first;
      return for_engine(make_error(first.code, std::to_string(failed) + " of " + std::to_string(nodes) +
                                                   " primaries failed; first: " + first.message),
                        false);
    }
  };

  result<void> scan_page(cluster_node& node, std::string_view match, std::string& cursor,
                         std::vector<std::string>& keys, deadline until) {
    const std::string_view argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", scan_count};
    auto rep = node.link.command(argv, until);
    if (!rep.ok()) return rep.error();
    reply& r = rep.value();
    if (r.type != reply::kind::array || r.elements.size() != 2 ||
        r.elements[0].type != reply::kind::string || r.elements[1].type != reply::kind::array) {
      return reply_failure("SCAN", r, node);
    }
    cursor = std::move(r.elements[0].str);
    keys.clear();
    for (auto& k : r.elements[1].elements) keys.push_back(std::move(k.str));
    return {};
  }

  // ---- the slot map

  // Nodes that serve at least one slot, in slot order.
  std::vector<std::int32_t> primaries() const {
    std::vector<std::int32_t> out;
    std::vector<bool> seen(nodes_.size(), false);
    for (const std::int32_t n : owner_) {
      if (n != no_node && !seen[static_cast<std::size_t>(n)]) {
        seen[static_cast<std::size_t>(n)] = true;
        out.push_back(n);
      }
    }
    return out;
  }

  // The node at host:port, added (not connected) when new; no_node when the table is full.
  std::int32_t node_for(const std::string& host, int port) {
    std::string name = endpoint{host, port, ""}.describe();
    if (const auto it = node_index_.find(name); it != node_index_.end()) return it->second;
    if (nodes_.size() >= max_nodes) return no_node;
    auto node = std::make_unique<cluster_node>(endpoint{host, port, ""}, cfg_, tls_);
    const auto index = static_cast<std::int32_t>(nodes_.size());
    {
      std::lock_guard<std::mutex> lock(nodes_mu_);
      nodes_.push_back(std::move(node));
    }
    node_index_.emplace(std::move(name), index);
    return index;
  }

  struct slot_range {
    int first = 0;
    int last = 0;
    std::string host;
    int port = 0;
  };

  // CLUSTER SLOTS: [[first, last, [host, port, id, ...], replica...], ...]. SLOTS rather than
  // SHARDS (Redis 7+ only): it works from Redis 3.0 on, and 7.x still serves it. An empty host
  // means "the address you asked"; "?" means the node does not know its own (skipped).
  result<std::vector<slot_range>> read_slots(session& link, deadline until) {
    const std::string_view argv[] = {"CLUSTER", "SLOTS"};
    auto rep = link.command(argv, until);
    if (!rep.ok()) return rep.error();
    const reply& r = rep.value();
    const std::string where = link.where().describe();
    if (r.is_error()) {
      return {status::cluster, "Redis at " + where + " refused CLUSTER SLOTS (is it a cluster node? "
                               "redis+cluster:// needs one): " + r.str};
    }
    auto malformed = [&] {
      return result<std::vector<slot_range>>(status::protocol,
                                             "CLUSTER SLOTS from Redis at " + where + " is malformed");
    };
    if (r.type != reply::kind::array) return malformed();
    std::vector<slot_range> ranges;
    for (const reply& e : r.elements) {
      if (e.type != reply::kind::array || e.elements.size() < 3 ||
          e.elements[0].type != reply::kind::integer || e.elements[1].type != reply::kind::integer ||
          e.elements[2].type != reply::kind::array || e.elements[2].elements.size() < 2 ||
          e.elements[2].elements[1].type != reply::kind::integer) {
        return malformed();
      }
      slot_range range;
      range.first = static_cast<int>(e.elements[0].integer);
      range.last = static_cast<int>(e.elements[1].integer);
      const reply& primary = e.elements[2];
      range.port = static_cast<int>(primary.elements[1].integer);
      if (range.first < 0 || range.last < range.first || range.last >= cluster_slot_count ||
          range.port < 1 || range.port > 65535) {
        return malformed();
      }
      if (primary.elements[0].type == reply::kind::nil || primary.elements[0].str == "?") continue;
      range.host = primary.elements[0].str.empty() ? link.where().host : primary.elements[0].str;
      ranges.push_back(std::move(range));
    }
    if (ranges.empty()) {
      return {status::cluster, "Redis at " + where + " knows no slot owner (a cluster still being created?)"};
    }
    return ranges;
  }

  // Reads the slot map from the first node that answers: primaries that are connected first
  // (alive a moment ago), then the others, then the seeds. On failure the old map stays.
  result<void> refresh(deadline until) {
    std::vector<std::int32_t> order = primaries();
    std::stable_partition(order.begin(), order.end(), [&](std::int32_t n) {
      return nodes_[static_cast<std::size_t>(n)]->link.connected();
    });
    error last = make_error(status::cluster, "no cluster node to ask for the slot map");
    auto adopt = [&](result<std::vector<slot_range>> ranges) {
      if (!ranges.ok()) {
        last = ranges.error();
        return false;
      }
      std::vector<std::int32_t> owner(cluster_slot_count, no_node);
      for (const auto& range : ranges.value()) {
        const std::int32_t n = node_for(range.host, range.port);
        std::fill(owner.begin() + range.first, owner.begin() + range.last + 1, n);
      }
      owner_ = std::move(owner);
      mapped_ = true;
      refresh_due_ = false;
      refreshed_at_ = steady_clock::now();
      bump(cluster_diagnostics().refreshes);
      return true;
    };
    for (const std::int32_t n : order) {
      cluster_node& node = *nodes_[static_cast<std::size_t>(n)];
      auto ranges = read_slots(node.link, until);
      if (!ranges.ok() && is_transport(ranges.code())) node.unreachable = true;
      if (ranges.ok()) mark_reachable();
      if (adopt(std::move(ranges))) return {};
    }
    for (auto& seed : seeds_) {
      const auto known = node_index_.find(seed->where().describe());
      if (known != node_index_.end() && std::find(order.begin(), order.end(), known->second) != order.end()) {
        continue;  // asked already, on its node's connection
      }
      const bool ok = adopt(read_slots(*seed, until));
      seed->disconnect();  // seeds are for finding the cluster, not for holding connections
      if (ok) return {};
    }
    bump(cluster_diagnostics().refresh_failures);
    return make_error(last.code, "cannot read the cluster's slot map: " + last.message);
  }

  result<void> ensure_topology(deadline until) {
    if (!mapped_) return refresh(until);
    const auto now = steady_clock::now();
    if (now - refreshed_at_ >= tuning_.refresh_interval ||
        (refresh_due_ && now - troubled_at_ >= tuning_.refresh_cooldown)) {
      if (refresh_due_) troubled_at_ = now;
      (void)refresh(until);  // a failure keeps the map we have; the requests will tell
    }
    return {};
  }

  // After MOVED or a node that stopped answering: a refresh, unless one was made for the same
  // reason within the cooldown.
  void refresh_after_trouble(deadline until) {
    const auto now = steady_clock::now();
    if (troubled_ && now - troubled_at_ < tuning_.refresh_cooldown) {
      refresh_due_ = true;
      return;
    }
    troubled_ = true;
    troubled_at_ = now;
    (void)refresh(until);
  }

  // ---- routing

  void run_node(routed_op& op, std::span<const item_index> order, node_work& work,
                std::mutex& take_mu, deadline until) {
    cluster_node& node = *nodes_[static_cast<std::size_t>(work.node)];
    work.preamble = op.needs_preamble(node);
    // Which reply answers what: a command index, or one of these.
    constexpr std::int64_t preamble_reply = -1, asking_reply = -2;
    std::vector<std::int64_t> replies;
    replies.reserve(work.commands.size() + 1);
    if (work.preamble) replies.push_back(preamble_reply);
    for (std::size_t c = 0; c < work.commands.size(); ++c) {
      if (work.commands[c].asking) replies.push_back(asking_reply);
      replies.push_back(static_cast<std::int64_t>(c));
    }
    node_source source(op, work, order);
    auto r = node.link.exchange(
        source, replies.size(),
        [&](std::size_t i, reply& rep) -> result<void> {
          work.replied = true;
          const std::int64_t what = replies[i];
          if (what == preamble_reply) {
            op.take_preamble(rep, node, work);
            return {};
          }
          if (what == asking_reply) return {};  // a refused ASKING shows in the next reply
          const auto c = static_cast<std::uint32_t>(what);
          work.answered = c + 1;
          if (rep.is_error()) {
            redirect where = parse_redirect(rep.str);
            if (where.kind != redirect_kind::none) {
              auto& counters = cluster_diagnostics();
              bump(where.kind == redirect_kind::moved ? counters.moved
                   : where.kind == redirect_kind::ask ? counters.ask
                                                      : counters.tryagain);
              work.redirects.push_back({c, std::move(where)});
              return {};
            }
          }
          const planned_command& cmd = work.commands[c];
          std::lock_guard<std::mutex> lock(take_mu);
          if (!op.take(order.subspan(cmd.first, cmd.count), rep, node, work)) work.resend.push_back(c);
          return {};
        },
        until);
    if (!r.ok()) {
      work.failure = r.error();
      bump(cluster_diagnostics().node_failures);
    }
    op.node_done(node, work);
  }

  // Every node's pipeline at once: one thread per node beyond the first (the caller's thread
  // takes that one). A batch then costs the slowest node's time, not the sum of all of them.
  void run_round(routed_op& op, std::span<const item_index> order, std::vector<node_work>& works,
                 deadline until) {
    std::mutex take_mu;
    auto body = [&](node_work& work) noexcept {
      try {
        run_node(op, order, work, take_mu, until);
      } catch (...) {
        // Exchanges turn exceptions into errors; this is for anything around them.
        work.failure.code = status::internal;
        try {
          work.failure.message = "internal error while talking to a cluster node";
        } catch (...) {
        }
      }
    };
    std::vector<std::thread> threads;
    std::size_t started = 0;
    try {
      threads.reserve(works.size());
      for (std::size_t i = 1; i < works.size(); ++i) {
        threads.emplace_back(body, std::ref(works[i]));
        ++started;
      }
    } catch (...) {
      // No thread to be had (resource limits): the remaining nodes run here, one by one.
    }
    body(works.front());
    for (std::size_t i = 1 + started; i < works.size(); ++i) body(works[i]);
    for (auto& t : threads) t.join();
  }

  struct route_state {
    std::int32_t ask = no_node;  // the next command goes here, after ASKING
    bool alone = false;          // after TRYAGAIN: a command of its own
  };

  // Sends op's items to the nodes serving their slots and follows redirections until each
  // item is taken or failed. Returns whether the cluster as a whole is unreachable (what the
  // engine's circuit breaker counts).
  bool route(routed_op& op, deadline until) {
    const std::size_t n = op.size();
    if (n == 0) return false;
    std::vector<item_index> pending(n);
    std::iota(pending.begin(), pending.end(), item_index{0});
    if (auto t = ensure_topology(until); !t.ok()) {
      op.fail(pending, t.error());
      return is_transport(t.code());
    }
    std::vector<std::uint16_t> slots(n);
    for (std::size_t i = 0; i < n; ++i) slots[i] = key_slot(op.key(i));
    std::vector<route_state> routes(n);
    std::string last_redirect;

    for (int round = 0; !pending.empty(); ++round) {
      if (round >= tuning_.max_rounds) {
        cluster_diagnostics().exhausted.fetch_add(pending.size(), std::memory_order_relaxed);
        op.fail(pending, make_error(status::cluster, "still redirected after " +
                                                         std::to_string(tuning_.max_rounds) +
                                                         " rounds (last: " + last_redirect + ")"));
        break;
      }
      // Plan: items sorted by (node, asking, slot, input order), cut into commands.
      std::vector<std::uint64_t> sorted;
      sorted.reserve(pending.size());
      std::vector<item_index> unrouted;
      for (const item_index i : pending) {
        route_state& rs = routes[i];
        const std::int32_t target = rs.ask != no_node ? rs.ask : owner_[slots[i]];
        if (target == no_node) {
          unrouted.push_back(i);
          continue;
        }
        const bool asking = rs.ask != no_node;
        rs.ask = no_node;
        sorted.push_back((std::uint64_t(target) << 47) | (std::uint64_t(asking) << 46) |
                         (std::uint64_t(slots[i]) << 32) | i);
      }
      if (!unrouted.empty()) {
        refresh_due_ = true;
        op.fail(unrouted, make_error(status::cluster, "no primary serves slot " +
                                                          std::to_string(slots[unrouted.front()]) +
                                                          " (cluster slot map incomplete)"));
      }
      if (sorted.empty()) break;
      std::sort(sorted.begin(), sorted.end());
      std::vector<item_index> order(sorted.size());
      std::vector<node_work> works;
      const std::size_t chunk = std::max<std::size_t>(1, op.chunk());
      std::uint64_t previous_group = UINT64_MAX;
      bool previous_alone = false;
      for (std::size_t p = 0; p < sorted.size(); ++p) {
        const auto item = static_cast<item_index>(sorted[p] & 0xffffffffu);
        const std::uint64_t group = sorted[p] >> 32;  // node, asking, slot
        const auto node = static_cast<std::int32_t>(sorted[p] >> 47);
        order[p] = item;
        if (works.empty() || works.back().node != node) {
          works.emplace_back();
          works.back().node = node;
        }
        auto& commands = works.back().commands;
        const bool alone = routes[item].alone;
        if (group != previous_group || alone || previous_alone || commands.back().count >= chunk) {
          commands.push_back(planned_command{static_cast<std::uint32_t>(p), 0, ((sorted[p] >> 46) & 1) != 0});
        }
        ++commands.back().count;
        previous_group = group;
        previous_alone = alone;
      }

      run_round(op, order, works, until);

      // Follow what came back.
      std::vector<item_index> next;
      bool backoff = false;
      bool trouble = false;
      auto items_of = [&](const node_work& w, std::uint32_t c) {
        return std::span<const item_index>(order).subspan(w.commands[c].first, w.commands[c].count);
      };
      for (const node_work& w : works) {
        const std::string& replier_host = nodes_[static_cast<std::size_t>(w.node)]->link.where().host;
        for (const auto& [c, where] : w.redirects) {
          const auto items = items_of(w, c);
          next.insert(next.end(), items.begin(), items.end());
          if (where.kind == redirect_kind::tryagain) {
            last_redirect = "TRYAGAIN for slot " + std::to_string(slots[items.front()]);
            backoff = true;
            for (const item_index i : items) routes[i].alone = true;
            continue;
          }
          const std::int32_t target = node_for(where.host.empty() ? replier_host : where.host, where.port);
          if (where.kind == redirect_kind::moved) {
            last_redirect = "MOVED " + std::to_string(where.slot) + " to port " + std::to_string(where.port);
            owner_[where.slot] = target;  // the reply names the new owner: use it at once
            trouble = true;
          } else {
            last_redirect = "ASK " + std::to_string(where.slot) + " to port " + std::to_string(where.port);
            for (const item_index i : items) routes[i].ask = target;
          }
        }
        for (const std::uint32_t c : w.resend) {
          const auto items = items_of(w, c);
          next.insert(next.end(), items.begin(), items.end());
        }
        trouble = trouble || w.failure.code != status::ok;
      }
      if (std::any_of(works.begin(), works.end(), [](const node_work& w) { return w.replied; })) {
        mark_reachable();
      }
      for (const node_work& w : works) {
        if (is_transport(w.failure.code)) nodes_[static_cast<std::size_t>(w.node)]->unreachable = true;
      }
      // A node that stopped answering may have been failed over: read the map again, and send
      // its items to the new owner if there is one; otherwise they fail (never a long wait).
      if (trouble) refresh_after_trouble(until);
      for (const node_work& w : works) {
        if (w.failure.code == status::ok) continue;
        std::vector<item_index> lost;
        for (std::size_t c = w.answered; c < w.commands.size(); ++c) {
          for (const item_index i : items_of(w, static_cast<std::uint32_t>(c))) {
            const std::int32_t now_owner = owner_[slots[i]];
            if (now_owner != no_node && now_owner != w.node && round + 1 < tuning_.max_rounds) {
              next.push_back(i);
            } else {
              lost.push_back(i);
            }
          }
        }
        if (!lost.empty()) op.fail(lost, w.failure);
      }
      if (backoff && !next.empty()) pause_before_retry(round, until);
      pending = std::move(next);
    }
    return whole_cluster_unreachable();
  }

  // Any answer from any node shows the cluster is there.
  void mark_reachable() {
    for (auto& node : nodes_) node->unreachable = false;
  }

  // What the engine's circuit breaker counts: every primary failed to connect or to answer
  // since the last answer from any of them. A batch whose keys all live on one dead node does
  // not count while the other primaries answer. The refresh that follows a node's failure asks
  // every primary, so a cluster that is down as a whole is known as such within one operation.
  bool whole_cluster_unreachable() const {
    const auto serving = primaries();
    return !serving.empty() && std::all_of(serving.begin(), serving.end(), [&](std::int32_t n) {
      return nodes_[static_cast<std::size_t>(n)]->unreachable;
    });
  }

  void pause_before_retry(int round, deadline until) const {
    auto wait = tuning_.tryagain_backoff * (1 << std::min(round, 6));
    const auto now = steady_clock::now();
    if (until != no_deadline) {
      if (until <= now) return;
      wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(until - now));
    }
    std::this_thread::sleep_for(wait);
  }

  client_config cfg_;
  std::shared_ptr<const tls_context> tls_;
  cluster_tuning tuning_;

  std::vector<std::unique_ptr<cluster_node>> nodes_;  // only grows: indices stay valid
  mutable std::mutex nodes_mu_;                        // nodes_ growth vs. connect_attempts()
  std::map<std::string, std::int32_t, std::less<>> node_index_;  // "host:port" -> index
  std::vector<std::unique_ptr<session>> seeds_;
  std::vector<std::int32_t> owner_;  // slot -> node index, or no_node
  bool mapped_ = false;
  bool refresh_due_ = false;
  steady_clock::time_point refreshed_at_{};
  // troubled_at_ means nothing until the first trouble: steady_clock counts from boot, so on a
  // machine up for less than the cooldown a zero time would have suppressed the first refresh.
  bool troubled_ = false;
  steady_clock::time_point troubled_at_{};
};

}  // namespace

result<std::unique_ptr<store>> make_cluster_store(const client_config& cfg,
                                                  const cluster_tuning& tuning) {
  if (cfg.cluster_seeds.empty()) {
    return {status::invalid_argument, "a cluster configuration needs at least one seed node"};
  }
  if (!cfg.unix_path.empty()) {
    return {status::invalid_argument, "a Redis Cluster is reached over TCP, not a unix socket"};
  }
  if (cfg.db != 0) return {status::invalid_argument, "a Redis Cluster has only db 0"};
  if (tuning.max_rounds < 1) return {status::invalid_argument, "cluster_tuning: max_rounds must be >= 1"};
  std::shared_ptr<const tls_context> tls;
  if (cfg.tls.enabled) {
    auto ctx = tls_context::create(cfg.tls);
    if (!ctx.ok()) return ctx.error();
    tls = std::move(ctx).value();
  }
  std::unique_ptr<store> s(new (std::nothrow) cluster_store(cfg, std::move(tls), tuning));
  if (!s) return {status::out_of_memory, "out of memory creating the cluster store"};
  return s;
}

}  // namespace tds::detail
