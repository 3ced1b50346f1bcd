// Test fixture: throwaway redis-server processes on free loopback ports and unix sockets in
// private temp dirs, started directly (posix_spawn, PID kept, no shell), plus TLS material
// made with the openssl CLI. Shared by every suite that needs a real server; header-only.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tdscache/config.hpp"
#include "transport.hpp"

extern char** environ;

namespace tds::testing {

// Waits a little without sleeping on a condition we could observe instead: used only between
// polls of a condition that has its own deadline.
inline void pause_briefly(std::chrono::milliseconds ms = std::chrono::milliseconds(5)) {
  ::poll(nullptr, 0, static_cast<int>(ms.count()));
}

// Runs a program to completion (no shell); stdout and stderr go to log_path. True on exit 0.
inline bool run_program(const std::vector<std::string>& argv, const std::string& log_path,
                        std::string* why = nullptr) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    if (why) *why = "cannot start " + argv[0] + ": " + std::strerror(rc);
    return false;
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    if (why) *why = argv[0] + " failed; see " + log_path;
    return false;
  }
  return true;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A port the kernel just handed out on 127.0.0.1. Another process could take it before the
// server binds; redis_server::start() retries with a new port when that happens.
inline int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// A directory that removes itself.
class temp_dir {
 public:
  explicit temp_dir(std::string_view prefix = "tds-test") {
    std::string pattern = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// A CA, a server certificate for localhost and 127.0.0.1, a client certificate from the same
// CA, and a second, unrelated CA (for "wrong CA" tests). EC P-256 keys: fast to generate.
struct tls_material {
  std::string ca_cert, ca_key, server_cert, server_key, client_cert, client_key, other_ca_cert;

  static std::optional<tls_material> generate(const std::string& dir, std::string* why = nullptr) {
    tls_material m;
    auto p = [&](const char* name) { return dir + "/" + name; };
    m.ca_cert = p("ca.crt");
    m.ca_key = p("ca.key");
    m.server_cert = p("server.crt");
    m.server_key = p("server.key");
    m.client_cert = p("client.crt");
    m.client_key = p("client.key");
    m.other_ca_cert = p("other-ca.crt");
    const std::string log = p("openssl.log");
    {
      std::ofstream(p("server.ext")) << "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                        "basicConstraints=CA:FALSE\n";
      std::ofstream(p("client.ext")) << "basicConstraints=CA:FALSE\n";
    }
    const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"};
    auto req = [&](std::vector<std::string> head, std::vector<std::string> tail) {
      head.insert(head.end(), ec.begin(), ec.end());
      head.insert(head.end(), tail.begin(), tail.end());
      return run_program(head, log, why);
    };
    const bool ok =
        req({"openssl", "req", "-x509"}, {"-keyout", m.ca_key, "-out", m.ca_cert, "-days", "2", "-subj", "/CN=tds-test-ca"}) &&
        req({"openssl", "req", "-x509"}, {"-keyout", p("other-ca.key"), "-out", m.other_ca_cert, "-days", "2", "-subj", "/CN=tds-other-ca"}) &&
        req({"openssl", "req"}, {"-keyout", m.server_key, "-out", p("server.csr"), "-subj", "/CN=localhost"}) &&
        run_program({"openssl", "x509", "-req", "-in", p("server.csr"), "-CA", m.ca_cert, "-CAkey", m.ca_key,
                     "-CAcreateserial", "-out", m.server_cert, "-days", "2", "-extfile", p("server.ext")}, log, why) &&
        req({"openssl", "req"}, {"-keyout", m.client_key, "-out", p("client.csr"), "-subj", "/CN=tds-client"}) &&
        run_program({"openssl", "x509", "-req", "-in", p("client.csr"), "-CA", m.ca_cert, "-CAkey", m.ca_key,
                     "-CAcreateserial", "-out", m.client_cert, "-days", "2", "-extfile", p("client.ext")}, log, why);
    if (!ok) return std::nullopt;
    return m;
  }
};

struct redis_server_options {
  bool tcp = true;          // listen on a free loopback port
  bool unix_socket = true;  // and on dir/redis.sock
  const tls_material* tls = nullptr;  // the TCP port speaks TLS (the unix socket stays plain)
  bool tls_auth_clients = false;      // require a client certificate
  std::vector<std::string> extra_args;  // e.g. {"--maxmemory", "2mb"} or {"--user", "..."}
  std::chrono::milliseconds start_timeout{10000};
};

// One redis-server process. Not thread safe (tests drive it from one thread); kill(), pause()
// and resume() only send signals, so they are safe while another thread uses the server.
class redis_server {
 public:
  explicit redis_server(redis_server_options options = {})
      : options_(std::move(options)), dir_("tds-redis") {}
  ~redis_server() { kill(); }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  // Starts the server and waits until it answers PING. False (see last_error()) on failure.
  [[nodiscard]] bool start() {
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (options_.tcp) port_ = free_tcp_port();
      if (launch()) return true;
      if (!options_.tcp) break;  // a port race is the only reason worth retrying for
    }
    return false;
  }

  // Stops the process now (SIGKILL, works on a stopped process too) and reaps it.
  void kill() {
    admin_.reset();
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int wstatus = 0;
    while (::waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  // kill() only queues the signal: the server may still answer a request or two before it is
  // scheduled out. Both wait (polling /proc, 5 s deadline) until the kernel reports the new state,
  // so a test's next request meets a server that is really stopped, or really running.
  void pause() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGSTOP);
    wait_for_state(true);
  }
  void resume() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    wait_for_state(false);
  }

  // Same port, same socket path, empty data set.
  [[nodiscard]] bool restart() {
    kill();
    return launch();
  }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  std::string unix_path() const { return options_.unix_socket ? dir_.file("redis.sock") : std::string(); }
  const std::string& dir() const { return dir_.path(); }
  const std::string& last_error() const { return error_; }
  std::string log() const { return read_file(dir_.file("redis.log")); }

  // A client config for the TCP (or TLS) port, with the fixture's TLS files when TLS is on.
  client_config config() const {
    client_config c;
    c.host = "127.0.0.1";
    c.port = port_;
    if (options_.tls) {
      c.tls.enabled = true;
      c.tls.ca_file = options_.tls->ca_cert;
      c.tls.cert_file = options_.tls->client_cert;
      c.tls.key_file = options_.tls->client_key;
    }
    return c;
  }
  client_config unix_config() const {
    client_config c;
    c.unix_path = unix_path();
    return c;
  }

  // An admin command on a private connection (the unix socket when there is one).
  result<detail::reply> command(std::vector<std::string_view> argv) {
    if (!admin_) {
      admin_cfg_ = options_.unix_socket ? unix_config() : config();
      admin_cfg_.reconnect_backoff_min = std::chrono::milliseconds(0);
      admin_cfg_.reconnect_backoff_max = std::chrono::milliseconds(0);
      admin_cfg_.command_timeout = std::chrono::milliseconds(30000);
      std::shared_ptr<const detail::tls_context> tls;
      if (admin_cfg_.tls.enabled) {
        auto ctx = detail::tls_context::create(admin_cfg_.tls);
        if (!ctx.ok()) return ctx.error();
        tls = ctx.value();
      }
      admin_ = std::make_unique<detail::session>(detail::endpoint::from_config(admin_cfg_), admin_cfg_, tls);
    }
    return admin_->command(argv);
  }

  // `calls` of one command in INFO commandstats ("mget", "evalsha", "keys"), 0 if never run.
  std::uint64_t calls(std::string_view name) {
    auto info = command({"INFO", "commandstats"});
    if (!info.ok()) return UINT64_MAX;
    const std::string needle = "cmdstat_" + std::string(name) + ":calls=";
    const auto at = info.value().str.find(needle);
    if (at == std::string::npos) return 0;
    return std::strtoull(info.value().str.c_str() + at + needle.size(), nullptr, 10);
  }

  bool reset_stats() {
    auto r = command({"CONFIG", "RESETSTAT"});
    return r.ok() && !r.value().is_error();
  }

 private:
  // Whether /proc/<pid>/stat shows the process stopped ('T'), polled until it says `stopped`.
  void wait_for_state(bool stopped) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    const std::string path = "/proc/" + std::to_string(pid_) + "/stat";
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(path);
      std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const auto paren = stat.rfind(')');  // the command name may hold spaces and parentheses
      if (paren == std::string::npos || paren + 2 >= stat.size()) return;  // no /proc: best effort
      const char state = stat[paren + 2];
      if ((state == 'T' || state == 't') == stopped) return;
      pause_briefly(std::chrono::milliseconds(1));
    }
  }

  bool launch() {
    if (dir_.path().empty()) {
      error_ = "mkdtemp failed";
      return false;
    }
    std::vector<std::string> argv = {"redis-server", "--save", "", "--appendonly", "no",
                                     "--dir", dir_.path(), "--bind", "127.0.0.1",
                                     "--daemonize", "no", "--loglevel", "notice"};
    if (options_.tls) {
      argv.insert(argv.end(), {"--port", "0", "--tls-port", std::to_string(port_),
                               "--tls-cert-file", options_.tls->server_cert,
                               "--tls-key-file", options_.tls->server_key,
                               "--tls-ca-cert-file", options_.tls->ca_cert,
                               "--tls-auth-clients", options_.tls_auth_clients ? "yes" : "no"});
    } else {
      argv.insert(argv.end(), {"--port", options_.tcp ? std::to_string(port_) : "0"});
    }
    if (options_.unix_socket) argv.insert(argv.end(), {"--unixsocket", unix_path(), "--unixsocketperm", "700"});
    argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());

    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const std::string log_path = dir_.file("redis.log");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int rc = posix_spawnp(&pid_, "redis-server", &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      error_ = std::string("cannot start redis-server: ") + std::strerror(rc);
      return false;
    }
    const auto until = std::chrono::steady_clock::now() + options_.start_timeout;
    while (std::chrono::steady_clock::now() < until) {
      int wstatus = 0;
      if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
        pid_ = -1;
        error_ = "redis-server exited during start-up:\n" + log();
        return false;
      }
      auto pong = command({"PING"});
      if (pong.ok() && pong.value().str == "PONG") return true;
      admin_.reset();
      pause_briefly();
    }
    error_ = "redis-server did not answer PING in time:\n" + log();
    kill();
    return false;
  }

  redis_server_options options_;
  temp_dir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string error_;
  client_config admin_cfg_;
  std::unique_ptr<detail::session> admin_;
};

}  // namespace tds::testing
