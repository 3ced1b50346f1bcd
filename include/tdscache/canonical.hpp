// Canonical JSON and content digests: raw JSON bytes in, canonical bytes and a SHA-256 out.
// Two schemes: `legacy` (byte-for-byte the production Python service's json.dumps form) and
// `jcs` (RFC 8785). No I/O lives here; the simdjson and OpenSSL details stay in src/.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tdscache/error.hpp"

namespace tds {

enum class hash_scheme : int { legacy = 0, jcs = 1 };

std::string_view scheme_name(hash_scheme s) noexcept;            // "legacy" / "jcs"
std::optional<hash_scheme> parse_scheme(std::string_view name) noexcept;

// A SHA-256 value. Compared and stored as raw bytes; hex() is the form Redis entries hold.
struct digest {
  std::array<std::uint8_t, 32> bytes{};

  std::string hex() const;
  void hex_into(char out[64]) const noexcept;
  static std::optional<digest> from_hex(std::string_view hex) noexcept;  // 64 hex chars, any case
  friend bool operator==(const digest&, const digest&) = default;
};

// SHA-256 through OpenSSL EVP with one context per thread, reused: no allocation per call.
digest sha256(std::string_view bytes) noexcept;

// The top-level fields the production service leaves out of its hash.
const std::vector<std::string>& legacy_excluded_fields();

struct canonical_options {
  hash_scheme scheme = hash_scheme::legacy;

  // jcs only. Off (the default): an integer literal outside +-(2^53-1) keeps its exact digits,
  // because rounding two 19-digit Zoho ids to the same double would make the cache skip a
  // real change. On: pure RFC 8785, every number goes through a double.
  bool strict = false;

  // Top-level member names left out of the canonical form. nullopt means the scheme's
  // default: legacy_excluded_fields() for legacy, none for jcs.
  std::optional<std::vector<std::string>> exclude_fields;

  // Nested exclusions as RFC 6901 JSON Pointers ("/locations/0/stock", "/a~1b"). A pointer
  // to an object member drops the member; to an array element, drops the element.
  std::vector<std::string> exclude_pointers;

  // Deeper documents fail with status::depth_exceeded. Python's json gives up near 1000.
  std::size_t max_depth = 512;

  static canonical_options legacy() { return {}; }
  static canonical_options jcs(bool strict_numbers = false) {
    canonical_options o;
    o.scheme = hash_scheme::jcs;
    o.strict = strict_numbers;
    return o;
  }
};

// How to find the entities in an API list page such as
// {"code":0,"message":"success","items":[...],"page_context":{"has_more_page":true}}.
struct page_options {
  std::string items_key = "items";
  std::string id_field = "item_id";
  std::string modified_field = "last_modified_time";
};

// One item of a page, hashed. An item that could not be hashed carries its error instead of
// a digest; the caller must sync it (or report it failed), never skip it.
struct entity_record {
  std::string id;                                 // exactly as written: number text or string
  std::optional<std::string> last_modified_time;  // nullopt when absent or null
  digest content_digest;
  std::size_t offset = 0;                         // the item's bytes within the page
  std::size_t length = 0;
  tds::error error;                               // code != ok: no digest (and maybe no id)

  bool ok() const noexcept { return error.code == status::ok; }
};

struct page_records {
  std::vector<entity_record> records;
  std::optional<bool> has_more_page;  // page_context.has_more_page, when present
};

class canonicalizer;

namespace detail {
// Tests only: false makes `c` run the reference walker (simdjson On-Demand) alone, so the fast
// direct walker can be compared with it. On by default.
void use_direct_walker(canonicalizer& c, bool enabled) noexcept;
}  // namespace detail

// Produces canonical bytes and digests. Holds the parser and scratch buffers, so reuse one
// per thread: not thread safe, one canonicalizer cannot work on two documents at once.
// Creating one validates the options (JSON Pointers), hence create() returns a result.
class canonicalizer {
 public:
  static result<canonicalizer> create(canonical_options options = {});

  canonicalizer(canonicalizer&&) noexcept;
  canonicalizer& operator=(canonicalizer&&) noexcept;
  ~canonicalizer();

  const canonical_options& options() const noexcept;

  // The view stays valid until the next call on this canonicalizer.
  result<std::string_view> canonicalize(std::string_view json);
  result<digest> hash(std::string_view json);
  result<page_records> hash_page(std::string_view page_body, const page_options& page = {});

 private:
  friend void detail::use_direct_walker(canonicalizer&, bool) noexcept;
  struct impl;
  explicit canonicalizer(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

// One-shot helpers over a thread-local canonicalizer. Convenient, and cheap after the first
// call per thread and option set.
result<std::string> canonicalize(std::string_view json, const canonical_options& options = {});
result<digest> hash_json(std::string_view json, const canonical_options& options = {});

}  // namespace tds
