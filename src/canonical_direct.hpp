// The direct walker: the fast path of canonicalizer::canonicalize and hash. One pass over the
// bytes that parses and writes the canonical form at once, without simdjson's tape or On-Demand
// iterators. It declines (returns false) on anything it is not certain of, and the caller then
// runs the reference walker (simdjson On-Demand, src/canonical.cpp), which also words errors.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tdscache/canonical.hpp"

namespace tds::detail {

// Top-level member names left out of the canonical form.
struct name_set {
  std::vector<std::string> names;
  std::uint64_t lengths = 0;  // bit n set: some name has n bytes (n < 64)
  std::uint64_t first_bytes[4] = {};  // bit b set: some name starts with byte b

  void add(std::string name);
  bool contains(std::string_view key) const noexcept {
    // Most names have a length no excluded name has: one bit test rejects them.
    if (key.size() < 64 && !((lengths >> key.size()) & 1)) return false;
    // Then the first byte: legacy's created_at and updated_at share their 10 bytes with many
    // of Zoho's names.
    if (!key.empty()) {
      const auto b = static_cast<unsigned char>(key[0]);
      if (!((first_bytes[b >> 6] >> (b & 63)) & 1)) return false;
    }
    for (const auto& name : names)
      if (name == key) return true;
    return false;
  }
};

// A member name as its raw input text must read to be this name: its bytes and the closing
// quote, compared 32 (names up to 30 bytes) or 64 bytes at a time. Only names with nothing to
// unescape or escape get one, so a match proves the key plain and equal to the name.
struct name_pattern {
  char text[64];       // the name, '"', zeros
  std::uint64_t mask;  // bit i: byte i takes part (the name's bytes and the quote)
  std::uint32_t size;
};

// A growable byte buffer written through raw pointers: callers reserve a bound first, then
// store without a capacity check per byte.
struct byte_buffer {
  std::unique_ptr<char[]> data;
  std::size_t capacity = 0;
  std::size_t size = 0;

  char* reserve_more(std::size_t n) {  // room for n more bytes; returns the end
    if (capacity - size < n) grow(size + n);
    return data.get() + size;
  }
  void set_end(const char* end) noexcept { size = static_cast<std::size_t>(end - data.get()); }
  std::string_view view() const noexcept { return {data.get(), size}; }
  void grow(std::size_t need);
};

class direct_walker {
 public:
  struct config {
    hash_scheme scheme = hash_scheme::legacy;
    bool strict = false;
    std::size_t max_depth = 512;
    const name_set* excluded = nullptr;
  };

  // `input` holds `size` bytes followed by at least 64 zero bytes (simdjson's padding): the
  // scanners read ahead in 16-byte blocks and stop at the zeros. True: view() is the canonical
  // form, valid until the next run. False: decline, use the reference walker.
  bool run(const char* input, std::size_t size, const config& cfg, std::uintptr_t stack_floor);

  // The raw value text of an item's id and modified fields (top level, last occurrence), or
  // null views when absent.
  struct item_capture {
    std::string_view id_field, modified_field;
    std::string_view id, modified;
  };

  // One item of a page: the object at `item`, inside a page of `page_size` bytes that simdjson
  // has already checked for UTF-8 and padded. Returns the end of the object (view() is its
  // canonical form), or nullptr to decline.
  const char* run_item(const char* item, std::size_t page_size, const config& cfg,
                       std::uintptr_t stack_floor, item_capture& capture);
  std::string_view view() const noexcept { return out_.view(); }

 private:
  struct member {
    const char* key;
    // The key's first 8 bytes, big-endian: most compares end here. Filled in by assemble, and
    // only when the object's shape was not foreseen (see name_pattern).
    std::uint64_t prefix;
    std::uint32_t key_size;
    std::size_t span_begin, span_end;  // `"key": value` in out_
    bool drop;  // excluded, or a top-level null in legacy
  };
  struct sort_entry {
    std::uint64_t prefix;
    std::uint32_t member;
  };
  // An object's exact sequence of member names and its sorted order. Zoho pages repeat a few
  // shapes hundreds of times; a hit is verified name by name, so it can never give a wrong
  // order, only save the sort.
  struct shape_name {  // one name, in input order: what a hit is verified against
    std::uint64_t prefix;
    std::uint32_t size;
    std::uint32_t tail_at;  // where its bytes past the first 8 start in `tails`
  };
  struct shape {
    std::uint64_t hash = 0;
    std::vector<shape_name> names;
    // When every name has a pattern (plain, at most 30 bytes), the object loop, once the first
    // name picks this shape (guess_slot_), matches each next key against its pattern instead of
    // scanning it, and a full match makes the shape's lookup and verification unnecessary.
    std::vector<name_pattern> patterns;
    std::string tails;  // the names' bytes past the first 8, concatenated, padded for same_bytes
    // The positions of the members to write, in sorted order. A duplicate name shadowed by a
    // later one (legacy: json.loads keeps the last; jcs declines on duplicates) is left out.
    std::vector<std::uint32_t> order;
    bool sorted_already = false;  // order is the identity and there are no duplicates
  };
  static constexpr std::size_t shape_slots = 64;  // slot_of() keeps 6 bits  // bounded: a slot is overwritten on a miss

  const shape* find_shape(std::uint64_t hash, std::size_t member_mark, std::size_t count) const;
  bool sort_members(std::size_t member_mark, std::size_t count, shape& into);

  // Where the walk writes: out_'s data, its end so far and its capacity, held in locals while an
  // object or array is read (stores of char may alias any member, so fields of out_ were
  // reloaded after every byte written). Handed back to out_ around nested walks and growth.
  struct cursor {
    char* base;
    char* w;
    char* end;
  };
  cursor cursor_at_end() noexcept {
    char* base = out_.data.get();
    return {base, base + out_.size, base + out_.capacity};
  }
  // The out-of-line helpers take and return the cursor by value: a cursor whose address
  // escaped had to live in memory, stored and reloaded around every byte the walk wrote.
  void room(cursor& o, std::size_t n);
  cursor keep_bound(cursor o, const char* p, std::size_t extra);
  cursor grow_out(cursor o, std::size_t n);
  cursor put_tmp(cursor o, const char* p);

  void start(const config& cfg, std::uintptr_t stack_floor, std::size_t input_size);
  // object and array return the end of what they read, or nullptr to decline.
  const char* object(const char* p, std::size_t depth);
  const char* array(const char* p, std::size_t depth);
  bool value(const char*& p, cursor& o, std::size_t depth, bool& is_null);
  bool string(const char*& p, cursor& o);
  bool literal(const char*& p, cursor& o, std::string_view word);
  void separator(cursor& o, char c, std::size_t width);
  char open(const char*& p, cursor& o);
  void close(const char*& p, cursor& o);
  int after_element(const char*& p, cursor& o, char closing, std::size_t separator_width);
  bool key(const char*& p, cursor& o, std::string_view& decoded);
  bool number(const char*& p, cursor& o);
  bool assemble(std::size_t member_mark, std::size_t out_mark, const shape* foreseen, bool any_drop);
  const shape* guess_shape(const char* first_key_text, std::string_view first_name);
  bool enter(std::size_t depth) const;

  config cfg_;
  item_capture* capture_ = nullptr;
  std::uintptr_t stack_floor_ = 0;
  // No input is read past this address: bounds the output still to come. An integer, since for
  // a page item it may lie past the page's buffer.
  std::uintptr_t input_limit_ = 0;
  std::size_t input_left(const char* p) const noexcept { return input_limit_ - reinterpret_cast<std::uintptr_t>(p); }
  std::size_t depth_limit_ = 0;
  byte_buffer out_, scratch_;
  byte_buffer keys_;  // decoded names that had escapes: room for the whole input, never grows mid-run
  std::string tmp_;  // the rare slow pieces: escaped odd names, numbers through a double
  std::vector<member> members_;
  std::vector<sort_entry> order_;
  std::vector<shape> shapes_;
  // Which slot's shape an object whose first name hashes here had last (slot + 1; 0: none).
  std::array<std::uint8_t, shape_slots> guess_slot_{};
  // Counts slot overwrites: a guess taken before a nested object sorted into a slot is dropped
  // (its patterns may have changed or moved).
  std::uint64_t shape_writes_ = 0;
  hash_scheme shapes_scheme_ = hash_scheme::legacy;  // the scheme the cached shapes were built for
};

}  // namespace tds::detail
