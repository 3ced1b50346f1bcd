// Test fixture: a throwaway Redis Cluster of N primaries (no replicas) on free loopback ports,
// each node a redis_server (PID kept, private temp dir holding its nodes.conf), joined with
// `redis-cli --cluster create`, plus levers: kill and restart a node, migrate slots by hand
// (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE). Header-only; no library code here.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "redis_server.hpp"
#include "tdscache/slot.hpp"

namespace tds::testing {

struct redis_cluster_options {
  int primaries = 3;
  // Small, so a killed node is noticed within seconds; large enough that a busy two-core box
  // does not declare a live node failed (a node is pinged every node_timeout / 2).
  std::chrono::milliseconds node_timeout{3000};
  // no: the nodes that are up keep serving their slots while another is down (what the
  // "one primary killed" tests need); yes is Redis' default, where the whole cluster refuses.
  bool require_full_coverage = false;
  std::chrono::milliseconds ready_timeout{30000};
  // Clients and the cluster bus speak TLS (tls-cluster yes), with these files; the nodes then
  // announce their TLS ports. Clients must present the client certificate.
  const tls_material* tls = nullptr;
};

// Not thread safe, except kill/pause/resume of a node (signals only).
class redis_cluster {
 public:
  explicit redis_cluster(redis_cluster_options options = {}) : options_(options) {}
  redis_cluster(const redis_cluster&) = delete;
  redis_cluster& operator=(const redis_cluster&) = delete;

  // Starts the nodes, creates the cluster and waits until every node says cluster_state:ok.
  // False (see last_error()) on failure.
  [[nodiscard]] bool start() {
    for (int i = 0; i < options_.primaries; ++i) {
      // The bus port is chosen up front: port + 10000 (Redis' default) may not exist for the
      // high ports the kernel hands out.
      const int bus_port = free_tcp_port();
      redis_server_options o;
      o.extra_args = {"--cluster-enabled", "yes",
                      "--cluster-config-file", "nodes.conf",  // inside the node's own --dir
                      "--cluster-port", std::to_string(bus_port),
                      "--cluster-node-timeout", std::to_string(options_.node_timeout.count()),
                      "--cluster-require-full-coverage", options_.require_full_coverage ? "yes" : "no"};
      if (options_.tls) {
        o.tls = options_.tls;
        o.tls_auth_clients = true;
        o.extra_args.insert(o.extra_args.end(), {"--tls-cluster", "yes"});
      }
      auto node = std::make_unique<redis_server>(o);
      if (!node->start()) {
        error_ = "node " + std::to_string(i) + ": " + node->last_error();
        return false;
      }
      nodes_.push_back(std::move(node));
    }
    std::vector<std::string> create = {"redis-cli"};
    if (options_.tls) {
      create.insert(create.end(), {"--tls", "--cacert", options_.tls->ca_cert, "--cert", options_.tls->client_cert,
                                   "--key", options_.tls->client_key});
    }
    create.insert(create.end(), {"--cluster", "create"});
    for (const auto& n : nodes_) create.push_back("127.0.0.1:" + std::to_string(n->port()));
    create.insert(create.end(), {"--cluster-replicas", "0", "--cluster-yes"});
    const std::string log = nodes_.front()->dir() + "/cluster-create.log";
    if (!run_program(create, log, &error_)) {
      error_ += "\n" + read_file(log);
      return false;
    }
    return wait_ok();
  }

  // Polls CLUSTER INFO on every running node until all say cluster_state:ok, know every
  // node and see every slot assigned.
  [[nodiscard]] bool wait_ok() {
    const auto until = std::chrono::steady_clock::now() + options_.ready_timeout;
    const std::string known = "cluster_known_nodes:" + std::to_string(nodes_.size());
    std::string last;
    while (std::chrono::steady_clock::now() < until) {
      bool all = true;
      for (std::size_t i = 0; i < nodes_.size() && all; ++i) {
        auto info = nodes_[i]->command({"CLUSTER", "INFO"});
        last = info.ok() ? info.value().str : info.error().message;
        all = info.ok() && last.find("cluster_state:ok") != std::string::npos &&
              last.find(known) != std::string::npos &&
              last.find("cluster_slots_assigned:16384") != std::string::npos;
      }
      if (all) return reload_slot_map();
      pause_briefly(std::chrono::milliseconds(20));
    }
    error_ = "cluster not ok in time; last CLUSTER INFO:\n" + last;
    return false;
  }

  std::size_t size() const { return nodes_.size(); }
  redis_server& node(std::size_t i) { return *nodes_[i]; }
  int port(std::size_t i) const { return nodes_[i]->port(); }
  const std::string& last_error() const { return error_; }

  // A client config with every node as a seed.
  client_config config() const {
    client_config c;
    c.cluster = true;
    for (const auto& n : nodes_) c.cluster_seeds.emplace_back("127.0.0.1", n->port());
    c.host = "127.0.0.1";
    c.port = nodes_.front()->port();
    c.tls = nodes_.front()->config().tls;  // the fixture's files when TLS is on
    return c;
  }
  std::string url() const {
    std::string u = "redis+cluster://";
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (i) u += ",";
      u += "127.0.0.1:" + std::to_string(nodes_[i]->port());
    }
    return u;
  }

  std::string node_id(std::size_t i) {
    auto r = nodes_[i]->command({"CLUSTER", "MYID"});
    return r.ok() ? r.value().str : std::string();
  }

  // Which node serves `slot`, by the map read last (reload_slot_map()); -1 if none.
  int owner(std::uint16_t slot) const { return slot_owner_.empty() ? -1 : slot_owner_[slot]; }
  int owner_of_key(std::string_view key) const { return owner(key_slot(key)); }

  // Reads CLUSTER SLOTS from the first running node.
  [[nodiscard]] bool reload_slot_map() {
    for (auto& n : nodes_) {
      if (!n->running()) continue;
      auto r = n->command({"CLUSTER", "SLOTS"});
      if (!r.ok() || r.value().type != detail::reply::kind::array) continue;
      slot_owner_.assign(cluster_slot_count, -1);
      for (const auto& range : r.value().elements) {
        const int port = static_cast<int>(range.elements[2].elements[1].integer);
        int index = -1;
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
          if (nodes_[i]->port() == port) index = static_cast<int>(i);
        }
        std::fill(slot_owner_.begin() + range.elements[0].integer,
                  slot_owner_.begin() + range.elements[1].integer + 1, index);
      }
      return true;
    }
    error_ = "no node answered CLUSTER SLOTS";
    return false;
  }

  // A single-key command on the node that serves the key (by the last map read).
  result<detail::reply> keyed(std::vector<std::string_view> argv) {
    const int i = owner_of_key(argv.at(1));
    if (i < 0) return {status::cluster, "no node serves the key"};
    return nodes_[static_cast<std::size_t>(i)]->command(std::move(argv));
  }

  // On every running node.
  bool all(std::vector<std::string_view> argv) {
    bool ok = true;
    for (auto& n : nodes_) {
      if (!n->running()) continue;
      auto r = n->command(argv);
      ok = ok && r.ok() && !r.value().is_error();
    }
    return ok;
  }
  bool flushall() { return all({"FLUSHALL"}); }
  bool reset_stats() { return all({"CONFIG", "RESETSTAT"}); }

  long long dbsize(std::size_t i) {
    auto r = nodes_[i]->command({"DBSIZE"});
    return r.ok() ? r.value().integer : -1;
  }
  long long total_dbsize() {
    long long total = 0;
    for (std::size_t i = 0; i < nodes_.size(); ++i) total += dbsize(i);
    return total;
  }
  // Sum over the running nodes of INFO commandstats calls ("mget", "asking", "cluster|slots").
  std::uint64_t total_calls(std::string_view command) {
    std::uint64_t total = 0;
    for (auto& n : nodes_) {
      if (n->running()) total += n->calls(command);
    }
    return total;
  }
  // INFO errorstats count of one error prefix ("TRYAGAIN", "ASK", "MOVED") on node i.
  std::uint64_t errors(std::size_t i, std::string_view prefix) {
    auto info = nodes_[i]->command({"INFO", "errorstats"});
    if (!info.ok()) return UINT64_MAX;
    const std::string needle = "errorstat_" + std::string(prefix) + ":count=";
    const auto at = info.value().str.find(needle);
    if (at == std::string::npos) return 0;
    return std::strtoull(info.value().str.c_str() + at + needle.size(), nullptr, 10);
  }

  // ---- faults

  void kill(std::size_t i) { nodes_[i]->kill(); }
  // Same port and nodes.conf, empty data: the node rejoins with the slots it had.
  [[nodiscard]] bool restart(std::size_t i) {
    if (!nodes_[i]->restart()) {
      error_ = nodes_[i]->last_error();
      return false;
    }
    return wait_ok();
  }
  // Every node that was killed, then one wait: a node alone cannot reach cluster_state:ok
  // while the majority is still down.
  [[nodiscard]] bool restart_dead() {
    for (auto& n : nodes_) {
      if (!n->running() && !n->restart()) {
        error_ = n->last_error();
        return false;
      }
    }
    return wait_ok();
  }
  bool all_running() const {
    return std::all_of(nodes_.begin(), nodes_.end(), [](const auto& n) { return n->running(); });
  }

  // ---- slot migration, the way redis-cli --cluster reshard does it

  [[nodiscard]] bool begin_migration(std::uint16_t slot, std::size_t from, std::size_t to) {
    const std::string s = std::to_string(slot);
    const std::string from_id = node_id(from), to_id = node_id(to);
    return ok(nodes_[to]->command({"CLUSTER", "SETSLOT", s, "IMPORTING", from_id})) &&
           ok(nodes_[from]->command({"CLUSTER", "SETSLOT", s, "MIGRATING", to_id}));
  }

  // MIGRATEs `keys` (all in one slot) from one node to another.
  [[nodiscard]] bool migrate_keys(std::size_t from, std::size_t to, const std::vector<std::string>& keys) {
    if (keys.empty()) return true;
    const std::string port = std::to_string(nodes_[to]->port());
    std::vector<std::string_view> argv = {"MIGRATE", "127.0.0.1", port, "", "0", "10000", "KEYS"};
    argv.insert(argv.end(), keys.begin(), keys.end());
    return ok(nodes_[from]->command(argv));
  }

  // Every key left in the slot on `from`, in batches.
  [[nodiscard]] bool migrate_all_keys(std::uint16_t slot, std::size_t from, std::size_t to) {
    const std::string s = std::to_string(slot);
    for (;;) {
      auto r = nodes_[from]->command({"CLUSTER", "GETKEYSINSLOT", s, "1000"});
      if (!r.ok() || r.value().type != detail::reply::kind::array) return false;
      if (r.value().elements.empty()) return true;
      std::vector<std::string> keys;
      for (const auto& k : r.value().elements) keys.push_back(k.str);
      if (!migrate_keys(from, to, keys)) return false;
    }
  }

  // SETSLOT NODE on the new owner first, then the old one, then the rest (redis-cli's order:
  // the new owner bumps its config epoch, so gossip never brings the old owner back).
  [[nodiscard]] bool finish_migration(std::uint16_t slot, std::size_t from, std::size_t to) {
    const std::string s = std::to_string(slot);
    const std::string to_id = node_id(to);
    std::vector<std::size_t> order = {to, from};
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (i != to && i != from) order.push_back(i);
    }
    for (const std::size_t i : order) {
      if (!ok(nodes_[i]->command({"CLUSTER", "SETSLOT", s, "NODE", to_id}))) return false;
    }
    return true;
  }

  // A whole slot, keys included.
  [[nodiscard]] bool move_slot(std::uint16_t slot, std::size_t from, std::size_t to) {
    return begin_migration(slot, from, to) && migrate_all_keys(slot, from, to) &&
           finish_migration(slot, from, to);
  }

 private:
  bool ok(const result<detail::reply>& r) {
    if (!r.ok()) {
      error_ = r.error().message;
      return false;
    }
    if (r.value().is_error()) {
      error_ = r.value().str;
      return false;
    }
    return true;
  }

  redis_cluster_options options_;
  std::vector<std::unique_ptr<redis_server>> nodes_;
  std::vector<int> slot_owner_;
  std::string error_;
};

}  // namespace tds::testing
