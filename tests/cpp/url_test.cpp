// parse_redis_url: every accepted form, the options, and the errors (status and reason).
// Pure parsing; no server is involved.
#include <gtest/gtest.h>

#include "tdscache/config.hpp"

namespace {

using tds::parse_redis_url;
using tds::status;

tds::client_config parsed(std::string_view url) {
  auto r = parse_redis_url(url);
  EXPECT_TRUE(r.ok()) << url << ": " << r.error().message;
  return r.ok() ? r.value() : tds::client_config{};
}

void expect_invalid(std::string_view url, std::string_view reason_part) {
  auto r = parse_redis_url(url);
  ASSERT_FALSE(r.ok()) << url << " should not parse";
  EXPECT_EQ(r.code(), status::url_invalid);
  EXPECT_NE(r.error().message.find(reason_part), std::string::npos)
      << "message '" << r.error().message << "' should mention '" << reason_part << "'";
}

TEST(RedisUrl, HostOnlyGetsDefaultPortAndDbZero) {
  auto c = parsed("redis://cache.internal");
  EXPECT_EQ(c.host, "cache.internal");
  EXPECT_EQ(c.port, 6379);
  EXPECT_EQ(c.db, 0);
  EXPECT_FALSE(c.tls.enabled);
  EXPECT_TRUE(c.password.empty());
}

TEST(RedisUrl, ReadsPortAndDatabase) {
  auto c = parsed("redis://localhost:6380/3");
  EXPECT_EQ(c.host, "localhost");
  EXPECT_EQ(c.port, 6380);
  EXPECT_EQ(c.db, 3);
}

TEST(RedisUrl, AclUserAndPasswordArePercentDecoded) {
  auto c = parsed("redis://sync%2Dworker:p%40ss%3Aw0rd%2B@10.0.0.5:6379/0");
  EXPECT_EQ(c.username, "sync-worker");
  EXPECT_EQ(c.password, "p@ss:w0rd+");
  EXPECT_EQ(c.host, "10.0.0.5");
}

TEST(RedisUrl, PasswordWithoutUserMeansDefaultUser) {
  auto c = parsed("redis://:secret@localhost");
  EXPECT_TRUE(c.username.empty());
  EXPECT_EQ(c.password, "secret");
  auto d = parsed("redis://secret@localhost");
  EXPECT_TRUE(d.username.empty());
  EXPECT_EQ(d.password, "secret");
}

TEST(RedisUrl, RawAtSignInPasswordSplitsAtTheLastAt) {
  auto c = parsed("redis://u:p@ss@localhost:7000");
  EXPECT_EQ(c.username, "u");
  EXPECT_EQ(c.password, "p@ss");
  EXPECT_EQ(c.port, 7000);
}

TEST(RedisUrl, BracketedIpv6HostWithPort) {
  auto c = parsed("redis://[::1]:6390/2");
  EXPECT_EQ(c.host, "::1");
  EXPECT_EQ(c.port, 6390);
  EXPECT_EQ(c.db, 2);
  auto d = parsed("redis://[fe80::1]");
  EXPECT_EQ(d.host, "fe80::1");
  EXPECT_EQ(d.port, 6379);
}

TEST(RedisUrl, RedissTurnsTlsOnWithVerification) {
  auto c = parsed("rediss://cache.example.com:6380");
  EXPECT_TRUE(c.tls.enabled);
  EXPECT_TRUE(c.tls.verify_hostname);
  EXPECT_FALSE(c.tls.insecure);
}

TEST(RedisUrl, TlsQueryOptions) {
  auto c = parsed("rediss://h?ssl_ca_certs=/etc/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
                  "&server_name=redis.internal&verify_hostname=0");
  EXPECT_EQ(c.tls.ca_file, "/etc/ca.pem");
  EXPECT_EQ(c.tls.cert_file, "/c.pem");
  EXPECT_EQ(c.tls.key_file, "/k.pem");
  EXPECT_EQ(c.tls.server_name, "redis.internal");
  EXPECT_FALSE(c.tls.verify_hostname);
  EXPECT_TRUE(parsed("rediss://h?ssl_cert_reqs=none").tls.insecure);
  EXPECT_TRUE(parsed("rediss://h?insecure=1").tls.insecure);
  EXPECT_FALSE(parsed("rediss://h?ssl_cert_reqs=required").tls.insecure);
}

TEST(RedisUrl, TimeoutAndCacheOptions) {
  auto c = parsed("redis://h/1?connect_timeout=250&command_timeout=750&keepalive=0"
                  "&key_prefix=app%3Astate&ttl=0&max_age=3600&mget_chunk=500");
  EXPECT_EQ(c.connect_timeout.count(), 250);
  EXPECT_EQ(c.command_timeout.count(), 750);
  EXPECT_EQ(c.keepalive_seconds, 0);
  EXPECT_EQ(c.key_prefix, "app:state");
  EXPECT_EQ(c.ttl_seconds, 0);
  EXPECT_EQ(c.max_age_seconds, 3600);
  EXPECT_EQ(c.mget_chunk, 500u);
}

TEST(RedisUrl, UnixSocketWithDbOption) {
  auto c = parsed("unix:///var/run/redis/redis.sock?db=4");
  EXPECT_EQ(c.unix_path, "/var/run/redis/redis.sock");
  EXPECT_EQ(c.db, 4);
  auto d = parsed("unix://:pw@/tmp/r.sock");
  EXPECT_EQ(d.unix_path, "/tmp/r.sock");
  EXPECT_EQ(d.password, "pw");
}

TEST(RedisUrl, ClusterSeedsAreListed) {
  auto c = parsed("redis+cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002");
  EXPECT_TRUE(c.cluster);
  ASSERT_EQ(c.cluster_seeds.size(), 3u);
  EXPECT_EQ(c.cluster_seeds[0], (std::pair<std::string, int>{"10.0.0.1", 7000}));
  EXPECT_EQ(c.cluster_seeds[1], (std::pair<std::string, int>{"10.0.0.2", 7001}));
  EXPECT_EQ(c.cluster_seeds[2], (std::pair<std::string, int>{"::1", 7002}));
  EXPECT_TRUE(parsed("rediss+cluster://a:1").tls.enabled);
}

TEST(RedisUrl, RejectsWhatItCannotUseWithAReason) {
  expect_invalid("localhost:6379", "no scheme");
  expect_invalid("http://localhost", "unknown scheme 'http'");
  expect_invalid("redis://", "no host");
  expect_invalid("redis://h:0", "port");
  expect_invalid("redis://h:65536", "port");
  expect_invalid("redis://h:abc", "port");
  expect_invalid("redis://h/x", "database number");
  expect_invalid("redis://h/-1", "database number");
  expect_invalid("redis://::1:6379", "brackets");
  expect_invalid("redis://[::1", "unterminated");
  expect_invalid("redis://u:%zz@h", "percent-escape");
  expect_invalid("redis://u:%4@h", "percent-escape");
  expect_invalid("redis://h?bogus=1", "unknown option");
  expect_invalid("redis://h?db=x", "db");
  expect_invalid("redis://h?mget_chunk=0", "mget_chunk");
  expect_invalid("redis://h?connect_timeout=0", "milliseconds");
  expect_invalid("redis://h?verify_hostname=maybe", "0 or 1");
  expect_invalid("unix://", "no socket path");
  expect_invalid("unix://host/path.sock", "no host");
  expect_invalid("redis+cluster://a:1/2", "db 0");
  expect_invalid("redis+cluster://a:1,:2", "cluster seed");
}

TEST(RedisUrl, ErrorOffsetPointsAtTheFaultyPart) {
  auto r = parse_redis_url("redis://h?x=1&bogus=2");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().offset, std::string_view("redis://h?").size());
  auto s = parse_redis_url("redis://h?db=1&bogus=2");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().offset, std::string_view("redis://h?db=1&").size());
}

}  // namespace
