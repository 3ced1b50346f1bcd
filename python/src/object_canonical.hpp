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

class object_canonicalizer {
 public:
  explicit object_canonicalizer(const canonical_options& options);

  // Appends the canonical form of obj to out. Throws native_error (bad input) or
  // error_already_set (a Python exception from str(), isoformat() or a sort).
  void write(PyObject* obj, std::string& out);

 private:
  struct member {
    std::string_view key;  // decoded (UTF-8 or WTF-8)
    PyObject* key_object;  // borrowed from the dict, or owned by key_storage
    std::size_t value_offset, value_length;
  };

  // depth_exceeded past max_depth, or when this thread's stack is nearly used up.
  void check_depth(std::size_t depth) const;
  void write_value(PyObject* obj, std::size_t depth, std::uint64_t active, std::string& out);
  void write_dict(PyObject* dict, std::size_t depth, std::uint64_t active, std::string& out);
  void write_sequence(PyObject* seq, std::size_t depth, std::uint64_t active, std::string& out);
  void write_str(PyObject* str, std::string& out);
  void write_int(PyObject* value, std::string& out);
  void write_float(PyObject* value, std::string& out);
  std::string_view key_text(PyObject* key, std::vector<PyObject*>& keep_alive);
  std::uint64_t step_pointers(std::uint64_t active, std::size_t depth, std::string_view token, bool& excluded) const;
  bool is_excluded_name(std::string_view key) const;

  canonical_options options_;
  std::vector<std::string> excluded_;
  std::vector<std::vector<std::string>> pointers_;
  std::vector<member> members_;
  std::vector<std::pair<PyObject*, PyObject*>> entries_;  // a stack shared by nested dicts
  std::string scratch_;
};

}  // namespace tds::python
