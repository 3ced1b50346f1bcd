// Canonical JSON straight from Python objects (dict, list, str, int, float, bool, None,
// Decimal, datetime, anything else through str()), without json.dumps. The rules are the
// production service's: see include/tdscache/canonical.hpp. Needs the GIL throughout.
#pragma once

#include <Python.h>

#include <array>
#include <cstdint>
#include <memory>
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
  // A dict's member names seen before: their sorted order and their canonical text, so a dict
  // of a known shape is written without sorting or escaping its names again. Only dicts whose
  // names are all ASCII are kept. A shape is found by a hash of the key objects' addresses and
  // then checked name by name against the text it holds, so an address reused by another str
  // can only cost a miss; no Python object is referenced.
  struct dict_shape {
    struct member {          // in sorted order
      std::uint32_t index;   // the member's position in the dict's own order
      std::uint32_t offset;  // its name written out ("name": or "name":) in `rendered`
      std::uint32_t length;
      bool excluded;         // a top-level name the options leave out
    };
    std::uint64_t hash = 0;
    bool top = false;
    std::vector<member> members;
    std::vector<std::uint32_t> name_ends;  // the names in the dict's own order, end offsets in `names`
    std::string names;
    std::string rendered;
  };
  struct shape_cache {
    static constexpr std::size_t slots = 64;
    std::uint64_t owner = 0;  // the serial of the canonicalizer the shapes were made by
    std::uint64_t last_used = 0;
    // Shared: a nested dict may replace a slot while the dict that found it is being written.
    std::array<std::shared_ptr<const dict_shape>, slots> shapes;
    std::array<std::uint64_t, slots> missed{};  // the hash last missed: a shape is built when seen twice
  };
  struct workspace {
    std::vector<entry> entries;  // a stack shared by nested dicts
    std::vector<PyObject*> owned;
    std::vector<PyObject*> dict_order;  // a dict's keys in its own order while its shape is built
    // One cache per canonicalizer recently used on this thread (names render by its options), so
    // a few hashers taking turns keep their shapes; `shapes` is the current walk's.
    std::array<shape_cache, 4> shape_banks;
    std::uint64_t walks = 0;
    shape_cache* shapes = nullptr;
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
  struct key_summary {
    std::uint64_t hash = 0;  // of the key objects' addresses, in the dict's order
    bool ascii = true;       // every name is ASCII
  };
  bool collect_str_keys(workspace& ws, PyObject* dict, key_summary& summary) const;
  std::shared_ptr<const dict_shape> find_shape(workspace& ws, std::uint64_t hash, const entry* first,
                                               std::size_t n) const;
  void keep_shape(workspace& ws, std::uint64_t hash, bool top, const entry* sorted, std::size_t n,
                  const std::vector<PyObject*>& dict_order) const;
  void write_member_value(workspace& ws, PyObject* v, std::size_t depth, bool top, std::uint64_t next,
                          std::string& out) const;
  void collect_other_keys(workspace& ws, PyObject* dict) const;
  std::uint64_t step_pointers(std::uint64_t active, std::size_t depth, std::string_view token, bool& excluded) const;
  bool is_excluded_name(std::string_view key) const;

  canonical_options options_;
  std::uint64_t serial_;  // tells this instance's shapes apart from another's in a thread's cache
  std::vector<std::string> excluded_;
  std::uint64_t excluded_lengths_ = 0;  // bit n: some excluded name has n bytes (n < 64)
  std::vector<std::vector<std::string>> pointers_;
};

}  // namespace tds::python
