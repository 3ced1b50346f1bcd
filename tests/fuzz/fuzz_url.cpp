// Fuzz target: parse_redis_url on arbitrary text. Errors are clean url_invalid values that
// never repeat the userinfo password; a parsed config is usable (a port in range, a host or a socket
// path, positive timeouts and chunk size).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "tdscache/config.hpp"

namespace {

// The userinfo password as config.hpp documents it: between the first ':' and the last '@'
// before the path (the whole userinfo when there is no ':'). Empty when there is none.
std::string_view userinfo_password(std::string_view url) {
  const std::size_t sep = url.find("://");
  if (sep == std::string_view::npos) return {};
  std::string_view rest = url.substr(sep + 3);
  rest = rest.substr(0, rest.find('?'));
  rest = rest.substr(0, rest.find('/'));
  const std::size_t at = rest.rfind('@');
  if (at == std::string_view::npos) return {};
  const std::string_view userinfo = rest.substr(0, at);
  const std::size_t colon = userinfo.find(':');
  return colon == std::string_view::npos ? userinfo : userinfo.substr(colon + 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view url(reinterpret_cast<const char*>(data), size);
  auto parsed = tds::parse_redis_url(url);
  if (!parsed.ok()) {
    const std::string& message = parsed.error().message;
    TDS_FUZZ_CHECK(parsed.code() == tds::status::url_invalid);
    TDS_FUZZ_CHECK(!message.empty());
    TDS_FUZZ_CHECK(parsed.error().offset == tds::no_offset || parsed.error().offset <= size);
    // The message shows the URL but never its password: the same URL with other password
    // bytes (same length, no special characters, so it parses the same way) must give the
    // very same message. Reasons about the userinfo's own escapes are the exception.
    const std::string_view password = userinfo_password(url);
    if (!password.empty() && message.find("password") == std::string::npos &&
        message.find("user name") == std::string::npos) {
      std::string masked(url);
      masked.replace(static_cast<std::size_t>(password.data() - url.data()), password.size(),
                     password.size(), 'A');
      auto other = tds::parse_redis_url(masked);
      TDS_FUZZ_CHECK(!other.ok());
      TDS_FUZZ_CHECK(other.error().message == message);
    }
    return 0;
  }
  const tds::client_config& cfg = parsed.value();
  TDS_FUZZ_CHECK(!cfg.unix_path.empty() || !cfg.host.empty());
  TDS_FUZZ_CHECK(cfg.port >= 1 && cfg.port <= 65535);
  TDS_FUZZ_CHECK(cfg.db >= 0);
  TDS_FUZZ_CHECK(cfg.connect_timeout.count() >= 1 && cfg.command_timeout.count() >= 1);
  TDS_FUZZ_CHECK(cfg.mget_chunk >= 1);
  TDS_FUZZ_CHECK(!cfg.key_prefix.empty());
  TDS_FUZZ_CHECK(cfg.ttl_seconds >= 0 && cfg.max_age_seconds >= 0);
  TDS_FUZZ_CHECK(!cfg.cluster || !cfg.cluster_seeds.empty());
  for (const auto& [host, port] : cfg.cluster_seeds) {
    TDS_FUZZ_CHECK(!host.empty());
    TDS_FUZZ_CHECK(port >= 1 && port <= 65535);
  }
  return 0;
}
