// The store for one Redis server: every batch is one pipeline on one session (MGET chunks,
// packed EVALSHA calls, UNLINK batches, SCAN pages). Also make_store() and escape_glob().
// Connection handling is transport.cpp; decisions and state encoding are client.cpp's.
#include <algorithm>
#include <string>
#include <utility>

#include "store.hpp"

namespace tds::detail {
namespace {

// Keys per EVALSHA: each call costs ~5 us of script setup on the server, which 64 keys make
// negligible, while one call still runs only a few hundred microseconds (it blocks the server)
// and an error reply that fails a whole call (NOPERM) costs at most 64 keys.
constexpr std::size_t keys_per_eval = 64;

// SCAN's COUNT is the work per call: 1000 keeps one call well under a millisecond on the
// server while a 50,000-key type takes ~50 round trips.
constexpr std::string_view scan_count = "1000";

// UNLINK batch: one command per 1000 keys, the same trade-off as MGET chunks.
constexpr std::size_t unlink_batch = 1000;

class single_store final : public store {
 public:
  single_store(const client_config& cfg, std::shared_ptr<const tls_context> tls)
      : cfg_(cfg), session_(endpoint::from_config(cfg), cfg, std::move(tls)) {}

  batch_report mget(std::span<const std::string_view> keys, std::vector<lookup_result>& out,
                    deadline until) override {
    batch_report report;
    out.clear();
    out.resize(keys.size());
    if (keys.empty()) return report;
    const std::size_t chunk = std::max<std::size_t>(1, cfg_.mget_chunk);
    auto formatted = format_chunked("MGET", keys, chunk);
    if (!formatted.ok()) {
      report.note(formatted.error(), keys.size(), false);
      return report;
    }
    const std::size_t commands = formatted.value();
    std::size_t answered = 0;
    auto r = session_.exchange(
        buffer_, commands,
        [&](std::size_t i, reply& rep) -> result<void> {
          const std::size_t start = i * chunk;
          const std::size_t count = std::min(chunk, keys.size() - start);
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
          } else if (rep.is_error()) {
            report.note(make_error(error_reply_status(rep.str),
                                   "Redis at " + where() + " refused MGET: " + rep.str),
                        count, false);
          } else {
            report.note(make_error(status::protocol, "MGET from Redis at " + where() +
                                                         " gave an unexpected reply shape"),
                        count, false);
          }
          return {};
        },
        until);
    if (!r.ok()) {
      const std::size_t done_keys = std::min(keys.size(), answered * chunk);
      report.note(r.error(), keys.size() - done_keys, true);
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
      for (auto& c : out) c.code = status::internal;
      report.note(make_error(status::internal, "script call arguments do not match the stride"),
                  n, false);
      return report;
    }
    std::vector<std::size_t> groups;
    for (std::size_t start = 0; start < n; start += keys_per_eval) groups.push_back(start);
    std::vector<std::size_t> missing_script;
    run_evals(s, calls, groups, out, report, missing_script, until);
    if (!missing_script.empty()) {
      // The server lost its script cache (restart, SCRIPT FLUSH, failover): load it once and
      // replay only the calls that did not run.
      const std::string_view load[] = {"SCRIPT", "LOAD", s.source};
      auto loaded = session_.command(load, until);
      error failure;
      if (!loaded.ok()) {
        failure = loaded.error();
      } else if (loaded.value().is_error()) {
        failure = make_error(error_reply_status(loaded.value().str),
                             "Redis at " + where() + " refused SCRIPT LOAD: " + loaded.value().str);
      } else if (loaded.value().str != s.sha1) {
        failure = make_error(status::internal, "SCRIPT LOAD returned sha " + loaded.value().str +
                                                   ", expected " + s.sha1);
      }
      if (failure.code != status::ok) {
        for (std::size_t start : missing_script) {
          const std::size_t count = std::min(keys_per_eval, n - start);
          fail_calls(out, start, count, failure);
          report.note(failure, count, !loaded.ok());
        }
      } else {
        std::vector<std::size_t> still_missing;
        run_evals(s, calls, missing_script, out, report, still_missing, until);
        for (std::size_t start : still_missing) {
          const std::size_t count = std::min(keys_per_eval, n - start);
          const error e = make_error(status::server_error, "NOSCRIPT again after SCRIPT LOAD");
          fail_calls(out, start, count, e);
          report.note(e, count, false);
        }
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
    buffer_.clear();
    for (const auto& argv : commands) {
      if (auto r = append_command(buffer_, argv); !r.ok()) {
        fail_calls(out, 0, out.size(), r.error());
        report.note(r.error(), out.size(), false);
        return report;
      }
    }
    std::size_t answered = 0;
    auto r = session_.exchange(
        buffer_, commands.size(),
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
    auto formatted = format_chunked("UNLINK", keys, unlink_batch);
    if (!formatted.ok()) return formatted.error();
    const std::size_t commands = formatted.value();
    std::uint64_t removed = 0;
    error failure;
    auto r = session_.exchange(
        buffer_, commands,
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
    // Each round trip carries the UNLINK of the previous page and the SCAN of the next one.
    while (first || cursor != "0" || !keys.empty()) {
      buffer_.clear();
      std::size_t commands = 0;
      if (!keys.empty()) {
        argv_.assign({"UNLINK"});
        for (const auto& k : keys) argv_.push_back(k);
        if (auto r = append_command(buffer_, argv_); !r.ok()) return r.error();
        ++commands;
      }
      const bool more = first || cursor != "0";
      if (more) {
        const std::string_view argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", scan_count};
        if (auto r = append_command(buffer_, argv); !r.ok()) return r.error();
        ++commands;
      }
      first = false;
      const bool has_unlink = !keys.empty();
      std::vector<std::string> next_keys;
      error failure;
      auto r = session_.exchange(
          buffer_, commands,
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

  // Fills buffer_ with `name key...` commands of at most `chunk` keys each; returns how many.
  result<std::size_t> format_chunked(std::string_view name, std::span<const std::string_view> keys,
                                     std::size_t chunk) {
    buffer_.clear();
    std::size_t commands = 0;
    for (std::size_t start = 0; start < keys.size(); start += chunk) {
      const std::size_t end = std::min(keys.size(), start + chunk);
      argv_.clear();
      argv_.push_back(name);
      argv_.insert(argv_.end(), keys.begin() + static_cast<std::ptrdiff_t>(start),
                   keys.begin() + static_cast<std::ptrdiff_t>(end));
      if (auto r = append_command(buffer_, argv_); !r.ok()) return r.error();
      ++commands;
    }
    return commands;
  }

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

  // Sends one EVALSHA per group (groups are start indices of runs of keys_per_eval calls).
  // Groups answered NOSCRIPT are listed in `missing_script` for the caller to retry.
  void run_evals(const script& s, const script_calls& calls, const std::vector<std::size_t>& groups,
                 std::vector<call_result>& out, batch_report& report,
                 std::vector<std::size_t>& missing_script, deadline until) {
    const std::size_t n = calls.keys.size();
    const std::size_t stride = s.args_per_key;
    buffer_.clear();
    for (std::size_t start : groups) {
      const std::size_t count = std::min(keys_per_eval, n - start);
      const std::string numkeys = std::to_string(count);
      argv_.clear();
      argv_.push_back("EVALSHA");
      argv_.push_back(s.sha1);
      argv_.push_back(numkeys);
      argv_.insert(argv_.end(), calls.keys.begin() + static_cast<std::ptrdiff_t>(start),
                   calls.keys.begin() + static_cast<std::ptrdiff_t>(start + count));
      argv_.insert(argv_.end(), calls.args.begin() + static_cast<std::ptrdiff_t>(start * stride),
                   calls.args.begin() + static_cast<std::ptrdiff_t>((start + count) * stride));
      if (auto r = append_command(buffer_, argv_); !r.ok()) {
        for (std::size_t g : groups) fail_calls(out, g, std::min(keys_per_eval, n - g), r.error());
        report.note(r.error(), n, false);
        return;
      }
    }
    std::size_t answered = 0;
    auto r = session_.exchange(
        buffer_, groups.size(),
        [&](std::size_t gi, reply& rep) -> result<void> {
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
          } else if (rep.is_error() && rep.str.rfind("NOSCRIPT", 0) == 0) {
            missing_script.push_back(start);
          } else {
            const error e = reply_failure("EVALSHA", rep);
            fail_calls(out, start, count, e);
            report.note(e, count, false);
          }
          return {};
        },
        until);
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
  std::string buffer_;                 // commands of the current batch, reused
  std::vector<std::string_view> argv_;  // arguments of the command being formatted, reused
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
  if (cfg.cluster) {
    return {status::cluster, "Redis Cluster routing is not available in this build yet"};
  }
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
