// RESP: commands written here (the trivial part of the protocol), replies parsed by hiredis'
// redisReader with our own object functions, so they land directly in tds::detail::reply.
// Bytes in, bytes out: the socket side is transport.cpp.
#include "resp.hpp"

#include <hiredis/hiredis.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

namespace tds::detail {
namespace {

// hiredis calls these from C: nothing may throw through them. A nullptr return makes the
// reader report out-of-memory.
reply* node_for(const redisReadTask* task) noexcept {
  if (task->parent != nullptr) {
    auto* parent = static_cast<reply*>(task->parent->obj);
    return &parent->elements[static_cast<std::size_t>(task->idx)];
  }
  return new (std::nothrow) reply;
}

void free_root(reply* node, const redisReadTask* task) noexcept {
  if (task->parent == nullptr) delete node;
}

void* create_string(const redisReadTask* task, char* str, std::size_t len) noexcept {
  reply* node = node_for(task);
  if (node == nullptr) return nullptr;
  switch (task->type) {
    case REDIS_REPLY_ERROR: node->type = reply::kind::error; break;
    case REDIS_REPLY_STATUS: node->type = reply::kind::status; break;
    default: node->type = reply::kind::string; break;
  }
  try {
    // Constructed, not assigned: assign() into the empty string goes through the general
    // replace path (~100 instructions per value more, once per stored state a check reads).
    node->str = std::string(str, len);
  } catch (...) {
    free_root(node, task);
    return nullptr;
  }
  return node;
}

void* create_array(const redisReadTask* task, int elements) noexcept {
  if (static_cast<std::size_t>(elements) > max_reply_elements) {
    // Refused before anything is allocated: the header alone would make us reserve
    // elements * sizeof(reply) bytes. next() reports it as a protocol error.
    if (task->privdata != nullptr) *static_cast<long long*>(task->privdata) = elements;
    return nullptr;
  }
  reply* node = node_for(task);
  if (node == nullptr) return nullptr;
  node->type = reply::kind::array;
  try {
    // Sized once, before any child is parsed: children are written in place, and their
    // addresses stay valid because this vector never grows again.
    node->elements.resize(static_cast<std::size_t>(elements));
  } catch (...) {
    free_root(node, task);
    return nullptr;
  }
  return node;
}

void* create_integer(const redisReadTask* task, long long value) noexcept {
  reply* node = node_for(task);
  if (node == nullptr) return nullptr;
  node->type = reply::kind::integer;
  node->integer = value;
  return node;
}

void* create_nil(const redisReadTask* task) noexcept {
  reply* node = node_for(task);
  if (node == nullptr) return nullptr;
  node->type = reply::kind::nil;
  return node;
}

// hiredis only ever frees the root of a tree (children live inside their parent's vector).
void free_object(void* p) noexcept { delete static_cast<reply*>(p); }

redisReplyObjectFunctions reply_functions = {create_string, create_array, create_integer,
                                             create_nil, free_object};

bool starts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

result<void> append_command(std::string& out, std::span<const std::string_view> argv) {
  // The RESP form of a command, exactly what redisFormatCommandArgv writes (a test compares
  // the two): "*<argc>\r\n" then "$<length>\r\n<bytes>\r\n" per argument. Written here because
  // hiredis formats each length with sprintf, which showed as ~10% of a check's client time;
  // sized exactly first and then written through a pointer, because appending piece by piece
  // (a capacity check each) cost a check 170 instructions per key.
  const auto digits = [](std::size_t n) {
    std::size_t count = 1;
    for (; n >= 10; n /= 10) ++count;
    return count;
  };
  std::size_t size = 1 + digits(argv.size()) + 2;
  for (const auto arg : argv) size += 1 + digits(arg.size()) + 2 + arg.size() + 2;
  const std::size_t start = out.size();
  try {
    out.resize(start + size);
  } catch (...) {
    return {status::out_of_memory, "out of memory formatting a Redis command"};
  }
  char* at = out.data() + start;
  char* const end = at + size;
  const auto put_number = [&](char lead, std::size_t n) {
    *at++ = lead;
    at = std::to_chars(at, end, n).ptr;
    *at++ = '\r';
    *at++ = '\n';
  };
  put_number('*', argv.size());
  for (const auto arg : argv) {
    put_number('$', arg.size());
    if (!arg.empty()) std::memcpy(at, arg.data(), arg.size());
    at += arg.size();
    *at++ = '\r';
    *at++ = '\n';
  }
  return {};
}

status error_reply_status(std::string_view message) noexcept {
  if (starts_with(message, "NOPERM") || starts_with(message, "WRONGPASS") ||
      starts_with(message, "NOAUTH") || starts_with(message, "ERR AUTH") ||
      starts_with(message, "ERR invalid password") ||
      starts_with(message, "ERR Client sent AUTH")) {
    return status::auth;
  }
  return status::server_error;
}

struct reply_reader::impl {
  redisReader* reader = nullptr;
  long long refused_elements = 0;  // set by create_array when a header claims too much
  ~impl() {
    if (reader != nullptr) redisReaderFree(reader);
  }
  bool create() noexcept {
    reader = redisReaderCreateWithFunctions(&reply_functions);
    refused_elements = 0;
    if (reader != nullptr) reader->privdata = &refused_elements;
    return reader != nullptr;
  }
};

reply_reader::reply_reader() : impl_(std::make_unique<impl>()) {
  // An allocation failure here leaves reader null; feed() reports it instead of crashing.
  impl_->create();
}
reply_reader::reply_reader(reply_reader&&) noexcept = default;
reply_reader& reply_reader::operator=(reply_reader&&) noexcept = default;
reply_reader::~reply_reader() = default;

result<void> reply_reader::feed(std::string_view bytes) {
  if (impl_->reader == nullptr && !impl_->create()) {
    return {status::out_of_memory, "out of memory creating the RESP reader"};
  }
  if (redisReaderFeed(impl_->reader, bytes.data(), bytes.size()) != REDIS_OK) {
    return {status::protocol, std::string("RESP reader: ") + impl_->reader->errstr};
  }
  return {};
}

result<bool> reply_reader::next(reply& out) {
  if (impl_->reader == nullptr) return {status::out_of_memory, "no RESP reader"};
  void* obj = nullptr;
  if (redisReaderGetReply(impl_->reader, &obj) != REDIS_OK) {
    if (impl_->refused_elements != 0) {
      return {status::protocol, "invalid reply from Redis: an array claims " +
                                    std::to_string(impl_->refused_elements) +
                                    " elements, more than any command tdscache sends can return (" +
                                    std::to_string(max_reply_elements) + ")"};
    }
    const status code = impl_->reader->err == REDIS_ERR_OOM ? status::out_of_memory
                                                            : status::protocol;
    return {code, std::string("invalid reply from Redis: ") + impl_->reader->errstr};
  }
  if (obj == nullptr) return false;
  std::unique_ptr<reply> root(static_cast<reply*>(obj));
  out = std::move(*root);
  return true;
}

bool reply_reader::has_buffered() const noexcept {
  return impl_->reader != nullptr && (impl_->reader->pos < impl_->reader->len || impl_->reader->ridx >= 0);
}

void reply_reader::reset() {
  if (impl_->reader != nullptr) redisReaderFree(impl_->reader);
  impl_->reader = nullptr;
  impl_->create();
}

}  // namespace tds::detail
