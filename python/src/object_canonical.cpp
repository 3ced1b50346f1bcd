// Python objects -> canonical bytes, following the same rules as the JSON-bytes walker in
// src/canonical.cpp and CPython's json encoder (sort_keys=True, default=str). Uses the CPython
// API directly: iterating dicts and reading str data this way is several times faster than
// going through pybind11 handles, and this is the hot path of the dict-based API.
// Hot spots, measured on the 1,312-product sample: string escaping (strings are copied from
// PyUnicode's own storage, never re-encoded) and key sorting (views, no new Python objects).
// Entities of one API share their dicts' shapes, so each thread keeps recent shapes (sorted
// order and escaped names, checked name by name on use): 21% fewer instructions per entity.
#include "object_canonical.hpp"

#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstring>

#include "tdscache/detail/json_text.hpp"
#include "tdscache/detail/stack_depth.hpp"

namespace tds::python {

void raise(status code, std::string message) { throw native_error{make_error(code, std::move(message))}; }
void raise(const tds::error& err) { throw native_error{err}; }

namespace {

constexpr std::size_t python_int_max_digits = 4300;  // sys.get_int_max_str_digits() default
constexpr std::size_t insertion_sort_limit = 32;     // dicts of API entities have 10-60 keys
constexpr std::size_t max_shape_members = 64;        // larger dicts are rare; they are not cached

std::atomic<std::uint64_t> next_serial{1};

// The shape hash: the key objects' addresses in the dict's order, then the count and whether
// the dict is the entity itself (whose names may be excluded).
constexpr std::uint64_t hash_multiplier = 0x9E3779B97F4A7C15ULL;
inline std::uint64_t mix_key(std::uint64_t h, const PyObject* key) {
  return (h ^ reinterpret_cast<std::uintptr_t>(key)) * hash_multiplier;
}
inline std::uint64_t finish_hash(std::uint64_t h, std::size_t n, bool top) {
  h = (h ^ (static_cast<std::uint64_t>(n) << 1 | (top ? 1 : 0))) * hash_multiplier;
  return h ^ (h >> 31);
}
inline std::size_t slot_of(std::uint64_t hash) {
  return static_cast<std::size_t>(hash % object_canonicalizer::shape_cache::slots);
}

// Equal bytes, for member names (mostly under 24 bytes): overlapping word loads that stay
// inside both ranges, no call. (Python's str data has no padding to read past, unlike the direct
// walker's same_bytes.) std::memcmp here cost 1.7% more instructions per entity (callgrind).
inline bool same_bytes(const char* a, const char* b, std::size_t n) {
  if (n >= 8) {
    std::uint64_t x, y;
    for (std::size_t i = 0; i + 8 < n; i += 8) {
      std::memcpy(&x, a + i, 8);
      std::memcpy(&y, b + i, 8);
      if (x != y) return false;
    }
    std::memcpy(&x, a + n - 8, 8);
    std::memcpy(&y, b + n - 8, 8);
    return x == y;
  }
  if (n >= 4) {
    std::uint32_t x, y, u, v;
    std::memcpy(&x, a, 4);
    std::memcpy(&y, b, 4);
    std::memcpy(&u, a + n - 4, 4);
    std::memcpy(&v, b + n - 4, 4);
    return x == y && u == v;
  }
  for (std::size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

struct py_ref {
  PyObject* p;
  explicit py_ref(PyObject* o) : p(o) {}
  ~py_ref() { Py_XDECREF(p); }
  py_ref(const py_ref&) = delete;
  py_ref& operator=(const py_ref&) = delete;
};

// A Python exception is set: let pybind11 carry it out unchanged.
[[noreturn]] void python_error() { throw pybind11::error_already_set(); }

// The classes the legacy normalization treats specially, looked up once.
struct special_types {
  PyObject* decimal = nullptr;
  PyObject* datetime = nullptr;
};

const special_types& specials() {
  static special_types t = [] {
    special_types s;
    if (PyObject* m = PyImport_ImportModule("decimal")) {
      s.decimal = PyObject_GetAttrString(m, "Decimal");
      Py_DECREF(m);
    }
    if (PyObject* m = PyImport_ImportModule("datetime")) {
      s.datetime = PyObject_GetAttrString(m, "datetime");
      Py_DECREF(m);
    }
    PyErr_Clear();
    return s;
  }();
  return t;
}

bool is_instance(PyObject* obj, PyObject* type) {
  if (!type) return false;
  int r = PyObject_IsInstance(obj, type);
  if (r < 0) python_error();
  return r == 1;
}

// ---- string escaping into a pre-grown buffer ---------------------------------------------
// A string is written by growing `out` by its worst case (6 bytes a code unit, 12 for an
// astral code point as a surrogate pair), writing through a pointer and trimming the rest:
// one size check per string instead of one per character.

char* grow(std::string& out, std::size_t n) {
  const std::size_t old = out.size();
  out.resize(old + n);
  return out.data() + old;
}

void trim(std::string& out, const char* end) { out.resize(static_cast<std::size_t>(end - out.data())); }

// The escape writers are json_text.hpp's, shared with both JSON-bytes walkers.
using detail::put_ascii;
using detail::put_u_escape;
using detail::put_utf8;

// legacy: json.dumps(ensure_ascii=True): ' '..'~' stays, everything else is \uXXXX (DEL and
// lone surrogates included), astral code points as surrogate pairs.
// jcs: only '"', '\\' and controls are escaped; lone surrogates were refused before this.
template <class Unit>
char* put_units(char* p, const Unit* units, std::size_t n, bool legacy) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t c = units[i];
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      *p++ = static_cast<char>(c);
    } else if (c < 0x7F) {
      p = put_ascii(p, c, legacy);
    } else if (!legacy) {
      if (c == 0x7F) *p++ = static_cast<char>(c);
      else p = put_utf8(p, c);
    } else if (c < 0x10000) {
      p = put_u_escape(p, c);
    } else {
      const std::uint32_t v = c - 0x10000;
      p = put_u_escape(p, 0xD800 | (v >> 10));
      p = put_u_escape(p, 0xDC00 | (v & 0x3FF));
    }
  }
  return p;
}

// How many leading bytes of an ASCII string need no escaping. Eight bytes at a time: the
// classic "has a byte below n / equal to c" word tests, exact for bytes below 0x80 (which an
// ASCII str holds); the byte loop then finds the exact position inside a flagged word.
std::size_t plain_ascii_prefix(const char* s, std::size_t n, bool legacy) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  auto has_byte = [](std::uint64_t x, std::uint64_t c) {
    const std::uint64_t y = x ^ (ones * c);
    return (y - ones) & ~y & highs;
  };
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t x;
    std::memcpy(&x, s + i, 8);
    std::uint64_t hit = ((x - ones * 0x20) & ~x & highs) | has_byte(x, '"') | has_byte(x, '\\');
    if (legacy) hit |= has_byte(x, 0x7F);
    if (hit) break;
  }
  for (; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == '"' || c == '\\' || (legacy && c == 0x7F)) break;
  }
  return i;
}

// Python's sorted() on str keys: code point order, which is the byte order of UTF-8/WTF-8.
bool legacy_name_less(const object_canonicalizer::entry& a, const object_canonicalizer::entry& b) {
  const std::size_t n = a.name_length < b.name_length ? a.name_length : b.name_length;
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(a.name[i]), y = static_cast<unsigned char>(b.name[i]);
    if (x != y) return x < y;
  }
  return a.name_length < b.name_length;
}

template <class Less>
void sort_entries(object_canonicalizer::entry* first, object_canonicalizer::entry* last, Less less) {
  if (static_cast<std::size_t>(last - first) > insertion_sort_limit) {
    std::sort(first, last, less);
    return;
  }
  for (auto* i = first + 1; i < last; ++i) {
    const object_canonicalizer::entry e = *i;
    auto* j = i;
    for (; j > first && less(e, j[-1]); --j) *j = j[-1];
    *j = e;
  }
}

}  // namespace

object_canonicalizer::object_canonicalizer(const canonical_options& options)
    : options_(options), serial_(next_serial.fetch_add(1, std::memory_order_relaxed)) {
  if (options.exclude_fields) excluded_ = *options.exclude_fields;
  else if (options.scheme == hash_scheme::legacy) excluded_ = legacy_excluded_fields();
  for (const auto& text : options.exclude_pointers) {
    // Validated by canonicalizer::create before we get here; parse the same way.
    std::vector<std::string> tokens;
    std::string token;
    for (std::size_t i = 1; i <= text.size(); ++i) {
      if (i == text.size() || text[i] == '/') {
        tokens.push_back(std::move(token));
        token.clear();
      } else if (text[i] == '~' && i + 1 < text.size()) {
        token.push_back(text[++i] == '0' ? '~' : '/');
      } else {
        token.push_back(text[i]);
      }
    }
    if (tokens.size() == 1) excluded_.push_back(tokens[0]);
    else pointers_.push_back(std::move(tokens));
  }
  for (const auto& name : excluded_)
    excluded_lengths_ |= name.size() < 64 ? std::uint64_t{1} << name.size() : std::uint64_t{1} << 63;
}

bool object_canonicalizer::is_excluded_name(std::string_view key) const {
  // Most top-level keys have no excluded name of their length: one bit test instead of a scan.
  const std::uint64_t bit = key.size() < 64 ? std::uint64_t{1} << key.size() : std::uint64_t{1} << 63;
  if (!(excluded_lengths_ & bit)) return false;
  for (const auto& name : excluded_)
    if (name == key) return true;
  return false;
}

std::uint64_t object_canonicalizer::step_pointers(std::uint64_t active, std::size_t depth,
                                                  std::string_view token, bool& excluded) const {
  std::uint64_t next = 0;
  for (std::size_t i = 0; active >> i; ++i) {
    if (!((active >> i) & 1)) continue;
    const auto& p = pointers_[i];
    if (depth < p.size() && p[depth] == token) {
      if (depth + 1 == p.size()) excluded = true;
      else next |= std::uint64_t{1} << i;
    }
  }
  return next;
}

void object_canonicalizer::write(PyObject* obj, std::string& out) const {
  // One workspace per thread keeps its capacity across calls. A nested call on the same thread
  // (a __str__ that hashes) gets a fresh one rather than clobbering the outer walk's stacks.
  thread_local workspace shared;
  std::unique_ptr<workspace> nested;  // a workspace with its shape banks is several KB
  if (shared.busy) nested = std::make_unique<workspace>();
  workspace& ws = nested ? *nested : shared;
  struct release {
    workspace& ws;
    ~release() { ws.busy = false; }
  } guard{ws};
  ws.busy = true;
  shape_cache* bank = &ws.shape_banks[0];
  for (auto& b : ws.shape_banks) {
    if (b.owner == serial_) {
      bank = &b;
      break;
    }
    if (b.last_used < bank->last_used) bank = &b;
  }
  if (bank->owner != serial_) {  // the least recently used bank, emptied for this canonicalizer
    bank->shapes.fill(nullptr);
    bank->missed.fill(0);
    bank->owner = serial_;
  }
  bank->last_used = ++ws.walks;
  ws.shapes = bank;
  const std::uint64_t all = pointers_.empty() ? 0 : (std::uint64_t{1} << pointers_.size()) - 1;
  write_value(ws, obj, 0, all, out);
}

void object_canonicalizer::check_depth(std::size_t depth) const {
  if (depth > options_.max_depth)
    raise(status::depth_exceeded, "nesting deeper than max_depth (" + std::to_string(options_.max_depth) +
                                      "), or a circular reference");
  // max_depth cannot protect a thread with a small stack (threading.stack_size, musl's default).
  if (detail::below_stack_floor(detail::thread_stack_floor()))
    raise(status::depth_exceeded,
          "nesting of " + std::to_string(depth) + " levels is deeper than this thread's stack allows");
}

void object_canonicalizer::write_value(workspace& ws, PyObject* obj, std::size_t depth, std::uint64_t active,
                                       std::string& out) const {
  // Exact types first (the common case, one pointer compare each), then json's own order of
  // checks, which decides for subclasses: bool before int, str/int/float before list/dict.
  PyTypeObject* type = Py_TYPE(obj);
  if (type == &PyUnicode_Type) {
    write_str(obj, out);
  } else if (type == &PyLong_Type) {
    write_int(obj, out);
  } else if (obj == Py_None) {
    out.append(std::string_view("null"));
  } else if (obj == Py_True) {
    out.append(std::string_view("true"));
  } else if (obj == Py_False) {
    out.append(std::string_view("false"));
  } else if (PyUnicode_Check(obj)) {
    write_str(obj, out);
  } else if (PyLong_Check(obj)) {
    write_int(obj, out);
  } else if (PyFloat_Check(obj)) {
    write_float(obj, out);
  } else if (PyList_Check(obj) || PyTuple_Check(obj)) {
    write_sequence(ws, obj, depth + 1, active, out);
  } else if (PyDict_Check(obj)) {
    write_dict(ws, obj, depth + 1, active, out);
  } else {
    // json.dumps(default=str): the str() of anything else, encoded as a string.
    py_ref text(PyObject_Str(obj));
    if (!text.p) python_error();
    write_str(text.p, out);
  }
}

void object_canonicalizer::write_str(PyObject* str, std::string& out) const {
  const bool legacy = options_.scheme == hash_scheme::legacy;
  const auto n = static_cast<std::size_t>(PyUnicode_GET_LENGTH(str));
  const int kind = PyUnicode_KIND(str);
  const void* data = PyUnicode_DATA(str);
  std::size_t plain = 0;
  if (PyUnicode_IS_ASCII(str)) {
    plain = plain_ascii_prefix(static_cast<const char*>(data), n, legacy);
    if (plain == n) {
      char* p = grow(out, n + 2);
      p[0] = '"';
      std::memcpy(p + 1, data, n);
      p[n + 1] = '"';
      return;
    }
  } else if (!legacy && kind != PyUnicode_1BYTE_KIND) {
    // A Python str may hold lone surrogates, which have no UTF-8 form.
    for (std::size_t i = 0; i < n; ++i) {
      const Py_UCS4 cp = PyUnicode_READ(kind, data, i);
      if (cp >= 0xD800 && cp <= 0xDFFF)
        raise(status::lone_surrogate, "string holds a lone surrogate (RFC 8785 requires valid Unicode)");
    }
  }
  char* p = grow(out, (kind == PyUnicode_4BYTE_KIND ? 12 : 6) * n + 2);
  *p++ = '"';
  switch (kind) {
    case PyUnicode_1BYTE_KIND: {
      const auto* units = static_cast<const Py_UCS1*>(data);
      std::memcpy(p, units, plain);
      p = put_units(p + plain, units + plain, n - plain, legacy);
      break;
    }
    case PyUnicode_2BYTE_KIND: p = put_units(p, static_cast<const Py_UCS2*>(data), n, legacy); break;
    default: p = put_units(p, static_cast<const Py_UCS4*>(data), n, legacy); break;
  }
  *p++ = '"';
  trim(out, p);
}

void object_canonicalizer::write_int(PyObject* value, std::string& out) const {
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
  if (v == -1 && PyErr_Occurred()) python_error();
  const bool jcs = options_.scheme == hash_scheme::jcs;
  if (!overflow) {
    constexpr long long exact = 9007199254740991LL;  // 2^53 - 1
    if (jcs && options_.strict && (v > exact || v < -exact)) {
      detail::append_es_number(out, static_cast<double>(v));
      return;
    }
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
    return;
  }
  if (jcs && options_.strict) {
    const double d = PyLong_AsDouble(value);
    if (d == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      raise(status::number_out_of_range, "integer overflows a double");
    }
    detail::append_es_number(out, d);
    return;
  }
  // int.__repr__, which json uses for int subclasses too (IntEnum prints its value).
  py_ref text(PyLong_Type.tp_repr(value));
  if (!text.p) {
    if (PyErr_ExceptionMatches(PyExc_ValueError)) {
      PyErr_Clear();
      raise(status::number_out_of_range, "integer has more than 4300 digits (Python's int limit)");
    }
    python_error();
  }
  Py_ssize_t len = 0;
  const char* digits = PyUnicode_AsUTF8AndSize(text.p, &len);
  if (!digits) python_error();
  if (static_cast<std::size_t>(len) > python_int_max_digits + 1)
    raise(status::number_out_of_range, "integer has more than 4300 digits (Python's int limit)");
  out.append(digits, static_cast<std::size_t>(len));
}

void object_canonicalizer::write_float(PyObject* value, std::string& out) const {
  const double d = PyFloat_AS_DOUBLE(value);
  if (!std::isfinite(d))
    raise(status::number_nan_inf, "NaN and Infinity have no JSON form (json.dumps would write NaN/Infinity)");
  if (options_.scheme == hash_scheme::legacy) detail::append_python_float(out, d);
  else detail::append_es_number(out, d);
}

void object_canonicalizer::write_sequence(workspace& ws, PyObject* seq, std::size_t depth, std::uint64_t active,
                                          std::string& out) const {
  check_depth(depth);
  const bool legacy = options_.scheme == hash_scheme::legacy;
  out.push_back('[');
  bool first = true;
  char index_text[24];
  // The size is read again and each item held while it is written: an item's str() may run
  // Python code that shrinks this list, and a cached size or item pointer would then dangle.
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); ++i) {
    std::uint64_t next = 0;
    bool excluded = false;
    if (active) {
      auto r = std::to_chars(index_text, index_text + sizeof index_text, i);
      next = step_pointers(active, depth - 1, std::string_view(index_text, static_cast<std::size_t>(r.ptr - index_text)), excluded);
    }
    if (excluded) continue;
    if (!first) out.append(legacy ? std::string_view(", ") : std::string_view(","));
    first = false;
    PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
    Py_INCREF(item);
    py_ref held(item);
    write_value(ws, item, depth, next, out);
  }
  out.push_back(']');
}

namespace {

// The key's text as the sort sees it: an ASCII str's own storage, else UTF-8 (cached by
// CPython in the str), else WTF-8 for lone surrogates (code point order, like Python's sort),
// kept alive in `owned`. False for a lone surrogate when the scheme refuses them.
bool decode_name(PyObject* key, bool allow_surrogates, std::vector<PyObject*>& owned,
                 object_canonicalizer::entry& e) {
  if (PyUnicode_IS_ASCII(key)) {
    e.name = static_cast<const char*>(PyUnicode_DATA(key));
    e.name_length = static_cast<std::size_t>(PyUnicode_GET_LENGTH(key));
    return true;
  }
  Py_ssize_t len = 0;
  if (const char* utf8 = PyUnicode_AsUTF8AndSize(key, &len)) {
    e.name = utf8;
    e.name_length = static_cast<std::size_t>(len);
    return true;
  }
  PyErr_Clear();
  e.name = "";
  e.name_length = 0;
  if (!allow_surrogates) return false;
  PyObject* bytes = PyUnicode_AsEncodedString(key, "utf-8", "surrogatepass");
  if (!bytes) python_error();
  owned.push_back(bytes);
  e.name = PyBytes_AS_STRING(bytes);
  e.name_length = static_cast<std::size_t>(PyBytes_GET_SIZE(bytes));
  return true;
}

}  // namespace

// Drops the entries above `mark` and the references they hold.
static void release_entries(object_canonicalizer::workspace& ws, std::size_t mark) {
  for (std::size_t i = mark; i < ws.entries.size(); ++i) {
    Py_XDECREF(ws.entries[i].key);
    Py_XDECREF(ws.entries[i].value);
  }
  ws.entries.resize(mark);
}

// Pushes (key, value, name) for every member; false (nothing kept) at the first non-str key.
bool object_canonicalizer::collect_str_keys(workspace& ws, PyObject* dict, key_summary& summary) const {
  const bool jcs = options_.scheme == hash_scheme::jcs;
  const std::size_t mark = ws.entries.size();
  // Sized once and filled by index: push_back per member showed up in profiles, out of line.
  ws.entries.resize(mark + static_cast<std::size_t>(PyDict_GET_SIZE(dict)));
  std::size_t filled = mark;
  bool bad_name = false;
  PyObject* key;
  PyObject* value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(dict, &pos, &key, &value)) {
    if (!PyUnicode_Check(key)) {
      release_entries(ws, mark);
      return false;
    }
    entry& e = ws.entries[filled++];
    Py_INCREF(key);
    Py_INCREF(value);
    e = entry{key, value, nullptr, 0};
    summary.hash = mix_key(summary.hash, key);
    summary.ascii = summary.ascii && PyUnicode_IS_ASCII(key);
    if (!decode_name(key, !jcs, ws.owned, e)) bad_name = true;
  }
  ws.entries.resize(filled);
  // Raised after the scan, so a dict that also has a non-str key reports that first.
  if (bad_name) raise(status::lone_surrogate, "member name holds a lone surrogate (RFC 8785 requires valid Unicode)");
  return true;
}

// json.dumps accepts str, int, float, bool and None keys, sorting the original keys (so mixed
// types raise TypeError) and printing the others as JSON text. Entries come out in that order.
void object_canonicalizer::collect_other_keys(workspace& ws, PyObject* dict) const {
  py_ref keys(PyDict_Keys(dict));
  if (!keys.p || PyList_Sort(keys.p) < 0) python_error();
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys.p); ++i) {
    PyObject* k = PyList_GET_ITEM(keys.p, i);
    PyObject* text;
    if (PyUnicode_Check(k)) {
      Py_INCREF(k);
      text = k;
    } else if (k == Py_True || k == Py_False || k == Py_None) {
      text = PyUnicode_FromString(k == Py_True ? "true" : k == Py_False ? "false" : "null");
    } else if (PyLong_Check(k)) {
      text = PyLong_Type.tp_repr(k);
    } else if (PyFloat_Check(k)) {
      std::string s;
      write_float(k, s);
      text = PyUnicode_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size()));
    } else {
      PyErr_Format(PyExc_TypeError, "keys must be str, int, float, bool or None, not %.100s", Py_TYPE(k)->tp_name);
      python_error();
    }
    if (!text) python_error();
    PyObject* value = PyDict_GetItem(dict, k);
    if (!value) {  // gone already: a key's __lt__ ran Python code that changed this dict
      Py_DECREF(text);
      PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during hashing");
      python_error();
    }
    Py_INCREF(value);
    entry e{text, value, nullptr, 0};
    ws.entries.push_back(e);
    decode_name(text, true, ws.owned, ws.entries.back());
  }
}

std::shared_ptr<const object_canonicalizer::dict_shape> object_canonicalizer::find_shape(
    workspace& ws, std::uint64_t hash, const entry* first, std::size_t n) const {
  const auto& shape = ws.shapes->shapes[slot_of(hash)];
  if (!shape || shape->hash != hash || shape->name_ends.size() != n) return nullptr;
  // The addresses only found the slot: the names themselves must match, in the same order.
  std::uint32_t start = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const std::uint32_t end = shape->name_ends[j];
    if (first[j].name_length != end - start || !same_bytes(first[j].name, shape->names.data() + start, end - start))
      return nullptr;
    start = end;
  }
  return shape;
}

void object_canonicalizer::keep_shape(workspace& ws, std::uint64_t hash, bool top, const entry* sorted,
                                      std::size_t n, const std::vector<PyObject*>& dict_order) const {
  const bool legacy = options_.scheme == hash_scheme::legacy;
  const std::string_view separator = legacy ? std::string_view(", ") : std::string_view(",");
  auto shape = std::make_shared<dict_shape>();
  shape->hash = hash;
  shape->top = top;
  for (PyObject* key : dict_order) {
    shape->names.append(static_cast<const char*>(PyUnicode_DATA(key)), static_cast<std::size_t>(PyUnicode_GET_LENGTH(key)));
    shape->name_ends.push_back(static_cast<std::uint32_t>(shape->names.size()));
  }
  for (std::size_t k = 0; k < n; ++k) {
    const entry& e = sorted[k];
    const auto index = static_cast<std::uint32_t>(std::find(dict_order.begin(), dict_order.end(), e.key) - dict_order.begin());
    // The separator comes first; the first member written skips it.
    const auto offset = static_cast<std::uint32_t>(shape->rendered.size());
    shape->rendered.append(separator);
    write_str(e.key, shape->rendered);
    shape->rendered.append(legacy ? std::string_view(": ") : std::string_view(":"));
    const bool excluded = top && is_excluded_name(std::string_view(e.name, e.name_length));
    shape->members.push_back({index, offset, static_cast<std::uint32_t>(shape->rendered.size() - offset), excluded});
  }
  ws.shapes->shapes[slot_of(hash)] = std::move(shape);
}

void object_canonicalizer::write_member_value(workspace& ws, PyObject* v, std::size_t depth, bool top,
                                              std::uint64_t next, std::string& out) const {
  // Decimal and datetime are neither str, int, float, list nor dict: test only those others.
  const bool plain_json = PyUnicode_Check(v) || PyLong_Check(v) || PyFloat_Check(v) || PyDict_Check(v) ||
                          PyList_Check(v) || v == Py_None;
  if (top && !plain_json) {
    const auto& sp = specials();
    if (is_instance(v, sp.decimal)) {
      py_ref text(PyObject_Str(v));  // the production service stores str(Decimal)
      if (!text.p) python_error();
      write_str(text.p, out);
      return;
    }
    if (is_instance(v, sp.datetime)) {
      py_ref text(PyObject_CallMethod(v, "isoformat", nullptr));  // and datetime.isoformat()
      if (!text.p) python_error();
      write_str(text.p, out);
      return;
    }
  }
  write_value(ws, v, depth, next, out);
}

void object_canonicalizer::write_dict(workspace& ws, PyObject* dict, std::size_t depth, std::uint64_t active,
                                      std::string& out) const {
  check_depth(depth);
  const hash_scheme scheme = options_.scheme;
  const bool legacy = scheme == hash_scheme::legacy;
  const bool top = depth == 1;
  const std::string_view separator = legacy ? std::string_view(", ") : std::string_view(",");
  // This dict's slice of the shared stacks, released however the walk ends.
  struct unwind {
    workspace& ws;
    std::size_t entry_mark, owned_mark;
    ~unwind() {
      for (std::size_t i = owned_mark; i < ws.owned.size(); ++i) Py_DECREF(ws.owned[i]);
      ws.owned.resize(owned_mark);
      release_entries(ws, entry_mark);
    }
  } guard{ws, ws.entries.size(), ws.owned.size()};
  const std::size_t entry_mark = guard.entry_mark;

  key_summary keys;
  if (collect_str_keys(ws, dict, keys)) {
    entry* first = ws.entries.data() + entry_mark;
    entry* last = ws.entries.data() + ws.entries.size();
    const auto n = static_cast<std::size_t>(last - first);
    // Shapes are kept only where no JSON Pointer exclusion applies below this dict: those
    // depend on more than the names.
    const bool cacheable = !active && keys.ascii && n > 0 && n <= max_shape_members;
    const std::uint64_t hash = cacheable ? finish_hash(keys.hash, n, top) : 0;
    if (cacheable) {
      if (auto shape = find_shape(ws, hash, first, n); shape && shape->top == top) {
        out.push_back('{');
        bool any = false;
        for (const auto& m : shape->members) {
          if (m.excluded) continue;
          // By index: nested dicts push onto the same vector, which may move its storage.
          PyObject* v = ws.entries[entry_mark + m.index].value;
          if (top && legacy && v == Py_None) continue;
          const std::size_t skip = any ? 0 : separator.size();
          out.append(shape->rendered.data() + m.offset + skip, m.length - skip);
          any = true;
          write_member_value(ws, v, depth, top, 0, out);
        }
        out.push_back('}');
        return;
      }
    }
    // A shape is built the second time its hash misses in a row, so dicts whose names never
    // repeat (keyed by ids, say) do not pay for building one each.
    bool build = false;
    if (cacheable) {
      std::uint64_t& missed = ws.shapes->missed[slot_of(hash)];
      build = missed == hash;
      missed = hash;
      if (build) {
        ws.dict_order.clear();
        for (const entry* e = first; e != last; ++e) ws.dict_order.push_back(e->key);
      }
    }
    // str keys of one dict are distinct, so no tie needs a stable order.
    if (legacy) {
      sort_entries(first, last, legacy_name_less);
    } else {
      sort_entries(first, last, [](const entry& a, const entry& b) {
        return detail::compare_member_names({a.name, a.name_length}, {b.name, b.name_length}, hash_scheme::jcs) < 0;
      });
    }
    if (build) keep_shape(ws, hash, top, first, n, ws.dict_order);
  } else {
    if (scheme == hash_scheme::jcs) raise(status::invalid_argument, "RFC 8785 member names must be strings");
    collect_other_keys(ws, dict);
  }
  const std::size_t entry_end = ws.entries.size();

  out.push_back('{');
  bool any = false;
  // By index: nested dicts push onto the same vector, which may move its storage.
  for (std::size_t i = entry_mark; i < entry_end; ++i) {
    const entry e = ws.entries[i];
    const std::string_view name(e.name, e.name_length);
    bool excluded = top && is_excluded_name(name);
    std::uint64_t next = 0;
    if (active) next = step_pointers(active, depth - 1, name, excluded);
    if (excluded) continue;
    PyObject* v = e.value;
    if (top && legacy && v == Py_None) continue;
    if (any) out.append(separator);
    any = true;
    write_str(e.key, out);
    out.append(legacy ? std::string_view(": ") : std::string_view(":"));
    write_member_value(ws, v, depth, top, next, out);
  }
  out.push_back('}');
}

}  // namespace tds::python
