// How a client reaches Redis and how it behaves there: endpoint, credentials, TLS, timeouts,
// key layout, TTLs and failure policy, plus the Redis URL parser that fills them in.
// No connection code lives here (that is src/transport.cpp); this header is plain data.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tdscache/error.hpp"

namespace tds {

struct tls_options {
  bool enabled = false;
  std::string ca_file;      // PEM bundle of trusted CAs; empty with ca_dir empty: system store
  std::string ca_dir;       // OpenSSL hashed directory (c_rehash) of trusted CAs
  std::string cert_file;    // client certificate, for servers with tls-auth-clients yes
  std::string key_file;     // its private key
  std::string server_name;  // SNI and the name verified; empty: the host from the config
  bool verify_hostname = true;  // the certificate must name server_name (or host)
  bool insecure = false;        // no verification at all: encryption without authentication
};

struct client_config {
  // Endpoint: unix_path wins when set; otherwise host and port.
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_path;

  // Redis Cluster: routing is done by the cluster store, which reads these seeds.
  bool cluster = false;
  std::vector<std::pair<std::string, int>> cluster_seeds;

  std::string username;  // empty: AUTH with the password only (the "default" user)
  std::string password;  // empty: no AUTH
  int db = 0;

  tls_options tls;

  // connect_timeout bounds TCP connect + TLS handshake + AUTH/SELECT. command_timeout bounds
  // how long an operation may wait without any byte moving in either direction, so a large
  // batch that keeps flowing is not cut off, while a stalled server is detected in time.
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{1000};
  int keepalive_seconds = 30;  // TCP keepalive idle time; 0 turns keepalive off

  std::string key_prefix = "tds:entity:state";
  std::int64_t ttl_seconds = 86400;      // state key TTL; 0 = keys never expire
  std::int64_t max_age_seconds = 86400;  // cache_expired threshold; 0 disables the rule

  // The most keys one MGET carries: a check of N keys sends ceil(N / mget_chunk) MGETs, cut as
  // evenly as that count allows. 1000 keys of ~300-byte states make ~300 KB replies: large
  // enough that the per-command cost vanishes, small enough that one reply never blocks the
  // server for long (a few hundred microseconds) and the reader's buffer stays modest.
  std::size_t mget_chunk = 1000;

  // Circuit breaker: after this many consecutive operations that failed to reach the server,
  // stop trying for breaker_cooldown; every check answers cache_check_error at once.
  int breaker_failures = 3;
  std::chrono::milliseconds breaker_cooldown{5000};

  // Between reconnect attempts the client waits backoff_min, doubling up to backoff_max;
  // operations in that window fail at once instead of hammering a server that is down.
  std::chrono::milliseconds reconnect_backoff_min{50};
  std::chrono::milliseconds reconnect_backoff_max{2000};
};

// Parses
//   redis://[user[:password]@]host[:port][/db][?options]
//   rediss://...                      (TLS on)
//   unix:///path/to.sock[?db=N&...]   (also redis+unix://, and user:password@ before the path)
//   redis+cluster://host:port[,host:port...][?options]   (rediss+cluster:// with TLS)
// User and password are percent-decoded; IPv6 hosts are bracketed ("[::1]:6379").
// Options (all optional): db, password, username, connect_timeout, command_timeout (ms),
// keepalive (s), key_prefix, ttl, max_age (s), mget_chunk, ssl_ca_certs / ca_file, ca_dir,
// ssl_certfile / cert_file, ssl_keyfile / key_file, server_name, verify_hostname (0/1),
// insecure (0/1), ssl_cert_reqs (none|optional|required; redis-py's spelling; none = insecure).
// Errors: status::url_invalid with the reason and the byte offset of the fault.
result<client_config> parse_redis_url(std::string_view url);

}  // namespace tds
