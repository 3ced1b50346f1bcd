// Status codes and result<T>: how every tdscache operation reports failure, as a value.
// The numbers are pinned: they are the same as the C API's tds_status enum (capi/tdscache.h)
// and must never change once released. New codes are only ever appended.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace tds {

// Negative for failure, 0 for success (libgit2's convention), so the C layer returns them as-is.
enum class status : int {
  ok = 0,
  invalid_argument = -1,     // a caller passed something unusable (empty key set, bad option value)
  out_of_memory = -2,
  json_malformed = -3,       // not JSON: truncated, stray token, trailing content, bad escape
  utf8_invalid = -4,         // the bytes are not valid UTF-8
  depth_exceeded = -5,       // nesting deeper than the configured limit
  number_nan_inf = -6,       // NaN / Infinity tokens, which JSON does not allow
  number_out_of_range = -7,  // a number that overflows a double (1e400) or Python's int limits
  duplicate_key = -8,        // jcs only: RFC 8785 forbids duplicate member names
  lone_surrogate = -9,       // jcs only: a \uD800-style escape without its pair
  item_not_object = -10,     // a page item that is not a JSON object
  item_no_id = -11,          // a page item without a usable id field
  page_malformed = -12,      // a page without the items array
  pointer_invalid = -13,     // an exclusion that is not a valid RFC 6901 JSON Pointer
  url_invalid = -14,         // a Redis URL that does not parse
  connect_failed = -15,      // could not reach the server (refused, unresolvable, unreachable)
  timeout = -16,             // a connect or command deadline passed
  io = -17,                  // the connection broke mid-conversation
  protocol = -18,            // the server's reply is not valid RESP or not the expected shape
  tls = -19,                 // handshake, certificate or hostname verification failure
  auth = -20,                // AUTH rejected, or an ACL user lacks a permission (NOPERM)
  server_error = -21,        // Redis answered with an error reply (OOM, READONLY, ...)
  circuit_open = -22,        // Redis is skipped for a cooldown after repeated failures
  cluster = -23,             // cluster routing ran out of retries or found no node for a slot
  not_found = -24,           // a state or batch marker that does not exist
  internal = -25,            // a bug: an exception or invariant failure caught at a boundary
};

// Stable, lowercase names ("json_malformed"), the same strings as tds_status_name() in C.
std::string_view status_name(status s) noexcept;

constexpr std::size_t no_offset = static_cast<std::size_t>(-1);

// What went wrong: a code the caller can branch on, and a message a person can act on.
// offset is the byte position in the input where the problem was found, when there is one.
struct error {
  status code = status::ok;
  std::string message;
  std::size_t offset = no_offset;
};

inline tds::error make_error(status code, std::string message, std::size_t offset = no_offset) {
  return tds::error{code, std::move(message), offset};
}

// A value or an error, shaped like simdjson_result: get(out) returns the status, so callers
// can write `if (auto s = r.get(v); s != status::ok)` without exceptions anywhere.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : value_(std::move(value)) {}                  // NOLINT: implicit by design
  result(tds::error err) : err_(std::move(err)) {}                // NOLINT
  result(status code, std::string message, std::size_t offset = no_offset)
      : err_{code, std::move(message), offset} {}

  bool ok() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  status code() const noexcept { return ok() ? status::ok : err_.code; }
  const tds::error& error() const noexcept { return err_; }

  // Precondition: ok(). Calling these on an error is a programming mistake.
  T& value() & noexcept { return *value_; }
  const T& value() const& noexcept { return *value_; }
  T&& value() && noexcept { return std::move(*value_); }
  T* operator->() noexcept { return &*value_; }
  const T* operator->() const noexcept { return &*value_; }

  [[nodiscard]] status get(T& out) && {
    if (!ok()) return err_.code;
    out = std::move(*value_);
    return status::ok;
  }

 private:
  std::optional<T> value_;
  tds::error err_;
};

template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(tds::error err) : err_(std::move(err)) {}  // NOLINT
  result(status code, std::string message, std::size_t offset = no_offset)
      : err_{code, std::move(message), offset} {}

  bool ok() const noexcept { return err_.code == status::ok; }
  explicit operator bool() const noexcept { return ok(); }
  status code() const noexcept { return err_.code; }
  const tds::error& error() const noexcept { return err_; }

 private:
  tds::error err_;
};

}  // namespace tds
