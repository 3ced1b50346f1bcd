// The C ABI's boundary rules, shared by the capi/*.cpp files: the thread-local last error,
// catching every exception at the edge, and checking (pointer, length) and versioned-struct
// arguments. Internal: never installed. The entry points themselves live in capi/*.cpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "tdscache.h"
#include "tdscache/canonical.hpp"
#include "tdscache/error.hpp"

namespace tds::capi {

// Records the failure for tds_last_error() on this thread and returns its code as an int.
// Never throws: if even the message cannot be stored, a fixed one stands in.
int fail(status code, std::string_view message, std::size_t offset = no_offset) noexcept;
int fail(const error& e) noexcept;

// Adds to the message of the failure just recorded.
void append_to_last_error(std::string_view text) noexcept;

// Call from inside a catch block: maps the exception in flight to a status and records it.
int fail_current_exception() noexcept;

// Runs body (which returns a status int) so that no exception crosses into C.
template <class Body>
int guarded(Body&& body) noexcept {
  try {
    return body();
  } catch (...) {
    return fail_current_exception();
  }
}

// A NULL handle or out-parameter: the message names the argument and the function.
int fail_null(const char* function, const char* argument) noexcept;

// (pointer, length) text. NULL with length 0 is the empty string; NULL with a length is a
// caller's bug. Returns false after recording the failure.
bool read_text(std::string_view& out, const char* data, std::size_t length, const char* function,
               const char* argument) noexcept;

// A versioned struct's version must be one this library knows (1 to current). Returns false
// after recording the failure.
bool check_version(unsigned version, unsigned current, const char* type_name) noexcept;

// The scheme numbers the C enum allows. Returns false after recording the failure.
bool read_scheme(hash_scheme& out, int scheme, const char* function) noexcept;

inline const char* c_str_or_null(const std::optional<std::string>& s, std::size_t* len) noexcept {
  if (!s) {
    if (len) *len = 0;
    return nullptr;
  }
  if (len) *len = s->size();
  return s->c_str();
}

inline const char* c_str(const std::string& s, std::size_t* len) noexcept {
  if (len) *len = s.size();
  return s.c_str();
}

inline int as_int(status s) noexcept { return static_cast<int>(s); }

// The history of a versioned struct: its size at versions 1, 2, ... A caller built against an
// older header hands over a smaller struct, so the library writes only that many bytes, and
// reads only the fields that version had. Growing a struct means appending its new size.
template <std::size_t N>
struct struct_history {
  const char* name;
  std::array<std::size_t, N> sizes;
  constexpr unsigned current() const noexcept { return static_cast<unsigned>(N); }
};

// Copies value (stamped with version) into the caller's struct, as much of it as that
// version had. The version must have been checked.
template <class Versioned, std::size_t N>
void write_versioned(Versioned* out, Versioned value, unsigned version,
                     const struct_history<N>& history) noexcept {
  value.version = version;
  std::memcpy(static_cast<void*>(out), &value, history.sizes[version - 1]);
}

// The body of every *_init: check the version the caller knows, then set the defaults (the
// struct's _INIT macro).
template <class Versioned, std::size_t N>
int init_versioned(Versioned* opts, unsigned version, const struct_history<N>& history,
                   const Versioned& defaults, const char* function) noexcept {
  if (opts == nullptr) return fail_null(function, "opts");
  if (!check_version(version, history.current(), history.name)) return as_int(status::invalid_argument);
  write_versioned(opts, defaults, version, history);
  return 0;
}

}  // namespace tds::capi
