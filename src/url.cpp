// Redis URL -> client_config: schemes, userinfo, hosts (IPv6 included), db and query options.
// Pure string work with errors as values; nothing here opens a connection.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "tdscache/config.hpp"

namespace tds {
namespace {

// The URL with its password (userinfo or ?password=) replaced by "***": error messages end up
// in logs. The userinfo is found the way parse_redis_url finds it (the last '@' before the
// path), so what is hidden is exactly what would have been read as the password.
std::string redacted(std::string_view url) {
  std::string out(url);
  const std::size_t sep = out.find("://");
  if (sep == std::string::npos) return out;
  const std::size_t start = sep + 3;
  const std::size_t query = out.find('?', start);
  const std::size_t path = out.find('/', start);
  const std::size_t authority_end = std::min(query, path);
  const std::size_t at = out.rfind('@', authority_end == std::string::npos ? std::string::npos
                                                                           : authority_end - 1);
  std::size_t next = start;
  if (at != std::string::npos && at >= start) {
    const std::size_t colon = out.find(':', start);
    const std::size_t from = colon < at ? colon + 1 : start;  // no colon: it is all password
    out.replace(from, at - from, "***");
    next = from + 3;
  }
  for (std::size_t q = out.find('?', next); q != std::string::npos;) {
    const std::size_t name = q + 1;
    std::size_t end = out.find_first_of("&#", name);
    if (end == std::string::npos) end = out.size();
    constexpr std::string_view key = "password=";
    if (out.compare(name, key.size(), key) == 0 && end > name + key.size()) {
      out.replace(name + key.size(), end - name - key.size(), "***");
      end = name + key.size() + 3;
    }
    q = end < out.size() && out[end] == '&' ? end : std::string::npos;
  }
  return out;
}

error invalid(std::string_view url, std::string reason, std::size_t offset) {
  // 256 bytes of the URL are plenty to recognise it; a longer one is cut so that the message
  // stays a line in a log.
  constexpr std::size_t shown = 256;
  std::string text = redacted(url);
  if (text.size() > shown) text.replace(shown, std::string::npos, "...");
  std::string msg = "invalid Redis URL '";
  msg.append(text).append("': ").append(reason);
  return make_error(status::url_invalid, std::move(msg), offset);
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoding. '+' stays '+': userinfo and query values follow RFC 3986, not form encoding,
// and a password may well contain a plus.
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = hex_value(in[i + 1]);
    const int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

template <class Int>
bool parse_int(std::string_view text, Int& out, Int min, Int max) {
  if (text.empty()) return false;
  Int v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < min || v > max) return false;
  out = v;
  return true;
}

bool parse_bool(std::string_view text, bool& out) {
  if (text == "1" || text == "true" || text == "yes" || text == "on") {
    out = true;
    return true;
  }
  if (text == "0" || text == "false" || text == "no" || text == "off") {
    out = false;
    return true;
  }
  return false;
}

// host[:port] or [v6]:port. The port defaults to 6379.
bool parse_host_port(std::string_view text, std::string& host, int& port, std::string& why) {
  port = 6379;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      why = "unterminated '[' in an IPv6 host";
      return false;
    }
    host.assign(text.substr(1, close - 1));
    rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      why = "unexpected text after ']'";
      return false;
    }
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
      why = "an IPv6 host must be written in brackets, like [::1]:6379";
      return false;
    }
    host.assign(text.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view{} : text.substr(colon);
  }
  if (host.empty()) {
    why = "no host";
    return false;
  }
  // A NUL would cut the name short where it reaches the resolver (a different host), and no
  // host name holds spaces or control characters.
  for (const char c : host) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) {
      why = "the host holds a space, a control character or a NUL byte";
      return false;
    }
  }
  if (!rest.empty()) {
    if (!parse_int(rest.substr(1), port, 1, 65535)) {
      why = "port must be a number from 1 to 65535";
      return false;
    }
  }
  return true;
}

bool apply_option(client_config& cfg, std::string_view name, const std::string& value,
                  std::string& why) {
  std::int64_t ms = 0;
  auto timeout_ms = [&](std::chrono::milliseconds& field) {
    if (!parse_int<std::int64_t>(value, ms, 1, 3'600'000)) {
      why = "must be milliseconds from 1 to 3600000";
      return false;
    }
    field = std::chrono::milliseconds(ms);
    return true;
  };
  if (name == "db") {
    if (!parse_int(value, cfg.db, 0, std::numeric_limits<int>::max())) {
      why = "db must be a non-negative number";
      return false;
    }
    return true;
  }
  if (name == "password") return cfg.password = value, true;
  if (name == "username") return cfg.username = value, true;
  if (name == "connect_timeout") return timeout_ms(cfg.connect_timeout);
  if (name == "command_timeout" || name == "socket_timeout") return timeout_ms(cfg.command_timeout);
  if (name == "keepalive") {
    if (!parse_int(value, cfg.keepalive_seconds, 0, 86400)) {
      why = "keepalive must be seconds from 0 to 86400";
      return false;
    }
    return true;
  }
  if (name == "key_prefix") {
    if (value.empty()) {
      why = "key_prefix must not be empty";
      return false;
    }
    cfg.key_prefix = value;
    return true;
  }
  if (name == "ttl" || name == "max_age") {
    std::int64_t& field = name == "ttl" ? cfg.ttl_seconds : cfg.max_age_seconds;
    if (!parse_int<std::int64_t>(value, field, 0, std::numeric_limits<std::int32_t>::max())) {
      why = "must be a non-negative number of seconds";
      return false;
    }
    return true;
  }
  if (name == "mget_chunk") {
    if (!parse_int<std::size_t>(value, cfg.mget_chunk, 1, 1'000'000)) {
      why = "mget_chunk must be from 1 to 1000000";
      return false;
    }
    return true;
  }
  if (name == "ssl_ca_certs" || name == "ca_file") return cfg.tls.ca_file = value, true;
  if (name == "ca_dir" || name == "ssl_ca_path") return cfg.tls.ca_dir = value, true;
  if (name == "ssl_certfile" || name == "cert_file") return cfg.tls.cert_file = value, true;
  if (name == "ssl_keyfile" || name == "key_file") return cfg.tls.key_file = value, true;
  if (name == "server_name") return cfg.tls.server_name = value, true;
  if (name == "verify_hostname" || name == "ssl_check_hostname") {
    if (!parse_bool(value, cfg.tls.verify_hostname)) {
      why = "must be 0 or 1";
      return false;
    }
    return true;
  }
  if (name == "insecure") {
    if (!parse_bool(value, cfg.tls.insecure)) {
      why = "must be 0 or 1";
      return false;
    }
    return true;
  }
  if (name == "ssl_cert_reqs") {
    if (value == "none" || value == "CERT_NONE") {
      cfg.tls.insecure = true;
    } else if (value == "optional" || value == "required" || value == "CERT_OPTIONAL" ||
               value == "CERT_REQUIRED") {
      cfg.tls.insecure = false;
    } else {
      why = "ssl_cert_reqs must be none, optional or required";
      return false;
    }
    return true;
  }
  why = "unknown option";
  return false;
}

}  // namespace

result<client_config> parse_redis_url(std::string_view url) {
  client_config cfg;
  const std::size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    return invalid(url, "no scheme; expected redis://, rediss://, unix:// or redis+cluster://", 0);
  }
  const std::string_view scheme = url.substr(0, sep);
  bool is_unix = false;
  if (scheme == "redis") {
  } else if (scheme == "rediss") {
    cfg.tls.enabled = true;
  } else if (scheme == "unix" || scheme == "redis+unix" || scheme == "redis-socket") {
    is_unix = true;
  } else if (scheme == "redis+cluster") {
    cfg.cluster = true;
  } else if (scheme == "rediss+cluster") {
    cfg.cluster = true;
    cfg.tls.enabled = true;
  } else {
    return invalid(url, "unknown scheme '" + std::string(scheme) +
                            "'; expected redis, rediss, unix or redis+cluster", 0);
  }

  std::size_t pos = sep + 3;
  std::string_view rest = url.substr(pos);
  std::string_view query;
  if (const std::size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (const std::size_t hash = query.find('#'); hash != std::string_view::npos) {
    query = query.substr(0, hash);
  }

  // Userinfo ends at the last '@' before the path: a raw '@' in a password is a common
  // mistake that the last-'@' rule still reads the way the author meant.
  const std::size_t path_start = rest.find('/');
  const std::string_view authority_and_user = rest.substr(0, path_start);
  std::string_view path =
      path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
  std::string_view hostpart = authority_and_user;
  if (const std::size_t at = authority_and_user.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority_and_user.substr(0, at);
    hostpart = authority_and_user.substr(at + 1);
    const std::size_t colon = userinfo.find(':');
    const std::string_view user = userinfo.substr(0, colon);
    const std::string_view pass =
        colon == std::string_view::npos ? std::string_view{} : userinfo.substr(colon + 1);
    if (!percent_decode(user, cfg.username)) {
      return invalid(url, "bad percent-escape in the user name", pos);
    }
    if (!percent_decode(pass, cfg.password)) {
      return invalid(url, "bad percent-escape in the password", pos + (colon + 1));
    }
    // redis://:secret@host and redis://secret@host (the second is redis-py's reading too
    // when there is no colon) both mean a password for the default user.
    if (colon == std::string_view::npos) {
      cfg.password = std::move(cfg.username);
      cfg.username.clear();
    }
    pos += at + 1;
  }

  if (is_unix) {
    if (!hostpart.empty() && hostpart != "localhost") {
      return invalid(url, "a unix socket URL has no host: write unix:///path/to.sock", pos);
    }
    if (path.empty() || path == "/") return invalid(url, "no socket path", pos);
    std::string decoded;
    if (!percent_decode(path, decoded)) return invalid(url, "bad percent-escape in the path", pos);
    // sockaddr_un takes a C string: a NUL would name a different socket.
    if (decoded.find('\0') != std::string::npos) return invalid(url, "the socket path holds a NUL byte", pos);
    cfg.unix_path = std::move(decoded);
  } else if (cfg.cluster) {
    std::size_t start = 0;
    while (start <= hostpart.size()) {
      std::size_t comma = hostpart.find(',', start);
      if (comma == std::string_view::npos) comma = hostpart.size();
      std::string host;
      int port = 6379;
      std::string why;
      if (!parse_host_port(hostpart.substr(start, comma - start), host, port, why)) {
        return invalid(url, "cluster seed: " + why, pos + start);
      }
      cfg.cluster_seeds.emplace_back(std::move(host), port);
      start = comma + 1;
    }
    cfg.host = cfg.cluster_seeds.front().first;
    cfg.port = cfg.cluster_seeds.front().second;
    if (!path.empty() && path != "/") {
      return invalid(url, "a cluster has only db 0; drop the /db part", pos + hostpart.size());
    }
  } else {
    std::string why;
    if (!parse_host_port(hostpart, cfg.host, cfg.port, why)) return invalid(url, why, pos);
    if (!path.empty() && path != "/") {
      if (!parse_int(path.substr(1), cfg.db, 0, std::numeric_limits<int>::max())) {
        return invalid(url, "the path must be a database number, like /0",
                       pos + hostpart.size());
      }
    }
  }

  std::size_t qpos = url.size() - query.size();
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (!pair.empty()) {
      const std::size_t eq = pair.find('=');
      const std::string_view name = pair.substr(0, eq);
      std::string value;
      if (!percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1),
                          value)) {
        return invalid(url, "bad percent-escape in option '" + std::string(name) + "'", qpos);
      }
      std::string why;
      if (!apply_option(cfg, name, value, why)) {
        return invalid(url, "option '" + std::string(name) + "': " + why, qpos);
      }
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
    qpos += amp + 1;
  }
  if (cfg.cluster && cfg.db != 0) return invalid(url, "a cluster has only db 0", 0);
  return cfg;
}

}  // namespace tds
