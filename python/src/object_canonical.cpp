// Python objects -> canonical bytes, following the same rules as the JSON-bytes walker in
// src/canonical.cpp and CPython's json encoder (sort_keys=True, default=str). Uses the CPython
// API directly: iterating dicts and reading str data this way is several times faster than
// going through pybind11 handles, and this is the hot path of the dict-based API.
#include "object_canonical.hpp"

#include <pybind11/pybind11.h>

#include <algorithm>
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

}  // namespace

object_canonicalizer::object_canonicalizer(const canonical_options& options) : options_(options) {
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
}

bool object_canonicalizer::is_excluded_name(std::string_view key) const {
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

void object_canonicalizer::write(PyObject* obj, std::string& out) {
  const std::uint64_t all = pointers_.empty() ? 0 : (std::uint64_t{1} << pointers_.size()) - 1;
  members_.clear();
  entries_.clear();
  write_value(obj, 0, all, out);
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

void object_canonicalizer::write_value(PyObject* obj, std::size_t depth, std::uint64_t active, std::string& out) {
  if (obj == Py_None) {
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
    write_sequence(obj, depth + 1, active, out);
  } else if (PyDict_Check(obj)) {
    write_dict(obj, depth + 1, active, out);
  } else {
    // json.dumps(default=str): the str() of anything else, encoded as a string.
    py_ref text(PyObject_Str(obj));
    if (!text.p) python_error();
    write_str(text.p, out);
  }
}

void object_canonicalizer::write_str(PyObject* str, std::string& out) {
  const hash_scheme scheme = options_.scheme;
  if (PyUnicode_IS_ASCII(str)) {
    detail::append_quoted(out, std::string_view(static_cast<const char*>(PyUnicode_DATA(str)),
                                                static_cast<std::size_t>(PyUnicode_GET_LENGTH(str))),
                          scheme);
    return;
  }
  // Read code points directly: this also covers lone surrogates, which Python strings may
  // hold and which have no UTF-8 form.
  const int kind = PyUnicode_KIND(str);
  const void* data = PyUnicode_DATA(str);
  const Py_ssize_t n = PyUnicode_GET_LENGTH(str);
  out.push_back('"');
  for (Py_ssize_t i = 0; i < n; ++i) {
    const Py_UCS4 cp = PyUnicode_READ(kind, data, i);
    if (cp >= 0xD800 && cp <= 0xDFFF && scheme == hash_scheme::jcs)
      raise(status::lone_surrogate, "string holds a lone surrogate (RFC 8785 requires valid Unicode)");
    if (cp >= 0x20 && cp < 0x7F && cp != '"' && cp != '\\') out.push_back(static_cast<char>(cp));
    else detail::append_code_point(out, cp, scheme);
  }
  out.push_back('"');
}

void object_canonicalizer::write_int(PyObject* value, std::string& out) {
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

void object_canonicalizer::write_float(PyObject* value, std::string& out) {
  const double d = PyFloat_AS_DOUBLE(value);
  if (!std::isfinite(d))
    raise(status::number_nan_inf, "NaN and Infinity have no JSON form (json.dumps would write NaN/Infinity)");
  if (options_.scheme == hash_scheme::legacy) detail::append_python_float(out, d);
  else detail::append_es_number(out, d);
}

void object_canonicalizer::write_sequence(PyObject* seq, std::size_t depth, std::uint64_t active, std::string& out) {
  check_depth(depth);
  const bool legacy = options_.scheme == hash_scheme::legacy;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  PyObject** items = PySequence_Fast_ITEMS(seq);
  out.push_back('[');
  bool first = true;
  char index_text[24];
  for (Py_ssize_t i = 0; i < n; ++i) {
    std::uint64_t next = 0;
    bool excluded = false;
    if (active) {
      auto r = std::to_chars(index_text, index_text + sizeof index_text, i);
      next = step_pointers(active, depth - 1, std::string_view(index_text, static_cast<std::size_t>(r.ptr - index_text)), excluded);
    }
    if (excluded) continue;
    if (!first) out.append(legacy ? std::string_view(", ") : std::string_view(","));
    first = false;
    write_value(items[i], depth, next, out);
  }
  out.push_back(']');
}

std::string_view object_canonicalizer::key_text(PyObject* key, std::vector<PyObject*>& keep_alive) {
  if (PyUnicode_IS_ASCII(key))
    return std::string_view(static_cast<const char*>(PyUnicode_DATA(key)),
                            static_cast<std::size_t>(PyUnicode_GET_LENGTH(key)));
  Py_ssize_t len = 0;
  if (const char* utf8 = PyUnicode_AsUTF8AndSize(key, &len)) return std::string_view(utf8, static_cast<std::size_t>(len));
  // Lone surrogates: WTF-8 keeps code point order, which is what Python's sort uses.
  PyErr_Clear();
  if (options_.scheme == hash_scheme::jcs)
    raise(status::lone_surrogate, "member name holds a lone surrogate (RFC 8785 requires valid Unicode)");
  PyObject* bytes = PyUnicode_AsEncodedString(key, "utf-8", "surrogatepass");
  if (!bytes) python_error();
  keep_alive.push_back(bytes);
  return std::string_view(PyBytes_AS_STRING(bytes), static_cast<std::size_t>(PyBytes_GET_SIZE(bytes)));
}

void object_canonicalizer::write_dict(PyObject* dict, std::size_t depth, std::uint64_t active, std::string& out) {
  check_depth(depth);
  const hash_scheme scheme = options_.scheme;
  const bool legacy = scheme == hash_scheme::legacy;
  const bool top = depth == 1;
  std::vector<PyObject*> keep_alive;  // new references made for keys and converted values
  struct cleanup {
    std::vector<PyObject*>& v;
    ~cleanup() {
      for (PyObject* o : v) Py_DECREF(o);
    }
  } guard{keep_alive};

  // json.dumps accepts str, int, float, bool and None keys, sorting the original keys
  // (so mixed types raise TypeError) and printing the others as JSON text. Almost every dict
  // has only str keys: one pass collects them, and only a non-str key takes the slow path.
  PyObject* key;
  PyObject* value;
  Py_ssize_t pos = 0;
  const std::size_t entry_mark = entries_.size();
  bool all_str = true;
  while (PyDict_Next(dict, &pos, &key, &value)) {
    if (!PyUnicode_Check(key)) {
      all_str = false;
      break;
    }
    entries_.emplace_back(key, value);
  }
  if (!all_str) {
    entries_.resize(entry_mark);
    if (scheme == hash_scheme::jcs) raise(status::invalid_argument, "RFC 8785 member names must be strings");
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
      keep_alive.push_back(text);
      entries_.emplace_back(text, PyDict_GetItem(dict, k));
    }
  }
  const std::size_t entry_end = entries_.size();

  const std::size_t member_mark = members_.size();
  const std::size_t out_mark = out.size();
  const auto& sp = specials();
  for (std::size_t e = entry_mark; e < entry_end; ++e) {
    PyObject* k = entries_[e].first;
    PyObject* v = entries_[e].second;
    const std::string_view name = key_text(k, keep_alive);
    bool excluded = top && is_excluded_name(name);
    std::uint64_t next = 0;
    if (active) next = step_pointers(active, depth - 1, name, excluded);
    if (excluded) continue;
    if (top && legacy && v == Py_None) continue;
    const std::size_t value_offset = out.size();
    // Decimal and datetime are neither str, int, float, list nor dict: test only those others.
    const bool plain_json = PyUnicode_Check(v) || PyLong_Check(v) || PyFloat_Check(v) || PyDict_Check(v) ||
                            PyList_Check(v) || v == Py_None;
    if (top && !plain_json && is_instance(v, sp.decimal)) {
      py_ref text(PyObject_Str(v));  // the production service stores str(Decimal)
      if (!text.p) python_error();
      write_str(text.p, out);
    } else if (top && !plain_json && is_instance(v, sp.datetime)) {
      py_ref text(PyObject_CallMethod(v, "isoformat", nullptr));  // and datetime.isoformat()
      if (!text.p) python_error();
      write_str(text.p, out);
    } else {
      write_value(v, depth, next, out);
    }
    members_.push_back(member{name, k, value_offset, out.size() - value_offset});
  }

  auto first = members_.begin() + static_cast<std::ptrdiff_t>(member_mark);
  auto last = members_.end();
  if (all_str) {
    // str keys of one dict are distinct, so no tie needs a stable order.
    std::sort(first, last, [scheme](const member& a, const member& b) {
      return detail::compare_member_names(a.key, b.key, scheme) < 0;
    });
  }
  scratch_.clear();
  scratch_.push_back('{');
  bool any = false;
  for (auto it = first; it != last; ++it) {
    if (any) scratch_.append(legacy ? std::string_view(", ") : std::string_view(","));
    any = true;
    write_str(it->key_object, scratch_);
    scratch_.append(legacy ? std::string_view(": ") : std::string_view(":"));
    scratch_.append(out, it->value_offset, it->value_length);
  }
  scratch_.push_back('}');
  out.resize(out_mark);
  out.append(scratch_);
  members_.resize(member_mark);
  entries_.resize(entry_mark);
}

}  // namespace tds::python
