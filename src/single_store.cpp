// The store for one Redis server: every batch is one pipeline on one session (MGET chunks,
// packed EVALSHA calls, UNLINK batches, SCAN pages), formatted lazily as the socket drains.
// Also make_store() and escape_glob(). Connections are transport.cpp's; meaning is client.cpp's.
#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "cluster_store.hpp"
#include "store.hpp"

namespace tds::detail {
namespace {

// Keys per EVALSHA: each call costs several microseconds of script setup on the server, which
// 64 keys make negligible, while one call still runs only a few hundred microseconds (it
// blocks the server) and an error reply that fails a whole call (NOPERM) costs at most 64 keys.
constexpr std::size_t keys_per_eval = 64;

// SCAN's COUNT is the work per call: 1000 keeps one call well under a millisecond on the
// server while a 50,000-key type takes ~50 round trips.
constexpr std::string_view scan_count = "1000";

// UNLINK batch: one command per 1000 keys, the same trade-off as MGET chunks.
constexpr std::size_t unlink_batch = 1000;

// `name key...` commands cut by chunk_layout, formatted one command per next().
class chunked_source final : public command_source {
 public:
  chunked_source(std::string_view name, std::span<const std::string_view> keys, const chunk_layout& layout)
      : name_(name), keys_(keys), layout_(layout) {}

  result<std::string_view> next() override {
    if (index_ >= layout_.commands()) return std::string_view{};
    const std::size_t start = layout_.start(index_);
    const std::size_t end = start + layout_.size(index_);
    ++index_;
    argv_.clear();
    argv_.push_back(name_);
    argv_.insert(argv_.end(), keys_.begin() + static_cast<std::ptrdiff_t>(start),
                 keys_.begin() + static_cast<std::ptrdiff_t>(end));
    bytes_.clear();
    if (auto r = append_command(bytes_, argv_); !r.ok()) return r.error();
    return std::string_view(bytes_);
  }
  void rewind() override { index_ = 0; }

 private:
  std::string_view name_;
  std::span<const std::string_view> keys_;
  chunk_layout layout_;
  std::size_t index_ = 0;
  std::vector<std::string_view> argv_;
  std::string bytes_;
};

// EVALSHA calls over groups of keys (groups = start indices of runs of keys_per_eval calls),
// optionally preceded by SCRIPT LOAD, one command per next().
class eval_source final : public command_source {
 public:
  eval_source(const script& s, const script_calls& calls, std::span<const std::size_t> groups,
              bool load_first)
      : script_(s), calls_(calls), groups_(groups), load_first_(load_first) {}

  result<std::string_view> next() override {
    bytes_.clear();
    if (load_first_ && !load_sent_) {
      load_sent_ = true;
      const std::string_view load[] = {"SCRIPT", "LOAD", script_.source};
      if (auto r = append_command(bytes_, load); !r.ok()) return r.error();
      return std::string_view(bytes_);
    }
    if (pos_ >= groups_.size()) return std::string_view{};
    const std::size_t start = groups_[pos_++];
    const std::size_t count = std::min(keys_per_eval, calls_.keys.size() - start);
    const auto items = std::views::iota(start, start + count);
    if (auto r = append_evalsha(bytes_, argv_, script_, calls_, items); !r.ok()) return r.error();
    return std::string_view(bytes_);
  }
  void rewind() override {
    pos_ = 0;
    load_sent_ = false;
  }

 private:
  const script& script_;
  const script_calls& calls_;
  std::span<const std::size_t> groups_;
  bool load_first_;
  bool load_sent_ = false;
  std::size_t pos_ = 0;
  std::vector<std::string_view> argv_;
  std::string bytes_;
};

class single_store final : public store {
 public:
  single_store(const client_config& cfg, std::shared_ptr<const tls_context> tls)
      : cfg_(cfg), session_(endpoint::from_config(cfg), cfg, std::move(tls)) {}

  batch_report mget(std::span<const std::string_view> keys, std::vector<lookup_result>& out,
                    const ready_handler& on_ready, deadline until) override {
    batch_report report;
    out.clear();
    out.resize(keys.size());
    if (keys.empty()) return report;
    const chunk_layout layout(keys.size(), std::max<std::size_t>(1, cfg_.mget_chunk));
    chunked_source source("MGET", keys, layout);
    std::size_t answered = 0;
    auto r = session_.exchange(
        source, layout.commands(),
        [&](std::size_t i, reply& rep) -> result<void> {
          const std::size_t start = layout.start(i);
          const std::size_t count = layout.size(i);
          answered = i + 1;
          if (rep.type == reply::kind::array && rep.elements.size() == count) {
            for (std::size_t j = 0; j < count; ++j) {
              reply& e = rep.elements[j];
              lookup_result& slot = out[start + j];
              if (e.type == reply::kind::nil) {
                slot.kind = lookup_kind::missing;
              } else if (e.type == reply::kind::string) {
                slot.kind = lookup_kind::present;
                slot.value = std::move(e.str);
              } else {
                report.note(make_error(status::protocol, "MGET from Redis at " + where() +
                                                             " gave a non-string element"),
                            1, false);
              }
            }
          } else {
            report.note(reply_failure("MGET", rep), count, false);
          }
          if (on_ready) on_ready(start, count);
          return {};
        },
        until);
    if (!r.ok()) {
      // A retried exchange starts over, so `answered` counts replies of the last attempt only.
      const std::size_t done_keys = layout.start(answered);
      for (std::size_t i = done_keys; i < keys.size(); ++i) out[i] = lookup_result{};
      report.note(r.error(), keys.size() - done_keys, true);
      if (on_ready && done_keys < keys.size()) on_ready(done_keys, keys.size() - done_keys);
    }
    return report;
  }

  batch_report eval_each(const script& s, const script_calls& calls,
                         std::vector<call_result>& out, deadline until) override {
    batch_report report;
    const std::size_t n = calls.keys.size();
    out.clear();
    out.resize(n);
    if (n == 0) return report;
    if (calls.args.size() != n * s.args_per_key) {
      const error e = make_error(status::internal, "script call arguments do not match the stride");
      fail_calls(out, 0, n, e);
      report.note(e, n, false);
      return report;
    }
    std::vector<std::size_t> groups;
    for (std::size_t start = 0; start < n; start += keys_per_eval) groups.push_back(start);
    std::vector<std::size_t> missing_script;
    run_evals(s, calls, groups, out, report, missing_script, until);
    if (!missing_script.empty()) {
      // The server lost its script cache (SCRIPT FLUSH, failover) on this connection: load it
      // once and replay only the calls that did not run.
      std::vector<std::size_t> still_missing;
      loaded_[s.sha1] = 0;
      run_evals(s, calls, missing_script, out, report, still_missing, until);
      for (std::size_t start : still_missing) {
        const std::size_t count = std::min(keys_per_eval, n - start);
        const error e = make_error(status::server_error, "NOSCRIPT again after SCRIPT LOAD");
        fail_calls(out, start, count, e);
        report.note(e, count, false);
      }
    }
    return report;
  }

  batch_report keyed(std::span<const std::vector<std::string_view>> commands,
                     std::vector<call_result>& out, deadline until) override {
    batch_report report;
    out.clear();
    out.resize(commands.size());
    if (commands.empty()) return report;
    std::string bytes;
    for (const auto& argv : commands) {
      if (auto r = append_command(bytes, argv); !r.ok()) {
        fail_calls(out, 0, out.size(), r.error());
        report.note(r.error(), out.size(), false);
        return report;
      }
    }
    std::size_t answered = 0;
    auto r = session_.exchange(
        bytes, commands.size(),
        [&](std::size_t i, reply& rep) -> result<void> {
          answered = i + 1;
          if (rep.is_error()) {
            out[i].code = error_reply_status(rep.str);
            report.note(make_error(out[i].code, "Redis at " + where() + ": " + rep.str), 1, false);
          }
          out[i].value = std::move(rep);
          return {};
        },
        until);
    if (!r.ok()) {
      fail_calls(out, answered, out.size() - answered, r.error());
      report.note(r.error(), out.size() - answered, true);
    }
    return report;
  }

  result<std::uint64_t> unlink(std::span<const std::string_view> keys, deadline until) override {
    if (keys.empty()) return std::uint64_t{0};
    const chunk_layout layout(keys.size(), unlink_batch);
    chunked_source source("UNLINK", keys, layout);
    std::uint64_t removed = 0;
    error failure;
    auto r = session_.exchange(
        source, layout.commands(),
        [&](std::size_t, reply& rep) -> result<void> {
          if (rep.type == reply::kind::integer) {
            removed += static_cast<std::uint64_t>(rep.integer);
          } else if (failure.code == status::ok) {
            failure = reply_failure("UNLINK", rep);
          }
          return {};
        },
        until);
    if (!r.ok()) return r.error();
    if (failure.code != status::ok) return failure;
    return removed;
  }

  result<void> scan(std::string_view match, const key_batch_handler& on_keys,
                    deadline until) override {
    std::string cursor = "0";
    std::vector<std::string> keys;
    do {
      const std::string_view argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", scan_count};
      auto rep = session_.command(argv, until);
      if (!rep.ok()) return rep.error();
      if (auto r = read_scan_page(rep.value(), cursor, keys); !r.ok()) return r;
      if (!keys.empty()) {
        if (auto r = on_keys(keys); !r.ok()) return r;
      }
    } while (cursor != "0");
    return {};
  }

  result<std::uint64_t> scan_unlink(std::string_view match, deadline until) override {
    std::string cursor = "0";
    std::vector<std::string> keys;
    std::uint64_t removed = 0;
    bool first = true;
    std::string bytes;
    std::vector<std::string_view> argv;
    // Each round trip carries the UNLINK of the previous page and the SCAN of the next one.
    while (first || cursor != "0" || !keys.empty()) {
      bytes.clear();
      std::size_t commands = 0;
      if (!keys.empty()) {
        argv.assign({"UNLINK"});
        for (const auto& k : keys) argv.push_back(k);
        if (auto r = append_command(bytes, argv); !r.ok()) return r.error();
        ++commands;
      }
      const bool more = first || cursor != "0";
      if (more) {
        const std::string_view scan_argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", scan_count};
        if (auto r = append_command(bytes, scan_argv); !r.ok()) return r.error();
        ++commands;
      }
      first = false;
      const bool has_unlink = !keys.empty();
      std::vector<std::string> next_keys;
      error failure;
      auto r = session_.exchange(
          bytes, commands,
          [&](std::size_t i, reply& rep) -> result<void> {
            if (has_unlink && i == 0) {
              if (rep.type == reply::kind::integer) {
                removed += static_cast<std::uint64_t>(rep.integer);
              } else if (failure.code == status::ok) {
                failure = reply_failure("UNLINK", rep);
              }
              return {};
            }
            if (auto p = read_scan_page(rep, cursor, next_keys); !p.ok() && failure.code == status::ok) {
              failure = p.error();
            }
            return {};
          },
          until);
      if (!r.ok()) return r.error();
      if (failure.code != status::ok) return failure;
      keys = std::move(next_keys);
      if (!more) break;
    }
    return removed;
  }

  result<reply> server_command(std::span<const std::string_view> argv, deadline until) override {
    return session_.command(argv, until);
  }

  std::uint64_t connect_attempts() const noexcept override { return session_.connect_attempts(); }

 private:
  std::string where() const { return session_.where().describe(); }

  error reply_failure(std::string_view command, const reply& rep) const {
    if (rep.is_error()) {
      return make_error(error_reply_status(rep.str),
                        "Redis at " + where() + " refused " + std::string(command) + ": " + rep.str);
    }
    return make_error(status::protocol,
                      std::string(command) + " from Redis at " + where() + " gave an unexpected reply");
  }

  result<void> read_scan_page(reply& rep, std::string& cursor, std::vector<std::string>& keys) const {
    if (rep.type != reply::kind::array || rep.elements.size() != 2 ||
        rep.elements[0].type != reply::kind::string || rep.elements[1].type != reply::kind::array) {
      return reply_failure("SCAN", rep);
    }
    cursor = std::move(rep.elements[0].str);
    keys.clear();
    for (auto& k : rep.elements[1].elements) keys.push_back(std::move(k.str));
    return {};
  }

  static void fail_calls(std::vector<call_result>& out, std::size_t start, std::size_t count,
                         const error& e) {
    for (std::size_t i = start; i < start + count && i < out.size(); ++i) {
      out[i].code = e.code;
      out[i].value = reply::make_error(e.message);
    }
  }

  // One pipeline of EVALSHA calls, one per group. On a connection that has not loaded the
  // script yet, SCRIPT LOAD goes first in the same pipeline (no extra round trip, and no
  // NOSCRIPT pass over the whole batch). Groups still answered NOSCRIPT (the cache was flushed
  // under an old connection) are listed in `missing_script` for the caller to retry.
  void run_evals(const script& s, const script_calls& calls, const std::vector<std::size_t>& groups,
                 std::vector<call_result>& out, batch_report& report,
                 std::vector<std::size_t>& missing_script, deadline until) {
    const std::size_t n = calls.keys.size();
    const bool load_first = !session_.connected() || loaded_[s.sha1] != session_.generation();
    eval_source source(s, calls, groups, load_first);
    const std::size_t offset = load_first ? 1 : 0;
    std::size_t answered = 0;
    error load_failure;
    auto r = session_.exchange(
        source, groups.size() + offset,
        [&](std::size_t i, reply& rep) -> result<void> {
          if (i < offset) {
            if (rep.is_error()) {
              load_failure = reply_failure("SCRIPT LOAD", rep);
            } else if (rep.str != s.sha1) {
              load_failure = make_error(status::internal, "SCRIPT LOAD returned sha " + rep.str +
                                                              ", expected " + s.sha1);
            }
            return {};
          }
          const std::size_t gi = i - offset;
          answered = gi + 1;
          const std::size_t start = groups[gi];
          const std::size_t count = std::min(keys_per_eval, n - start);
          if (rep.type == reply::kind::array && rep.elements.size() == count) {
            for (std::size_t j = 0; j < count; ++j) {
              call_result& slot = out[start + j];
              slot.value = std::move(rep.elements[j]);
              slot.code = slot.value.is_error() ? error_reply_status(slot.value.str) : status::ok;
              if (slot.code != status::ok) {
                report.note(make_error(slot.code, "Redis at " + where() + ": " + slot.value.str),
                            1, false);
              }
            }
          } else if (rep.is_error() && rep.str.rfind("NOSCRIPT", 0) == 0 &&
                     load_failure.code == status::ok) {
            missing_script.push_back(start);
          } else {
            // When SCRIPT LOAD itself was refused, its reason explains the NOSCRIPTs.
            const error e = load_failure.code != status::ok ? load_failure : reply_failure("EVALSHA", rep);
            fail_calls(out, start, count, e);
            report.note(e, count, false);
          }
          return {};
        },
        until);
    if (r.ok() && load_first && load_failure.code == status::ok) loaded_[s.sha1] = session_.generation();
    if (!r.ok()) {
      for (std::size_t gi = answered; gi < groups.size(); ++gi) {
        const std::size_t count = std::min(keys_per_eval, n - groups[gi]);
        fail_calls(out, groups[gi], count, r.error());
        report.note(r.error(), count, true);
      }
      // Groups that said NOSCRIPT before the failure will not be retried on a dead link.
      for (std::size_t start : missing_script) {
        const std::size_t count = std::min(keys_per_eval, n - start);
        fail_calls(out, start, count, r.error());
        report.note(r.error(), count, true);
      }
      missing_script.clear();
    }
  }

  client_config cfg_;
  session session_;
  std::map<std::string, std::uint64_t> loaded_;  // script sha -> session generation it was loaded in
};

}  // namespace

std::string escape_glob(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (const char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

result<std::unique_ptr<store>> make_store(const client_config& cfg) {
  if (cfg.cluster) return make_cluster_store(cfg);
  std::shared_ptr<const tls_context> tls;
  if (cfg.tls.enabled) {
    if (!cfg.unix_path.empty()) {
      return {status::invalid_argument, "TLS over a unix socket is not supported by Redis"};
    }
    auto ctx = tls_context::create(cfg.tls);
    if (!ctx.ok()) return ctx.error();
    tls = std::move(ctx).value();
  }
  std::unique_ptr<store> s(new (std::nothrow) single_store(cfg, std::move(tls)));
  if (!s) return {status::out_of_memory, "out of memory creating the store"};
  return s;
}

}  // namespace tds::detail
