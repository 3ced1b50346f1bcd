// Hex digit decoding, one table for every reader of hex text: digests (digest::from_hex, the
// stored content_hash the decision rules compare) and JSON \uXXXX escapes. Not a public API.
#pragma once

#include <array>
#include <cstdint>

namespace tds::detail {

// A hex digit's value (either case), or 0x10 for any other byte, so one OR over many lookups
// says whether all of them were digits.
inline constexpr auto hex_digit_values = [] {
  std::array<std::uint8_t, 256> table{};
  for (auto& v : table) v = 0x10;
  for (int c = '0'; c <= '9'; ++c) table[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) table[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) table[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - 'A' + 10);
  return table;
}();

// The digit's value, or -1 for a byte that is not a hex digit.
inline int hex_value(char c) noexcept {
  const int v = hex_digit_values[static_cast<unsigned char>(c)];
  return v > 0xf ? -1 : v;
}

}  // namespace tds::detail
