// tdscache._native: the pybind11 bindings. Arguments are converted while holding the GIL,
// then the GIL is released around hashing of bytes and around all Redis I/O (re2's pattern).
// Errors become tdscache.Error subclasses carrying the C status code. Private: users import
// the typed facade in tdscache/__init__.py.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <charconv>
#include <climits>
#include <cstdint>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "object_canonical.hpp"
#include "tdscache/canonical.hpp"
#include "tdscache/client.hpp"
#include "tdscache/config.hpp"
#include "tdscache/decision.hpp"
#include "tdscache/error.hpp"
#include "tdscache/state.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace tds::python {
namespace {

// ---- errors --------------------------------------------------------------------------------

[[noreturn]] void throw_status(const tds::error& err) { throw native_error{err}; }

template <class T>
T unwrap(result<T>&& r) {
  if (!r.ok()) throw_status(r.error());
  return std::move(r).value();
}

void unwrap(result<void>&& r) {
  if (!r.ok()) throw_status(r.error());
}

// Raises the tdscache.Error subclass registered for the status (see tdscache/_errors.py).
void translate(const native_error& e) {
  py::module_ errors = py::module_::import("tdscache._errors");
  py::object cls = errors.attr("error_class")(static_cast<int>(e.err.code));
  py::object offset = e.err.offset == no_offset ? py::none() : py::object(py::int_(e.err.offset));
  py::object exc = cls(e.err.message, static_cast<int>(e.err.code), std::string(status_name(e.err.code)), offset);
  PyErr_SetObject(cls.ptr(), exc.ptr());
}

// ---- input helpers -------------------------------------------------------------------------

// A read-only view of bytes, bytearray or memoryview (C-contiguous), without copying.
struct byte_view {
  py::buffer_info info;
  std::string_view view;
};

std::optional<byte_view> as_bytes(const py::handle& obj) {
  if (!PyBytes_Check(obj.ptr()) && !PyByteArray_Check(obj.ptr()) && !PyMemoryView_Check(obj.ptr()))
    return std::nullopt;
  auto buffer = py::reinterpret_borrow<py::buffer>(obj);
  byte_view b{buffer.request(), {}};
  if (b.info.ndim > 1 || (b.info.ndim == 1 && b.info.strides[0] != b.info.itemsize))
    throw_status(make_error(status::invalid_argument, "the buffer must be C-contiguous"));
  b.view = std::string_view(static_cast<const char*>(b.info.ptr),
                            static_cast<std::size_t>(b.info.size * b.info.itemsize));
  return b;
}

hash_scheme scheme_from(const std::string& name) {
  auto s = parse_scheme(name);
  if (!s) throw_status(make_error(status::invalid_argument, "unknown hash scheme '" + name + "' (expected 'legacy' or 'jcs')"));
  return *s;
}

digest digest_from(const py::handle& obj) {
  auto b = as_bytes(obj);
  if (!b || b->view.size() != 32) {
    if (py::isinstance<py::str>(obj)) {
      auto d = digest::from_hex(obj.cast<std::string>());
      if (d) return *d;
    }
    throw_status(make_error(status::invalid_argument, "a digest is 32 bytes (or 64 hex characters)"));
  }
  digest d;
  std::memcpy(d.bytes.data(), b->view.data(), 32);
  return d;
}

py::bytes digest_bytes(const digest& d) {
  return py::bytes(reinterpret_cast<const char*>(d.bytes.data()), d.bytes.size());
}

// ---- Hasher ---------------------------------------------------------------------------------

// Bytes input goes through the simdjson canonicalizer with the GIL released; objects through
// the object walker with the GIL held. A mutex guards the canonicalizer, which is not
// thread safe, because Python threads may share one Hasher.
// A per-thread spare buffer, lent to one call at a time: reusing it saves the page faults of a
// fresh multi-megabyte buffer per call. Lent, not shared: an object's str() may run Python code
// that hashes again on this thread, and that inner call must get a buffer of its own. A buffer
// grown past `limit` is dropped on return, so one huge call does not pin its memory for the
// thread's lifetime.
template <class Buffer, int Tag>
class lent_buffer {
 public:
  lent_buffer() : buffer_(std::move(spare())) { buffer_.clear(); }
  ~lent_buffer() {
    if (buffer_.capacity() * sizeof(typename Buffer::value_type) <= limit) spare() = std::move(buffer_);
  }
  lent_buffer(const lent_buffer&) = delete;
  lent_buffer& operator=(const lent_buffer&) = delete;
  Buffer& get() noexcept { return buffer_; }

 private:
  static constexpr std::size_t limit = std::size_t{16} << 20;
  static Buffer& spare() {
    thread_local Buffer s;
    return s;
  }
  Buffer buffer_;
};

class hasher {
 public:
  hasher(const std::string& scheme, bool strict, std::optional<std::vector<std::string>> exclude_fields,
         std::vector<std::string> exclude_pointers, const py::int_& max_depth) {
    // Any int is taken here, so that -1 or 2**70 is a ConfigError naming max_depth instead of
    // pybind11's TypeError about size_t; canonicalizer::create checks the upper bound.
    int overflow = 0;
    const long long depth = PyLong_AsLongLongAndOverflow(max_depth.ptr(), &overflow);
    if (depth == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (overflow || depth < 1)
      throw_status(make_error(status::invalid_argument,
                              "max_depth must be between 1 and 4096 (got " + py::str(max_depth).cast<std::string>() + ")"));
    options_.scheme = scheme_from(scheme);
    options_.strict = strict;
    options_.exclude_fields = std::move(exclude_fields);
    options_.exclude_pointers = std::move(exclude_pointers);
    options_.max_depth = static_cast<std::size_t>(depth);
    canonicalizer_.emplace(unwrap(canonicalizer::create(options_)));
    objects_.emplace(options_);
  }

  std::string scheme() const { return std::string(scheme_name(options_.scheme)); }
  bool strict() const { return options_.strict; }
  hash_scheme scheme_value() const { return options_.scheme; }
  const object_canonicalizer& objects() const { return *objects_; }

  py::bytes canonical(const py::handle& data) {
    std::string text;
    canonical_into(data, text);
    return py::bytes(text);
  }

  py::bytes digest_of(const py::handle& data) {
    lent_buffer<std::string, 0> lent;
    std::string& text = lent.get();
    if (auto b = as_bytes(data)) {
      digest d;
      {
        py::gil_scoped_release release;
        std::lock_guard<std::mutex> lock(mutex_);
        d = unwrap(canonicalizer_->hash(b->view));
      }
      return digest_bytes(d);
    }
    objects_->write(data.ptr(), text);
    return digest_bytes(sha256(text));
  }

  std::string hexdigest(const py::handle& data) {
    py::bytes raw = digest_of(data);
    digest d;
    std::memcpy(d.bytes.data(), PyBytes_AS_STRING(raw.ptr()), 32);
    return d.hex();
  }

  // Canonical text for every object first (GIL held), then all SHA-256s without the GIL.
  py::list digest_many(const py::sequence& items) {
    const std::size_t n = py::len(items);
    lent_buffer<std::string, 1> lent_all;
    lent_buffer<std::vector<std::size_t>, 1> lent_ends;
    std::string& all = lent_all.get();
    std::vector<std::size_t>& ends = lent_ends.get();
    ends.reserve(n);
    std::size_t walked = 0;
    for (const auto& item : items) {
      // The object walk needs the GIL; let other threads (an event loop) run now and then.
      if (++walked % 512 == 0) {
        py::gil_scoped_release yield;
      }
      if (auto b = as_bytes(item)) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto r = canonicalizer_->canonicalize(b->view);
        all.append(unwrap(std::move(r)));
      } else {
        objects_->write(item.ptr(), all);
      }
      ends.push_back(all.size());
    }
    std::vector<digest> digests(n);
    {
      py::gil_scoped_release release;
      std::size_t start = 0;
      for (std::size_t i = 0; i < n; ++i) {
        digests[i] = sha256(std::string_view(all).substr(start, ends[i] - start));
        start = ends[i];
      }
    }
    py::list out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = digest_bytes(digests[i]);
    return out;
  }

  // Many pages in one call, for a sync that fetched several: the GIL is released once for all
  // of them, and two threads share them (a second canonicalizer, made on first use, since one
  // is not thread safe). The first failing page, in order, raises as hash_page would.
  std::vector<page_records> hash_pages(const py::sequence& bodies, const std::string& items_key,
                                       const std::string& id_field, const std::string& modified_field) {
    std::vector<byte_view> views;
    views.reserve(py::len(bodies));
    for (const auto& body : bodies) {
      auto b = as_bytes(body);
      if (!b) throw_status(make_error(status::invalid_argument, "a page body is bytes, bytearray or memoryview"));
      views.push_back(std::move(*b));
    }
    const page_options popts{items_key, id_field, modified_field};
    std::vector<std::optional<result<page_records>>> out(views.size());
    {
      py::gil_scoped_release release;
      std::atomic<std::size_t> next{0};
      auto run = [&](canonicalizer& c) {
        for (std::size_t i; (i = next.fetch_add(1)) < views.size();) out[i].emplace(c.hash_page(views[i].view, popts));
      };
      std::lock_guard<std::mutex> lock(mutex_);
      if (views.size() > 1 && std::thread::hardware_concurrency() > 1) {
        std::lock_guard<std::mutex> second_lock(second_mutex_);
        if (!second_) second_.emplace(unwrap(canonicalizer::create(options_)));
        std::exception_ptr failure;
        std::thread helper([&] {
          try {
            run(*second_);
          } catch (...) {  // bad_alloc
            failure = std::current_exception();
          }
        });
        try {
          run(*canonicalizer_);
        } catch (...) {
          helper.join();
          throw;
        }
        helper.join();
        if (failure) std::rethrow_exception(failure);
      } else {
        run(*canonicalizer_);
      }
    }
    std::vector<page_records> pages;
    pages.reserve(out.size());
    for (auto& r : out) pages.push_back(unwrap(std::move(*r)));
    return pages;
  }

  page_records hash_page(const py::handle& body, const std::string& items_key, const std::string& id_field,
                         const std::string& modified_field) {
    auto b = as_bytes(body);
    if (!b) throw_status(make_error(status::invalid_argument, "a page body is bytes, bytearray or memoryview"));
    page_options popts{items_key, id_field, modified_field};
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    return unwrap(canonicalizer_->hash_page(b->view, popts));
  }

 private:
  void canonical_into(const py::handle& data, std::string& out) {
    if (auto b = as_bytes(data)) {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      out.assign(unwrap(canonicalizer_->canonicalize(b->view)));
      return;
    }
    objects_->write(data.ptr(), out);
  }

  canonical_options options_;
  std::mutex mutex_;
  std::optional<canonicalizer> canonicalizer_;
  std::mutex second_mutex_;  // taken after mutex_, never alone
  std::optional<canonicalizer> second_;
  std::optional<object_canonicalizer> objects_;
};

// ---- Client ---------------------------------------------------------------------------------

// What a check returned, kept native so a commit can refer to what each entity's check saw.
struct check_batch {
  std::string entity_type;
  hash_scheme scheme = hash_scheme::legacy;
  std::vector<std::string> ids;
  std::vector<digest> digests;
  std::vector<std::optional<std::string>> modified;
  check_result result;

  py::list reasons() const {
    // One str object per reason, shared: building a list of 100,000 reasons allocates nothing.
    static const std::vector<py::object> names = [] {
      std::vector<py::object> v;
      for (int r = 0; r < reason_count; ++r) v.push_back(py::str(std::string(reason_name(static_cast<reason>(r)))));
      return v;
    }();
    py::list out(result.items.size());
    for (std::size_t i = 0; i < result.items.size(); ++i) out[i] = names[static_cast<std::size_t>(result.items[i].why)];
    return out;
  }
  py::list sync_flags() const {
    py::list out(result.items.size());
    for (std::size_t i = 0; i < result.items.size(); ++i) out[i] = py::bool_(result.items[i].sync());
    return out;
  }
  py::dict by_reason() const {
    py::dict d;
    for (int r = 0; r < reason_count; ++r)
      if (result.by_reason[static_cast<std::size_t>(r)])
        d[py::str(std::string(reason_name(static_cast<reason>(r))))] = result.by_reason[static_cast<std::size_t>(r)];
    return d;
  }
  py::object error() const {
    if (result.error.code == status::ok) return py::none();
    return py::make_tuple(static_cast<int>(result.error.code), result.error.message);
  }
};

py::dict commit_dict(const commit_result& r) {
  py::list outcomes(r.items.size());
  static const char* names[] = {"written", "conflict", "error"};
  for (std::size_t i = 0; i < r.items.size(); ++i) outcomes[i] = py::str(names[static_cast<int>(r.items[i])]);
  py::dict d("outcomes"_a = outcomes, "written"_a = r.written, "conflicts"_a = r.conflicts, "errors"_a = r.errors,
             "sync_counts"_a = r.sync_counts);
  d["error"] = r.error.code == status::ok ? py::object(py::none())
                                          : py::object(py::make_tuple(static_cast<int>(r.error.code), r.error.message));
  return d;
}

py::dict state_dict(const entity_state& s) {
  py::dict d;
  d["entity_type"] = s.entity_type;
  d["entity_id"] = s.entity_id;
  d["local_id"] = s.local_id ? py::object(py::str(*s.local_id)) : py::object(py::none());
  d["content_hash"] = s.content_hash;
  d["last_modified_time"] = s.last_modified_time ? py::object(py::str(*s.last_modified_time)) : py::object(py::none());
  d["cached_at"] = s.cached_at;
  d["sync_count"] = s.sync_count;
  d["hash_scheme"] = std::string(scheme_name(effective_scheme(s)));
  return d;
}

py::dict stats_dict(const stats_snapshot& s) {
  py::dict reasons;
  for (int r = 0; r < reason_count; ++r)
    reasons[py::str(std::string(reason_name(static_cast<reason>(r))))] = s.by_reason[static_cast<std::size_t>(r)];
  auto latency = [](const latency_summary& l) {
    return py::dict("count"_a = l.count, "p50_ms"_a = l.p50_ms, "p99_ms"_a = l.p99_ms, "max_ms"_a = l.max_ms);
  };
  return py::dict("reasons"_a = reasons, "checked"_a = s.checked, "skipped"_a = s.skipped, "to_sync"_a = s.to_sync,
                  "cache_errors"_a = s.cache_errors, "synced"_a = s.synced, "conflicts"_a = s.conflicts,
                  "failed"_a = s.failed, "hit_rate"_a = s.hit_rate, "check_latency"_a = latency(s.check_latency),
                  "commit_latency"_a = latency(s.commit_latency));
}

std::optional<std::string> optional_text(const py::handle& h) {
  if (h.is_none()) return std::nullopt;
  if (py::isinstance<py::str>(h)) return h.cast<std::string>();
  return py::str(h).cast<std::string>();
}

// Ids and timestamps as json.loads has them: text from JSON may hold a lone surrogate
// ("\ud800"), which the canonicalizer keeps as WTF-8 bytes. "surrogatepass" carries it both ways
// instead of raising UnicodeDecodeError for a page that json.loads reads without complaint.
py::str wtf8_str(const std::string& text) {
  PyObject* s = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "surrogatepass");
  if (s == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(s);
}

py::list wtf8_list(const std::vector<std::string>& texts) {
  py::list out(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) out[i] = wtf8_str(texts[i]);
  return out;
}

std::string id_text(const py::handle& h) {
  if (py::isinstance<py::str>(h)) {
    PyObject* bytes = PyUnicode_AsEncodedString(h.ptr(), "utf-8", "surrogatepass");
    if (bytes == nullptr) throw py::error_already_set();
    auto owned = py::reinterpret_steal<py::bytes>(bytes);
    return owned.cast<std::string>();
  }
  if (py::isinstance<py::bytes>(h)) return h.cast<std::string>();
  if (h.is_none()) return std::string();
  return py::str(h).cast<std::string>();
}


// A str as UTF-8; lone surrogates (which json.loads may hand us) as WTF-8, "surrogatepass".
void assign_wtf8(PyObject* text, std::string& out) {
  if (PyUnicode_IS_ASCII(text)) {
    out.assign(static_cast<const char*>(PyUnicode_DATA(text)), static_cast<std::size_t>(PyUnicode_GET_LENGTH(text)));
    return;
  }
  Py_ssize_t len = 0;
  if (const char* utf8 = PyUnicode_AsUTF8AndSize(text, &len)) {
    out.assign(utf8, static_cast<std::size_t>(len));
    return;
  }
  PyErr_Clear();
  auto bytes = py::reinterpret_steal<py::object>(PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass"));
  if (!bytes) throw py::error_already_set();
  out.assign(PyBytes_AS_STRING(bytes.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(bytes.ptr())));
}

// entity.get(name): a dict is read directly, any other mapping through its own get().
py::object member_of(PyObject* entity, PyObject* name) {
  if (PyDict_CheckExact(entity)) {
    PyObject* v = PyDict_GetItemWithError(entity, name);
    if (v == nullptr) {
      if (PyErr_Occurred()) throw py::error_already_set();
      return py::none();
    }
    return py::reinterpret_borrow<py::object>(v);
  }
  static PyObject* get_name = PyUnicode_InternFromString("get");
  auto v = py::reinterpret_steal<py::object>(PyObject_CallMethodObjArgs(entity, get_name, name, nullptr));
  if (!v) throw py::error_already_set();
  return v;
}

// The facade's _entity_id(): "" for a missing, None or bool id, else str(value).
void entity_id_into(PyObject* v, std::string& out) {
  if (v == Py_None || v == Py_True || v == Py_False) {
    out.clear();
  } else if (PyUnicode_CheckExact(v)) {
    assign_wtf8(v, out);
  } else {
    if (PyLong_CheckExact(v)) {  // str(int) without making the str
      int overflow = 0;
      const long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
      if (!overflow && !(x == -1 && PyErr_Occurred())) {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, x);
        out.assign(buf, r.ptr);
        return;
      }
      PyErr_Clear();
    }
    auto text = py::reinterpret_steal<py::object>(PyObject_Str(v));
    if (!text) throw py::error_already_set();
    assign_wtf8(text.ptr(), out);
  }
}

// The facade's _text_or_none(): None stays None, a str (subclasses too) is itself, else str().
void modified_into(PyObject* v, std::optional<std::string>& out) {
  if (v == Py_None) {
    out.reset();
    return;
  }
  out.emplace();
  if (PyUnicode_Check(v)) {
    assign_wtf8(v, *out);
    return;
  }
  auto text = py::reinterpret_steal<py::object>(PyObject_Str(v));
  if (!text) throw py::error_already_set();
  assign_wtf8(text.ptr(), *out);
}

// Hashes the entities of one check_entities() call on a worker thread while the calling
// thread walks the next ones with the GIL: the walk hands over small units (their canonical
// text in a ring of buffers) and the worker hashes each as it comes. Without a second unit no
// thread is started: finish() hashes on the caller's thread.
// The Redis check stays one call over the whole batch, after the walk. Checking chunk by chunk
// on the worker overlapped the round trips with the walk too (3.5 instead of ~5 us an entity
// at 100,000), but changes what a connection cut mid-batch does: the client retries a request
// that got no reply on a fresh connection, so the chunks after a cut answer instead of failing
// open as one call's later MGETs do (tests/python/test_faults.py pins the one-call behaviour).
class entity_pipeline {
 public:
  static constexpr std::size_t unit_size = 128;  // small: the walk of one unit overlaps its hashing
  static constexpr std::size_t buffer_count = 8;

  explicit entity_pipeline(check_batch& batch) : batch_(batch) {
    // The calling thread's buffers keep their capacity from call to call: grown afresh, the
    // text of each unit was copied about twice over and its pages faulted in on every call.
    // A nested call (a value's str() that checks entities) gets buffers of its own.
    thread_local units kept;
    if (!kept.busy) {
      units_ = &kept;
      kept.busy = true;
    } else {
      own_ = std::make_unique<units>();
      units_ = own_.get();
    }
  }

  entity_pipeline(const entity_pipeline&) = delete;
  entity_pipeline& operator=(const entity_pipeline&) = delete;

  ~entity_pipeline() {
    if (worker_.joinable()) {  // the walk failed: drop the units not started, wait for the one running
      py::gil_scoped_release release;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.clear();
      }
      stop_and_join();
    }
    if (units_ != own_.get()) units_->release();
  }

  // The buffer for unit u, once the worker no longer reads it. GIL held.
  std::string& buffer_for(std::size_t u, std::vector<std::size_t>*& ends) {
    if (u >= buffer_count) {
      std::unique_lock<std::mutex> lock(mutex_);
      if (processed_ + buffer_count <= u) {
        lock.unlock();
        py::gil_scoped_release release;
        lock.lock();
        changed_.wait(lock, [&] { return processed_ + buffer_count > u; });
      }
    }
    std::string& text = units_->text[u % buffer_count];
    ends = &units_->ends[u % buffer_count];
    text.clear();
    ends->clear();
    return text;
  }

  // Unit u, entities [first, last), is walked. GIL held.
  void submit(std::size_t u, std::size_t first, std::size_t last) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(unit{u, first, last});
    }
    if (u == 1 && !worker_.joinable()) worker_ = std::thread([this] { work(); });
    changed_.notify_all();
  }

  // Every unit submitted: waits until all are hashed. Call without the GIL.
  void finish() {
    if (worker_.joinable()) {
      stop_and_join();
    } else {
      while (!queue_.empty()) {  // one unit: no thread was started
        const unit next = queue_.front();
        queue_.pop_front();
        hash(next);
      }
    }
    if (failure_) std::rethrow_exception(failure_);
  }

 private:
  struct unit {
    std::size_t index, first, last;
  };

  // The canonical text of the units in flight, and where each entity's text ends.
  struct units {
    static constexpr std::size_t kept_capacity = std::size_t{512} << 10;  // bytes a buffer may keep
    std::string text[buffer_count];
    std::vector<std::size_t> ends[buffer_count];
    bool busy = false;

    // Ends a call: a buffer grown past kept_capacity by huge entities is given back.
    void release() noexcept {
      for (auto& t : text)
        if (t.capacity() > kept_capacity) std::string().swap(t);
      busy = false;
    }
  };

  void stop_and_join() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closing_ = true;
    }
    changed_.notify_all();
    worker_.join();
  }

  void work() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return !queue_.empty() || closing_; });
      if (queue_.empty()) return;
      const unit next = queue_.front();
      queue_.pop_front();
      lock.unlock();
      try {
        hash(next);
      } catch (...) {  // nothing in hash() throws today; finish() would report it
        if (!failure_) failure_ = std::current_exception();
      }
      lock.lock();
      ++processed_;
      changed_.notify_all();
    }
  }

  void hash(const unit& u) {
    const std::string_view text = units_->text[u.index % buffer_count];
    const std::vector<std::size_t>& ends = units_->ends[u.index % buffer_count];
    std::size_t start = 0;
    for (std::size_t i = u.first; i < u.last; ++i) {
      const std::size_t end = ends[i - u.first];
      batch_.digests[i] = sha256(text.substr(start, end - start));
      start = end;
    }
  }

  check_batch& batch_;
  std::exception_ptr failure_;  // worker only until joined
  std::unique_ptr<units> own_;
  units* units_ = nullptr;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<unit> queue_;
  std::size_t processed_ = 0;
  bool closing_ = false;
  std::thread worker_;
};

// An integer client option, range-checked here: pybind11's own conversion turns -1 into a
// TypeError or RuntimeError that names no option. Out of range is a ConfigError.
std::int64_t int_option(const py::handle& v, const std::string& key, std::int64_t lo, std::int64_t hi) {
  if (!PyLong_Check(v.ptr()) || PyBool_Check(v.ptr()))
    throw_status(make_error(status::invalid_argument, "config: " + key + " must be an integer, not " +
                                                          std::string(Py_TYPE(v.ptr())->tp_name)));
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
  if (x == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow || x < lo || x > hi)
    throw_status(make_error(status::invalid_argument, "config: " + key + " must be from " + std::to_string(lo) +
                                                          " to " + std::to_string(hi) + " (got " +
                                                          py::str(v).cast<std::string>() + ")"));
  return x;
}

// check_entities()' cache reads, sent on a thread of their own while the caller walks the
// objects (client::observe; the decisions come later with client::check(items, observation)).
// Not started for small batches, where a thread costs more than it hides. Joined before it
// goes, without the GIL, if the walk fails.
class early_reads {
 public:
  early_reads(client& c, std::span<const entity_check> checks, bool start) {
    if (!start) return;
    reader_ = std::thread([this, &c, checks] { seen_ = c.observe(checks); });
    started_ = true;
  }
  early_reads(const early_reads&) = delete;
  early_reads& operator=(const early_reads&) = delete;
  ~early_reads() {
    if (reader_.joinable()) {
      py::gil_scoped_release release;
      reader_.join();
    }
  }

  bool started() const noexcept { return started_; }
  // Waits for the reads. Call without the GIL.
  observation take() {
    if (reader_.joinable()) reader_.join();
    return std::move(seen_);
  }

 private:
  std::thread reader_;
  observation seen_;
  bool started_ = false;
};

class cache_client {
 public:
  explicit cache_client(client c) : client_(std::move(c)) {}

  static std::unique_ptr<cache_client> open(const std::optional<std::string>& url, const py::kwargs& kw) {
    client_config cfg;
    if (url) cfg = unwrap(parse_redis_url(*url));
    for (auto item : kw) {
      const std::string key = item.first.cast<std::string>();
      const py::handle v = item.second;
      if (v.is_none()) continue;
      if (key == "key_prefix") cfg.key_prefix = v.cast<std::string>();
      else if (key == "ttl_seconds") cfg.ttl_seconds = int_option(v, key, 0, INT64_MAX);
      else if (key == "max_age_seconds") cfg.max_age_seconds = int_option(v, key, 0, INT64_MAX);
      else if (key == "mget_chunk") cfg.mget_chunk = static_cast<std::size_t>(int_option(v, key, 1, 1'000'000));
      else if (key == "connect_timeout_ms") cfg.connect_timeout = std::chrono::milliseconds(int_option(v, key, 0, INT64_MAX));
      else if (key == "command_timeout_ms") cfg.command_timeout = std::chrono::milliseconds(int_option(v, key, 0, INT64_MAX));
      else if (key == "keepalive_seconds") cfg.keepalive_seconds = static_cast<int>(int_option(v, key, 0, INT_MAX));
      else if (key == "breaker_failures") cfg.breaker_failures = static_cast<int>(int_option(v, key, 0, INT_MAX));
      else if (key == "breaker_cooldown_ms") cfg.breaker_cooldown = std::chrono::milliseconds(int_option(v, key, 0, INT64_MAX));
      else if (key == "username") cfg.username = v.cast<std::string>();
      else if (key == "password") cfg.password = v.cast<std::string>();
      else if (key == "db") cfg.db = static_cast<int>(int_option(v, key, 0, INT_MAX));
      else if (key == "tls_ca_file") { cfg.tls.ca_file = v.cast<std::string>(); cfg.tls.enabled = true; }
      else if (key == "tls_ca_dir") { cfg.tls.ca_dir = v.cast<std::string>(); cfg.tls.enabled = true; }
      else if (key == "tls_cert_file") cfg.tls.cert_file = v.cast<std::string>();
      else if (key == "tls_key_file") cfg.tls.key_file = v.cast<std::string>();
      else if (key == "tls_server_name") cfg.tls.server_name = v.cast<std::string>();
      else if (key == "tls_insecure") cfg.tls.insecure = v.cast<bool>();
      else if (key == "tls_verify_hostname") cfg.tls.verify_hostname = v.cast<bool>();
      else if (key == "tls") cfg.tls.enabled = v.cast<bool>();
      else throw_status(make_error(status::invalid_argument, "unknown client option '" + key + "'"));
    }
    py::gil_scoped_release release;
    return std::make_unique<cache_client>(unwrap(client::connect(std::move(cfg))));
  }

  // ids, digests and last-modified values come as parallel sequences (what the facade has).
  std::shared_ptr<check_batch> check(const std::string& entity_type, const py::sequence& ids, const py::sequence& digests,
                                     const py::object& modified, const std::string& scheme, const py::object& force) {
    auto batch = std::make_shared<check_batch>();
    batch->entity_type = entity_type;
    batch->scheme = scheme_from(scheme);
    const std::size_t n = py::len(ids);
    if (py::len(digests) != n) throw_status(make_error(status::invalid_argument, "ids and digests differ in length"));
    batch->ids.reserve(n);
    batch->digests.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      batch->ids.push_back(id_text(ids[i]));
      batch->digests.push_back(digest_from(digests[i]));
    }
    batch->modified.resize(n);
    if (!modified.is_none()) {
      auto seq = modified.cast<py::sequence>();
      if (py::len(seq) != n) throw_status(make_error(status::invalid_argument, "ids and last_modified differ in length"));
      for (std::size_t i = 0; i < n; ++i) batch->modified[i] = optional_text(seq[i]);
    }
    std::vector<bool> forces(n, false);
    if (py::isinstance<py::bool_>(force)) {
      std::fill(forces.begin(), forces.end(), force.cast<bool>());
    } else if (!force.is_none()) {
      auto seq = force.cast<py::sequence>();
      if (py::len(seq) != n) throw_status(make_error(status::invalid_argument, "ids and force differ in length"));
      for (std::size_t i = 0; i < n; ++i) forces[i] = py::bool_(seq[i]);
    }
    run_check(*batch, forces);
    return batch;
  }

  // The dict path in one native call. Ids and last-modified values are read first, and the
  // cache reads (client::observe) go out on a thread of their own; meanwhile the canonical text
  // is walked from the objects with the GIL held and a worker thread hashes it (see
  // entity_pipeline). The decisions come last, without the GIL. The reads are one pipeline
  // exactly as check()'s, so a connection cut mid-batch fails open the same way; only their
  // latency is hidden behind the walk. No Python object is made per entity.
  std::shared_ptr<check_batch> check_entities(const std::string& entity_type, const hasher& h,
                                              const py::handle& entities, const std::string& id_field,
                                              const std::string& modified_field, bool force) {
    // A tuple holds every entity alive even if str() of some value mutates the caller's list.
    auto items = py::reinterpret_steal<py::tuple>(PySequence_Tuple(entities.ptr()));
    if (!items) throw py::error_already_set();
    const std::size_t n = static_cast<std::size_t>(PyTuple_GET_SIZE(items.ptr()));
    auto batch = std::make_shared<check_batch>();
    batch->entity_type = entity_type;
    batch->scheme = h.scheme_value();
    batch->ids.resize(n);
    batch->digests.resize(n);
    batch->modified.resize(n);
    const py::str id_key(id_field), modified_key(modified_field);
    for (std::size_t i = 0; i < n; ++i) {
      PyObject* entity = PyTuple_GET_ITEM(items.ptr(), static_cast<Py_ssize_t>(i));
      entity_id_into(member_of(entity, id_key.ptr()).ptr(), batch->ids[i]);
      modified_into(member_of(entity, modified_key.ptr()).ptr(), batch->modified[i]);
    }
    // Views into batch's vectors, which keep their size from here on.
    std::vector<entity_check> checks = checks_of(*batch, std::vector<bool>(n, force));
    early_reads reads(client_, checks, n > entity_pipeline::unit_size);

    const object_canonicalizer& walker = h.objects();
    entity_pipeline pipe(*batch);
    std::size_t walked = 0;
    for (std::size_t u = 0, first = 0;; ++u) {
      const std::size_t last = std::min(n, first + entity_pipeline::unit_size);
      std::vector<std::size_t>* ends = nullptr;
      std::string& text = pipe.buffer_for(u, ends);
      for (std::size_t i = first; i < last; ++i) {
        // The walk needs the GIL; let other threads (an event loop) run now and then.
        if (++walked % 512 == 0) {
          py::gil_scoped_release yield;
        }
        walker.write(PyTuple_GET_ITEM(items.ptr(), static_cast<Py_ssize_t>(i)), text);
        ends->push_back(text.size());
      }
      pipe.submit(u, first, last);
      if (last >= n) break;
      first = last;
    }
    {
      py::gil_scoped_release release;
      pipe.finish();
      for (std::size_t i = 0; i < n; ++i) checks[i].content_digest = batch->digests[i];
      batch->result = reads.started() ? client_.check(checks, reads.take()) : client_.check(checks);
    }
    return batch;
  }

  // The raw-bytes path: ids and digests come from the page records, never through Python.
  // Several pages' records in one check (one round of MGETs for all), split back into one
  // batch per page so each page commits as check_page's would.
  std::vector<std::shared_ptr<check_batch>> check_pages(const std::string& entity_type, const py::sequence& pages,
                                                        const std::string& scheme, bool force) {
    std::vector<py::object> keep;  // the PageRecords stay alive while the GIL is released
    std::vector<const page_records*> records;
    for (const auto& p : pages) {
      keep.push_back(py::reinterpret_borrow<py::object>(p));
      records.push_back(&p.cast<const page_records&>());
    }
    const hash_scheme sch = scheme_from(scheme);
    std::vector<std::shared_ptr<check_batch>> out;
    py::gil_scoped_release release;
    check_batch all;
    all.entity_type = entity_type;
    all.scheme = sch;
    for (const page_records* page : records) {
      for (const auto& rec : page->records) {
        all.ids.push_back(rec.ok() ? rec.id : std::string());
        all.digests.push_back(rec.content_digest);
        all.modified.push_back(rec.last_modified_time);
      }
    }
    run_check_nogil(all, std::vector<bool>(all.ids.size(), force));
    std::size_t at = 0;
    for (const page_records* page : records) {
      auto batch = std::make_shared<check_batch>();
      batch->entity_type = entity_type;
      batch->scheme = sch;
      check_result& r = batch->result;
      for (std::size_t k = 0; k < page->records.size(); ++k, ++at) {
        batch->ids.push_back(std::move(all.ids[at]));
        batch->digests.push_back(all.digests[at]);
        batch->modified.push_back(std::move(all.modified[at]));
        r.items.push_back(std::move(all.result.items[at]));
        ++r.by_reason[static_cast<std::size_t>(r.items.back().why)];
      }
      r.skipped = r.by_reason[static_cast<std::size_t>(reason::unchanged)];
      r.to_sync = r.items.size() - r.skipped;
      r.cache_errors = r.by_reason[static_cast<std::size_t>(reason::cache_check_error)];
      if (r.cache_errors) r.error = all.result.error;
      out.push_back(std::move(batch));
    }
    return out;
  }

  std::shared_ptr<check_batch> check_page(const std::string& entity_type, const page_records& page,
                                          const std::string& scheme, bool force) {
    auto batch = std::make_shared<check_batch>();
    batch->entity_type = entity_type;
    batch->scheme = scheme_from(scheme);
    py::gil_scoped_release release;
    for (const auto& rec : page.records) {
      // Items that failed to hash keep an empty id: decided no_id, so they sync (or fail).
      batch->ids.push_back(rec.ok() ? rec.id : std::string());
      batch->digests.push_back(rec.content_digest);
      batch->modified.push_back(rec.last_modified_time);
    }
    std::vector<bool> forces(batch->ids.size(), force);
    run_check_nogil(*batch, forces);
    return batch;
  }

  // Commits entities at `indices` of a check batch, conditional on what that check saw.
  py::dict commit_checked(const check_batch& batch, const std::vector<std::size_t>& indices,
                          const py::object& local_ids) {
    std::vector<std::optional<std::string>> locals(indices.size());
    if (!local_ids.is_none()) {
      auto seq = local_ids.cast<py::sequence>();
      if (py::len(seq) != indices.size()) throw_status(make_error(status::invalid_argument, "indices and local_ids differ in length"));
      for (std::size_t i = 0; i < indices.size(); ++i) locals[i] = optional_text(seq[i]);
    }
    for (std::size_t idx : indices)
      if (idx >= batch.ids.size()) throw_status(make_error(status::invalid_argument, "commit index out of range"));
    commit_result r;
    {
      py::gil_scoped_release release;
      std::vector<commit_item> items;
      items.reserve(indices.size());
      for (std::size_t i = 0; i < indices.size(); ++i) {
        const std::size_t k = indices[i];
        commit_item item;
        item.entity_type = batch.entity_type;
        item.entity_id = batch.ids[k];
        item.content_digest = batch.digests[k];
        item.scheme = batch.scheme;
        if (batch.modified[k]) item.last_modified_time = *batch.modified[k];
        if (locals[i]) item.local_id = *locals[i];
        item.observed = &batch.result.items[k].observed;
        items.push_back(item);
      }
      r = client_.commit(items);
    }
    return commit_dict(r);
  }

  // Unconditional writes (legacy mark_entity_synced, cache warming): no check preceded them.
  py::dict commit(const std::string& entity_type, const py::sequence& ids, const py::sequence& digests,
                  const py::object& modified, const py::object& local_ids, const std::string& scheme, bool warm) {
    const std::size_t n = py::len(ids);
    if (py::len(digests) != n) throw_status(make_error(status::invalid_argument, "ids and digests differ in length"));
    std::vector<std::string> id_store(n);
    std::vector<digest> digest_store(n);
    std::vector<std::optional<std::string>> mod_store(n), local_store(n);
    for (std::size_t i = 0; i < n; ++i) {
      id_store[i] = id_text(ids[i]);
      digest_store[i] = digest_from(digests[i]);
    }
    if (!modified.is_none()) {
      auto seq = modified.cast<py::sequence>();
      for (std::size_t i = 0; i < n && i < py::len(seq); ++i) mod_store[i] = optional_text(seq[i]);
    }
    if (!local_ids.is_none()) {
      auto seq = local_ids.cast<py::sequence>();
      for (std::size_t i = 0; i < n && i < py::len(seq); ++i) local_store[i] = optional_text(seq[i]);
    }
    const hash_scheme sch = scheme_from(scheme);
    commit_result r;
    {
      py::gil_scoped_release release;
      if (warm) {
        std::vector<warm_record> records(n);
        for (std::size_t i = 0; i < n; ++i) {
          records[i].entity_id = id_store[i];
          records[i].content_digest = digest_store[i];
          records[i].scheme = sch;
          if (mod_store[i]) records[i].last_modified_time = *mod_store[i];
          if (local_store[i]) records[i].local_id = *local_store[i];
        }
        r = client_.warm(entity_type, records);
      } else {
        std::vector<commit_item> items(n);
        for (std::size_t i = 0; i < n; ++i) {
          items[i].entity_type = entity_type;
          items[i].entity_id = id_store[i];
          items[i].content_digest = digest_store[i];
          items[i].scheme = sch;
          if (mod_store[i]) items[i].last_modified_time = *mod_store[i];
          if (local_store[i]) items[i].local_id = *local_store[i];
        }
        r = client_.commit(items);
      }
    }
    return commit_dict(r);
  }

  py::object get_state(const std::string& entity_type, const std::string& entity_id) {
    result<std::optional<entity_state>> r = [&] {
      py::gil_scoped_release release;
      return client_.get_state(entity_type, entity_id);
    }();
    auto state = unwrap(std::move(r));
    if (!state) return py::none();
    return state_dict(*state);
  }

  std::uint64_t invalidate(const std::string& entity_type, const std::optional<std::string>& entity_id) {
    py::gil_scoped_release release;
    if (entity_id) return unwrap(client_.invalidate(entity_type, *entity_id));
    return unwrap(client_.invalidate_type(entity_type));
  }

  std::map<std::string, std::uint64_t, std::less<>> count_states() {
    py::gil_scoped_release release;
    return unwrap(client_.count_states());
  }

  void mark_batch_complete(const std::string& entity_type, const std::string& batch_id, const std::string& stats_json) {
    py::gil_scoped_release release;
    unwrap(client_.mark_batch_complete(entity_type, batch_id, stats_json));
  }

  bool was_batch_synced_recently(const std::string& entity_type, std::int64_t window_seconds) {
    py::gil_scoped_release release;
    return unwrap(client_.was_batch_synced_recently(entity_type, window_seconds));
  }

  void ping() {
    py::gil_scoped_release release;
    unwrap(client_.ping());
  }

  py::dict stats() const { return stats_dict(client_.stats()); }
  void reset_stats() { client_.reset_stats(); }
  std::uint64_t connect_attempts() const { return client_.connect_attempts(); }

  py::dict config() const {
    const auto& c = client_.config();
    return py::dict("host"_a = c.host, "port"_a = c.port, "unix_path"_a = c.unix_path, "db"_a = c.db,
                    "tls"_a = c.tls.enabled, "key_prefix"_a = c.key_prefix, "ttl_seconds"_a = c.ttl_seconds,
                    "max_age_seconds"_a = c.max_age_seconds, "mget_chunk"_a = c.mget_chunk, "cluster"_a = c.cluster,
                    "connect_timeout_ms"_a = c.connect_timeout.count(), "command_timeout_ms"_a = c.command_timeout.count());
  }

 private:
  void run_check(check_batch& batch, const std::vector<bool>& forces) {
    py::gil_scoped_release release;
    run_check_nogil(batch, forces);
  }

  static std::vector<entity_check> checks_of(const check_batch& batch, const std::vector<bool>& forces) {
    std::vector<entity_check> checks(batch.ids.size());
    for (std::size_t i = 0; i < checks.size(); ++i) {
      checks[i].entity_type = batch.entity_type;
      checks[i].entity_id = batch.ids[i];
      checks[i].content_digest = batch.digests[i];
      checks[i].scheme = batch.scheme;
      if (batch.modified[i]) checks[i].last_modified_time = *batch.modified[i];
      checks[i].force = forces[i];
    }
    return checks;
  }

  void run_check_nogil(check_batch& batch, const std::vector<bool>& forces) {
    batch.result = client_.check(checks_of(batch, forces));
  }

  client client_;
};

}  // namespace
}  // namespace tds::python

PYBIND11_MODULE(_native, m) {
  using namespace tds;
  using namespace tds::python;
  m.doc() = "tdscache native core (private: import tdscache instead)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const native_error& e) {
      translate(e);
    }
  });

#ifdef TDS_VERSION_STRING
  m.attr("__version__") = TDS_VERSION_STRING;
#endif
  m.def("status_name", [](int code) { return std::string(status_name(static_cast<status>(code))); });
  m.def("reason_names", [] {
    std::vector<std::string> names;
    for (int r = 0; r < reason_count; ++r) names.emplace_back(reason_name(static_cast<reason>(r)));
    return names;
  });
  m.def("legacy_excluded_fields", [] { return legacy_excluded_fields(); });
  m.def("sha256", [](const py::bytes& b) {
    std::string_view v(PyBytes_AS_STRING(b.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(b.ptr())));
    return digest_bytes(sha256(v));
  });
  m.def("parse_iso8601", [](const std::string& text) -> py::object {
    auto t = parse_iso8601(text);
    if (!t) return py::none();
    return py::make_tuple(t->seconds, t->nanos);
  });
  m.def("decode_state", [](const std::string& value) { return state_dict(unwrap(decode_state(value))); });
  m.def("state_key", [](const std::string& prefix, const std::string& type, const std::string& id) {
    return py::bytes(state_key(prefix, type, id));
  });

  py::class_<hasher>(m, "Hasher")
      .def(py::init<const std::string&, bool, std::optional<std::vector<std::string>>, std::vector<std::string>, const py::int_&>(),
           "scheme"_a = "legacy", py::kw_only(), "strict"_a = false, "exclude_fields"_a = py::none(),
           "exclude_pointers"_a = std::vector<std::string>{}, "max_depth"_a = py::int_(512))
      .def_property_readonly("scheme", &hasher::scheme)
      .def_property_readonly("strict", &hasher::strict)
      .def("canonical", &hasher::canonical, "data"_a)
      .def("digest", &hasher::digest_of, "data"_a)
      .def("hexdigest", &hasher::hexdigest, "data"_a)
      .def("digest_many", &hasher::digest_many, "items"_a)
      .def("hash_pages", &hasher::hash_pages, "bodies"_a, py::kw_only(), "items_key"_a = "items",
           "id_field"_a = "item_id", "modified_field"_a = "last_modified_time")
      .def("hash_page", &hasher::hash_page, "body"_a, py::kw_only(), "items_key"_a = "items", "id_field"_a = "item_id",
           "modified_field"_a = "last_modified_time");

  py::class_<page_records>(m, "PageRecords")
      .def("__len__", [](const page_records& p) { return p.records.size(); })
      .def_property_readonly("has_more_page", [](const page_records& p) -> py::object {
        return p.has_more_page ? py::object(py::bool_(*p.has_more_page)) : py::object(py::none());
      })
      .def_property_readonly("ids", [](const page_records& p) {
        py::list out(p.records.size());
        for (std::size_t i = 0; i < p.records.size(); ++i) out[i] = wtf8_str(p.records[i].id);
        return out;
      })
      .def_property_readonly("last_modified_times", [](const page_records& p) {
        py::list out(p.records.size());
        for (std::size_t i = 0; i < p.records.size(); ++i)
          out[i] = p.records[i].last_modified_time ? py::object(wtf8_str(*p.records[i].last_modified_time)) : py::object(py::none());
        return out;
      })
      .def_property_readonly("digests", [](const page_records& p) {
        py::list out(p.records.size());
        for (std::size_t i = 0; i < p.records.size(); ++i) out[i] = digest_bytes(p.records[i].content_digest);
        return out;
      })
      .def_property_readonly("spans", [](const page_records& p) {
        py::list out(p.records.size());
        for (std::size_t i = 0; i < p.records.size(); ++i) out[i] = py::make_tuple(p.records[i].offset, p.records[i].length);
        return out;
      })
      .def_property_readonly("errors", [](const page_records& p) {
        py::list out(p.records.size());
        for (std::size_t i = 0; i < p.records.size(); ++i) {
          const auto& e = p.records[i].error;
          out[i] = e.code == status::ok ? py::object(py::none())
                                        : py::object(py::make_tuple(static_cast<int>(e.code), std::string(status_name(e.code)), e.message));
        }
        return out;
      });

  py::class_<check_batch, std::shared_ptr<check_batch>>(m, "CheckBatch")
      .def("__len__", [](const check_batch& b) { return b.result.items.size(); })
      .def_property_readonly("entity_type", [](const check_batch& b) { return b.entity_type; })
      .def_property_readonly("ids", [](const check_batch& b) { return wtf8_list(b.ids); })
      .def_property_readonly("reasons", &check_batch::reasons)
      .def_property_readonly("sync_flags", &check_batch::sync_flags)
      .def_property_readonly("by_reason", &check_batch::by_reason)
      .def_property_readonly("to_sync", [](const check_batch& b) { return b.result.to_sync; })
      .def_property_readonly("skipped", [](const check_batch& b) { return b.result.skipped; })
      .def_property_readonly("cache_errors", [](const check_batch& b) { return b.result.cache_errors; })
      .def_property_readonly("error", &check_batch::error)
      .def("digest", [](const check_batch& b, std::size_t i) {
        if (i >= b.digests.size()) throw py::index_error();
        return digest_bytes(b.digests[i]);
      });

  py::class_<cache_client>(m, "Client")
      .def(py::init(&cache_client::open), "url"_a = py::none())
      .def("check", &cache_client::check, "entity_type"_a, "ids"_a, "digests"_a, "last_modified"_a = py::none(),
           py::kw_only(), "scheme"_a = "legacy", "force"_a = false)
      .def("check_entities", &cache_client::check_entities, "entity_type"_a, "hasher"_a, "entities"_a, py::kw_only(),
           "id_field"_a, "modified_field"_a = "last_modified_time", "force"_a = false)
      .def("check_pages", &cache_client::check_pages, "entity_type"_a, "pages"_a, py::kw_only(), "scheme"_a = "legacy",
           "force"_a = false)
      .def("check_page", &cache_client::check_page, "entity_type"_a, "page"_a, py::kw_only(), "scheme"_a = "legacy",
           "force"_a = false)
      .def("commit_checked", &cache_client::commit_checked, "batch"_a, "indices"_a, "local_ids"_a = py::none())
      .def("commit", &cache_client::commit, "entity_type"_a, "ids"_a, "digests"_a, "last_modified"_a = py::none(),
           "local_ids"_a = py::none(), py::kw_only(), "scheme"_a = "legacy", "warm"_a = false)
      .def("get_state", &cache_client::get_state, "entity_type"_a, "entity_id"_a)
      .def("invalidate", &cache_client::invalidate, "entity_type"_a, "entity_id"_a = py::none())
      .def("count_states", &cache_client::count_states)
      .def("mark_batch_complete", &cache_client::mark_batch_complete, "entity_type"_a, "batch_id"_a, "stats_json"_a)
      .def("was_batch_synced_recently", &cache_client::was_batch_synced_recently, "entity_type"_a, "window_seconds"_a)
      .def("ping", &cache_client::ping)
      .def("stats", &cache_client::stats)
      .def("reset_stats", &cache_client::reset_stats)
      .def("connect_attempts", &cache_client::connect_attempts)
      .def("config", &cache_client::config);
}
