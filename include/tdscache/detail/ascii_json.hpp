// JSON string escaping in the style of Python's json.dumps(ensure_ascii=True): the output is
// pure ASCII that the legacy service's json.loads reads back. Used by the state encoder and
// by the client when it builds JSON by hand. Decoding lives in state.cpp, not here.
#pragma once

#include <string>
#include <string_view>

namespace tds::detail {

// Appends bytes as a quoted JSON string. '"' and '\\' are backslashed; \b \f \n \r \t use
// their short forms; every other byte outside 0x20-0x7e and every non-ASCII code point
// becomes \uXXXX (lowercase hex, surrogate pairs above U+FFFF), as Python writes them.
// A byte that is not part of valid UTF-8 becomes \u00XX on its own, so the result is always
// valid JSON even for a malformed id; such an id does not round-trip byte for byte.
void append_ascii_json_string(std::string& out, std::string_view bytes);

}  // namespace tds::detail
