// The transport below the engine: RESP framing, TCP/unix/TLS connections, AUTH and SELECT,
// pipelining, deadlines and reconnection, against real redis-server processes.
// Decisions and commits are tested in client_test.cpp and client_fault_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "redis_server.hpp"
#include "resp.hpp"
#include "transport.hpp"

namespace {

using namespace std::chrono_literals;
using tds::status;
using tds::detail::reply;
using tds::detail::reply_reader;
using tds::detail::session;
using tds::testing::redis_server;
using tds::testing::redis_server_options;
using tds::testing::tls_material;

std::unique_ptr<session> open_session(const tds::client_config& cfg) {
  std::shared_ptr<const tds::detail::tls_context> tls;
  if (cfg.tls.enabled) {
    auto ctx = tds::detail::tls_context::create(cfg.tls);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message;
    if (!ctx.ok()) return nullptr;
    tls = ctx.value();
  }
  return std::make_unique<session>(tds::detail::endpoint::from_config(cfg), cfg, tls);
}

std::string ping(session& s) {
  const std::string_view argv[] = {"PING"};
  auto r = s.command(argv);
  if (!r.ok()) return "error: " + r.error().message;
  return r.value().str;
}

// ---------------------------------------------------------------- RESP

TEST(RespReader, AssemblesRepliesFedOneByteAtATime) {
  const std::string wire = "+OK\r\n:42\r\n$-1\r\n*3\r\n$3\r\nfoo\r\n*2\r\n:1\r\n$0\r\n\r\n-ERR nope\r\n";
  reply_reader reader;
  std::vector<reply> got;
  reply r;
  for (char c : wire) {
    ASSERT_TRUE(reader.feed(std::string_view(&c, 1)).ok());
    for (;;) {
      auto n = reader.next(r);
      ASSERT_TRUE(n.ok());
      if (!n.value()) break;
      got.push_back(std::move(r));
    }
  }
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].type, reply::kind::status);
  EXPECT_EQ(got[0].str, "OK");
  EXPECT_EQ(got[1].type, reply::kind::integer);
  EXPECT_EQ(got[1].integer, 42);
  EXPECT_EQ(got[2].type, reply::kind::nil);
  ASSERT_EQ(got[3].type, reply::kind::array);
  ASSERT_EQ(got[3].elements.size(), 3u);
  EXPECT_EQ(got[3].elements[0].str, "foo");
  ASSERT_EQ(got[3].elements[1].elements.size(), 2u);
  EXPECT_EQ(got[3].elements[1].elements[0].integer, 1);
  EXPECT_EQ(got[3].elements[1].elements[1].type, reply::kind::string);
  EXPECT_EQ(got[3].elements[1].elements[1].str, "");
  EXPECT_TRUE(got[3].elements[2].is_error());
  EXPECT_EQ(got[3].elements[2].str, "ERR nope");
  auto n = reader.next(r);
  ASSERT_TRUE(n.ok());
  EXPECT_FALSE(n.value());
}

TEST(RespReader, ErrorRepliesInsideArraysKeepTheirText) {
  reply_reader reader;
  ASSERT_TRUE(reader.feed("*2\r\n:3\r\n-OOM command not allowed\r\n").ok());
  reply r;
  auto n = reader.next(r);
  ASSERT_TRUE(n.ok() && n.value());
  ASSERT_EQ(r.elements.size(), 2u);
  EXPECT_TRUE(r.elements[1].is_error());
  EXPECT_EQ(r.elements[1].str, "OOM command not allowed");
}

TEST(RespReader, KnowsWhenBytesBeyondTheLastReplyAreWaiting) {
  // An exchange that got all its replies drops the connection if more bytes wait: they would
  // otherwise be taken as the next exchange's answers.
  reply_reader reader;
  EXPECT_FALSE(reader.has_buffered());
  ASSERT_TRUE(reader.feed("+OK\r\n+O").ok());
  reply r;
  ASSERT_TRUE(reader.next(r).value());
  EXPECT_TRUE(reader.has_buffered()) << "half a reply is waiting";
  ASSERT_TRUE(reader.feed("K\r\n").ok());
  ASSERT_TRUE(reader.next(r).value());
  EXPECT_FALSE(reader.has_buffered());
  ASSERT_TRUE(reader.feed("*2\r\n:1\r\n").ok());
  ASSERT_FALSE(reader.next(r).value());
  EXPECT_TRUE(reader.has_buffered()) << "an array is half parsed";
}

TEST(RespReader, GarbageIsAProtocolError) {
  reply_reader reader;
  ASSERT_TRUE(reader.feed("?what\r\n").ok());
  reply r;
  auto n = reader.next(r);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.code(), status::protocol);
}

TEST(RespCommand, ArgumentsAreLengthPrefixedNotInterpolated) {
  std::string out;
  const std::string_view argv[] = {"SET", std::string_view("a b\r\n\0c", 7), ""};
  ASSERT_TRUE(tds::detail::append_command(out, argv).ok());
  EXPECT_EQ(out, std::string("*3\r\n$3\r\nSET\r\n$7\r\na b\r\n\0c\r\n$0\r\n\r\n", 32));
}

TEST(RespCommand, ErrorRepliesMapToStatuses) {
  EXPECT_EQ(tds::detail::error_reply_status("NOPERM this user has no permissions"), status::auth);
  EXPECT_EQ(tds::detail::error_reply_status("WRONGPASS invalid username-password pair"), status::auth);
  EXPECT_EQ(tds::detail::error_reply_status("NOAUTH Authentication required."), status::auth);
  EXPECT_EQ(tds::detail::error_reply_status("OOM command not allowed"), status::server_error);
}

// ---------------------------------------------------------------- plain sockets

TEST(Transport, TalksOverTcpAndUnixSocket) {
  redis_server server;
  ASSERT_TRUE(server.start()) << server.last_error();
  auto tcp = open_session(server.config());
  auto unix_socket = open_session(server.unix_config());
  EXPECT_EQ(ping(*tcp), "PONG");
  EXPECT_EQ(ping(*unix_socket), "PONG");
}

TEST(Transport, BinaryKeysAndValuesRoundTripExactly) {
  redis_server server;
  ASSERT_TRUE(server.start()) << server.last_error();
  auto s = open_session(server.unix_config());
  const std::string key("k\0ey\r\n*1", 8);
  std::string value;
  for (int i = 0; i < 256; ++i) value.push_back(static_cast<char>(i));
  const std::string_view set[] = {"SET", key, value};
  ASSERT_TRUE(s->command(set).ok());
  const std::string_view get[] = {"GET", key};
  auto r = s->command(get);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().str, value);
}

TEST(Transport, DeepPipelineDoesNotDeadlockOnFullSocketBuffers) {
  // 50,000 SETs of 1 KB (~50 MB) go out in one exchange: far more than the socket buffers
  // hold, so this only finishes if replies are read while commands are still being written.
  redis_server server;
  ASSERT_TRUE(server.start()) << server.last_error();
  auto s = open_session(server.config());
  const std::string value(1024, 'v');
  std::string out;
  constexpr std::size_t n = 50000;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string key = "pipe:" + std::to_string(i);
    const std::string_view argv[] = {"SET", key, value};
    ASSERT_TRUE(tds::detail::append_command(out, argv).ok());
  }
  std::size_t oks = 0;
  auto r = s->exchange(out, n, [&](std::size_t, reply& rep) -> tds::result<void> {
    if (rep.type == reply::kind::status && rep.str == "OK") ++oks;
    return {};
  });
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(oks, n);
  auto size = server.command({"DBSIZE"});
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(size.value().integer, static_cast<long long>(n));
}

TEST(Transport, RefusedConnectionIsConnectFailedThenBackoffHoldsOffRetries) {
  auto cfg = tds::client_config{};
  cfg.port = tds::testing::free_tcp_port();  // nothing listens there
  cfg.reconnect_backoff_min = 10s;
  auto s = open_session(cfg);
  const std::string_view argv[] = {"PING"};
  auto first = s->command(argv);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.code(), status::connect_failed);
  EXPECT_NE(first.error().message.find("127.0.0.1:" + std::to_string(cfg.port)), std::string::npos)
      << first.error().message;
  EXPECT_EQ(s->connect_attempts(), 1u);
  auto second = s->command(argv);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("next reconnect"), std::string::npos) << second.error().message;
  EXPECT_EQ(s->connect_attempts(), 1u) << "the backoff window must not open a socket";
}

TEST(Transport, UnresolvableHostIsConnectFailed) {
  auto cfg = tds::client_config{};
  cfg.host = "no-such-host.invalid";
  auto s = open_session(cfg);
  const std::string_view argv[] = {"PING"};
  auto r = s->command(argv);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), status::connect_failed);
  EXPECT_NE(r.error().message.find("no-such-host.invalid"), std::string::npos);
}

TEST(Transport, StalledServerTimesOutWithinTheCommandTimeout) {
  redis_server server;
  ASSERT_TRUE(server.start()) << server.last_error();
  auto cfg = server.config();
  cfg.command_timeout = 300ms;
  auto s = open_session(cfg);
  ASSERT_EQ(ping(*s), "PONG");
  server.pause();
  const auto t0 = std::chrono::steady_clock::now();
  const std::string_view argv[] = {"PING"};
  auto r = s->command(argv);
  const auto took = std::chrono::steady_clock::now() - t0;
  server.resume();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), status::timeout);
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 900ms) << "a stall must cost about one command timeout, not more";
}

TEST(Transport, StalledServerTimesOutAtConnect) {
  redis_server server;
  ASSERT_TRUE(server.start()) << server.last_error();
  auto cfg = server.config();
  cfg.connect_timeout = 300ms;
  cfg.password = "x";  // the handshake needs an answer, which a stopped server never gives
  server.pause();
  auto s = open_session(cfg);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string_view argv[] = {"PING"};
  auto r = s->command(argv);
  const auto took = std::chrono::steady_clock::now() - t0;
  server.resume();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), status::timeout);
  EXPECT_LT(took, 900ms);
}

TEST(Transport, ReconnectsTransparentlyAfterServerRestart) {
  redis_server server;
  ASSERT_TRUE(server.start()) << server.last_error();
  auto s = open_session(server.config());
  ASSERT_EQ(ping(*s), "PONG");
  const auto attempts = s->connect_attempts();
  ASSERT_TRUE(server.restart()) << server.last_error();
  // The old connection is dead; the first command notices, reconnects once and succeeds.
  EXPECT_EQ(ping(*s), "PONG");
  EXPECT_EQ(s->connect_attempts(), attempts + 1);
}

// ---------------------------------------------------------------- AUTH and SELECT

TEST(Transport, AuthenticatesAnAclUserAndSelectsTheDatabase) {
  redis_server server({.extra_args = {"--user", "worker", "on", ">s3cret", "~*", "+@all"}});
  ASSERT_TRUE(server.start()) << server.last_error();
  auto cfg = server.config();
  cfg.username = "worker";
  cfg.password = "s3cret";
  cfg.db = 2;
  auto s = open_session(cfg);
  const std::string_view set[] = {"SET", "where", "db2"};
  ASSERT_TRUE(s->command(set).ok());
  const std::string_view who[] = {"ACL", "WHOAMI"};
  auto me = s->command(who);
  ASSERT_TRUE(me.ok());
  EXPECT_EQ(me.value().str, "worker");
  auto in_db0 = server.command({"EXISTS", "where"});
  ASSERT_TRUE(in_db0.ok());
  EXPECT_EQ(in_db0.value().integer, 0) << "the key must land in db 2, not db 0";
  ASSERT_TRUE(server.command({"SELECT", "2"}).ok());
  auto in_db2 = server.command({"GET", "where"});
  ASSERT_TRUE(in_db2.ok());
  EXPECT_EQ(in_db2.value().str, "db2");
}

TEST(Transport, WrongPasswordIsAnAuthErrorNamingTheUser) {
  redis_server server({.extra_args = {"--user", "worker", "on", ">s3cret", "~*", "+@all"}});
  ASSERT_TRUE(server.start()) << server.last_error();
  auto cfg = server.config();
  cfg.username = "worker";
  cfg.password = "wrong";
  auto s = open_session(cfg);
  const std::string_view argv[] = {"PING"};
  auto r = s->command(argv);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), status::auth);
  EXPECT_NE(r.error().message.find("'worker'"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("WRONGPASS"), std::string::npos) << r.error().message;
  EXPECT_FALSE(s->connected());
}

// ---------------------------------------------------------------- TLS

// One CA set and one TLS server (no client certificates required) for the whole suite.
class TransportTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new tds::testing::temp_dir("tds-tls");
    std::string why;
    auto m = tls_material::generate(dir_->path(), &why);
    if (!m) {
      setup_error_ = new std::string("TLS material: " + why);
      return;
    }
    material_ = new tls_material(*m);
    server_ = new redis_server({.tls = material_});
    if (!server_->start()) setup_error_ = new std::string(server_->last_error());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete material_;
    delete dir_;
    delete setup_error_;
    server_ = nullptr;
    material_ = nullptr;
    dir_ = nullptr;
    setup_error_ = nullptr;
  }
  void SetUp() override { ASSERT_EQ(setup_error_, nullptr) << *setup_error_; }

  // What PING on a fresh session with this config gives: "PONG", or the error.
  static tds::result<std::string> ping_with(const tds::client_config& cfg) {
    auto s = open_session(cfg);
    const std::string_view argv[] = {"PING"};
    auto r = s->command(argv);
    if (!r.ok()) return r.error();
    return r.value().str;
  }

  static void expect_tls_refusal(const tds::client_config& cfg, std::string_view needle) {
    auto r = ping_with(cfg);
    ASSERT_FALSE(r.ok()) << "connected although it should not have";
    EXPECT_EQ(r.code(), status::tls) << r.error().message;
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  }

  static tds::testing::temp_dir* dir_;
  static tls_material* material_;
  static redis_server* server_;
  static std::string* setup_error_;
};
tds::testing::temp_dir* TransportTls::dir_ = nullptr;
tls_material* TransportTls::material_ = nullptr;
redis_server* TransportTls::server_ = nullptr;
std::string* TransportTls::setup_error_ = nullptr;

TEST_F(TransportTls, ConnectsWhenTheServerCertificateChainsToTheCa) {
  auto cfg = server_->config();
  cfg.tls.cert_file.clear();
  cfg.tls.key_file.clear();
  auto r = ping_with(cfg);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value(), "PONG");
}

TEST_F(TransportTls, WrongCaIsRefusedWithACertificateError) {
  auto cfg = server_->config();
  cfg.tls.ca_file = material_->other_ca_cert;
  expect_tls_refusal(cfg, "certificate verification failed");
}

TEST_F(TransportTls, HostnameMismatchIsRefusedUnlessVerificationIsOff) {
  auto cfg = server_->config();
  cfg.tls.server_name = "not-this-server.example";
  expect_tls_refusal(cfg, "not-this-server.example");
  cfg.tls.verify_hostname = false;
  EXPECT_TRUE(ping_with(cfg).ok());
}

TEST_F(TransportTls, LocalhostNameMatchesTheCertificateSan) {
  auto cfg = server_->config();
  cfg.host = "localhost";
  EXPECT_TRUE(ping_with(cfg).ok());
}

TEST_F(TransportTls, InsecureModeSkipsVerification) {
  auto cfg = server_->config();
  cfg.tls.ca_file = material_->other_ca_cert;
  cfg.tls.insecure = true;
  EXPECT_TRUE(ping_with(cfg).ok());
}

TEST_F(TransportTls, ServerRequiringClientCertificatesAcceptsOursAndRefusesNone) {
  redis_server strict({.tls = material_, .tls_auth_clients = true});
  ASSERT_TRUE(strict.start()) << strict.last_error();
  EXPECT_TRUE(ping_with(strict.config()).ok());
  auto cfg = strict.config();
  cfg.tls.cert_file.clear();
  cfg.tls.key_file.clear();
  expect_tls_refusal(cfg, "certificate");
}

TEST_F(TransportTls, MissingCaFileIsAClearContextError) {
  tds::tls_options o;
  o.enabled = true;
  o.ca_file = "/nonexistent/ca.pem";
  auto ctx = tds::detail::tls_context::create(o);
  ASSERT_FALSE(ctx.ok());
  EXPECT_EQ(ctx.code(), status::tls);
  EXPECT_NE(ctx.error().message.find("/nonexistent/ca.pem"), std::string::npos);
}

TEST_F(TransportTls, ServerClosingMidStreamGivesAnErrorNotSigpipe) {
  // Writing to a TLS socket the server has closed must come back as an error value; a
  // SIGPIPE would kill this test binary.
  redis_server doomed({.tls = material_});
  ASSERT_TRUE(doomed.start()) << doomed.last_error();
  auto s = open_session(doomed.config());
  ASSERT_EQ(ping(*s), "PONG");
  doomed.kill();
  std::string big(4 << 20, 'x');
  const std::string_view argv[] = {"SET", "k", big};
  auto r = s->command(argv);
  EXPECT_FALSE(r.ok());
}

}  // namespace
