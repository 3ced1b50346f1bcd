// The bad-input catalogue (tests/bad_inputs.json) through the C++ API: each malformed or hostile
// input gives its expected status and message, on the canonicalizer, pages, URLs and a real
// redis-server. The same file drives tests/c/bad_input_test.c and tests/python/test_bad_input.py.
// Also here: regression tests for what fuzzing found (tests/fuzz/corpus/crashes).
#include <gtest/gtest.h>
#include <pthread.h>
#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "redis_server.hpp"
#include "resp.hpp"
#include "tdscache/canonical.hpp"
#include "tdscache/client.hpp"
#include "tdscache/config.hpp"
#include "tdscache/state.hpp"

namespace {

namespace dom = simdjson::dom;

const std::string catalogue_path = std::string(TDS_SOURCE_DIR) + "/tests/bad_inputs.json";
const std::filesystem::path crash_dir = std::filesystem::path(TDS_SOURCE_DIR) / "tests/fuzz/corpus/crashes";

// ---- reading the catalogue ------------------------------------------------------------------

// The parsed file, kept for the whole run: cases are views into it.
dom::element catalogue() {
  static dom::parser parser;
  static dom::element root = [] {
    dom::element r;
    if (auto e = parser.load(catalogue_path).get(r)) {
      std::fprintf(stderr, "cannot read %s: %s\n", catalogue_path.c_str(), simdjson::error_message(e));
    }
    return r;
  }();
  return root;
}

std::string text_of(dom::element e) { return std::string(std::string_view(e)); }

std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

std::string repeated(std::string_view unit, std::int64_t times) {
  std::string out;
  out.reserve(unit.size() * static_cast<std::size_t>(times));
  for (std::int64_t i = 0; i < times; ++i) out.append(unit);
  return out;
}

// A bytes spec: {"text"}, {"hex"} or {"parts": [...]} (see the file's "format").
std::string bytes_of(dom::element spec) {
  std::string_view s;
  if (spec["text"].get(s) == simdjson::SUCCESS) return std::string(s);
  if (spec["hex"].get(s) == simdjson::SUCCESS) return from_hex(s);
  std::string out;
  for (dom::element part : spec["parts"].get_array()) {
    dom::element seq;
    if (part["sequence"].get(seq) == simdjson::SUCCESS) {
      const std::string format = text_of(seq["format"]);
      const std::string separator = text_of(seq["separator"]);
      const std::int64_t start = seq["start"], step = seq["step"], count = seq["count"];
      char buffer[128];
      for (std::int64_t i = 0; i < count; ++i) {
        if (i > 0) out.append(separator);
        const int n = std::snprintf(buffer, sizeof buffer, format.c_str(), static_cast<int>(start + i * step));
        out.append(buffer, static_cast<std::size_t>(n));
      }
      continue;
    }
    std::int64_t times = 1;
    if (part["repeat"].get(times) != simdjson::SUCCESS) times = 1;
    std::string_view unit;
    const std::string piece = part["text"].get(unit) == simdjson::SUCCESS ? std::string(unit) : from_hex(std::string_view(part["hex"]));
    out.append(repeated(piece, times));
  }
  return out;
}

struct catalogue_case {
  std::string name;
  dom::element spec;
};

std::vector<catalogue_case> cases_of(std::string_view op) {
  std::vector<catalogue_case> out;
  for (dom::element c : catalogue()["cases"].get_array()) {
    if (std::string_view(c["op"]) == op) out.push_back({text_of(c["name"]), c});
  }
  return out;
}

std::string case_name(const ::testing::TestParamInfo<catalogue_case>& info) { return info.param.name; }

void PrintTo(const catalogue_case& c, std::ostream* os) { *os << c.name; }

// Where two byte strings part: a readable failure for 100 MB outputs, without printing them.
std::string first_difference(const std::string& got, const std::string& want) {
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  const auto around = [&](const std::string& s) { return s.substr(i > 20 ? i - 20 : 0, 60); };
  return "sizes " + std::to_string(got.size()) + " vs " + std::to_string(want.size()) + ", first difference at byte " +
         std::to_string(i) + ": got ..." + around(got) + "... want ..." + around(want) + "...";
}

// Checks an error against {status, message, offset, message_max, message_excludes}.
void expect_error(const tds::error& got, dom::element want, const std::string& context) {
  SCOPED_TRACE(context);
  EXPECT_EQ(tds::status_name(got.code), std::string_view(want["status"])) << got.message;
  std::string_view fragment;
  if (want["message"].get(fragment) == simdjson::SUCCESS)
    EXPECT_NE(got.message.find(fragment), std::string::npos) << "message: " << got.message.substr(0, 300);
  std::int64_t offset;
  if (want["offset"].get(offset) == simdjson::SUCCESS) EXPECT_EQ(got.offset, static_cast<std::size_t>(offset));
  std::int64_t max;
  if (want["message_max"].get(max) == simdjson::SUCCESS) EXPECT_LE(got.message.size(), static_cast<std::size_t>(max));
  std::string_view secret;
  if (want["message_excludes"].get(secret) == simdjson::SUCCESS)
    EXPECT_EQ(got.message.find(secret), std::string::npos) << got.message;
  EXPECT_FALSE(got.message.empty());
}

std::string describe(const catalogue_case& c) { return c.name + ": " + text_of(c.spec["why"]); }

tds::canonical_options options_of(dom::element spec) {
  tds::canonical_options o;
  dom::element opts;
  if (spec["options"].get(opts) != simdjson::SUCCESS) return o;
  std::string_view scheme;
  if (opts["scheme"].get(scheme) == simdjson::SUCCESS) o.scheme = *tds::parse_scheme(scheme);
  bool strict;
  if (opts["strict"].get(strict) == simdjson::SUCCESS) o.strict = strict;
  std::int64_t depth;
  if (opts["max_depth"].get(depth) == simdjson::SUCCESS) o.max_depth = static_cast<std::size_t>(depth);
  dom::array pointers;
  if (opts["exclude_pointers"].get(pointers) == simdjson::SUCCESS)
    for (dom::element p : pointers) o.exclude_pointers.push_back(text_of(p));
  return o;
}

bool expects_ok(dom::element want) { return std::string_view(want["status"]) == "ok"; }

// Runs `body` on a thread with a 64 MB stack. The walker refuses nesting its thread's stack
// cannot hold; sanitizer frames are several KB per level, so the 4096-deep case needs more
// than the 8 MB main thread to give the answer a production build gives on 8 MB.
template <class F>
void on_large_stack(F body) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, std::size_t{64} << 20), 0);
  pthread_t thread;
  auto run = [](void* f) -> void* {
    (*static_cast<F*>(f))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, run, &body), 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
}

// ---- canonicalize ---------------------------------------------------------------------------

class BadInputCanonical : public ::testing::TestWithParam<catalogue_case> {};

void run_canonical_case(const catalogue_case& c);

TEST_P(BadInputCanonical, GivesItsCatalogueResult) {
  on_large_stack([&] { run_canonical_case(GetParam()); });
}

void run_canonical_case(const catalogue_case& c) {
  SCOPED_TRACE(describe(c));
  const dom::element want = c.spec["expect"];
  auto created = tds::canonicalizer::create(options_of(c.spec));
  if (!created.ok()) {
    expect_error(created.error(), want, "creating the canonicalizer");
    return;
  }
  const std::string input = bytes_of(c.spec["input"]);
  auto got = created.value().canonicalize(input);
  if (!expects_ok(want)) {
    ASSERT_FALSE(got.ok()) << "accepted, giving " << std::string(got.value().substr(0, 200));
    expect_error(got.error(), want, "canonicalize");
    return;
  }
  ASSERT_TRUE(got.ok()) << tds::status_name(got.code()) << ": " << got.error().message;
  const std::string output(got.value());
  const std::string expected = bytes_of(want["output"]);
  EXPECT_TRUE(output == expected) << first_difference(output, expected);
  // The digest is of exactly those bytes.
  auto digest = created.value().hash(input);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(digest.value(), tds::sha256(expected));
}

INSTANTIATE_TEST_SUITE_P(Catalogue, BadInputCanonical, ::testing::ValuesIn(cases_of("canonicalize")), case_name);

// ---- hash_page --------------------------------------------------------------------------------

class BadInputPage : public ::testing::TestWithParam<catalogue_case> {};

void run_page_case(const catalogue_case& c);

TEST_P(BadInputPage, GivesItsCatalogueResult) {
  on_large_stack([&] { run_page_case(GetParam()); });
}

void run_page_case(const catalogue_case& c) {
  SCOPED_TRACE(describe(c));
  const dom::element want = c.spec["expect"];
  auto created = tds::canonicalizer::create(options_of(c.spec));
  ASSERT_TRUE(created.ok()) << created.error().message;
  tds::page_options popts;
  dom::element page;
  if (c.spec["page"].get(page) == simdjson::SUCCESS) {
    std::string_view v;
    if (page["items_key"].get(v) == simdjson::SUCCESS) popts.items_key = v;
    if (page["id_field"].get(v) == simdjson::SUCCESS) popts.id_field = v;
    if (page["modified_field"].get(v) == simdjson::SUCCESS) popts.modified_field = v;
  }
  const std::string body = bytes_of(c.spec["input"]);
  auto got = created.value().hash_page(body, popts);
  if (!expects_ok(want)) {
    ASSERT_FALSE(got.ok()) << "accepted, with " << got.value().records.size() << " records";
    expect_error(got.error(), want, "hash_page");
    return;
  }
  ASSERT_TRUE(got.ok()) << tds::status_name(got.code()) << ": " << got.error().message;
  const auto& records = got.value().records;
  const dom::array wanted = want["records"];
  ASSERT_EQ(records.size(), wanted.size());
  std::size_t i = 0;
  for (dom::element w : wanted) {
    const tds::entity_record& rec = records[i];
    const std::string where = "record " + std::to_string(i++);
    if (!expects_ok(w)) {
      EXPECT_FALSE(rec.ok()) << where;
      expect_error(rec.error, w, where);
      continue;
    }
    EXPECT_TRUE(rec.ok()) << where << ": " << rec.error.message;
    const std::string id = bytes_of(w["id"]);
    EXPECT_TRUE(rec.id == id) << where << ": id " << first_difference(rec.id, id);
    // The digest is of the item's own bytes, as the span names them.
    auto alone = created.value().hash(std::string_view(body).substr(rec.offset, rec.length));
    ASSERT_TRUE(alone.ok()) << where;
    EXPECT_EQ(alone.value(), rec.content_digest) << where;
  }
}

INSTANTIATE_TEST_SUITE_P(Catalogue, BadInputPage, ::testing::ValuesIn(cases_of("hash_page")), case_name);

// ---- parse_redis_url --------------------------------------------------------------------------

class BadInputUrl : public ::testing::TestWithParam<catalogue_case> {};

TEST_P(BadInputUrl, GivesItsCatalogueResult) {
  const catalogue_case& c = GetParam();
  SCOPED_TRACE(describe(c));
  auto got = tds::parse_redis_url(bytes_of(c.spec["input"]));
  ASSERT_FALSE(got.ok());
  expect_error(got.error(), c.spec["expect"], "parse_redis_url");
  // A client refuses it the same way.
  auto client = tds::client::from_url(bytes_of(c.spec["input"]));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.code(), tds::status::url_invalid);
}

INSTANTIATE_TEST_SUITE_P(Catalogue, BadInputUrl, ::testing::ValuesIn(cases_of("parse_url")), case_name);

// ---- against a real redis-server -------------------------------------------------------------

class BadInputRedis : public ::testing::TestWithParam<catalogue_case> {
 protected:
  static void SetUpTestSuite() {
    server_ = std::make_unique<tds::testing::redis_server>();
    if (!server_->start()) {
      start_error_ = server_->last_error();
      server_.reset();
    }
  }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(server_) << "redis-server did not start: " << start_error_;
    auto flushed = server_->command({"FLUSHALL"});
    ASSERT_TRUE(flushed.ok() && !flushed.value().is_error());
    auto c = tds::client::connect(server_->unix_config());
    ASSERT_TRUE(c.ok()) << c.error().message;
    client_.emplace(std::move(c).value());
    digest_ = *tds::digest::from_hex(std::string_view(catalogue()["digest"]));
  }

  tds::check_result check(const std::string& type, const std::string& id) {
    tds::entity_check e;
    e.entity_type = type;
    e.entity_id = id;
    e.content_digest = digest_;
    return client_->check(std::span<const tds::entity_check>(&e, 1));
  }

  static inline std::unique_ptr<tds::testing::redis_server> server_;
  static inline std::string start_error_;
  std::optional<tds::client> client_;
  tds::digest digest_;
};

TEST_P(BadInputRedis, GivesItsCatalogueResult) {
  const catalogue_case& c = GetParam();
  SCOPED_TRACE(describe(c));
  std::size_t step_index = 0;
  for (dom::element step : c.spec["steps"].get_array()) {
    SCOPED_TRACE("step " + std::to_string(step_index++));
    dom::element s;
    if (step["plant"].get(s) == simdjson::SUCCESS) {
      const std::string key = tds::state_key(tds::default_key_prefix, bytes_of(s["type"]), bytes_of(s["id"]));
      const std::string value = bytes_of(s["value"]);
      auto set = server_->command({"SET", key, value});
      ASSERT_TRUE(set.ok() && !set.value().is_error());
    } else if (step["check"].get(s) == simdjson::SUCCESS) {
      auto r = check(bytes_of(s["type"]), bytes_of(s["id"]));
      ASSERT_EQ(r.items.size(), 1u);
      EXPECT_EQ(tds::reason_name(r.items[0].why), std::string_view(s["reason"])) << r.error.message;
    } else if (step["commit"].get(s) == simdjson::SUCCESS) {
      const std::string type = bytes_of(s["type"]), id = bytes_of(s["id"]);
      auto checked = check(type, id);
      ASSERT_EQ(checked.items.size(), 1u);
      ASSERT_TRUE(checked.items[0].sync()) << "a commit step needs an entity that must be synced";
      tds::commit_item item;
      item.entity_type = type;
      item.entity_id = id;
      item.content_digest = digest_;
      item.observed = &checked.items[0].observed;
      auto committed = client_->commit(std::span<const tds::commit_item>(&item, 1));
      ASSERT_EQ(committed.items.size(), 1u);
      EXPECT_EQ(committed.items[0], tds::commit_outcome::written) << committed.error.message;
      // What was stored names the entity byte for byte.
      auto state = client_->get_state(type, id);
      ASSERT_TRUE(state.ok() && state.value().has_value());
      EXPECT_TRUE(state.value()->entity_id == id) << first_difference(state.value()->entity_id, id);
      EXPECT_TRUE(state.value()->entity_type == type);
    } else if (step["invalidate"].get(s) == simdjson::SUCCESS) {
      const std::string type = bytes_of(s["type"]);
      dom::element id;
      auto removed = s["id"].get(id) == simdjson::SUCCESS ? client_->invalidate(type, bytes_of(id))
                                                          : client_->invalidate_type(type);
      ASSERT_TRUE(removed.ok()) << removed.error().message;
      EXPECT_EQ(removed.value(), static_cast<std::uint64_t>(std::int64_t(s["removed"])));
    } else {
      FAIL() << "unknown step";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Catalogue, BadInputRedis, ::testing::ValuesIn(cases_of("redis")), case_name);

// ---- the catalogue itself ---------------------------------------------------------------------

TEST(BadInputCatalogue, HoldsAtLeastFortyCasesWithUniqueNamesAndKnownOps) {
  std::set<std::string> names;
  std::size_t count = 0;
  for (dom::element c : catalogue()["cases"].get_array()) {
    ++count;
    EXPECT_TRUE(names.insert(text_of(c["name"])).second) << text_of(c["name"]);
    const std::string_view op = c["op"];
    EXPECT_TRUE(op == "canonicalize" || op == "hash_page" || op == "parse_url" || op == "redis") << op;
  }
  EXPECT_GE(count, 40u);
  EXPECT_EQ(count, cases_of("canonicalize").size() + cases_of("hash_page").size() +
                       cases_of("parse_url").size() + cases_of("redis").size());
}

// ---- regressions for what fuzzing found --------------------------------------------------------

std::vector<std::string> crash_inputs(std::string_view target) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(crash_dir / target, ec))
    out.push_back(tds::testing::read_file(entry.path().string()));
  return out;
}

TEST(BadInputFuzzRegressions, CommittedPageCrashesAreCleanJsonErrors) {
  const auto inputs = crash_inputs("page");
  ASSERT_FALSE(inputs.empty()) << "no reproducers under " << (crash_dir / "page");
  auto c = std::move(tds::canonicalizer::create()).value();
  for (const std::string& body : inputs) {
    auto r = c.hash_page(body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), tds::status::json_malformed) << r.error().message;
  }
}

TEST(BadInputFuzzRegressions, CommittedRespCrashesAreProtocolErrors) {
  const auto inputs = crash_inputs("resp");
  ASSERT_FALSE(inputs.empty());
  for (const std::string& input : inputs) {
    // The fuzz target's first byte picks a chunk size; the rest is the stream.
    tds::detail::reply_reader reader;
    ASSERT_TRUE(reader.feed(std::string_view(input).substr(1)).ok());
    tds::detail::reply r;
    auto got = reader.next(r);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.code(), tds::status::protocol) << got.error().message;
  }
}

TEST(BadInputResp, ArrayHeaderAboveTheElementLimitIsAProtocolErrorWithoutAllocating) {
  for (std::string_view stream : {"*2147483647\r\n", "*2\r\n:1\r\n*1048577\r\n"}) {
    tds::detail::reply_reader reader;
    ASSERT_TRUE(reader.feed(stream).ok());
    tds::detail::reply r;
    auto got = reader.next(r);
    ASSERT_FALSE(got.ok()) << stream;
    EXPECT_EQ(got.code(), tds::status::protocol);
    EXPECT_NE(got.error().message.find("claims"), std::string::npos) << got.error().message;
  }
  // The limit itself is allowed: an MGET of 1,000,000 keys fits.
  tds::detail::reply_reader reader;
  ASSERT_TRUE(reader.feed("*1048576\r\n").ok());
  tds::detail::reply r;
  auto got = reader.next(r);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got.value());  // waiting for the elements
}

TEST(BadInputResp, ReaderWorksAgainAfterResetFollowingAProtocolError) {
  tds::detail::reply_reader reader;
  ASSERT_TRUE(reader.feed("*99999999999\r\n").ok());
  tds::detail::reply r;
  ASSERT_FALSE(reader.next(r).ok());
  reader.reset();
  ASSERT_TRUE(reader.feed("$3\r\nabc\r\n").ok());
  auto got = reader.next(r);
  ASSERT_TRUE(got.ok() && got.value());
  EXPECT_EQ(r.str, "abc");
}

// Regression: when a command's last bytes and its whole reply moved in the same turn of the
// transfer loop (any pipeline over 256 KB, like this 1 MB key), the loop then polled with no
// events and slept the whole idle timeout, reporting a false timeout about half of the time.
TEST(BadInputLargeCommands, MegabyteKeyOperationsNeverWaitForTheIdleTimeout) {
  tds::testing::redis_server server;
  ASSERT_TRUE(server.start()) << server.last_error();
  tds::client_config cfg = server.unix_config();
  cfg.command_timeout = std::chrono::milliseconds(5000);
  auto c = std::move(tds::client::connect(cfg)).value();
  const std::string id(1 << 20, 'i');
  const auto bound = std::chrono::milliseconds(2500);  // half the idle timeout the bug waited
  for (int round = 0; round < 16; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    tds::entity_check e;
    e.entity_type = "t";
    e.entity_id = id;
    auto start = std::chrono::steady_clock::now();
    auto checked = c.check(std::span<const tds::entity_check>(&e, 1));
    EXPECT_LT(std::chrono::steady_clock::now() - start, bound);
    ASSERT_EQ(checked.items[0].why, tds::reason::no_cache_entry) << checked.error.message;
    tds::commit_item item;
    item.entity_type = "t";
    item.entity_id = id;
    item.observed = &checked.items[0].observed;
    start = std::chrono::steady_clock::now();
    auto committed = c.commit(std::span<const tds::commit_item>(&item, 1));
    EXPECT_LT(std::chrono::steady_clock::now() - start, bound);
    ASSERT_EQ(committed.items[0], tds::commit_outcome::written) << committed.error.message;
    start = std::chrono::steady_clock::now();
    auto removed = c.invalidate("t", id);
    EXPECT_LT(std::chrono::steady_clock::now() - start, bound);
    ASSERT_TRUE(removed.ok()) << removed.error().message;
    EXPECT_EQ(removed.value(), 1u);
  }
}

// Regression: max_depth alone let a deep document overflow a small thread stack (found by the
// ASan build, whose frames are larger, with the 4096-deep catalogue case). Now the walker
// refuses what the stack cannot hold, with depth_exceeded, on any thread.
TEST(BadInputDeepNesting, SmallThreadStacksGiveDepthExceededInsteadOfCrashing) {
  for (const std::size_t stack_kb : {64, 128, 256}) {
    pthread_attr_t attr;
    ASSERT_EQ(pthread_attr_init(&attr), 0);
    ASSERT_EQ(pthread_attr_setstacksize(&attr, stack_kb * 1024), 0);
    struct outcome {
      tds::status code = tds::status::internal;
      std::string message;
    } got;
    auto run = [](void* p) -> void* {
      tds::canonical_options o;
      o.max_depth = 4096;
      auto c = std::move(tds::canonicalizer::create(o)).value();
      auto r = c.canonicalize(std::string(4096, '[') + std::string(4096, ']'));
      auto* out = static_cast<outcome*>(p);
      out->code = r.code();
      if (!r.ok()) out->message = r.error().message;
      return nullptr;
    };
    pthread_t thread;
    ASSERT_EQ(pthread_create(&thread, &attr, run, &got), 0);
    pthread_join(thread, nullptr);
    pthread_attr_destroy(&attr);
    EXPECT_EQ(got.code, tds::status::depth_exceeded) << stack_kb << " KB";
    EXPECT_NE(got.message.find("stack"), std::string::npos) << got.message;
  }
}

// Hostile concurrency, for the TSan build (scripts/sanitize.sh tsan) above all: one client,
// every call it has, from several threads at once, while the server is killed and restarted
// under them. Failures are expected (the server goes away); a data race, a crash, a hang or a
// skip that the data does not allow are not.
TEST(BadInputConcurrentUse, EveryCallOnOneClientFromManyThreadsWhileTheServerRestarts) {
  tds::testing::redis_server server;
  ASSERT_TRUE(server.start()) << server.last_error();
  tds::client_config cfg = server.unix_config();
  cfg.command_timeout = std::chrono::milliseconds(3000);
  cfg.breaker_failures = 2;
  cfg.breaker_cooldown = std::chrono::milliseconds(20);
  cfg.reconnect_backoff_min = std::chrono::milliseconds(1);
  cfg.reconnect_backoff_max = std::chrono::milliseconds(10);
  auto connected = tds::client::connect(cfg);
  ASSERT_TRUE(connected.ok()) << connected.error().message;
  tds::client& c = connected.value();

  std::atomic<bool> stop{false};
  std::atomic<int> false_skips{0};
  auto worker = [&](int w) {
    const std::string type = "w" + std::to_string(w);
    std::vector<std::string> ids;
    for (int i = 0; i < 20; ++i) ids.push_back(std::to_string(i));
    for (int round = 0; round < 40; ++round) {
      // A digest never committed before: unchanged would be a skip the data does not allow.
      const tds::digest fresh = tds::sha256(type + ":" + std::to_string(round));
      std::vector<tds::entity_check> checks(ids.size());
      for (std::size_t i = 0; i < ids.size(); ++i) {
        checks[i].entity_type = type;
        checks[i].entity_id = ids[i];
        checks[i].content_digest = fresh;
      }
      auto checked = c.check(checks);
      std::vector<tds::commit_item> commits;
      for (std::size_t i = 0; i < checks.size(); ++i) {
        if (checked.items[i].why == tds::reason::unchanged) ++false_skips;
        tds::commit_item item;
        item.entity_type = type;
        item.entity_id = ids[i];
        item.content_digest = fresh;
        item.observed = &checked.items[i].observed;
        commits.push_back(item);
      }
      (void)c.commit(commits);
      (void)c.get_state(type, ids[round % ids.size()]);
      (void)c.invalidate(type, ids[(round + 1) % ids.size()]);
      if (round % 10 == 9) (void)c.invalidate_type(type);
      (void)c.mark_batch_complete(type, std::to_string(round), "{}");
      (void)c.was_batch_synced_recently(type, 60);
      (void)c.ping();
    }
  };
  std::thread observer([&] {
    while (!stop.load()) {
      (void)c.stats();  // every counter, read while calls update them
      (void)c.connect_attempts();
      (void)c.config().key_prefix.size();
      c.reset_stats();
      tds::testing::pause_briefly(std::chrono::milliseconds(1));
    }
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; ++w) workers.emplace_back(worker, w);
  for (int restarts = 0; restarts < 3; ++restarts) {
    tds::testing::pause_briefly(std::chrono::milliseconds(50));
    ASSERT_TRUE(server.restart()) << server.last_error();
  }
  for (auto& t : workers) t.join();
  stop = true;
  observer.join();
  EXPECT_EQ(false_skips.load(), 0);
  // The client recovers: after the storm, a fresh entity is checked against the live server.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool answered = false;
  while (!answered && std::chrono::steady_clock::now() < until) {
    tds::entity_check e;
    e.entity_type = "after";
    e.entity_id = "1";
    answered = c.check(std::span<const tds::entity_check>(&e, 1)).items[0].why == tds::reason::no_cache_entry;
    if (!answered) tds::testing::pause_briefly(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(answered);
}

TEST(BadInputConfig, MgetChunkAboveOneMillionIsRefused) {
  tds::client_config cfg;
  cfg.mget_chunk = 1'000'001;
  auto c = tds::client::connect(cfg);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.code(), tds::status::invalid_argument);
  EXPECT_NE(c.error().message.find("mget_chunk"), std::string::npos);
  cfg.mget_chunk = 1'000'000;
  EXPECT_TRUE(tds::client::connect(cfg).ok());
}

TEST(BadInputPageTail, LastItemSpanNeverReachesPastTheBody) {
  // An unbalanced last item after a NaN: the span must stay inside the body (it once ran on
  // through the padding), and the page must be refused.
  auto c = std::move(tds::canonicalizer::create()).value();
  for (std::string body : {std::string(R"({"items": [{"item_id": 1, "x": NaN, "y": [[[[)"),
                           std::string(R"({"items": [{"item_id": 1, "x": NaN, "y": "\)")}) {
    auto r = c.hash_page(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.code(), tds::status::json_malformed);
  }
}

}  // namespace
