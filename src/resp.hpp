// RESP encoding and decoding: commands are built from binary-safe argv (byte-identical to
// hiredis' redisFormatCommandArgv), replies are parsed by hiredis' redisReader straight into an
// owned C++ tree.
// Internal: no hiredis type leaves this file pair; sockets live in transport.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tdscache/error.hpp"

namespace tds::detail {

// One reply, owning its bytes. Strings can be moved out (into an observed state) without a
// second copy, which is why this is not a view over hiredis' redisReply.
struct reply {
  enum class kind : std::uint8_t { nil, string, status, error, integer, array };
  kind type = kind::nil;
  long long integer = 0;
  std::string str;  // string, status and error text
  std::vector<reply> elements;

  bool is_error() const noexcept { return type == kind::error; }
  static reply make_error(std::string message) {
    reply r;
    r.type = kind::error;
    r.str = std::move(message);
    return r;
  }
};

// Appends one command to `out`. Every argument is sent with its length, so keys and values
// may hold any bytes; nothing is ever interpolated into a command string.
result<void> append_command(std::string& out, std::span<const std::string_view> argv);

// The most elements one reply array may claim. The largest reply tdscache asks for is an MGET
// of mget_chunk keys (at most 1,000,000); a header claiming more is refused as a protocol error
// before anything is allocated, so a corrupt or hostile stream cannot make the client reserve
// gigabytes for elements that never come.
inline constexpr std::size_t max_reply_elements = std::size_t{1} << 20;

// The status an error reply maps to: NOPERM/WRONGPASS/NOAUTH -> auth, anything else ->
// server_error.
status error_reply_status(std::string_view message) noexcept;

// An incremental parser: feed bytes as they arrive, take complete replies out in order.
// Not thread safe; one per connection. After a protocol error the parser is unusable and the
// connection must be dropped (the byte stream has lost its framing).
class reply_reader {
 public:
  reply_reader();
  reply_reader(reply_reader&&) noexcept;
  reply_reader& operator=(reply_reader&&) noexcept;
  ~reply_reader();

  result<void> feed(std::string_view bytes);
  // true: `out` holds the next reply; false: more bytes are needed.
  result<bool> next(reply& out);
  // Drops buffered bytes and partial replies (after the connection was closed).
  void reset();
  // Whether bytes of a further reply are waiting (after all expected replies were taken).
  bool has_buffered() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tds::detail
