// Sockets and TLS for the Redis transport: non-blocking connect, poll() deadlines, an OpenSSL
// BIO that never raises SIGPIPE, and the session (handshake, reconnect backoff, one retry on
// a stale connection). RESP parsing is resp.cpp; which commands to send is the store's.
#include "transport.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <utility>

namespace tds::detail {
namespace {

// 256 KB per read: an MGET chunk of 1000 ~300-byte states arrives in one or two reads.
constexpr std::size_t read_buffer_size = 256 * 1024;

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns the message pointer (which may not be buf).
  return std::string(strerror_r(err, buf, sizeof buf));
}

std::string openssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error detail" : out;
}

// Milliseconds poll() may wait: the idle bound, cut short by the deadline, rounded up so a
// sub-millisecond remainder still waits instead of spinning.
int wait_ms(std::chrono::milliseconds idle, deadline until) {
  const auto now = steady_clock::now();
  if (until <= now) return 0;
  auto left = std::chrono::duration_cast<std::chrono::microseconds>(until - now);
  auto bound = std::min<std::chrono::microseconds>(left, idle);
  const auto ms = (bound.count() + 999) / 1000;
  return static_cast<int>(std::min<long long>(ms, 24LL * 3600 * 1000));
}

// >0: revents; 0: timed out.
result<short> wait_fd(int fd, short events, std::chrono::milliseconds idle, deadline until) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, wait_ms(idle, until));
    if (n > 0) return p.revents;
    if (n == 0) return static_cast<short>(0);
    if (errno != EINTR) return {status::io, "poll failed: " + errno_text(errno)};
  }
}

bool is_ip_literal(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

// --- A BIO over our socket, writing with MSG_NOSIGNAL: a server that closes the connection
// must give an error value, not a SIGPIPE that kills the host process.

int bio_fd(BIO* b) { return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b))); }

int bio_write_ex(BIO* b, const char* data, std::size_t len, std::size_t* written) {
  BIO_clear_retry_flags(b);
  const ssize_t n = ::send(bio_fd(b), data, len, MSG_NOSIGNAL);
  if (n >= 0) {
    *written = static_cast<std::size_t>(n);
    return 1;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(b);
  return 0;
}

int bio_read_ex(BIO* b, char* data, std::size_t len, std::size_t* read) {
  BIO_clear_retry_flags(b);
  const ssize_t n = ::recv(bio_fd(b), data, len, 0);
  if (n > 0) {
    *read = static_cast<std::size_t>(n);
    return 1;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
  if (n == 0) errno = 0;  // end of stream: OpenSSL reports it as an unexpected EOF
  return 0;
}

long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tds socket");
    if (m != nullptr) {
      BIO_meth_set_write_ex(m, bio_write_ex);
      BIO_meth_set_read_ex(m, bio_read_ex);
      BIO_meth_set_ctrl(m, bio_ctrl);
      BIO_meth_set_create(m, bio_create);
    }
    return m;
  }();
  return method;
}

void set_socket_options(int fd, bool tcp, int keepalive_seconds) {
  if (!tcp) return;
  int one = 1;
  // Commands are written whole; Nagle would only hold the last packet of a pipeline back.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (keepalive_seconds > 0) {
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    int idle = keepalive_seconds;
    int interval = std::max(1, keepalive_seconds / 3);
    int count = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  }
}

// Connects one socket to one address before `until`. Returns the fd or an error.
result<int> connect_address(int family, const sockaddr* addr, socklen_t len, const std::string& peer,
                            const client_config& cfg, deadline until) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return {status::connect_failed, "socket() failed: " + errno_text(errno)};
  set_socket_options(fd, family != AF_UNIX, cfg.keepalive_seconds);
  if (::connect(fd, addr, len) == 0) return fd;
  if (errno != EINPROGRESS && errno != EINTR) {
    const int err = errno;
    ::close(fd);
    return {status::connect_failed, "cannot connect to Redis at " + peer + ": " + errno_text(err)};
  }
  auto ready = wait_fd(fd, POLLOUT, cfg.connect_timeout, until);
  if (!ready.ok()) {
    ::close(fd);
    return ready.error();
  }
  if (ready.value() == 0) {
    ::close(fd);
    return {status::timeout, "connecting to Redis at " + peer + " timed out after " +
                                 std::to_string(cfg.connect_timeout.count()) + " ms"};
  }
  int err = 0;
  socklen_t err_len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len);
  if (err != 0) {
    ::close(fd);
    return {status::connect_failed, "cannot connect to Redis at " + peer + ": " + errno_text(err)};
  }
  return fd;
}

result<int> connect_socket(const endpoint& where, const client_config& cfg, deadline until) {
  const std::string peer = where.describe();
  if (!where.unix_path.empty()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (where.unix_path.size() >= sizeof addr.sun_path) {
      return {status::connect_failed, "unix socket path too long (" +
                                          std::to_string(where.unix_path.size()) + " bytes): " +
                                          where.unix_path};
    }
    std::memcpy(addr.sun_path, where.unix_path.data(), where.unix_path.size());
    return connect_address(AF_UNIX, reinterpret_cast<const sockaddr*>(&addr), sizeof addr, peer,
                           cfg, until);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(where.port);
  // getaddrinfo cannot be bounded by poll(); numeric hosts and /etc/hosts names return at once.
  if (const int rc = ::getaddrinfo(where.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return {status::connect_failed,
            "cannot resolve Redis host '" + where.host + "': " + gai_strerror(rc)};
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, &freeaddrinfo);
  error last{status::connect_failed, "no address for Redis host '" + where.host + "'"};
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    auto fd = connect_address(ai->ai_family, ai->ai_addr, ai->ai_addrlen, peer, cfg, until);
    if (fd.ok()) return fd;
    last = fd.error();
    if (last.code == status::timeout) break;  // the deadline is spent; no time for the next one
  }
  return last;
}

}  // namespace

// ---------------------------------------------------------------- endpoint

std::string endpoint::describe() const {
  if (!unix_path.empty()) return "unix:" + unix_path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

endpoint endpoint::from_config(const client_config& cfg) {
  return endpoint{cfg.host, cfg.port, cfg.unix_path};
}

// ---------------------------------------------------------------- tls_context

tls_context::~tls_context() { SSL_CTX_free(static_cast<SSL_CTX*>(ctx_)); }

result<std::shared_ptr<const tls_context>> tls_context::create(const tls_options& options) {
  std::shared_ptr<tls_context> out(new (std::nothrow) tls_context);
  if (!out) return {status::out_of_memory, "out of memory creating the TLS context"};
  out->options_ = options;
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return {status::tls, "TLS: cannot create a context: " + openssl_errors()};
  out->ctx_ = ctx;
  // Older protocol versions have known weaknesses; Redis 6+ speaks 1.2 and 1.3.
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // The transport retries writes from a buffer that may have moved (std::string growth) and
  // accepts partial writes, like a plain socket.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (options.insecure) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (!options.ca_file.empty() || !options.ca_dir.empty()) {
      const char* file = options.ca_file.empty() ? nullptr : options.ca_file.c_str();
      const char* dir = options.ca_dir.empty() ? nullptr : options.ca_dir.c_str();
      if (SSL_CTX_load_verify_locations(ctx, file, dir) != 1) {
        return {status::tls, "TLS: cannot load CA " +
                                 (file ? "file '" + options.ca_file + "'" : "dir '" + options.ca_dir + "'") +
                                 ": " + openssl_errors()};
      }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return {status::tls, "TLS: cannot load the system CA store: " + openssl_errors()};
    }
  }
  if (!options.cert_file.empty() || !options.key_file.empty()) {
    if (options.cert_file.empty() || options.key_file.empty()) {
      return {status::tls, "TLS: a client certificate needs both cert_file and key_file"};
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1) {
      return {status::tls, "TLS: cannot load client certificate '" + options.cert_file +
                               "': " + openssl_errors()};
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return {status::tls, "TLS: cannot load client key '" + options.key_file +
                               "': " + openssl_errors()};
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return {status::tls, "TLS: client key '" + options.key_file + "' does not match certificate '" +
                               options.cert_file + "'"};
    }
  }
  return std::shared_ptr<const tls_context>(std::move(out));
}

// ---------------------------------------------------------------- connection

connection::~connection() {
  if (ssl_ != nullptr) SSL_free(static_cast<SSL*>(ssl_));  // frees the BIO too
  if (fd_ >= 0) ::close(fd_);
}

result<std::unique_ptr<connection>> connection::open(const endpoint& where,
                                                     const client_config& cfg,
                                                     const tls_context* tls, deadline until) {
  std::unique_ptr<connection> c(new (std::nothrow) connection);
  if (!c) return {status::out_of_memory, "out of memory opening a connection"};
  c->buffer_.reset(new (std::nothrow) char[read_buffer_size]);
  if (!c->buffer_) return {status::out_of_memory, "out of memory opening a connection"};
  c->peer_ = where.describe();
  auto fd = connect_socket(where, cfg, until);
  if (!fd.ok()) return fd.error();
  c->fd_ = fd.value();
  if (tls == nullptr) return c;

  ERR_clear_error();
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(tls->native()));
  if (ssl == nullptr) return {status::tls, "TLS: SSL_new failed: " + openssl_errors()};
  c->ssl_ = ssl;
  BIO* bio = socket_bio_method() ? BIO_new(socket_bio_method()) : nullptr;
  if (bio == nullptr) return {status::tls, "TLS: cannot create the socket BIO: " + openssl_errors()};
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(c->fd_)));
  SSL_set_bio(ssl, bio, bio);
  SSL_set_connect_state(ssl);

  const tls_options& o = tls->options();
  const std::string& name = o.server_name.empty() ? where.host : o.server_name;
  // SNI carries host names only; RFC 6066 forbids IP literals there.
  if (!name.empty() && !is_ip_literal(name)) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (!o.insecure && o.verify_hostname) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = is_ip_literal(name) ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                                       : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
    if (ok != 1) return {status::tls, "TLS: cannot set the expected host name '" + name + "'"};
  }

  for (;;) {
    ERR_clear_error();
    const int rc = SSL_do_handshake(ssl);
    if (rc == 1) break;
    const int why = SSL_get_error(ssl, rc);
    short events = 0;
    if (why == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else if (why == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else {
      const long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK) {
        return {status::tls, "TLS handshake with Redis at " + c->peer_ +
                                 " failed: certificate verification failed: " +
                                 X509_verify_cert_error_string(verify) +
                                 (verify == X509_V_ERR_HOSTNAME_MISMATCH ||
                                          verify == X509_V_ERR_IP_ADDRESS_MISMATCH
                                      ? " (expected '" + name + "')"
                                      : std::string())};
      }
      const int err = errno;
      std::string detail = why == SSL_ERROR_SYSCALL && ERR_peek_error() == 0
                               ? (err != 0 ? errno_text(err) : "the server closed the connection")
                               : openssl_errors();
      return {status::tls, "TLS handshake with Redis at " + c->peer_ + " failed: " + detail};
    }
    auto ready = wait_fd(c->fd_, events, cfg.connect_timeout, until);
    if (!ready.ok()) return ready.error();
    if (ready.value() == 0) {
      return {status::timeout, "TLS handshake with Redis at " + c->peer_ + " timed out"};
    }
  }
  return c;
}

result<std::size_t> connection::write_some(std::string_view bytes, short& want) {
  if (ssl_ == nullptr) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      want |= POLLOUT;
      return std::size_t{0};
    }
    return {status::io, "writing to Redis at " + peer_ + " failed: " + errno_text(errno)};
  }
  SSL* ssl = static_cast<SSL*>(ssl_);
  ERR_clear_error();
  std::size_t n = 0;
  const int rc = SSL_write_ex(ssl, bytes.data(), bytes.size(), &n);
  if (rc == 1) return n;
  const int why = SSL_get_error(ssl, rc);
  if (why == SSL_ERROR_WANT_WRITE || why == SSL_ERROR_WANT_READ) {
    want |= why == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
    return std::size_t{0};
  }
  const int err = errno;
  const std::string detail = why == SSL_ERROR_SYSCALL && err ? errno_text(err) : openssl_errors();
  // A server that rejects us at the TLS level (TLS 1.3: a missing client certificate) sends
  // an alert and closes; the alert explains the reset, so surface it when it is already
  // waiting to be read.
  std::size_t ignored = 0;
  ERR_clear_error();
  const int read_rc = SSL_read_ex(ssl, buffer_.get(), read_buffer_size, &ignored);
  if (read_rc != 1 && SSL_get_error(ssl, read_rc) == SSL_ERROR_SSL) {
    return {status::tls, "Redis at " + peer_ + " refused the TLS session: " + openssl_errors()};
  }
  return {why == SSL_ERROR_SSL ? status::tls : status::io,
          "writing to Redis at " + peer_ + " failed: " + detail};
}

result<std::size_t> connection::read_some(short& want) {
  if (ssl_ == nullptr) {
    const ssize_t n = ::recv(fd_, buffer_.get(), read_buffer_size, 0);
    if (n > 0) return static_cast<std::size_t>(n);
    if (n == 0) return {status::io, "Redis at " + peer_ + " closed the connection"};
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      want |= POLLIN;
      return std::size_t{0};
    }
    return {status::io, "reading from Redis at " + peer_ + " failed: " + errno_text(errno)};
  }
  SSL* ssl = static_cast<SSL*>(ssl_);
  ERR_clear_error();
  std::size_t got = 0;
  const int rc = SSL_read_ex(ssl, buffer_.get(), read_buffer_size, &got);
  if (rc == 1) return got;
  const int why = SSL_get_error(ssl, rc);
  if (why == SSL_ERROR_WANT_READ || why == SSL_ERROR_WANT_WRITE) {
    want |= why == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
    return std::size_t{0};
  }
  if (why == SSL_ERROR_ZERO_RETURN || (why == SSL_ERROR_SYSCALL && errno == 0)) {
    return {status::io, "Redis at " + peer_ + " closed the connection"};
  }
  const int err = errno;
  // SSL_ERROR_SSL after the handshake is a TLS-level refusal (TLS 1.3 servers reject a
  // missing client certificate only after the client thinks the handshake is done).
  return {why == SSL_ERROR_SSL ? status::tls : status::io,
          "reading from Redis at " + peer_ + " failed: " +
              (why == SSL_ERROR_SYSCALL && err ? errno_text(err) : openssl_errors())};
}

result<void> connection::transfer(command_source& out, const read_handler& on_read,
                                  std::chrono::milliseconds idle, deadline until) {
  // Bytes written per turn before reading gets its turn: enough to keep the server busy,
  // small enough that replies are consumed steadily.
  constexpr std::size_t write_turn = 256 * 1024;
  std::string_view pending;
  bool source_done = false;
  bool done = false;
  while (!done || !source_done || !pending.empty()) {
    bool progress = false;
    short want = 0;

    std::size_t this_turn = 0;
    while (this_turn < write_turn) {
      if (pending.empty() && !source_done) {
        auto more = out.next();
        if (!more.ok()) return more.error();
        pending = more.value();
        if (pending.empty()) {
          // Learning that the source is finished is progress too: without it, a reply that
          // arrived with the last write would leave nothing to wait for, and poll() with no
          // events would sleep the whole idle timeout before reporting a false timeout.
          source_done = true;
          progress = true;
        }
      }
      if (pending.empty()) break;
      auto n = write_some(pending, want);
      if (!n.ok()) return n.error();
      if (n.value() == 0) break;
      pending.remove_prefix(n.value());
      this_turn += n.value();
      progress = true;
    }

    if (!done) {
      auto got = read_some(want);
      if (!got.ok()) return got.error();
      if (got.value() > 0) {
        progress = true;
        auto r = on_read(std::string_view(buffer_.get(), got.value()));
        if (!r.ok()) return r.error();
        done = r.value();
      }
    }

    if (progress) continue;
    if (steady_clock::now() >= until) {
      return {status::timeout, "Redis at " + peer_ + ": the operation's deadline passed"};
    }
    auto ready = wait_fd(fd_, want, idle, until);
    if (!ready.ok()) return ready.error();
    if (ready.value() == 0) {
      return {status::timeout, "Redis at " + peer_ + " did not answer within " +
                                   std::to_string(idle.count()) + " ms"};
    }
  }
  return {};
}

// ---------------------------------------------------------------- session

session::session(endpoint where, const client_config& cfg, std::shared_ptr<const tls_context> tls)
    : where_(std::move(where)), cfg_(cfg), tls_(std::move(tls)) {}

session::~session() = default;

void session::disconnect() noexcept {
  conn_.reset();
  reader_.reset();
}

result<void> session::handshake(deadline until) {
  std::string out;
  std::size_t replies = 0;
  if (!cfg_.password.empty()) {
    if (cfg_.username.empty()) {
      const std::string_view argv[] = {"AUTH", cfg_.password};
      if (auto r = append_command(out, argv); !r.ok()) return r;
    } else {
      const std::string_view argv[] = {"AUTH", cfg_.username, cfg_.password};
      if (auto r = append_command(out, argv); !r.ok()) return r;
    }
    ++replies;
  }
  const std::string db = std::to_string(cfg_.db);
  if (cfg_.db != 0) {
    const std::string_view argv[] = {"SELECT", db};
    if (auto r = append_command(out, argv); !r.ok()) return r;
    ++replies;
  }
  if (replies == 0) return {};
  error failure;
  const reply_handler check = [&](std::size_t i, reply& rep) -> result<void> {
    if (rep.is_error() && failure.code == status::ok) {
      const bool is_auth = !cfg_.password.empty() && i == 0;
      failure = make_error(is_auth ? status::auth : error_reply_status(rep.str),
                           (is_auth ? "Redis at " + where_.describe() + " refused AUTH" +
                                          (cfg_.username.empty() ? "" : " for user '" + cfg_.username + "'")
                                    : "Redis at " + where_.describe() + " refused SELECT " + db) +
                               ": " + rep.str);
    }
    return {};
  };
  std::size_t delivered = 0;
  const deadline connect_until = std::min(until, steady_clock::now() + cfg_.connect_timeout);
  buffer_source source(out);
  if (auto r = run(source, replies, check, connect_until, delivered); !r.ok()) return r;
  if (failure.code != status::ok) return failure;
  return {};
}

result<void> session::ensure_connected(deadline until) {
  if (conn_) return {};
  const auto now = steady_clock::now();
  if (now < next_attempt_) {
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - now);
    return {status::connect_failed, "Redis at " + where_.describe() + ": next reconnect in " +
                                        std::to_string(wait.count() + 1) + " ms (last failure: " +
                                        last_connect_error_ + ")"};
  }
  connect_attempts_.fetch_add(1, std::memory_order_relaxed);
  const deadline connect_until = std::min(until, now + cfg_.connect_timeout);
  auto opened = connection::open(where_, cfg_, tls_.get(), connect_until);
  result<void> outcome;
  if (opened.ok()) {
    conn_ = std::move(opened).value();
    ++generation_;
    reader_.reset();
    outcome = handshake(until);
  } else {
    outcome = opened.error();
  }
  if (outcome.ok()) {
    backoff_ = std::chrono::milliseconds(0);
    return {};
  }
  disconnect();
  backoff_ = backoff_.count() == 0 ? cfg_.reconnect_backoff_min
                                   : std::min(backoff_ * 2, cfg_.reconnect_backoff_max);
  next_attempt_ = steady_clock::now() + backoff_;
  last_connect_error_ = outcome.error().message;
  return outcome;
}

result<void> session::run(command_source& out, std::size_t replies,
                          const reply_handler& on_reply, deadline until, std::size_t& delivered) {
  reply rep;
  auto on_read = [&](std::string_view bytes) -> result<bool> {
    if (auto r = reader_.feed(bytes); !r.ok()) return r.error();
    while (delivered < replies) {
      auto got = reader_.next(rep);
      if (!got.ok()) return got.error();
      if (!got.value()) break;
      if (auto r = on_reply(delivered, rep); !r.ok()) return r.error();
      ++delivered;
    }
    return delivered == replies;
  };
  if (replies == 0) return {status::internal, "an exchange must expect at least one reply"};
  result<void> r;
  try {
    r = conn_->transfer(out, on_read, cfg_.command_timeout, until);
  } catch (const std::bad_alloc&) {
    r = result<void>(status::out_of_memory, "out of memory during a Redis exchange");
  } catch (...) {
    r = result<void>(status::internal, "exception during a Redis exchange");
  }
  // Whatever interrupted the exchange, replies may still be on the way; the connection's
  // framing can no longer be trusted, so it goes. The same holds for bytes nobody asked for.
  if (r.ok() && reader_.has_buffered()) {
    r = result<void>(status::protocol, "Redis at " + where_.describe() + " sent more replies than commands");
  }
  if (!r.ok()) disconnect();
  return r;
}

result<void> session::exchange(command_source& out, std::size_t replies,
                               const reply_handler& on_reply, deadline until) {
  for (int attempt = 0;; ++attempt) {
    const bool reused = conn_ != nullptr;
    if (auto r = ensure_connected(until); !r.ok()) return r;
    std::size_t delivered = 0;
    out.rewind();
    auto r = run(out, replies, on_reply, until, delivered);
    if (r.ok()) return r;
    // A connection that sat idle may have been closed by the server (restart, timeout
    // setting) without us noticing. If nothing came back, try once on a fresh one; a retried
    // command is harmless here (reads, and commit scripts whose conditions make a replay a
    // conflict at worst).
    if (attempt == 0 && reused && delivered == 0 && r.code() == status::io) continue;
    return r;
  }
}

result<void> session::exchange(std::string_view commands, std::size_t replies,
                               const reply_handler& on_reply, deadline until) {
  buffer_source source(commands);
  return exchange(source, replies, on_reply, until);
}

result<reply> session::command(std::span<const std::string_view> argv, deadline until) {
  std::string out;
  if (auto r = append_command(out, argv); !r.ok()) return r.error();
  reply answer;
  auto r = exchange(out, 1, [&](std::size_t, reply& rep) -> result<void> {
    answer = std::move(rep);
    return {};
  }, until);
  if (!r.ok()) return r.error();
  return answer;
}

}  // namespace tds::detail
