// The byte pipe to one Redis server: TCP, Unix socket or TLS (OpenSSL 3), every wait bounded by
// poll() deadlines; and `session`, which adds RESP framing, AUTH/SELECT and reconnect backoff.
// Internal. What commands to send, and to which server, is the store's business (store.hpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "resp.hpp"
#include "tdscache/config.hpp"
#include "tdscache/error.hpp"

namespace tds::detail {

using steady_clock = std::chrono::steady_clock;
using deadline = steady_clock::time_point;
inline constexpr deadline no_deadline = deadline::max();

// Where one server listens. A single-node store has one; a cluster store one per primary.
struct endpoint {
  std::string host;
  int port = 6379;
  std::string unix_path;  // wins when set

  std::string describe() const;  // "127.0.0.1:6379", "[::1]:6379", "unix:/tmp/r.sock"
  static endpoint from_config(const client_config& cfg);
};

// An OpenSSL client context built from tls_options: CA, client certificate, TLS 1.2 minimum.
// Immutable once built, so connections on several threads may share it.
class tls_context {
 public:
  static result<std::shared_ptr<const tls_context>> create(const tls_options& options);
  ~tls_context();
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;

  const tls_options& options() const noexcept { return options_; }
  void* native() const noexcept { return ctx_; }  // SSL_CTX*, kept opaque to callers

 private:
  tls_context() = default;
  void* ctx_ = nullptr;
  tls_options options_;
};

// The bytes of a pipeline, handed out a piece at a time, so that a large batch is formatted
// while earlier commands are already running on the server (and never sits in memory whole).
class command_source {
 public:
  virtual ~command_source() = default;
  // The next bytes to send; an empty view once everything was handed out. The view stays
  // valid until the next call.
  virtual result<std::string_view> next() = 0;
  // Start again from the first command (a retry on a fresh connection).
  virtual void rewind() = 0;
};

// A source over bytes that are already formatted.
class buffer_source final : public command_source {
 public:
  explicit buffer_source(std::string_view bytes) : bytes_(bytes) {}
  result<std::string_view> next() override {
    if (done_) return std::string_view{};
    done_ = true;
    return bytes_;
  }
  void rewind() override { done_ = false; }

 private:
  std::string_view bytes_;
  bool done_ = false;
};

// One open socket (with its TLS session, if any). Not thread safe. Any error leaves it broken;
// the owner closes it and opens a new one.
class connection {
 public:
  // TCP or Unix connect, TCP_NODELAY and keepalive, then the TLS handshake when tls is set,
  // all before `until`.
  static result<std::unique_ptr<connection>> open(const endpoint& where, const client_config& cfg,
                                                  const tls_context* tls, deadline until);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Returns true when the reader has everything it wanted, false to keep reading.
  using read_handler = std::function<result<bool>(std::string_view)>;

  // Writes everything `out` hands out and, in the same poll loop, passes every received chunk
  // to on_read until it returns true. Writing and reading alternate a chunk at a time: a deep
  // pipeline never deadlocks on full socket buffers, the server always has queued commands
  // while replies are being processed here, and replies are processed while later commands
  // are still going out. Each wait lasts at most `idle` (no byte moved either way) and never
  // past `until`.
  result<void> transfer(command_source& out, const read_handler& on_read,
                        std::chrono::milliseconds idle, deadline until);

  const std::string& peer() const noexcept { return peer_; }
  bool is_tls() const noexcept { return ssl_ != nullptr; }

 private:
  connection() = default;
  // One send (or SSL_write): bytes written, 0 when the socket is full (`want` says why).
  result<std::size_t> write_some(std::string_view bytes, short& want);
  // One recv (or SSL_read) into buffer_: bytes read, 0 when nothing is ready.
  result<std::size_t> read_some(short& want);

  int fd_ = -1;
  void* ssl_ = nullptr;  // SSL*
  std::string peer_;
  std::unique_ptr<char[]> buffer_;
};

// A conversation with one server: a connection opened on demand (then AUTH and SELECT, within
// the connect timeout), a RESP reader, and exponential backoff between failed connects.
// Not thread safe: the client serializes calls.
class session {
 public:
  session(endpoint where, const client_config& cfg, std::shared_ptr<const tls_context> tls);
  ~session();

  // Called with (index, reply) for each reply, in order. An error return aborts the exchange
  // and drops the connection.
  using reply_handler = std::function<result<void>(std::size_t, reply&)>;

  // Sends the commands `out` produces (`replies` of them) and delivers every reply. A
  // connection that was idle and turns out dead before any reply came back (server
  // restarted, idle timeout) is replaced and the exchange tried once more from the start; a
  // timeout is never retried.
  result<void> exchange(command_source& out, std::size_t replies, const reply_handler& on_reply,
                        deadline until = no_deadline);
  result<void> exchange(std::string_view commands, std::size_t replies,
                        const reply_handler& on_reply, deadline until = no_deadline);

  // One command, one reply (error replies are returned as replies, not as errors).
  result<reply> command(std::span<const std::string_view> argv, deadline until = no_deadline);

  bool connected() const noexcept { return conn_ != nullptr; }
  // Changes whenever a new connection is established: server-side per-connection facts (a
  // script loaded, say) are only known for the generation they were learned in.
  std::uint64_t generation() const noexcept { return generation_; }
  void disconnect() noexcept;
  const endpoint& where() const noexcept { return where_; }
  // Connections opened so far: tests use it to prove that an open breaker sends nothing.
  std::uint64_t connect_attempts() const noexcept { return connect_attempts_.load(std::memory_order_relaxed); }

 private:
  result<void> ensure_connected(deadline until);
  result<void> run(command_source& out, std::size_t replies, const reply_handler& on_reply,
                   deadline until, std::size_t& delivered);

  result<void> handshake(deadline until);

  endpoint where_;
  client_config cfg_;
  std::shared_ptr<const tls_context> tls_;
  std::unique_ptr<connection> conn_;
  reply_reader reader_;
  std::chrono::milliseconds backoff_{0};
  deadline next_attempt_{};
  std::string last_connect_error_;
  std::atomic<std::uint64_t> connect_attempts_{0};  // read without the client's lock
  std::uint64_t generation_ = 0;
};

}  // namespace tds::detail
