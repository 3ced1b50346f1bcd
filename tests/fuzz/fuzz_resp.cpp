// Fuzz target: the transport's RESP reply reader (src/resp.*: hiredis' redisReader building
// tds::detail::reply trees) on arbitrary server bytes. The same bytes must give the same
// replies and the same verdict whether they arrive at once or in small chunks, a protocol
// error must be a clean value, and a reset reader must work again.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "resp.hpp"

namespace {

using tds::detail::reply;

// A reply tree as text, so two trees compare with ==.
void describe(const reply& r, std::string& out) {
  out.push_back(static_cast<char>('0' + static_cast<int>(r.type)));
  switch (r.type) {
    case reply::kind::integer: out.append(std::to_string(r.integer)); break;
    case reply::kind::array:
      out.append(std::to_string(r.elements.size())).push_back('[');
      for (const reply& e : r.elements) describe(e, out);
      out.push_back(']');
      break;
    case reply::kind::nil: break;
    default: out.append(std::to_string(r.str.size())).push_back(':'); out.append(r.str); break;
  }
}

struct outcome {
  std::vector<std::string> replies;
  tds::status verdict = tds::status::ok;  // ok: ran out of bytes cleanly
};

// Feeds `bytes` in pieces of `chunk` bytes, taking out every complete reply after each piece.
outcome read_all(std::string_view bytes, std::size_t chunk) {
  tds::detail::reply_reader reader;
  outcome o;
  for (std::size_t at = 0; at < bytes.size(); at += chunk) {
    auto fed = reader.feed(bytes.substr(at, chunk));
    if (!fed.ok()) {
      tds::fuzz::check_error(fed.error(), bytes.size());
      o.verdict = fed.code();
      return o;
    }
    for (;;) {
      reply r;
      auto got = reader.next(r);
      if (!got.ok()) {
        tds::fuzz::check_error(got.error(), bytes.size());
        o.verdict = got.code();
        return o;
      }
      if (!got.value()) break;
      describe(r, o.replies.emplace_back());
    }
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks the chunk size, so chunk boundaries land everywhere.
  const std::size_t chunk = 1 + data[0] % 16;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

  const outcome whole = read_all(bytes, bytes.size() + 1);
  const outcome pieces = read_all(bytes, chunk);
  TDS_FUZZ_CHECK(whole.verdict == pieces.verdict);
  TDS_FUZZ_CHECK(whole.replies == pieces.replies);
  TDS_FUZZ_CHECK(whole.verdict == tds::status::ok || whole.verdict == tds::status::protocol ||
                 whole.verdict == tds::status::out_of_memory);

  // After a protocol error the connection is dropped and the reader reset: it must then read
  // a fresh stream as if new.
  tds::detail::reply_reader reader;
  (void)reader.feed(bytes);
  for (int i = 0; i < 64; ++i) {
    reply r;
    auto got = reader.next(r);
    if (!got.ok() || !got.value()) break;
  }
  reader.reset();
  TDS_FUZZ_CHECK(reader.feed("+OK\r\n").ok());
  reply r;
  auto got = reader.next(r);
  TDS_FUZZ_CHECK(got.ok() && got.value() && r.type == reply::kind::status && r.str == "OK");
  TDS_FUZZ_CHECK(!reader.has_buffered());
  return 0;
}
