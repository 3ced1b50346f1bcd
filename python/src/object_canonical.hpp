// Canonical JSON straight from Python objects (dict, list, str, int, float, bool, None,
// Decimal, datetime, anything else through str()), without json.dumps. The rules are the
// production service's: see include/tdscache/canonical.hpp. Needs the GIL throughout.
#pragma once

#include <Python.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tdscache/canonical.hpp"
#include "tdscache/error.hpp"

namespace tds::python {

// Thrown inside the module and translated into tdscache.Error subclasses at the boundary.
struct native_error {
  tds::error err;
};

[[noreturn]] void raise(status code, std::string message);
[[noreturn]] void raise(const tds::error& err);

// Immutable after construction; write() keeps its working stacks per thread (and per nested
// call), so Python threads may share one instance even when str() of a value runs Python code
// that lets another thread in.
class object_canonicalizer {
 public:
  explicit object_canonicalizer(const canonical_options& options);

  // Appends the canonical form of obj to out. Throws native_error (bad input) or
  // error_already_set (a Python exception from str(), isoformat() or a sort).
  void write(PyObject* obj, std::string& out) const;

  hash_scheme scheme() const { return options_.scheme; }

  // The working stacks of one write(): dict entries being sorted, and new references to drop.
  struct entry {
    // Both held as new references while the dict is written (released by write_dict's unwind):
    // a member's str() may run Python code that mutates this dict, and a borrowed key or value
    // could then be freed under the walk.
    PyObject* key;
    PyObject* value;
    const char* name; // the key decoded (UTF-8, or WTF-8 for lone surrogates)
    std::size_t name_length;
  };
  struct workspace {
    std::vector<entry> entries;  // a stack shared by nested dicts
    std::vector<PyObject*> owned;
    bool busy = false;
  };

 private:
  // depth_exceeded past max_depth, or when this thread's stack is nearly used up.
  void check_depth(std::size_t depth) const;
  void write_value(workspace& ws, PyObject* obj, std::size_t depth, std::uint64_t active, std::string& out) const;
  void write_dict(workspace& ws, PyObject* dict, std::size_t depth, std::uint64_t active, std::string& out) const;
  void write_sequence(workspace& ws, PyObject* seq, std::size_t depth, std::uint64_t active, std::string& out) const;
  void write_str(PyObject* str, std::string& out) const;
  void write_int(PyObject* value, std::string& out) const;
  void write_float(PyObject* value, std::string& out) const;
  bool collect_str_keys(workspace& ws, PyObject* dict) const;
  void collect_other_keys(workspace& ws, PyObject* dict) const;
  std::uint64_t step_pointers(std::uint64_t active, std::size_t depth, std::string_view token, bool& excluded) const;
  bool is_excluded_name(std::string_view key) const;

  canonical_options options_;
  std::vector<std::string> excluded_;
  std::uint64_t excluded_lengths_ = 0;  // bit n: some excluded name has n bytes (n < 64)
  std::vector<std::vector<std::string>> pointers_;
};

}  // namespace tds::python
